/**
 * Durable metering spool (upstream defect 15.11: metering was never persisted).
 *
 * One signed Envelope<MeteringRecord> per line, JSON, in `metering-<seq>.jsonl` files (seq zero-padded
 * to 8 digits so names sort). `append()` resolves only after the line is on disk (an O_DSYNC write); the
 * HTTP layer must not send an inference result before that (on rejection it answers 500
 * metering-write-failed instead).
 *
 * Group commit: appends that arrive while a flush is running (or in the same tick) are written as one
 * buffer and made durable by one synchronized write, in call order. 64 concurrent requests cost about
 * one or two disk syncs instead of 64.
 *
 * Rotation: a file never grows past `rotateBytes` unless a single line is larger; lines are never split
 * across files. A new file is fsync'd and so is the directory (so the new name survives a crash).
 *
 * Crash safety: a crash (or SIGKILL) during a write can leave a partial last line. On open, the newest
 * file's unterminated tail is truncated away and logged with its byte count — such a record was never
 * acknowledged (its append had not resolved), so no result was sent for it. The spool is therefore
 * always a sequence of complete lines.
 *
 * Write failure: every append of the failed batch rejects with FedaiError('metering-write-failed');
 * the file is truncated back to its last good size, and the next batch goes to a fresh file (a new fd:
 * after a failed fsync the old fd's page-cache state cannot be trusted).
 */
