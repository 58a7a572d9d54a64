/**
 * Managed mode: the adapter starts its backend (e.g. llama-server) itself, as its own child, inside the
 * runner's sandbox and network namespace. FEDAI_BACKEND_COMMAND is a JSON array or a space-separated
 * command line; every `{port}` is replaced by a free loopback port picked here, and the backend URL
 * becomes http://127.0.0.1:<port>. Requests to it never go through the egress proxy (it is on the
 * runner's own loopback).
 *
 * Lifecycle:
 *   - start(): spawn, then poll the health path until 200 (503 "Loading model" and connection refused
 *     mean "still starting"); a premature exit fails the start with its exit code; a start deadline
 *     bounds the wait.
 *   - supervision: when the backend dies unexpectedly, state becomes 'restarting' (health not ok, infer
 *     → backend-unavailable) and it is restarted on a fresh port after a backoff that doubles from
 *     restartBaseMs up to restartMaxMs (reset after a stable run).
 *   - output: stdout and stderr are drained into a bounded ring buffer (never echoed: the runner's
 *     stdout is the JSON-RPC channel, and backend logs may contain prompts).
 *   - stop(): SIGTERM to the backend's process group, SIGKILL after the grace. llama-server exits with
 *     status 134 (SIGABRT) on SIGTERM; that is normal. A process 'exit' hook SIGKILLs the group if the
 *     runner exits without calling stop(), and the backend is exec'd through `setpriv --pdeathsig KILL`
 *     (when available) so the kernel kills it if the runner itself is SIGKILLed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { existsSync } from 'node:fs';
import { AdapterError } from '../adapter.js';
import { logStderr } from './log.js';

export type ManagedState = 'idle' | 'starting' | 'ready' | 'restarting' | 'failed' | 'stopped';

export interface ManagedBackendOptions {
  /** argv with optional `{port}` placeholders; argv[0] is the program. */
  command: readonly string[];
  /** Readiness probe path (GET, 200 = ready). */
  healthPath?: string;
  startTimeoutMs?: number;
  restartBaseMs?: number;
  restartMaxMs?: number;
  /** Uptime after which the restart backoff resets. */
  stableMs?: number;
  /** SIGTERM → SIGKILL grace. */
  graceMs?: number;
  /** Environment of the backend (default: the runner's own). */
  env?: NodeJS.ProcessEnv;
  /** Bytes of combined stdout/stderr kept (default 64 KiB). */
  outputBufferBytes?: number;
  /** Headers sent with the readiness probe (e.g. authorization). */
  probeHeaders?: Record<string, string>;
  /** Exec the backend through `setpriv --pdeathsig KILL` when /usr/bin/setpriv exists (default true). */
  pdeathsig?: boolean;
}

const SETPRIV = '/usr/bin/setpriv';

/** Parses FEDAI_BACKEND_COMMAND: a JSON array of strings, or a space-separated command line. */
export function parseCommandLine(value: string): string[] {
  const v = value.trim();
  if (v.startsWith('[')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(v);
    } catch {
      throw new AdapterError('invalid-params', 'FEDAI_BACKEND_COMMAND is not a valid JSON array', { details: ['FEDAI_BACKEND_COMMAND'] });
    }
    if (!Array.isArray(parsed) || parsed.length === 0 || !parsed.every((x) => typeof x === 'string' && x.length > 0)) {
      throw new AdapterError('invalid-params', 'FEDAI_BACKEND_COMMAND must be a non-empty array of strings', { details: ['FEDAI_BACKEND_COMMAND'] });
    }
    return parsed as string[];
  }
  const parts = v.split(/\s+/).filter((p) => p.length > 0);
  if (parts.length === 0) throw new AdapterError('invalid-params', 'FEDAI_BACKEND_COMMAND is empty', { details: ['FEDAI_BACKEND_COMMAND'] });
  return parts;
}

