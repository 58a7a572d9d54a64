/**
 * Schnorr signing and verification on worker threads, so the event loop keeps serving HTTP while
 * signatures are computed on the other cores. Jobs made in one event-loop iteration are packed into one
 * transferred buffer per worker (no per-job structured cloning); each worker answers a batch in order.
 * Size 0 runs everything inline (same results, no threads).
 */
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { schnorrBackend, signDigest, verifyDigest } from './schnorr.js';
import { random32 } from './random-pool.js';

const SLOT = 128;
const OUT_SLOT = 65;

interface Job {
  op: 0 | 1;
  /** sign: digest|sk|aux; verify: digest|pk|sig */
  parts: [Uint8Array, Uint8Array, Uint8Array];
  resolve(v: Uint8Array | boolean): void;
  reject(e: Error): void;
}

interface Lane {
  worker: Worker;
  queued: Job[];
  /** Batches sent and not yet answered, oldest first. */
  inFlight: Job[][];
  load: number;
  /** False once the worker has died (error or exit): its jobs and later ones run inline. */
  alive: boolean;
}

const WORKER_FILE = path
  .join(path.dirname(fileURLToPath(import.meta.url)), 'crypto-worker.mjs')
  .replace(`${path.sep}dist${path.sep}`, path.sep);

export class CryptoPool {
  private readonly lanes: Lane[] = [];
  private flushScheduled = false;
  private closed = false;
  private concurrency: () => number = () => Infinity;

  constructor(readonly size: number) {
    for (let i = 0; i < size; i++) {
      const worker = new Worker(WORKER_FILE, { execArgv: [], env: {}, workerData: { backend: schnorrBackend().name } });
      worker.unref();
      const lane: Lane = { worker, queued: [], inFlight: [], load: 0, alive: true };
      worker.on('message', ({ out }: { out: Uint8Array }) => {
        const batch = lane.inFlight.shift();
        if (!batch) return;
        lane.load -= batch.length;
        batch.forEach((job, k) => {
          const ok = out[k * OUT_SLOT] === 1;
          if (job.op === 1) job.resolve(ok);
          else if (ok) job.resolve(out.slice(k * OUT_SLOT + 1, (k + 1) * OUT_SLOT));
          else job.reject(new Error('schnorr signing failed'));
        });
      });
      // A worker that dies (an uncaught error, an exit) must not strand requests: what it held is
      // computed inline, and later jobs skip it.
      worker.on('error', () => this.retire(lane));
      worker.on('exit', () => this.retire(lane));
      this.lanes.push(lane);
    }
  }

  /**
   * A hint of how many requests are in flight. With one or none, a worker round trip (two thread
   * wake-ups) costs more than it saves, so the work runs inline; under concurrency it goes to workers.
   */
  setConcurrencyHint(fn: () => number): void {
    this.concurrency = fn;
  }

  private inline(): boolean {
    return this.size === 0 || this.closed || this.concurrency() <= 1 || !this.lanes.some((l) => l.alive);
  }

  /** Live workers (for /status and tests). */
  get liveWorkers(): number {
    return this.lanes.filter((l) => l.alive).length;
  }

  sign(digest: Uint8Array, secretKey: Uint8Array): Promise<Uint8Array> {
    if (this.inline()) return Promise.resolve(signDigest(digest, secretKey));
    return this.enqueue(0, [digest, secretKey, random32()]) as Promise<Uint8Array>;
  }

  verify(sig: Uint8Array, digest: Uint8Array, publicKey: Uint8Array): Promise<boolean> {
    if (sig.length !== 64 || digest.length !== 32 || publicKey.length !== 32) return Promise.resolve(false);
    if (this.inline()) return Promise.resolve(verifyDigest(sig, digest, publicKey));
    return this.enqueue(1, [digest, publicKey, sig]) as Promise<boolean>;
  }

  private enqueue(op: 0 | 1, parts: Job['parts']): Promise<Uint8Array | boolean> {
    return new Promise((resolve, reject) => {
      let best: Lane | undefined;
      for (const lane of this.lanes) if (lane.alive && (!best || lane.load + lane.queued.length < best.load + best.queued.length)) best = lane;
      if (!best) {
        runInline({ op, parts, resolve, reject });
        return;
      }
      best.queued.push({ op, parts, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        // After the poll phase, not at the end of this tick: the jobs of every request read in one poll
        // travel in one message (one wake-up of the worker instead of one per request).
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    for (const lane of this.lanes) {
      const batch = lane.queued;
      if (batch.length === 0) continue;
      lane.queued = [];
      const ops = new Uint8Array(batch.length);
      const data = new Uint8Array(batch.length * SLOT);
      batch.forEach((job, k) => {
        ops[k] = job.op;
        const o = k * SLOT;
        data.set(job.parts[0], o);
        data.set(job.parts[1], o + 32);
        data.set(job.parts[2], o + 64);
      });
      lane.inFlight.push(batch);
      lane.load += batch.length;
      lane.worker.postMessage({ ops, data }, [ops.buffer, data.buffer]);
    }
  }

  private retire(lane: Lane): void {
    if (!lane.alive) return;
    lane.alive = false;
    if (this.closed) return this.failLane(lane, new Error('crypto pool closed'));
    const jobs = [...lane.inFlight.flat(), ...lane.queued];
    lane.inFlight = [];
    lane.queued = [];
    lane.load = 0;
    for (const job of jobs) runInline(job);
  }

  private failLane(lane: Lane, err: Error): void {
    for (const job of [...lane.inFlight.flat(), ...lane.queued]) job.reject(err);
    lane.inFlight = [];
    lane.queued = [];
    lane.load = 0;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.lanes.map((l) => l.worker.terminate()));
    for (const lane of this.lanes) this.failLane(lane, new Error('crypto pool closed'));
  }
}

/** Computes a job on this thread (the pool's fallback when its workers are gone). */
function runInline(job: Job): void {
  try {
    if (job.op === 1) job.resolve(verifyDigest(job.parts[2], job.parts[0], job.parts[1]));
    else job.resolve(signDigest(job.parts[0], job.parts[1], job.parts[2]));
  } catch (err) {
    job.reject(err instanceof Error ? err : new Error(String(err)));
  }
}
