/**
 * Supervises one runner (one adapter, one process at a time): spawn through a Launcher, handshake,
 * deep health probes, per-request deadlines with cancel-then-kill escalation, bounded admission,
 * restart with backoff and give-up, pidfiles, and an ordered graceful stop.
 *
 * States: starting → ready ⇄ degraded (a probe missed) → unhealthy (K misses) → restarting → ready …
 *         restarting → failed (too many crashes in the window; one more try after NODE_RUNNER_GIVE_UP_MS)
 *         any → stopped (stop()).
 *
 * Events: 'state' (new, old), 'restart' (reason: RestartReason), 'kill' (reason: KillReason),
 *         'frame-violation' (reason: FrameViolation), 'exit' (RunnerExit & { runnerId }) after every
 *         reaped instance — exit code/signal, kill reason and the redacted stderr summary (byte counts and
 *         sha256 of the 64 KiB tail; never the text).
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/load-config.js';
import { FedaiError, type ErrorCode } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { EstimateResult, InferResult, ModelInfo, RunnerCapabilities, RunnerInferRequest } from '../protocol/runner-protocol.js';
import type { LaunchPlan, Launcher, RunnerSpec } from '../sandbox/launch-plan.js';
import { Admission } from './admission.js';
import type { FrameViolation } from './frame-guard.js';
import { removePidfile, selfStarttime, sweepStaleRunners, writePidfile } from './pidfile.js';
import { readProcStat } from './proc-tree.js';
import { policyFromConfig, RestartTracker, type RestartPolicy } from './restart-policy.js';
import { buildRunnerEnv } from './runner-env.js';
import { RunnerProcess, usageOf, withUsage, type KillReason, type RunnerExit } from './runner-process.js';
import { RUNNER_MARKER_VAR } from './unsandboxed-launcher.js';

export type RunnerState = 'starting' | 'ready' | 'degraded' | 'unhealthy' | 'restarting' | 'failed' | 'stopped';

/** Why a restart was scheduled: the kill reason, or 'crashed' / 'start-failed' for unplanned exits. */
export type RestartReason = KillReason | 'crashed' | 'start-failed';

export interface RunnerStatus {
  name: string;
  state: RunnerState;
  pid?: number;
  /** Restarts scheduled since start(). */
  restarts: number;
  crashesInWindow: number;
  inFlight: number;
  queued: number;
  maxParallel: number;
  models: ModelInfo[];
  /** Last failure as an error code (never free text). */
  lastError?: ErrorCode;
  /** Epoch ms when the current instance became ready. */
  readySince?: number;
  /** When failed: seconds until the next try. */
  retryAfterS?: number;
}

export interface RunnerManagerOptions {
  /** Runner name (mock, http, llama_cpp, vllm, exec); checked against NODE_SANDBOX_ALLOWED_RUNNERS by the launcher. */
  name: string;
  /** FEDAI_ADAPTER value; decides which backend variables the runner gets (runner-env.ts). */
  adapter: string;
  /** argv; argv[0] absolute. */
  command: string[];
  config: Config;
  logger: Logger;
  launcher: Launcher;
  /** Pidfiles go to <dataDir>/runners/, work dirs to <dataDir>/runners/work/<name>. */
  dataDir: string;
  /** Extra variables merged over the allowlisted env (e.g. FEDAI_MOCK_TOKEN_DELAY_MS, test markers). */
  env?: Record<string, string>;
  codeDirs?: string[];
  needsEgress?: boolean;
  /** Test overrides of the restart policy (otherwise from config). */
  policy?: Partial<RestartPolicy>;
}

export interface InferOptions {
  stream?: boolean;
  onChunk?: (c: { index: number; delta: string }) => void;
  signal?: AbortSignal;
  traceparent?: string;
}

const MODELS_REFRESH_MS = 60_000;
let instanceSeq = 0;
const SUPERVISOR = { name: 'fedai-node', version: '0.1.0' };

/** Typed events (EventEmitter<RunnerManagerEvents>). */
export interface RunnerManagerEvents {
  state: [next: RunnerState, prev: RunnerState];
  restart: [reason: RestartReason];
  kill: [reason: KillReason];
  'frame-violation': [reason: FrameViolation];
  exit: [info: RunnerExit & { runnerId: string }];
}

export class RunnerManager extends EventEmitter<RunnerManagerEvents> {
  readonly name: string;
  private readonly opts: RunnerManagerOptions;
  private readonly config: Config;
  private readonly logger: Logger;
  private readonly admission: Admission;
  private readonly tracker: RestartTracker;
  private readonly workDir: string;

