/**
 * One live runner process: spawned from a LaunchPlan, spoken to over JSON-RPC 2.0 on stdio
 * (vscode-jsonrpc, Content-Length framing), watched until it exits. It has no policy: the manager
 * decides when to restart, time out or kill.
 *
 *   stdout → FrameGuard (size cap, no stray bytes) → StreamMessageReader
 *   stdin  ← FramedMessageWriter (one write per frame)
 *   stderr → StderrRing (64 KiB tail; never logged; crash events carry only its size and sha256)
 *
 * Exit is detected on the child's 'exit' event, not on its pipes closing (a grandchild may hold them);
 * then every pending request rejects with runner-crashed, or runner-killed when we (or the launcher's
 * watchdog) killed it for a reason.
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { execa } from 'execa';
import {
  CancellationToken,
  CancellationTokenSource,
  createMessageConnection,
  ResponseError,
  StreamMessageReader,
  type MessageConnection,
} from 'vscode-jsonrpc/node';
import { FramedMessageWriter } from '../protocol/framed-message-writer.js';
import type { Readable, Writable } from 'node:stream';
import type { Config } from '../config/load-config.js';
import { FedaiError, fromRpcError, isUsage } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import {
  protocolMajor,
  RUNNER_PROTOCOL_VERSION,
  RunnerMethod,
  type EstimateResult,
  type HealthResult,
  type InferChunkParams,
  type InferParams,
  type InferResult,
  type InitializeParams,
  type InitializeResult,
  type ListModelsResult,
  type LogParams,
  type ModelInfo,
  type RunnerInferRequest,
  type Usage,
} from '../protocol/runner-protocol.js';
import type { BreachReason, LaunchPlan } from '../sandbox/launch-plan.js';
import { FrameGuard, type FrameViolation } from './frame-guard.js';
import { StderrRing, type RedactedStderr } from './stderr-ring.js';

/** Why the supervisor killed a runner. Counted in metrics and shown in events; never free text. */
export type KillReason =
  | FrameViolation
  | BreachReason
  | 'timeout'
  | 'health'
  | 'start-timeout'
  | 'protocol-version-mismatch'
  | 'handshake-failed'
  | 'stdout-closed'
  | 'cancel-timeout'
  | 'stop';

export interface RunnerExit {
  code: number | null;
  signal: string | null;
  /** Set when the supervisor or the launcher's watchdog killed the runner. */
  killReason?: KillReason;
  /** Redacted stderr summary (sizes and sha256 only). */
  stderr: RedactedStderr;
  uptimeMs: number;
  /** spawn failed (e.g. ENOENT): code of the error. */
  spawnError?: string;
}

/** Partial usage carried by an error from a runner call, if any (FedaiError.usage). */
export function usageOf(err: unknown): Usage | undefined {
  return err instanceof FedaiError ? err.usage : undefined;
}

/** A FedaiError with `code` that carries `usage` (if any). */
export function withUsage(code: FedaiError['code'], usage: Usage | undefined): FedaiError {
  return new FedaiError(code, usage ? { usage } : {});
}

// vscode-jsonrpc's own connection-level codes (not from the runner): MessageWriteError..ConnectionInactive
const isConnectionError = (e: unknown): boolean => !(e instanceof ResponseError) || (e.code <= -32096 && e.code >= -32099);

export interface RunnerProcessOptions {
  /** Instance id (RunnerSpec.id). */
  id: string;
  name: string;
  plan: LaunchPlan;
  config: Config;
  logger: Logger;
}

export interface InferCallOptions {
  signal?: AbortSignal;
  onChunk?: (chunk: { index: number; delta: string }) => void;
}

interface Pending {
  reject: (e: unknown) => void;
}

/** How long an unexplained exit waits for a late watchdog breach report before it is final. */
const EXIT_SETTLE_MS = 100;
/** How long an exit waits for the rest of stderr before the pipes are dropped. */
const STDERR_DRAIN_MS = 500;

const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

const LOG_LINES_PER_S = 50;
const LOG_LEVELS = new Set(['debug', 'info', 'warn', 'error']);
const FIELD_KEY = /^[A-Za-z][A-Za-z0-9_.]{0,39}$/;

