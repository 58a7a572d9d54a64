/**
 * Schnorr signing and verification on worker threads, so the event loop keeps serving HTTP while
 * signatures are computed on the other cores. Requests made in the same tick are batched into one
 * message per worker. Size 0 runs everything inline (same results, no threads).
 */
import { randomFillSync } from 'node:crypto';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { signDigest, verifyDigest } from './schnorr.js';

type Job =
  | { id: number; op: 'sign'; digest: Uint8Array; sk: Uint8Array; aux: Uint8Array }
  | { id: number; op: 'verify'; digest: Uint8Array; pk: Uint8Array; sig: Uint8Array };

interface Pending {
  resolve(v: Uint8Array | boolean): void;
  reject(e: Error): void;
}

const WORKER_FILE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'crypto-worker.mjs').replace(`${path.sep}dist${path.sep}`, path.sep);

export class CryptoPool {
  private readonly workers: Worker[] = [];
  private readonly queues: Job[][] = [];
  private readonly pending = new Map<number, Pending>();
  private readonly load: number[] = [];
  private nextId = 1;
  private flushScheduled = false;
  private closed = false;

  constructor(readonly size: number) {
    for (let i = 0; i < size; i++) {
      const w = new Worker(WORKER_FILE, { execArgv: [], env: {} });
      w.unref();
      w.on('message', (results: Array<{ id: number; sig?: Uint8Array; ok?: boolean; error?: string }>) => {
        this.load[i]! -= results.length;
        for (const r of results) {
          const p = this.pending.get(r.id);
          if (!p) continue;
          this.pending.delete(r.id);
          if (r.sig) p.resolve(r.sig);
          else if (r.error && r.ok === false && this.isSignJob(r.id)) p.reject(new Error(r.error));
          else p.resolve(r.ok === true);
        }
      });
      w.on('error', (err) => this.failAll(err));
      this.workers.push(w);
      this.queues.push([]);
      this.load.push(0);
    }
  }

  private readonly signIds = new Set<number>();
  private isSignJob(id: number): boolean {
    return this.signIds.delete(id);
  }

  sign(digest: Uint8Array, secretKey: Uint8Array): Promise<Uint8Array> {
    if (this.size === 0 || this.closed) return Promise.resolve(signDigest(digest, secretKey));
    const aux = randomFillSync(new Uint8Array(32));
    const id = this.nextId++;
    this.signIds.add(id);
    return this.enqueue({ id, op: 'sign', digest, sk: secretKey, aux }) as Promise<Uint8Array>;
  }

  verify(sig: Uint8Array, digest: Uint8Array, publicKey: Uint8Array): Promise<boolean> {
    if (sig.length !== 64 || digest.length !== 32 || publicKey.length !== 32) return Promise.resolve(false);
    if (this.size === 0 || this.closed) return Promise.resolve(verifyDigest(sig, digest, publicKey));
    return this.enqueue({ id: this.nextId++, op: 'verify', digest, pk: publicKey, sig }) as Promise<boolean>;
  }

  private enqueue(job: Job): Promise<Uint8Array | boolean> {
    return new Promise((resolve, reject) => {
      this.pending.set(job.id, { resolve, reject });
      let best = 0;
      for (let i = 1; i < this.size; i++) if (this.load[i]! + this.queues[i]!.length < this.load[best]! + this.queues[best]!.length) best = i;
      this.queues[best]!.push(job);
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        queueMicrotask(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    for (let i = 0; i < this.size; i++) {
      const q = this.queues[i]!;
      if (q.length === 0) continue;
      this.queues[i] = [];
      this.load[i]! += q.length;
      this.workers[i]!.postMessage(q);
    }
  }

  private failAll(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.failAll(new Error('crypto pool closed'));
  }
}
