/**
 * A protocol client for one spawned runner: execa spawn (extendEnv:false), a vscode-jsonrpc connection,
 * a tee of the raw stdout through a FrameChecker, recorded infer/chunk notifications, a stderr tail,
 * request timeouts and a kill that always reaps. Used by the conformance kit and by tests.
 */
import { PassThrough } from 'node:stream';
import { execa, type ResultPromise } from 'execa';
import {
  CancellationToken,
  createMessageConnection,
  StreamMessageReader,
  type MessageConnection,
} from 'vscode-jsonrpc/node';
import { FramedMessageWriter } from '../../protocol/framed-message-writer.js';
import { RunnerMethod, type InferChunkParams, type LogParams } from '../../protocol/runner-protocol.js';
import { FrameChecker, MAX_FRAME_BYTES } from './frame-checker.js';

export interface RunnerClientOptions {
  /** The runner's whole environment (PATH is added when absent); nothing else leaks from ours. */
  env?: Record<string, string>;
  cwd?: string;
}

/** Thrown for a timeout or an early exit (a JSON-RPC error answer rejects with ResponseError instead). */
export class RunnerClientError extends Error {
  override readonly name = 'RunnerClientError';
}

export interface ExitInfo {
  code: number | null;
  signal: string | null;
}

/** One spawned runner with a JSON-RPC connection and a tee of its raw stdout. */
export class RunnerClient {
  readonly frames: FrameChecker;
  readonly chunks: Array<InferChunkParams & { seq: number }> = [];
  readonly conn: MessageConnection;
  readonly proc: ResultPromise;
  readonly exited: Promise<ExitInfo>;
  exitInfo: ExitInfo | undefined;
  seq = 0;
  /** Called for every infer/chunk after it is recorded. */
  onChunk: ((chunk: InferChunkParams) => void) | undefined;
  private stderrBuf = '';
  readonly logs: LogParams[] = [];
  /** Methods of notifications other than infer/chunk and log (a 1.0 runner sends none). */
  readonly otherNotifications: string[] = [];
  private readonly stdoutEnded: Promise<void>;

  constructor(command: readonly string[], opts: RunnerClientOptions = {}) {
    const env: Record<string, string> = { ...(opts.env ?? {}) };
    if (env.PATH === undefined && process.env.PATH !== undefined) env.PATH = process.env.PATH;
    this.proc = execa(command[0], command.slice(1), {
      env,
      extendEnv: false,
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
      stdin: 'pipe',
      stdout: 'pipe',
      stderr: 'pipe',
      buffer: false,
      reject: false,
      stripFinalNewline: false,
      // We reap our children ourselves (kill()); execa's signal-exit hook also trips jest's globals cleanup.
      cleanup: false,
      // Its own process group, so kill() also reaches anything the runner forked.
      detached: true,
    });
    const tee = new PassThrough();
    // Only well-formed frames reach the JSON-RPC reader: noise is reported by the FrameChecker
    // instead of wedging the reader, so the other checks still say whether the protocol works.
    this.frames = new FrameChecker(MAX_FRAME_BYTES, (frame) => tee.write(frame));
    this.proc.stdout!.on('data', (b: Buffer) => {
      this.frames.push(b);
    });
    this.stdoutEnded = new Promise((resolve) => {
      const done = () => {
        this.frames.end();
        tee.end();
        resolve();
      };
      this.proc.stdout!.once('end', done);
      this.proc.stdout!.once('close', done);
    });
    this.proc.stderr!.on('data', (b: Buffer) => {
      this.stderrBuf = (this.stderrBuf + b.toString('utf8')).slice(-256 * 1024);
    });
    this.proc.stdin!.on('error', () => undefined);
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
      this.proc.on('error', () => {
        this.exitInfo ??= { code: null, signal: null };
        resolve(this.exitInfo);
      });
    });
    this.proc.catch(() => undefined);
    this.conn = createMessageConnection(new StreamMessageReader(tee), new FramedMessageWriter(this.proc.stdin!));
    this.conn.onNotification(RunnerMethod.inferChunk, (p: InferChunkParams) => {
      this.chunks.push({ ...p, seq: this.seq++ });
      this.onChunk?.(p);
    });
    this.conn.onNotification(RunnerMethod.log, (p: LogParams) => {
      if (this.logs.length < 1000) this.logs.push(p);
    });
    this.conn.onNotification((method: string) => {
      if (this.otherNotifications.length < 100) this.otherNotifications.push(method.slice(0, 100));
    });
    this.conn.onError(() => undefined);
    this.conn.listen();
  }

  /** Sends a request; rejects with ResponseError for an error answer, RunnerClientError on timeout or exit. */
  async request<T>(method: string, params: unknown, timeoutMs: number, token?: CancellationToken): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    // never pass an undefined token: vscode-jsonrpc would send it as a second positional param
    const t = token ?? CancellationToken.None;
    const p = params === undefined ? this.conn.sendRequest<T>(method, t) : this.conn.sendRequest<T>(method, params, t);
    try {
      return await Promise.race([
        p,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new RunnerClientError(`no answer to ${method} within ${timeoutMs} ms`)), timeoutMs);
        }),
        this.exited.then(async (e) => {
          // An answer written just before exiting is still in the pipe: read it all before giving up.
          await Promise.race([this.stdoutEnded, new Promise((r) => setTimeout(r, 1000).unref())]);
          await new Promise((r) => setTimeout(r, 20));
          throw new RunnerClientError(`runner exited (code ${e.code}, signal ${e.signal}) before answering ${method}`);
        }),
      ]);
    } finally {
      if (timer) clearTimeout(timer);
      p.catch(() => undefined);
    }
  }

  async waitExit(timeoutMs: number): Promise<ExitInfo | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([
      this.exited,
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), timeoutMs);
      }),
    ]);
    if (timer) clearTimeout(timer);
    return r;
  }

  /** The last 256 KiB of the runner's stderr. */
  get stderr(): string {
    return this.stderrBuf;
  }

  lastStderrLine(): string {
    const lines = this.stderrBuf.trim().split('\n');
    return (lines[lines.length - 1] ?? '').slice(0, 200);
  }

  async kill(): Promise<void> {
    try {
      this.conn.dispose();
    } catch {
      // already disposed
    }
    const pid = this.proc.pid;
    if (pid !== undefined) {
      try {
        process.kill(-pid, 'SIGKILL'); // the whole group: the runner and anything it forked
      } catch {
        // group already gone
      }
    }
    if (this.exitInfo === undefined) {
      this.proc.kill('SIGKILL');
      await this.waitExit(5000);
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.stdoutEnded, new Promise((r) => (timer = setTimeout(r, 1000)))]);
    if (timer) clearTimeout(timer);
    this.proc.stdout?.destroy();
    this.proc.stderr?.destroy();
    this.proc.stdin?.destroy();
  }
}