export class RunnerProcess extends EventEmitter {
  readonly id: string;
  readonly name: string;
  readonly pid: number | undefined;
  readonly startedAt = Date.now();
  /** Resolves once the process has exited and every pending call was rejected. */
  readonly exited: Promise<RunnerExit>;

  private readonly plan: LaunchPlan;
  private readonly logger: Logger;
  private readonly conn: MessageConnection;
  private readonly ring = new StderrRing();
  private readonly pending = new Set<Pending>();
  private readonly streams = new Map<string, (c: InferChunkParams) => void>();
  private readonly child: ReturnType<typeof execa>;
  private isAlive = true;
  private reason?: KillReason;
  private exitInfo?: RunnerExit;
  private streamSeq = 0;
  private logSecond = 0;
  private logLines = 0;
  private logDropped = 0;
  private resolveExited!: (e: RunnerExit) => void;

  private constructor(opts: RunnerProcessOptions) {
    super();
    this.id = opts.id;
    this.name = opts.name;
    this.plan = opts.plan;
    this.logger = opts.logger;
    this.exited = new Promise((r) => (this.resolveExited = r));
    const plan = opts.plan;
    this.child = execa(plan.file, [...plan.args], {
      env: { ...plan.env },
      extendEnv: false,
      cwd: plan.cwd,
      detached: true,
      stdin: 'pipe',
      stdout: 'pipe',
      stderr: 'pipe',
      buffer: false,
      reject: false,
      cleanup: false,
      forceKillAfterDelay: false,
      windowsHide: true,
    });
    this.pid = this.child.pid;
    this.child.then(
      () => undefined,
      () => undefined,
    );
    this.child.on('exit', (code, signal) => this.onExit(code, signal));
    // an 'error' on a live child (e.g. a failed kill) is not an exit; spawn failures are handled below
    this.child.on('error', () => undefined);

    const stdout = this.child.stdout as Readable;
    const stdin = this.child.stdin as Writable;
    const stderr = this.child.stderr as Readable;
    stdin.on('error', () => undefined);
    stdout.on('error', () => undefined);
    stderr.on('error', () => undefined);
    stderr.on('data', (c: Buffer) => this.ring.push(c));

    const guard = new FrameGuard(opts.config.NODE_RUNNER_MAX_FRAME_BYTES, (reason, detail) => {
      this.logger.warn({ runnerId: this.id, reason, detail }, 'runner broke stdout framing; killing it');
      this.emit('frame-violation', reason);
      void this.kill(reason);
    });
    stdout.pipe(guard);
    this.conn = createMessageConnection(new StreamMessageReader(guard), new FramedMessageWriter(stdin));
    this.conn.onNotification(RunnerMethod.inferChunk, (p: InferChunkParams) => {
      if (!p || typeof p.streamId !== 'string' || typeof p.delta !== 'string' || !Number.isSafeInteger(p.index)) return;
      this.streams.get(p.streamId)?.(p);
    });
    this.conn.onNotification(RunnerMethod.log, (p: LogParams) => this.onLog(p));
    this.conn.onError(() => undefined);
    this.conn.onClose(() => {
      // stdout also closes when the runner exits; only a runner that lives on without stdout is broken
      setTimeout(() => {
        if (this.isAlive) void this.kill('stdout-closed');
      }, 1000).unref();
    });
    this.conn.listen();

    if (this.pid === undefined) {
      this.child.once('error', (err: NodeJS.ErrnoException) => this.onExit(null, null, err.code ?? 'spawn-failed'));
    } else {
      plan.attach(this.pid, (reason) => {
        // Like setReason() (first reason wins), but also after the exit: the watchdog kills first and
        // reports afterwards, and the exit is attributed to it all the same.
        if (this.reason === undefined) {
          this.reason = reason;
          if (this.exitInfo) this.exitInfo.killReason = reason;
          this.emit('kill', reason);
        }
        this.emit('breach', reason);
      });
    }
  }

  /** Spawns the plan's command. Never throws for a bad command: the returned process exits at once. */
  static spawn(opts: RunnerProcessOptions): RunnerProcess {
    return new RunnerProcess(opts);
  }

