/**
 * Replay protection for signed envelopes (fedai-wire.md §3, §15.8–10): nonces are remembered **per
 * signer keyId**, inside a ±windowMs window around now, and persisted with lmdb so a restart opens no
 * replay hole.
 *
 * Design
 *  - Memory is the source of truth on the hot path: a Map (entry key → ts) plus a binary min-heap on ts.
 *    check() is O(1); commit() is O(1) for the lookup plus O(log n) for the heap insert, fully
 *    synchronous (no I/O awaited). Expired entries and evictions always leave from the heap top, so no
 *    lazy deletion is needed.
 *  - Entry key = first 16 bytes of sha256(keyId + '\0' + nonce): fixed size whatever the keyId/nonce
 *    length. A collision can only refuse a fresh nonce, never admit a replay.
 *  - Disk (lmdb, `<dir>/nonces.mdb`): key = 8-byte big-endian ts ‖ 16-byte entry key, so the file is
 *    ts-ordered and pruning is a range walk. Writes are batched by lmdb asynchronously (a commit costs
 *    the hot path nothing); durable() resolves once the latest commit is synced to disk, and the node
 *    waits for it before it meters or answers a request, so no answered request's nonce can be lost
 *    by a crash (the write runs while the runner works). flush() waits for everything; close() flushes.
 *  - Bounded at maxEntries: when full, expired entries go first, then the oldest (smallest ts). The
 *    largest ts ever evicted or pruned is the low-water mark (persisted): any envelope with
 *    ts ≤ mark is refused as 'ts-out-of-window', so neither eviction nor pruning opens a replay hole.
 *  - lmdb crashes the process (SIGSEGV/SIGBUS) on a corrupt file, so an existing file is first opened
 *    by a throw-away child process. If that child dies, the file is moved aside and the store starts
 *    empty with the mark at now + windowMs (every envelope that could have been accepted before is
 *    refused): fail closed, logged as an error.
 */
import { hash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { FedaiError } from '../errors.js';
import type { Logger } from '../observability/logger.js';

export type ReplayFailure = 'ts-out-of-window' | 'nonce-reused';

export interface NonceStoreOptions {
  /** Directory of the store (created, mode 0700). The node passes `<NODE_DATA_DIR>/nonces`. */
  dir: string;
  /** Accepted |now − ts| in ms. */
  windowMs: number;
  /** Most nonces remembered. */
  maxEntries: number;
  logger?: Logger;
  /** Clock, for tests. */
  now?: () => number;
  /** Period of the background prune (default: windowMs / 2 clamped to 1 s..60 s). */
  pruneIntervalMs?: number;
}

const DB_FILE = 'nonces.mdb';
const HASH_BYTES = 16;
const VALUE = Buffer.from([1]);
const META_LOW_WATER = 'lowWater';

function diskKey(ts: number, hash: string): Buffer {
  const b = Buffer.allocUnsafe(8 + HASH_BYTES);
  b.writeBigUInt64BE(BigInt(ts), 0);
  b.write(hash, 8, HASH_BYTES, 'latin1');
  return b;
}

function tsBound(ts: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(ts))), 0);
  return b;
}

/** Source run by the probe child: opens the store and walks every key; a corrupt file kills it. */
const PROBE_SRC = `
const { open } = require(process.argv[1]);
const root = open({ path: process.argv[2], compression: false });
const db = root.openDB({ name: 'entries', keyEncoding: 'binary', encoding: 'binary' });
const meta = root.openDB({ name: 'meta' });
let n = 0;
for (const e of db.getRange({})) { if (e.key.length !== ${8 + HASH_BYTES}) throw new Error('bad key'); n++; }
meta.get('${META_LOW_WATER}');
root.close().then(() => { process.stdout.write(String(n)); process.exit(0); });
`;

export class NonceStore {
  private readonly map = new Map<string, number>();
  /** Min-heap on ts, in two parallel arrays (ts, entry key). */
  private readonly heapTs: number[] = [];
  private readonly heapKey: string[] = [];
  private lowWater: number;
  private closed = false;
  private closing: Promise<void> | undefined;
  private writeError: unknown;
  private readonly timer: NodeJS.Timeout;