  private stateValue: RunnerState = 'stopped';
  private proc?: RunnerProcess;
  private plan?: LaunchPlan;
  private restarts = 0;
  private models: ModelInfo[] = [];
  private caps?: RunnerCapabilities;
  private modelsRefreshedAt = 0;
  private lastError?: ErrorCode;
  private readySince?: number;
  private retryAt?: number;
  private misses = 0;
  private started = false;
  private stopping = false;
  private healthTimer?: NodeJS.Timeout;
  private restartTimer?: NodeJS.Timeout;
  private cleanup: Promise<void> = Promise.resolve();
  private launching: Promise<void> = Promise.resolve();
  private readonly idle = new EventEmitter();

  constructor(opts: RunnerManagerOptions) {
    super();
    this.opts = opts;
    this.name = opts.name;
    this.config = opts.config;
    this.logger = opts.logger;
    this.admission = new Admission(1, opts.config.NODE_QUEUE_MAX);
    this.tracker = new RestartTracker(policyFromConfig(opts.config, opts.policy));
    this.workDir = join(opts.dataDir, 'runners', 'work', opts.name);
  }

  get state(): RunnerState {
    return this.stateValue;
  }

  get ready(): boolean {
    return this.stateValue === 'ready' && !this.stopping && this.proc?.alive === true;
  }

  status(): RunnerStatus {
    const now = Date.now();
    const s: RunnerStatus = {
      name: this.name,
      state: this.stateValue,
      restarts: this.restarts,
      crashesInWindow: this.tracker.crashesInWindow(now),
      inFlight: this.admission.inFlight,
      queued: this.admission.queued,
      maxParallel: this.admission.limit,
      models: this.models.map((m) => ({ ...m })),
    };
    if (this.proc?.alive && this.proc.pid !== undefined) s.pid = this.proc.pid;
    if (this.lastError) s.lastError = this.lastError;
    if (this.readySince !== undefined && this.stateValue !== 'failed') s.readySince = this.readySince;
    if (this.stateValue === 'failed' && this.retryAt !== undefined) s.retryAfterS = Math.max(1, Math.ceil((this.retryAt - now) / 1000));
    return s;
  }

  /** The capabilities the current (or last) instance declared in its handshake; undefined before the first. */
  capabilities(): RunnerCapabilities | undefined {
    return this.caps ? { ...this.caps } : undefined;
  }

  listModels(): ModelInfo[] {
    return this.models.map((m) => ({ ...m }));
  }

  /**
   * Sweeps runners left by a dead supervisor, then launches. Resolves when the runner is first ready,
   * or has failed (given up), or stop() was called. Never rejects for a runner that crashes.
   */
  async start(): Promise<void> {
    if (this.started) throw new Error('RunnerManager.start() called twice');
    this.started = true;
    if (this.stopping) return;
    try {
      await sweepStaleRunners(this.opts.dataDir, this.logger);
    } catch (err) {
      this.logger.warn({ err }, 'stale runner sweep failed');
    }
    if (this.stopping) return;
    const settled = new Promise<void>((resolve) => {
      const on = (s: RunnerState) => {
        if (s === 'ready' || s === 'failed' || s === 'stopped') {
          this.off('state', on);
          resolve();
        }
      };
      this.on('state', on);
    });
    this.setState('starting');
    this.relaunch();
    await settled;
  }

  private setState(next: RunnerState): void {
    const prev = this.stateValue;
    if (prev === next) return;
    this.stateValue = next;
    this.logger.info({ runner: this.name, state: next, prev }, 'runner state');
    this.emit('state', next, prev);
  }

  private relaunch(): void {
    this.launching = this.launch().catch((err: unknown) => {
      this.logger.error({ runner: this.name, err }, 'runner launch failed unexpectedly');
      this.lastError = 'internal-error';
      if (!this.stopping && !this.proc) this.onGiveUp(this.tracker.giveUp().retryAfterMs);
    });
  }

