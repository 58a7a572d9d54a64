/**
 * Per-runner admission: at most `maxParallel` requests in flight (the runner's declared limit), a FIFO
 * queue of at most `queueMax` waiting requests, and capacity-exhausted (429) beyond that. A queued
 * request leaves the queue when its signal aborts (request-cancelled). A slot is held until the caller
 * releases it; the manager releases only when the runner has settled the request or died.
 */
import { FedaiError } from '../errors.js';

export type Release = () => void;

interface Waiter {
  resolve: (r: Release) => void;
  reject: (e: unknown) => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

export class Admission {
  private active = 0;
  private readonly waiters: Waiter[] = [];

  constructor(
    private maxParallel: number,
    private readonly queueMax: number,
  ) {
    if (!(maxParallel >= 1)) this.maxParallel = 1;
  }

  get inFlight(): number {
    return this.active;
  }

  get queued(): number {
    return this.waiters.length;
  }

  get limit(): number {
    return this.maxParallel;
  }

  setMaxParallel(n: number): void {
    this.maxParallel = Number.isSafeInteger(n) && n >= 1 ? n : 1;
    this.pump();
  }

  acquire(signal?: AbortSignal): Promise<Release> {
    if (signal?.aborted) return Promise.reject(new FedaiError('request-cancelled'));
    if (this.active < this.maxParallel && this.waiters.length === 0) {
      this.active++;
      return Promise.resolve(this.releaser());
    }
    if (this.waiters.length >= this.queueMax) {
      return Promise.reject(new FedaiError('capacity-exhausted', { retryAfterS: 1 }));
    }
    return new Promise<Release>((resolve, reject) => {
      const w: Waiter = { resolve, reject, signal };
      if (signal) {
        w.onAbort = () => {
          const i = this.waiters.indexOf(w);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(new FedaiError('request-cancelled'));
        };
        signal.addEventListener('abort', w.onAbort, { once: true });
      }
      this.waiters.push(w);
    });
  }

  /** Rejects every queued request with `err` (drain, give-up). In-flight slots are untouched. */
  rejectQueued(err: () => unknown): void {
    for (const w of this.waiters.splice(0)) {
      if (w.onAbort) w.signal?.removeEventListener('abort', w.onAbort);
      w.reject(err());
    }
  }

  private releaser(): Release {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.active--;
      this.pump();
    };
  }

  private pump(): void {
    while (this.active < this.maxParallel && this.waiters.length > 0) {
      const w = this.waiters.shift()!;
      if (w.onAbort) w.signal?.removeEventListener('abort', w.onAbort);
      this.active++;
      w.resolve(this.releaser());
    }
  }
}