  private constructor(
    private readonly root: RootDatabase,
    private readonly db: Database<Buffer, Buffer>,
    private readonly meta: Database<number, string>,
    private readonly windowMs: number,
    private readonly maxEntries: number,
    private readonly now: () => number,
    private readonly logger: Logger | undefined,
    lowWater: number,
    pruneIntervalMs: number,
  ) {
    this.lowWater = lowWater;
    this.timer = setInterval(() => {
      try {
        this.prune();
      } catch (err) {
        this.logger?.error({ err }, 'nonce store prune failed');
      }
    }, pruneIntervalMs);
    this.timer.unref();
  }

  static open(opts: NonceStoreOptions): NonceStore {
    const { dir, logger } = opts;
    const now = opts.now ?? Date.now;
    if (!Number.isInteger(opts.windowMs) || opts.windowMs < 1) throw new FedaiError('config-invalid', { details: ['nonce store windowMs must be an integer ≥ 1'] });
    if (!Number.isInteger(opts.maxEntries) || opts.maxEntries < 1) throw new FedaiError('config-invalid', { details: ['nonce store maxEntries must be an integer ≥ 1'] });
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      if (!statSync(dir).isDirectory()) throw new Error('not a directory');
    } catch (err) {
      throw new FedaiError('config-invalid', { details: [`nonce store directory ${dir} cannot be created: ${(err as Error).message}`], cause: err });
    }
    const file = join(dir, DB_FILE);
    let recoveredMark: number | undefined;
    if (existsSync(file)) {
      const probe = probeStore(file);
      if (probe.status === 'unknown') {
        logger?.warn({ file, reason: probe.reason }, 'nonce store probe could not run; opening without it');
      } else if (probe.status === 'corrupt') {
        const aside = `${file}.corrupt-${now()}`;
        try {
          renameSync(file, aside);
          if (existsSync(`${file}-lock`)) renameSync(`${file}-lock`, `${aside}-lock`);
        } catch (err) {
          throw new FedaiError('config-invalid', { details: [`nonce store ${file} is unreadable and cannot be moved aside: ${(err as Error).message}`], cause: err });
        }
        recoveredMark = now() + opts.windowMs;
        logger?.error(
          { file, movedTo: aside, reason: probe.reason, refuseUpToTs: recoveredMark },
          'nonce store was unreadable: moved aside; refusing envelopes signed before the mark to keep replays out',
        );
      }
    }

    let root: RootDatabase;
    try {
      root = open({ path: file, compression: false });
    } catch (err) {
      throw new FedaiError('internal-error', { message: `nonce store ${file} does not open: ${(err as Error).message}`, cause: err });
    }
    const db = root.openDB<Buffer, Buffer>({ name: 'entries', keyEncoding: 'binary', encoding: 'binary' });
    const meta = root.openDB<number, string>({ name: 'meta' });

    const stored = meta.get(META_LOW_WATER);
    let lowWater = typeof stored === 'number' && Number.isFinite(stored) ? stored : -1;
    if (recoveredMark !== undefined && recoveredMark > lowWater) lowWater = recoveredMark;