import { constants } from 'node:fs';
import { mkdir, open, readdir, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Envelope } from '../crypto/envelope.js';
import { FedaiError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { MeteringRecord } from '../protocol/wire-types.js';

/**
 * Data files are opened O_DSYNC: each write returns once its bytes (and the size needed to read them
 * back) are on disk, like write + fdatasync, in one thread-pool job instead of two.
 */
const APPEND_DSYNC = constants.O_WRONLY | constants.O_APPEND | constants.O_DSYNC;
const CREATE_DSYNC = APPEND_DSYNC | constants.O_CREAT | constants.O_EXCL;

export const SPOOL_FILE_RE = /^metering-(\d+)\.jsonl$/;
export const DEFAULT_ROTATE_BYTES = 64 * 1024 * 1024;

export function spoolFileName(seq: number): string {
  return `metering-${String(seq).padStart(8, '0')}.jsonl`;
}

/** Spool files in `dir`, oldest first (by sequence number). */
export async function listSpoolFiles(dir: string): Promise<string[]> {
  const names = await readdir(dir);
  return names
    .map((n) => ({ n, m: SPOOL_FILE_RE.exec(n) }))
    .filter((x): x is { n: string; m: RegExpExecArray } => x.m !== null)
    .sort((a, b) => Number(a.m[1]) - Number(b.m[1]))
    .map((x) => join(dir, x.n));
}

export interface MeteringSpoolOptions {
  dir: string;
  /** Rotate when the current file would exceed this many bytes (NODE_METERING_ROTATE_BYTES). */
  rotateBytes?: number;
  logger: Logger;
}

export interface SpoolStats {
  /** Appends made durable. */
  appends: number;
  /** Synchronized (O_DSYNC) batch writes to data files. */
  fsyncs: number;
  /** Write batches (group commits). */
  batches: number;
  /** Rejected appends. */
  failures: number;
  /** Bytes truncated away at open (torn tail). */
  tornBytesAtOpen: number;
}

interface Pending {
  line: Buffer;
  resolve: () => void;
  reject: (err: Error) => void;
}

async function fsyncDir(dir: string): Promise<void> {
  const h = await open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

/** Length of the prefix of the file that ends with its last '\n' (0 if none). Reads backwards. */
async function lastNewlineEnd(h: FileHandle, size: number): Promise<number> {
  const CHUNK = 64 * 1024;
  const buf = Buffer.allocUnsafe(CHUNK);
  let end = size;
  while (end > 0) {
    const start = Math.max(0, end - CHUNK);
    const len = end - start;
    const { bytesRead } = await h.read(buf, 0, len, start);
    if (bytesRead !== len) throw new Error(`short read at ${start}`);
    const idx = buf.subarray(0, len).lastIndexOf(0x0a);
    if (idx >= 0) return start + idx + 1;
    end = start;
  }
  return 0;
}

export class MeteringSpool {
  readonly dir: string;
  readonly rotateBytes: number;
  private readonly logger: Logger;
  private fh: FileHandle | null = null;
  private seq: number;
  private size = 0;
  private queue: Pending[] = [];
  private flushing: Promise<void> | null = null;
  private scheduled = false;
  private closed = false;
  private rotateNext = false;
  private readonly _stats: SpoolStats = { appends: 0, fsyncs: 0, batches: 0, failures: 0, tornBytesAtOpen: 0 };

  private constructor(dir: string, rotateBytes: number, logger: Logger, seq: number) {
    this.dir = dir;
    this.rotateBytes = rotateBytes;
    this.logger = logger;
    this.seq = seq;
  }

  static async open(opts: MeteringSpoolOptions): Promise<MeteringSpool> {
    const rotateBytes = opts.rotateBytes ?? DEFAULT_ROTATE_BYTES;
    if (!Number.isSafeInteger(rotateBytes) || rotateBytes < 1) throw new TypeError('rotateBytes must be a positive integer');
    await mkdir(opts.dir, { recursive: true });
    const files = await listSpoolFiles(opts.dir);
    const newest = files.at(-1);
    const seq = newest ? Number(SPOOL_FILE_RE.exec(newest.slice(newest.lastIndexOf('/') + 1))![1]) : 1;
    const spool = new MeteringSpool(opts.dir, rotateBytes, opts.logger, seq);
    try {
      if (newest) await spool.repairAndOpen(newest);
      else await spool.openFile(seq, true);
    } catch (err) {
      throw new FedaiError('metering-write-failed', { cause: err, message: `metering spool ${opts.dir} cannot be opened: ${(err as Error).message}` });
    }
    return spool;
  }

  /** Path of the file the next batch is written to. */
  get currentFile(): string {
    return join(this.dir, spoolFileName(this.seq));
  }

  get stats(): Readonly<SpoolStats> {
    return { ...this._stats };
  }

  private async repairAndOpen(path: string): Promise<void> {
    const st = await stat(path);
    const fh = await open(path, 'r+');
    try {
      if (st.isFile() && st.size > 0) {
        const good = await lastNewlineEnd(fh, st.size);
        if (good < st.size) {
          const torn = st.size - good;
          await fh.truncate(good);
          await fh.datasync();
          this._stats.tornBytesAtOpen = torn;
          this.logger.warn({ file: path, tornBytes: torn, keptBytes: good }, 'metering spool: truncated a torn last line left by a crash');
        }
        this.size = good;
      } else {
        this.size = st.isFile() ? st.size : 0;
      }
    } finally {
      await fh.close();
    }
    this.fh = await open(path, APPEND_DSYNC);
  }

  private async openFile(seq: number, create: boolean): Promise<void> {
    const path = join(this.dir, spoolFileName(seq));
    this.fh = await open(path, create ? CREATE_DSYNC : APPEND_DSYNC, 0o640);
    await this.fh.sync();
    await fsyncDir(this.dir);
    this.seq = seq;
    this.size = 0;
  }

  private async rotate(): Promise<void> {
    const old = this.fh;
    this.fh = null;
    if (old) await old.close().catch(() => undefined);
    // Skip names that exist (e.g. left by a failed rotation) rather than appending after a stranger.
    let next = this.seq + 1;
    for (;;) {
      try {
        await this.openFile(next, true);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        next++;
      }
    }
    this.logger.info({ file: this.currentFile }, 'metering spool: rotated');
  }

  /**
   * Appends one record line; resolves once it is on disk (O_DSYNC write). Order of calls = order in the file.
   * Rejects with FedaiError('metering-write-failed') when the write or the sync fails, or after close().
   */
  append(envelope: Envelope<MeteringRecord>): Promise<void> {
    if (this.closed) return Promise.reject(new FedaiError('metering-write-failed', { message: 'metering spool is closed' }));
    let line: Buffer;
    try {
      line = Buffer.from(JSON.stringify(envelope) + '\n', 'utf8');
    } catch (err) {
      return Promise.reject(new FedaiError('metering-write-failed', { cause: err }));
    }
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ line, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.flushing || this.scheduled) return;
    this.scheduled = true;
    // Defer to the end of this tick so appends made in the same tick share the first batch; appends made
    // while a batch is being written wait for the next one (group commit). A macrotask hop here would
    // add its latency to every lone request.
    queueMicrotask(() => {
      this.scheduled = false;
      this.flushing = this.flushLoop().finally(() => {
        this.flushing = null;
        if (this.queue.length > 0) this.schedule();
      });
    });
  }

  private async flushLoop(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      await this.writeBatch(batch);
    }
  }

  private async writeBatch(batch: Pending[]): Promise<void> {
    this._stats.batches++;
    let i = 0;
    try {
      if (this.rotateNext || !this.fh) {
        this.rotateNext = false;
        await this.rotate();
      }
      while (i < batch.length) {
        // Lines for the current file: as many as fit under rotateBytes (at least one if the file is empty).
        let bytes = 0;
        let j = i;
        while (j < batch.length) {
          const n = batch[j].line.length;
          if (this.size + bytes + n > this.rotateBytes && (this.size + bytes > 0)) break;
          bytes += n;
          j++;
        }
        if (j === i) {
          await this.rotate();
          continue;
        }
        await this.writeChunk(batch.slice(i, j), bytes);
        for (let k = i; k < j; k++) batch[k].resolve();
        this._stats.appends += j - i;
        i = j;
      }
    } catch (err) {
      const rest = batch.slice(i);
      this._stats.failures += rest.length;
      this.logger.error({ err, records: rest.length, file: this.currentFile }, 'metering spool: write failed');
      const fe = new FedaiError('metering-write-failed', { cause: err });
      for (const p of rest) p.reject(fe);
      this.rotateNext = true;
    }
  }

  private async writeChunk(items: Pending[], bytes: number): Promise<void> {
    const fh = this.fh!;
    const goodSize = this.size;
    const buf = items.length === 1 ? items[0].line : Buffer.concat(items.map((p) => p.line), bytes);
    try {
      let off = 0;
      while (off < buf.length) {
        const { bytesWritten } = await fh.write(buf, off, buf.length - off);
        if (bytesWritten <= 0) throw new Error('write returned 0 bytes');
        off += bytesWritten;
      }
      // O_DSYNC: every write above returned with its bytes on disk (one synced write per batch).
      this._stats.fsyncs++;
      this.size += buf.length;
    } catch (err) {
      // Take back whatever part of the batch reached the file, so no torn or unacknowledged line stays.
      try {
        await fh.truncate(goodSize);
      } catch (terr) {
        this.logger.error({ err: terr, file: this.currentFile }, 'metering spool: could not truncate after a failed write');
      }
      throw err;
    }
  }

  /** Waits for queued appends, then closes the file. Later appends reject. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.scheduled || this.flushing || this.queue.length > 0) {
      if (this.flushing) await this.flushing;
      else await new Promise<void>((r) => setImmediate(r));
    }
    const fh = this.fh;
    this.fh = null;
    if (fh) await fh.close();
  }
}