  private async launch(): Promise<void> {
    if (this.stopping) return;
    // unique per start across every manager of this process (the id is the process-tree marker)
    const id = `${this.name}-${process.pid}-${++instanceSeq}-${randomBytes(3).toString('hex')}`;
    mkdirSync(this.workDir, { recursive: true, mode: 0o700 });
    const env: Record<string, string> = {
      ...buildRunnerEnv(this.config, { adapter: this.opts.adapter, workDir: this.workDir }),
      ...(this.opts.env ?? {}),
      [RUNNER_MARKER_VAR]: id,
    };
    const spec: RunnerSpec = {
      id,
      name: this.name,
      command: this.opts.command,
      env,
      codeDirs: this.opts.codeDirs ?? [],
      workDir: this.workDir,
      needsEgress: this.opts.needsEgress ?? false,
    };
    let plan: LaunchPlan;
    try {
      plan = await this.opts.launcher.prepare(spec);
    } catch (err) {
      const code = err instanceof FedaiError ? err.code : 'internal-error';
      this.logger.error({ runner: this.name, code }, 'runner launch refused');
      this.lastError = code;
      this.onGiveUp(this.tracker.giveUp().retryAfterMs);
      return;
    }
    if (this.stopping) {
      await plan.dispose();
      return;
    }
    const proc = RunnerProcess.spawn({ id, name: this.name, plan, config: this.config, logger: this.logger });
    this.proc = proc;
    this.plan = plan;
    this.readySince = undefined;
    this.misses = 0;
    if (proc.pid !== undefined) {
      const st = readProcStat(proc.pid);
      try {
        writePidfile(this.opts.dataDir, {
          id,
          name: this.name,
          pid: proc.pid,
          pgid: proc.pid,
          starttime: st?.starttime ?? 0,
          marker: `${RUNNER_MARKER_VAR}=${id}`,
          supervisorPid: process.pid,
          supervisorStarttime: selfStarttime(),
          startedAtMs: Date.now(),
        });
      } catch (err) {
        this.logger.warn({ runnerId: id, err }, 'could not write runner pidfile');
      }
    }
    proc.on('frame-violation', (reason) => this.emit('frame-violation', reason));
    proc.on('kill', (reason: KillReason) => this.emit('kill', reason));
    proc.once('exit', (info: RunnerExit) => {
      this.cleanup = this.onExit(proc, plan, info);
    });
    this.logger.info({ runnerId: id, pid: proc.pid, mode: this.opts.launcher.mode, layers: plan.layers.filter((l) => l.active).map((l) => l.layer) }, 'runner spawned');

    try {
      const init = await proc.initialize({ supervisor: SUPERVISOR, runnerId: id }, this.config.NODE_RUNNER_START_TIMEOUT_MS);
      if (proc !== this.proc || !proc.alive) return;
      this.models = init.models;
      this.caps = { ...init.capabilities };
      this.modelsRefreshedAt = Date.now();
      this.admission.setMaxParallel(init.limits.maxParallel);
      try {
        const models = await proc.listModels(this.config.NODE_RUNNER_HEALTH_TIMEOUT_MS);
        if (proc === this.proc && models.length > 0) this.models = models;
      } catch {
        /* keep the handshake's list */
      }
      if (proc !== this.proc || !proc.alive || this.stopping) return;
      this.readySince = Date.now();
      this.retryAt = undefined;
      this.setState('ready');
      this.scheduleProbe();
    } catch (err) {
      const code = err instanceof FedaiError ? err.code : 'internal-error';
      this.logger.warn({ runnerId: id, code }, 'runner failed to start');
      if (proc.alive) await proc.kill('handshake-failed');
    }
  }

  private async onExit(proc: RunnerProcess, plan: LaunchPlan, info: RunnerExit): Promise<void> {
    if (proc !== this.proc) return;
    this.proc = undefined;
    this.plan = undefined;
    clearTimeout(this.healthTimer);
    const wasReady = this.readySince;
    this.readySince = undefined;
    // an instance that was up is no longer: say so at once, not after the cleanup below
    if (!this.stopping && (this.stateValue === 'ready' || this.stateValue === 'degraded' || this.stateValue === 'unhealthy')) {
      this.setState('restarting');
    }
    // the runner is gone; sweep any descendants that outlived it, then release the plan
    try {
      await plan.killTree();
    } catch {
      /* best effort */
    }
    try {
      await plan.dispose();
    } catch {
      /* best effort */
    }
    removePidfile(this.opts.dataDir, proc.id);
    this.emit('exit', { runnerId: proc.id, ...info });
    if (this.stopping) return;
    this.logger.warn(
      { runnerId: proc.id, code: info.code, signal: info.signal, killReason: info.killReason, spawnError: info.spawnError, uptimeMs: info.uptimeMs, ...info.stderr },
      'runner exited',
    );
    this.lastError = exitErrorCode(info);
    const uptime = wasReady === undefined ? 0 : Date.now() - wasReady;
    // a protocol mismatch will not fix itself by retrying: give up at once (one more try after GIVE_UP_MS)
    const decision = info.killReason === 'protocol-version-mismatch' ? this.tracker.giveUp() : this.tracker.recordCrash(Date.now(), uptime);
    if (decision.action === 'give-up') {
      this.onGiveUp(decision.retryAfterMs);
      return;
    }
    const reason: RestartReason = info.killReason ?? (wasReady === undefined ? 'start-failed' : 'crashed');
    this.restarts++;
    this.setState('restarting');
    this.emit('restart', reason);
    this.logger.info({ runner: this.name, reason, delayMs: decision.delayMs, attempt: decision.attempt }, 'runner restart scheduled');
    this.restartTimer = setTimeout(() => this.relaunch(), decision.delayMs);
  }