  get alive(): boolean {
    return this.isAlive;
  }

  get killReason(): KillReason | undefined {
    return this.reason;
  }

  get exitStatus(): RunnerExit | undefined {
    return this.exitInfo;
  }

  /** Raw stderr tail, for in-process diagnostics only. Never log it. */
  stderrTail(): Buffer {
    return this.ring.tail();
  }

  private onLog(p: LogParams): void {
    if (!p || typeof p !== 'object' || typeof p.msg !== 'string') return;
    // at most LOG_LINES_PER_S lines a second from a runner; the rest are counted and reported once
    const second = Math.floor(Date.now() / 1000);
    if (second !== this.logSecond) {
      if (this.logDropped > 0) this.logger.warn({ runnerId: this.id, dropped: this.logDropped }, 'runner log lines dropped (rate limit)');
      this.logSecond = second;
      this.logLines = 0;
      this.logDropped = 0;
    }
    if (++this.logLines > LOG_LINES_PER_S) {
      this.logDropped++;
      return;
    }
    const level = LOG_LEVELS.has(p.level) ? p.level : 'info';
    const fields: Record<string, number | boolean> = {};
    if (p.fields && typeof p.fields === 'object') {
      let n = 0;
      for (const [k, v] of Object.entries(p.fields)) {
        if (n >= 16) break;
        if (!FIELD_KEY.test(k)) continue;
        if ((typeof v === 'number' && Number.isFinite(v)) || typeof v === 'boolean') {
          fields[k] = v;
          n++;
        }
      }
    }
    // The message text is runner-controlled free text and may hold a prompt (a leaky or hostile runner):
    // it is never logged. Its size and a short sha256 let an operator correlate it with the runner's own
    // logs; numeric and boolean fields pass (string values could carry text).
    const msgSha256 = createHash('sha256').update(p.msg).digest('hex').slice(0, 16);
    this.logger[level as LogParams['level']]({ runnerId: this.id, runnerLog: true, msgBytes: Buffer.byteLength(p.msg), msgSha256, fields }, 'runner log');
  }

  private onExit(code: number | null, signal: string | null, spawnError?: string): void {
    if (!this.isAlive) return;
    this.isAlive = false;
    if (spawnError !== undefined) return this.finalize(code, signal, spawnError);
    // Read what is left in the stderr pipe (the tail before a crash matters most), bounded: a grandchild
    // may hold the pipe open forever. And a sandbox watchdog kills the tree first and reports the breach
    // afterwards: give that report a moment so the exit (and the pending requests' error) is attributed to it.
    const stderr = this.child.stderr as Readable;
    const waits: Promise<unknown>[] = [
      Promise.race([
        stderr.readableEnded || stderr.destroyed ? Promise.resolve() : new Promise((r) => (stderr.once('end', r), stderr.once('close', r))),
        delay(STDERR_DRAIN_MS),
      ]),
    ];
    if (this.reason === undefined) waits.push(delay(EXIT_SETTLE_MS));
    void Promise.all(waits).then(() => this.finalize(code, signal));
  }

  private finalize(code: number | null, signal: string | null, spawnError?: string): void {
    const info: RunnerExit = {
      code,
      signal,
      stderr: this.ring.redacted(),
      uptimeMs: Date.now() - this.startedAt,
      ...(this.reason ? { killReason: this.reason } : {}),
      ...(spawnError ? { spawnError } : {}),
    };
    this.exitInfo = info;
    const err = this.deathError();
    for (const p of [...this.pending]) {
      this.pending.delete(p);
      p.reject(err);
    }
    this.streams.clear();
    // a grandchild may still hold the pipes: drop our ends so nothing waits on them
    try {
      this.conn.dispose();
    } catch {
      /* already disposed */
    }
    for (const s of [this.child.stdin, this.child.stdout, this.child.stderr]) (s as Readable | Writable | null)?.destroy();
    this.emit('exit', info);
    this.resolveExited(info);
  }