/** A free TCP port on 127.0.0.1 (bound and released; the backend binds it right after). */
export function pickFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Bounded byte ring for the backend's output. */
class OutputRing {
  private chunks: Buffer[] = [];
  private size = 0;
  constructor(private readonly max: number) {}
  push(b: Buffer): void {
    this.chunks.push(b);
    this.size += b.length;
    while (this.size > this.max && this.chunks.length > 0) {
      const first = this.chunks[0];
      const excess = this.size - this.max;
      if (first.length <= excess) {
        this.chunks.shift();
        this.size -= first.length;
      } else {
        this.chunks[0] = first.subarray(excess);
        this.size -= excess;
      }
    }
  }
  toString(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

function probe(port: number, path: string, headers: Record<string, string>, timeoutMs: number): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: 'GET', headers: { ...headers, connection: 'close' }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(0));
    });
    req.setTimeout(timeoutMs, () => req.destroy());
    req.on('error', () => resolve(0));
    req.end();
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class ManagedBackend {
  private child: ChildProcess | undefined;
  private port = 0;
  private _state: ManagedState = 'idle';
  private readonly output: OutputRing;
  private restartDelay: number;
  private restartTimer: NodeJS.Timeout | undefined;
  private startedAt = 0;
  private lastExit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private restarts = 0;
  private stopping = false;
  private readonly exitHook = (): void => this.killGroupSync('SIGKILL');
  private readonly opts: Required<Omit<ManagedBackendOptions, 'env' | 'probeHeaders'>> & Pick<ManagedBackendOptions, 'env' | 'probeHeaders'>;

  constructor(opts: ManagedBackendOptions) {
    if (opts.command.length === 0) throw new AdapterError('invalid-params', 'empty backend command', { details: ['FEDAI_BACKEND_COMMAND'] });
    this.opts = {
      healthPath: '/health',
      startTimeoutMs: 120_000,
      restartBaseMs: 500,
      restartMaxMs: 15_000,
      stableMs: 30_000,
      graceMs: 1_500,
      outputBufferBytes: 64 * 1024,
      pdeathsig: true,
      ...opts,
    };
    this.output = new OutputRing(this.opts.outputBufferBytes);
    this.restartDelay = this.opts.restartBaseMs;
  }

  get state(): ManagedState {
    return this._state;
  }

  /** Base URL of the running backend (changes on restart: each start picks a fresh port). */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get lastExitStatus(): { code: number | null; signal: NodeJS.Signals | null } | undefined {
    return this.lastExit;
  }

  /** The last bytes the backend wrote (diagnostics only: may contain prompts, never log or return it over RPC). */
  outputTail(): string {
    return this.output.toString();
  }

  /** Spawns the backend and resolves once it answers its health path with 200. */
  async start(): Promise<void> {
    if (this.stopping) throw new AdapterError('backend-unavailable', 'managed backend is stopped', { details: ['stopped'] });
    if (this._state === 'ready') return;
    process.removeListener('exit', this.exitHook);
    process.once('exit', this.exitHook);
    await this.launch(this.opts.startTimeoutMs);
  }

  private async launch(deadlineMs: number): Promise<void> {
    this._state = 'starting';
    this.port = await pickFreePort();
    let argv = this.opts.command.map((a) => a.split('{port}').join(String(this.port)));
    // Parent death: the kernel SIGKILLs the backend when the runner dies, even by SIGKILL (the backend
    // runs in its own process group, so a group kill of the runner would not reach it otherwise).
    if (this.opts.pdeathsig && existsSync(SETPRIV)) argv = [SETPRIV, '--pdeathsig', 'KILL', '--', ...argv];
    const child = spawn(argv[0], argv.slice(1), {
      env: this.opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // own process group: stop() signals the backend and anything it spawned
    });
    this.child = child;
    this.startedAt = Date.now();
    child.stdout?.on('data', (b: Buffer) => this.output.push(b));
    child.stderr?.on('data', (b: Buffer) => this.output.push(b));
    let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let spawnError: Error | undefined;
    child.on('error', (err) => {
      spawnError = err;
    });
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      this.lastExit = exited;
      this.onExit(child, code, signal);
    });
    logStderr('info', 'managed backend spawned', { pid: child.pid ?? -1, port: this.port });

    const deadline = Date.now() + deadlineMs;
    let delay = 25;
    for (;;) {
      if (spawnError) {
        this._state = 'failed';
        const code = (spawnError as { code?: unknown }).code;
        throw new AdapterError('backend-unavailable', 'managed backend could not be started', {
          details: ['backend-spawn-failed', ...(typeof code === 'string' ? [code] : [])],
        });
      }
      if (exited) {
        this._state = 'failed';
        throw new AdapterError('backend-unavailable', 'managed backend exited during start', {
          details: ['backend-exited', exited.code !== null ? `exit-code=${exited.code}` : `signal=${exited.signal}`],
        });
      }
      if (this.stopping) throw new AdapterError('backend-unavailable', 'managed backend stopped during start', { details: ['stopped'] });
      const status = await probe(this.port, this.opts.healthPath, this.opts.probeHeaders ?? {}, 2_000);
      if (status === 200 && !exited) {
        this._state = 'ready';
        logStderr('info', 'managed backend ready', { pid: child.pid ?? -1, port: this.port, ms: Date.now() - this.startedAt });
        return;
      }
      if (Date.now() > deadline) {
        this._state = 'failed';
        await this.terminate(child);
        throw new AdapterError('backend-unavailable', 'managed backend did not become ready in time', {
          details: ['backend-start-timeout', status === 503 ? 'loading' : `status=${status}`],
        });
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 250);
    }
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (child !== this.child) return;
    if (this.stopping) return;
    if (this._state === 'starting') return; // launch() reports it
    logStderr('warn', 'managed backend exited', { code: code ?? -1, signal: signal ?? '', restarts: this.restarts });
    this._state = 'restarting';
    if (Date.now() - this.startedAt > this.opts.stableMs) this.restartDelay = this.opts.restartBaseMs;
    this.scheduleRestart();
  }

  /** Relaunches after the current backoff (then doubles it); a failed relaunch schedules the next try. */
  private scheduleRestart(): void {
    if (this.stopping) return;
    const delay = this.restartDelay;
    this.restartDelay = Math.min(Math.max(this.restartDelay * 2, 1), this.opts.restartMaxMs);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      this.restarts++;
      this.launch(this.opts.startTimeoutMs).catch((err: unknown) => {
        if (this.stopping) return;
        const details = err instanceof AdapterError ? (err.details ?? []).join(',') : 'unknown';
        logStderr('error', 'managed backend restart failed', { details });
        // launch() left state 'failed' after an exit or timeout: schedule another try.
        this._state = 'restarting';
        this.scheduleRestart();
      });
    }, delay);
  }

  private killGroupSync(sig: NodeJS.Signals): void {
    const pid = this.child?.pid;
    if (!pid || this.child?.exitCode !== null || this.child?.signalCode !== null) return;
    try {
      process.kill(-pid, sig);
    } catch {
      try {
        process.kill(pid, sig);
      } catch {
        // already gone
      }
    }
  }

  private async terminate(child: ChildProcess): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
    const gone = new Promise<void>((r) => child.once('exit', () => r()));
    const pid = child.pid;
    const signal = (sig: NodeJS.Signals): void => {
      try {
        process.kill(-pid, sig);
      } catch {
        try {
          child.kill(sig);
        } catch {
          // gone
        }
      }
    };
    signal('SIGTERM');
    let t: NodeJS.Timeout | undefined;
    const killed = new Promise<void>((r) => {
      t = setTimeout(() => {
        signal('SIGKILL');
        r();
      }, this.opts.graceMs);
    });
    await Promise.race([gone, killed]);
    if (t) clearTimeout(t);
    await gone;
  }

  /** Stops the backend (SIGTERM, SIGKILL after the grace) and cancels any pending restart. Idempotent. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    const child = this.child;
    if (child) await this.terminate(child);
    this._state = 'stopped';
    process.removeListener('exit', this.exitHook);
  }
}