    const interval = opts.pruneIntervalMs ?? Math.max(1000, Math.min(60_000, Math.floor(opts.windowMs / 2)));
    const store = new NonceStore(root, db, meta, opts.windowMs, opts.maxEntries, now, logger, lowWater, interval);
    if (recoveredMark !== undefined) store.persistLowWater();
    store.load();
    return store;
  }

  /** Number of nonces remembered. */
  get size(): number {
    return this.map.size;
  }

  /** The low-water mark: envelopes with ts ≤ this are refused (−1 = none). */
  get lowWaterMark(): number {
    return this.lowWater;
  }

  /** Pure check, commits nothing. */
  check(keyId: string, nonce: string, ts: number): null | ReplayFailure {
    const t = this.now();
    if (!inWindow(ts, t, this.windowMs) || ts <= this.lowWater) return 'ts-out-of-window';
    return this.map.has(entryKey(keyId, nonce)) ? 'nonce-reused' : null;
  }

  /** Atomic check-and-insert; returns the same failure codes, or null when the nonce is now consumed. */
  commit(keyId: string, nonce: string, ts: number): null | ReplayFailure {
    if (this.closed) throw new FedaiError('internal-error', { message: 'nonce store is closed' });
    const t = this.now();
    if (!inWindow(ts, t, this.windowMs) || ts <= this.lowWater) return 'ts-out-of-window';
    const key = entryKey(keyId, nonce);
    if (this.map.has(key)) return 'nonce-reused';
    if (this.map.size >= this.maxEntries) {
      this.pruneAt(t);
      while (this.map.size >= this.maxEntries) {
        // The oldest entry goes. If the newcomer is itself the oldest, it is the one that cannot be kept:
        // refuse it (storing it would need a mark at or above its own ts). Nothing was accepted, so the
        // mark need not move.
        if (ts <= this.heapTs[0]) return 'ts-out-of-window';
        const [oldTs, oldKey] = this.popMin();
        this.map.delete(oldKey);
        this.removeOnDisk(oldTs, oldKey);
        this.raiseLowWater(oldTs);
      }
    }
    this.map.set(key, ts);
    this.push(ts, key);
    this.writeOnDisk(ts, key);
    return null;
  }

  /** Drops expired entries (memory and disk); returns how many. */
  prune(): number {
    if (this.closed) return 0;
    return this.pruneAt(this.now());
  }

  /**
   * Resolves once every nonce committed so far is synced to disk (lmdb's `flushed` for the batch the
   * latest commit went into). Never rejects: a failed write is logged and reported by flush().
   */
  durable(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return Promise.resolve(this.root.flushed as PromiseLike<unknown>).then(
      () => undefined,
      () => undefined,
    );
  }

  /** Resolves when every commit so far is committed and synced to disk. */
  async flush(): Promise<void> {
    await this.root.committed;
    await this.root.flushed;
    if (this.writeError !== undefined) {
      const err = this.writeError;
      this.writeError = undefined;
      throw new FedaiError('internal-error', { message: 'nonce store write failed', cause: err });
    }
  }

  /** Flushes, stops the prune timer and closes the database. Idempotent. */
  close(): Promise<void> {
    if (!this.closing) {
      this.closing = (async () => {
        clearInterval(this.timer);
        try {
          await this.flush();
        } finally {
          this.closed = true;
          await this.root.close();
        }
      })();
    }
    return this.closing;
  }

  // ---- internals ---------------------------------------------------------------------------------

  private load(): void {
    const t = this.now();
    const floor = Math.max(t - this.windowMs, this.lowWater + 1);
    let expired = 0;
    let expiredMax = -1;
    for (const key of this.db.getKeys({ end: tsBound(floor) })) {
      const buf = key as Buffer;
      if (buf.length >= 8) expiredMax = Math.max(expiredMax, Number(buf.readBigUInt64BE(0)));
      this.db.remove(key).catch((err: unknown) => this.onWriteError(err));
      expired++;
    }
    if (expiredMax >= 0 && expiredMax < t - this.windowMs) this.raiseLowWater(expiredMax);
    let loaded = 0;
    for (const key of this.db.getKeys({ start: tsBound(floor) })) {
      const buf = key as Buffer;
      if (buf.length !== 8 + HASH_BYTES) continue;
      const ts = Number(buf.readBigUInt64BE(0));
      const hash = buf.toString('latin1', 8);
      if (this.map.has(hash)) continue;
      this.map.set(hash, ts);
      this.push(ts, hash);
      loaded++;
    }
    // More than maxEntries on disk (e.g. maxEntries lowered): evict down to the bound, raising the mark.
    while (this.map.size > this.maxEntries) {
      const [oldTs, oldKey] = this.popMin();
      this.map.delete(oldKey);
      this.removeOnDisk(oldTs, oldKey);
      this.raiseLowWater(oldTs);
    }
    this.logger?.info({ loaded, expired, lowWaterMark: this.lowWater }, 'nonce store opened');
  }

  private pruneAt(t: number): number {
    const cutoff = t - this.windowMs;
    let n = 0;
    let maxTs = -1;
    while (this.heapTs.length > 0 && this.heapTs[0] < cutoff) {
      const [ts, key] = this.popMin();
      this.map.delete(key);
      this.removeOnDisk(ts, key);
      maxTs = ts;
      n++;
    }
    // Remember how far pruning went, so a clock that steps back cannot readmit a pruned nonce.
    if (n > 0) this.raiseLowWater(maxTs);
    return n;
  }

  private raiseLowWater(ts: number): void {
    if (ts > this.lowWater) {
      this.lowWater = ts;
      this.persistLowWater();
    }
  }

  // Disk writes never throw into the caller: memory already holds the verdict (a failed write can only
  // lose persistence, which flush() then reports).
  private persistLowWater(): void {
    try {
      this.meta.put(META_LOW_WATER, this.lowWater).catch((err: unknown) => this.onWriteError(err));
    } catch (err) {
      this.onWriteError(err);
    }
  }

  private writeOnDisk(ts: number, key: string): void {
    try {
      this.db.put(diskKey(ts, key), VALUE).catch((err: unknown) => this.onWriteError(err));
    } catch (err) {
      this.onWriteError(err);
    }
  }

  private removeOnDisk(ts: number, key: string): void {
    try {
      this.db.remove(diskKey(ts, key)).catch((err: unknown) => this.onWriteError(err));
    } catch (err) {
      this.onWriteError(err);
    }
  }

  private onWriteError(err: unknown): void {
    if (this.writeError === undefined) this.writeError = err;
    this.logger?.error({ err }, 'nonce store write failed');
  }

  private push(ts: number, key: string): void {
    const hts = this.heapTs;
    const hk = this.heapKey;
    let i = hts.length;
    hts.push(ts);
    hk.push(key);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (hts[p] <= ts) break;
      hts[i] = hts[p];
      hk[i] = hk[p];
      i = p;
    }
    hts[i] = ts;
    hk[i] = key;
  }

  private popMin(): [number, string] {
    const hts = this.heapTs;
    const hk = this.heapKey;
    const topTs = hts[0];
    const topKey = hk[0];
    const lastTs = hts.pop()!;
    const lastKey = hk.pop()!;
    const n = hts.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && hts[r] < hts[l] ? r : l;
        if (hts[c] >= lastTs) break;
        hts[i] = hts[c];
        hk[i] = hk[c];
        i = c;
      }
      hts[i] = lastTs;
      hk[i] = lastKey;
    }
    return [topTs, topKey];
  }
}