  private deathError(): FedaiError {
    if (this.reason === 'protocol-garbage' || this.reason === 'frame-too-large' || this.reason === 'stdout-closed') {
      return new FedaiError('runner-protocol-error', { details: [this.reason] });
    }
    if (this.reason === 'stop') return new FedaiError('node-draining');
    if (this.reason) return new FedaiError('runner-killed', { details: [this.reason] });
    return new FedaiError('runner-crashed');
  }

  private call<T>(method: string, params: unknown, token?: CancellationToken): Promise<T> {
    if (!this.isAlive) return Promise.reject(this.deathError());
    return new Promise<T>((resolve, reject) => {
      const entry: Pending = { reject };
      this.pending.add(entry);
      // never pass an undefined token: vscode-jsonrpc would send it as a second positional param
      const t = token ?? CancellationToken.None;
      const sent = params === undefined ? this.conn.sendRequest<T>(method, t) : this.conn.sendRequest<T>(method, params, t);
      sent.then(
        (r) => {
          if (this.pending.delete(entry)) resolve(r);
        },
        (e: unknown) => {
          if (!this.pending.has(entry)) return;
          // connection-level failures are settled by the exit handler with the right code
          if (isConnectionError(e)) return;
          this.pending.delete(entry);
          const re = e as ResponseError<unknown>;
          reject(fromRpcError(re.code, re.data));
        },
      );
    });
  }