  private onGiveUp(retryAfterMs: number): void {
    this.retryAt = Date.now() + retryAfterMs;
    this.setState('failed');
    this.admission.rejectQueued(() => this.unavailable());
    this.logger.error({ runner: this.name, lastError: this.lastError, retryAfterMs }, 'runner given up; one more try later');
    this.restartTimer = setTimeout(() => {
      if (this.stopping) return;
      this.restarts++;
      this.setState('restarting');
      this.emit('restart', 'start-failed' satisfies RestartReason);
      this.relaunch();
    }, retryAfterMs);
  }

  private unavailable(): FedaiError {
    if (this.stopping) return new FedaiError('node-draining');
    const retryAfterS = this.stateValue === 'failed' && this.retryAt !== undefined ? Math.max(1, Math.ceil((this.retryAt - Date.now()) / 1000)) : 1;
    return new FedaiError('runner-unavailable', { retryAfterS });
  }

  private scheduleProbe(): void {
    clearTimeout(this.healthTimer);
    if (this.stopping) return;
    this.healthTimer = setTimeout(() => void this.probe(), this.config.NODE_RUNNER_HEALTH_INTERVAL_MS);
  }

  private async probe(): Promise<void> {
    const proc = this.proc;
    if (!proc || !proc.alive || this.stopping) return;
    let ok = false;
    try {
      const r = await proc.health(this.config.NODE_RUNNER_HEALTH_TIMEOUT_MS);
      ok = r !== null && typeof r === 'object' && r.ok === true;
    } catch {
      ok = false;
    }
    if (proc !== this.proc || !proc.alive || this.stopping) return;
    if (ok) {
      this.misses = 0;
      if (this.stateValue !== 'ready') this.setState('ready');
      if (Date.now() - this.modelsRefreshedAt >= MODELS_REFRESH_MS) {
        this.modelsRefreshedAt = Date.now();
        try {
          const models = await proc.listModels(this.config.NODE_RUNNER_HEALTH_TIMEOUT_MS);
          if (proc === this.proc && models.length > 0) this.models = models;
        } catch {
          /* keep the cached list */
        }
      }
      this.scheduleProbe();
      return;
    }
    this.misses++;
    if (this.misses >= this.config.NODE_RUNNER_HEALTH_MISSES) {
      this.lastError = 'runner-unavailable';
      this.setState('unhealthy');
      this.logger.warn({ runnerId: proc.id, misses: this.misses }, 'runner unhealthy; restarting it');
      await proc.kill('health');
      return;
    }
    this.setState('degraded');
    this.scheduleProbe();
  }

  /**
   * One inference. Errors (FedaiError): node-draining, runner-unavailable (with retryAfterS),
   * capacity-exhausted, request-cancelled (partial usage via usageOf()), runner-timeout, runner-crashed,
   * runner-killed, runner-protocol-error, or the runner's own code (runner-error, backend-*, …).
   */
  async infer(request: RunnerInferRequest, opts: InferOptions = {}): Promise<InferResult> {
    // not ready covers stopping; unavailable() then says node-draining
    if (!this.ready) throw this.unavailable();
    const release = await this.admission.acquire(opts.signal);
    try {
      const proc = this.proc;
      if (!proc || !this.ready) throw this.unavailable();
      return await this.runInfer(proc, request, opts);
    } finally {
      release();
      if (this.admission.inFlight === 0) this.idle.emit('idle');
    }
  }