function inWindow(ts: number, now: number, windowMs: number): boolean {
  return Number.isSafeInteger(ts) && ts >= 0 && ts >= now - windowMs && ts <= now + windowMs;
}

function entryKey(keyId: string, nonce: string): string {
  if (typeof keyId !== 'string' || typeof nonce !== 'string' || nonce.length === 0) {
    throw new FedaiError('invalid-envelope', { details: ['keyId and nonce must be non-empty strings'] });
  }
  return hash('sha256', `${keyId}\0${nonce}`, 'buffer').toString('latin1', 0, HASH_BYTES);
}

let lmdbEntry: string | undefined;
function probeStore(file: string): { status: 'ok' } | { status: 'corrupt' | 'unknown'; reason: string } {
  lmdbEntry ??= createRequire(import.meta.url).resolve('lmdb');
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const r = spawnSync(process.execPath, ['-e', PROBE_SRC, lmdbEntry, file], {
    env,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 60_000,
  });
  if (r.status === 0) return { status: 'ok' };
  if (r.error && (r.error as NodeJS.ErrnoException).code !== 'ETIMEDOUT') return { status: 'unknown', reason: r.error.message };
  return { status: 'corrupt', reason: r.signal ? `probe killed by ${r.signal}` : `probe exited ${r.status}` };
}