  /** Races `p` against `ms`; on timeout rejects with `onTimeout()` (the call itself is left pending). */
  private within<T>(p: Promise<T>, ms: number, onTimeout: () => unknown): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      p,
      new Promise<T>((_, reject) => {
        timer = setTimeout(() => reject(onTimeout()), ms);
      }),
    ]).finally(() => clearTimeout(timer));
  }

  /**
   * Handshake with a deadline. Rejects with runner-timeout (after killing the runner, 'start-timeout'),
   * protocol-version-mismatch ('protocol-version-mismatch'), runner-protocol-error for a malformed
   * result ('handshake-failed'), or the runner's death error.
   */
  async initialize(params: Omit<InitializeParams, 'protocolVersion'>, timeoutMs: number): Promise<InitializeResult> {
    const full: InitializeParams = { protocolVersion: RUNNER_PROTOCOL_VERSION, ...params };
    let result: InitializeResult;
    try {
      result = await this.within(this.call<InitializeResult>(RunnerMethod.initialize, full), timeoutMs, () => new FedaiError('runner-timeout', { details: ['start-timeout'] }));
    } catch (err) {
      if (err instanceof FedaiError && err.code === 'runner-timeout') await this.kill('start-timeout');
      throw err;
    }
    if (!result || typeof result !== 'object' || typeof result.protocolVersion !== 'string') {
      await this.kill('handshake-failed');
      throw new FedaiError('runner-protocol-error', { details: ['initialize result is malformed'] });
    }
    if (protocolMajor(result.protocolVersion) !== protocolMajor(RUNNER_PROTOCOL_VERSION)) {
      await this.kill('protocol-version-mismatch');
      throw new FedaiError('protocol-version-mismatch', { details: [`runner speaks ${result.protocolVersion.slice(0, 20)}, supervisor ${RUNNER_PROTOCOL_VERSION}`] });
    }
    const models = Array.isArray(result.models) ? result.models.filter(isModelInfo) : [];
    const maxParallel = Number.isSafeInteger(result.limits?.maxParallel) && result.limits.maxParallel >= 1 ? result.limits.maxParallel : 1;
    const c = (result.capabilities ?? {}) as Partial<InitializeResult['capabilities']>;
    const capabilities = { streaming: c.streaming === true, estimate: c.estimate === true, cancellation: c.cancellation === true };
    return { ...result, models, limits: { maxParallel }, capabilities };
  }

  /**
   * One inference. Aborting `opts.signal` sends $/cancelRequest; the promise still settles only when the
   * runner answers (usually request-cancelled with partial usage) or dies.
   */
  infer(params: Omit<InferParams, 'streamId'>, opts: InferCallOptions = {}): Promise<InferResult> {
    const cts = new CancellationTokenSource();
    let streamId: string | undefined;
    if (params.stream && opts.onChunk) {
      streamId = `${this.id}:${++this.streamSeq}`;
      const onChunk = opts.onChunk;
      this.streams.set(streamId, (c) => onChunk({ index: c.index, delta: c.delta }));
    }
    const onAbort = () => cts.cancel();
    if (opts.signal?.aborted) cts.cancel();
    else opts.signal?.addEventListener('abort', onAbort, { once: true });
    const full: InferParams = streamId ? { ...params, streamId } : params;
    this.plan.requestStarted?.();
    return this.call<InferResult>(RunnerMethod.infer, full, cts.token)
      .then((r) => {
        if (!r || typeof r !== 'object' || typeof r.output !== 'string' || !isUsage(r.usage)) {
          throw new FedaiError('runner-protocol-error', { details: ['infer result is malformed'] });
        }
        return r;
      })
      .finally(() => {
        this.plan.requestEnded?.();
        opts.signal?.removeEventListener('abort', onAbort);
        if (streamId) this.streams.delete(streamId);
        cts.dispose();
      });
  }

  estimate(request: RunnerInferRequest, timeoutMs: number): Promise<EstimateResult> {
    return this.timedCall<EstimateResult>(RunnerMethod.estimate, { request }, timeoutMs);
  }

  async listModels(timeoutMs: number): Promise<ModelInfo[]> {
    const r = await this.timedCall<ListModelsResult>(RunnerMethod.listModels, {}, timeoutMs);
    if (!r || !Array.isArray(r.models)) throw new FedaiError('runner-protocol-error', { details: ['listModels result is malformed'] });
    return r.models.filter(isModelInfo);
  }

  health(timeoutMs: number): Promise<HealthResult> {
    return this.timedCall<HealthResult>(RunnerMethod.health, {}, timeoutMs);
  }

  /** A call with a deadline: on timeout it is cancelled and rejects with runner-timeout. */
  private timedCall<T>(method: string, params: unknown, timeoutMs: number): Promise<T> {
    const cts = new CancellationTokenSource();
    return this.within(this.call<T>(method, params, cts.token), timeoutMs, () => {
      cts.cancel();
      return new FedaiError('runner-timeout', { details: [method] });
    }).finally(() => cts.dispose());
  }

  /** Polite stop: `shutdown` request (bounded by timeoutMs), then the `exit` notification. */
  async shutdown(timeoutMs: number): Promise<void> {
    if (!this.isAlive) return;
    this.setReason('stop');
    try {
      await this.timedCall<unknown>(RunnerMethod.shutdown, undefined, timeoutMs);
    } catch {
      /* a runner that does not answer is terminated by the caller */
    }
    if (!this.isAlive) return;
    try {
      await this.conn.sendNotification(RunnerMethod.exit);
    } catch {
      /* stdin closed */
    }
  }

  /** Records why we kill it (first reason wins) and emits 'kill' (except for 'stop'). */
  private setReason(reason: KillReason): void {
    if (!this.isAlive || this.reason !== undefined) return;
    this.reason = reason;
    if (reason !== 'stop') this.emit('kill', reason);
  }

  /** SIGTERM to the runner's process group. */
  terminate(): void {
    if (!this.isAlive || this.pid === undefined) return;
    this.setReason('stop');
    try {
      process.kill(-this.pid, 'SIGTERM');
    } catch {
      /* gone */
    }
  }

  /**
   * Kills the whole tree (plan.killTree) and waits for the exit. `reason` is recorded (first one wins)
   * and decides the error pending calls get. Safe to call more than once, also after exit (it then
   * only sweeps descendants that outlived the runner).
   */
  async kill(reason: KillReason): Promise<RunnerExit> {
    this.setReason(reason);
    await this.plan.killTree();
    if (this.isAlive && this.pid !== undefined) {
      // killTree could not prove the pid ours (it raced its own exit); the child handle still is
      try {
        this.child.kill('SIGKILL');
      } catch {
        /* gone */
      }
    }
    return this.exited;
  }
}

function isModelInfo(m: unknown): m is ModelInfo {
  if (!m || typeof m !== 'object') return false;
  const x = m as Record<string, unknown>;
  return typeof x.id === 'string' && x.id.length > 0 && Number.isSafeInteger(x.contextWindow) && Number.isSafeInteger(x.maxTokens);
}