  /** Settles only when the runner has answered or died (so the admission slot is held until then). */
  private async runInfer(proc: RunnerProcess, request: RunnerInferRequest, opts: InferOptions): Promise<InferResult> {
    const ac = new AbortController();
    let timedOut = false;
    let clientAborted = false;
    let killTimer: NodeJS.Timeout | undefined;
    const escalate = (reason: KillReason) => {
      ac.abort();
      killTimer ??= setTimeout(() => {
        if (proc.alive) {
          this.logger.warn({ runnerId: proc.id, reason }, 'runner did not settle a cancelled request; killing it');
          void proc.kill(reason);
        }
      }, this.config.NODE_RUNNER_KILL_GRACE_MS);
    };
    const onClientAbort = () => {
      if (timedOut) return;
      clientAborted = true;
      escalate('cancel-timeout');
    };
    const deadline = setTimeout(() => {
      if (clientAborted) return;
      timedOut = true;
      escalate('timeout');
    }, this.config.NODE_RUNNER_TIMEOUT_MS);
    if (opts.signal?.aborted) onClientAbort();
    else opts.signal?.addEventListener('abort', onClientAbort, { once: true });
    const onChunk = opts.onChunk
      ? (c: { index: number; delta: string }) => {
          if (!timedOut && !clientAborted) opts.onChunk!(c);
        }
      : undefined;
    // A request we gave up on ends with our code, whatever the runner answered (its usage is kept).
    const abortCode = (): ErrorCode | undefined => (timedOut ? 'runner-timeout' : clientAborted ? 'request-cancelled' : undefined);
    let result: InferResult;
    try {
      result = await proc.infer(
        {
          request,
          stream: opts.stream === true,
          ...(opts.traceparent ? { traceparent: opts.traceparent } : {}),
          deadlineMs: Date.now() + this.config.NODE_RUNNER_TIMEOUT_MS,
        },
        { signal: ac.signal, ...(onChunk ? { onChunk } : {}) },
      );
    } catch (err) {
      const code = abortCode();
      throw code ? withUsage(code, usageOf(err)) : err;
    } finally {
      clearTimeout(deadline);
      clearTimeout(killTimer);
      opts.signal?.removeEventListener('abort', onClientAbort);
    }
    const code = abortCode();
    if (code) throw withUsage(code, result.usage);
    return result;
  }

  /** Pre-request estimate (not admission-limited). Same error codes as infer minus capacity-exhausted. */
  async estimate(request: RunnerInferRequest): Promise<EstimateResult> {
    const proc = this.proc;
    if (!proc || !this.ready) throw this.unavailable();
    return proc.estimate(request, this.config.NODE_RUNNER_TIMEOUT_MS);
  }

  /**
   * Graceful stop: refuse new work (node-draining) and reject the queue; wait for in-flight requests up
   * to NODE_DRAIN_TIMEOUT_MS; `shutdown` request + `exit` notification; SIGTERM the group after
   * NODE_RUNNER_KILL_GRACE_MS; SIGKILL the tree after another grace; reap; dispose the plan.
   */
  async stop(): Promise<void> {
    if (this.stopping) {
      await this.cleanup;
      return;
    }
    this.stopping = true;
    clearTimeout(this.restartTimer);
    clearTimeout(this.healthTimer);
    this.admission.rejectQueued(() => new FedaiError('node-draining'));
    if (this.admission.inFlight > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, this.config.NODE_DRAIN_TIMEOUT_MS);
        const self = this;
        function done() {
          clearTimeout(t);
          self.idle.off('idle', done);
          resolve();
        }
        this.idle.on('idle', done);
      });
    }
    const proc = this.proc;
    if (proc && proc.alive) {
      const grace = this.config.NODE_RUNNER_KILL_GRACE_MS;
      const exitedWithin = async (ms: number): Promise<boolean> => {
        let timer: NodeJS.Timeout | undefined;
        const r = await Promise.race([proc.exited.then(() => true), new Promise<boolean>((res) => (timer = setTimeout(() => res(false), ms)))]);
        clearTimeout(timer);
        return r;
      };
      await proc.shutdown(grace);
      if (!(await exitedWithin(grace))) {
        proc.terminate();
        await exitedWithin(grace);
      }
      await proc.kill('stop');
    }
    await this.cleanup;
    // a launch in flight (between prepare() and the handshake) sees `stopping` and ends; reap what it spawned
    await this.launching;
    if (this.proc && this.proc !== proc) await this.proc.kill('stop');
    await this.cleanup;
    this.setState('stopped');
  }
}

/** The error code status() reports for an exit. */
export function exitErrorCode(info: RunnerExit): ErrorCode {
  if (info.spawnError) return 'runner-unavailable';
  switch (info.killReason) {
    case undefined:
      return 'runner-crashed';
    case 'protocol-version-mismatch':
      return 'protocol-version-mismatch';
    case 'start-timeout':
    case 'timeout':
    case 'cancel-timeout':
      return 'runner-timeout';
    case 'protocol-garbage':
    case 'frame-too-large':
    case 'stdout-closed':
    case 'handshake-failed':
      return 'runner-protocol-error';
    case 'stop':
      return 'node-draining';
    default:
      return 'runner-killed';
  }
}
