/**
 * The plain launcher (NODE_SANDBOX_MODE=disabled): no namespaces, no cgroup, no rlimits, no watchdog.
 *
 * What it guarantees, and what it does not:
 *   - The runner runs in its own process group (the manager spawns it detached), with cwd = spec.workDir
 *     and env = spec.env exactly (the manager has already reduced it to the allowlist).
 *   - Parent death, direct child: when /usr/bin/setpriv exists the runner is exec'd through
 *     `setpriv --pdeathsig KILL --`, so the kernel SIGKILLs it when the supervisor's main thread dies
 *     (also on SIGKILL of the supervisor). Reported as layer "pdeathsig".
 *   - Parent death, rest of the tree: a tiny `/bin/sh` sentinel per runner (own process group, no marker,
 *     stdin a pipe from the supervisor) waits for EOF on stdin. When the supervisor dies its end of the
 *     pipe closes, and the sentinel SIGKILLs the runner's process group and every process whose environ
 *     carries the runner's marker (FEDAI_RUNNER_ID=<id>), which includes `setsid` escapees that kept
 *     their environment. Reported as layer "sentinel".
 *   - killTree(): SIGKILLs the group, every descendant by PPid chain and every marker-carrying process
 *     (see proc-tree.ts), repeated until none is left.
 *   - Not covered: a descendant that both leaves the group (setsid) and scrubs its environment, and is
 *     reparented before we look. Only a pid namespace or a cgroup (the sandbox launcher) catches that.
 *     If the sentinel itself is SIGKILLed together with the supervisor (e.g. the OOM killer taking a
 *     whole cgroup), the next start's sweepStaleRunners() cleans up from the pidfiles.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { FedaiError } from '../errors.js';
import type { BreachReason, LaunchPlan, Launcher, LayerReport, RunnerSpec } from '../sandbox/launch-plan.js';
import type { Logger } from '../observability/logger.js';
import { killTree, readProcStat, type TreeIdentity } from './proc-tree.js';

/** Env var the manager puts in every runner's env; its `NAME=value` entry is the tree marker. */
export const RUNNER_MARKER_VAR = 'FEDAI_RUNNER_ID';

export const DEFAULT_SETPRIV = '/usr/bin/setpriv';

// $1 = pgid, $2 = marker entry ("FEDAI_RUNNER_ID=<id>"). Waits for stdin EOF, then kills the tree.
const SENTINEL_SCRIPT = [
  'while read -r _; do :; done',
  'kill -KILL -- "-$1" 2>/dev/null',
  'if [ -n "$2" ]; then',
  '  for f in /proc/[0-9]*/environ; do',
  '    if grep -qzxF -- "$2" "$f" 2>/dev/null; then p=${f#/proc/}; kill -KILL "${p%/environ}" 2>/dev/null; fi',
  '  done',
  'fi',
  'exit 0',
].join('\n');

export interface UnsandboxedLauncherOptions {
  /** Path of setpriv; null disables pdeathsig. Default /usr/bin/setpriv when it exists. */
  setprivPath?: string | null;
  /** Start the parent-death sentinel (default true). */
  sentinel?: boolean;
  /** Used once, to warn when setpriv is missing (pdeathsig off). */
  logger?: Logger;
}

export class UnsandboxedLauncher implements Launcher {
  readonly mode = 'disabled';
  private readonly setpriv: string | null;
  private readonly sentinel: boolean;

  constructor(opts: UnsandboxedLauncherOptions = {}) {
    const p = opts.setprivPath === undefined ? DEFAULT_SETPRIV : opts.setprivPath;
    this.setpriv = p !== null && existsSync(p) ? p : null;
    this.sentinel = opts.sentinel ?? true;
    if (this.setpriv === null && p !== null) {
      opts.logger?.warn({ setpriv: p }, 'setpriv not found: runners get no parent-death signal (the sentinel and the start-up sweep still apply)');
    }
  }

  async prepare(spec: RunnerSpec): Promise<LaunchPlan> {
    const program = spec.command[0];
    if (program === undefined || !isAbsolute(program)) {
      throw new FedaiError('runner-unavailable', { details: ['runner command must start with an absolute path'] });
    }
    try {
      accessSync(program, constants.X_OK);
    } catch {
      throw new FedaiError('runner-unavailable', { details: ['runner program is missing or not executable'] });
    }
    return new UnsandboxedPlan(spec, this.setpriv, this.sentinel);
  }
}

class UnsandboxedPlan implements LaunchPlan {
  readonly file: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly cwd: string;
  readonly layers: readonly LayerReport[];
  private identity?: TreeIdentity;
  private sentinelChild?: ChildProcess;
  private readonly marker?: string;

  constructor(
    spec: RunnerSpec,
    setpriv: string | null,
    private readonly useSentinel: boolean,
  ) {
    const [file, ...args] = spec.command;
    if (setpriv) {
      this.file = setpriv;
      this.args = ['--pdeathsig', 'KILL', '--', file, ...args];
    } else {
      this.file = file;
      this.args = args;
    }
    this.env = { ...spec.env };
    this.cwd = spec.workDir;
    const markerValue = spec.env[RUNNER_MARKER_VAR];
    if (markerValue !== undefined) this.marker = `${RUNNER_MARKER_VAR}=${markerValue}`;
    this.layers = [
      { layer: 'process-group', active: true },
      { layer: 'pdeathsig', active: setpriv !== null, detail: setpriv ? `${setpriv} --pdeathsig KILL` : 'setpriv not found' },
      { layer: 'sentinel', active: useSentinel, detail: 'kills the group and marker-carrying processes when the supervisor dies' },
      { layer: 'cgroup', active: false, detail: 'sandbox disabled' },
      { layer: 'bwrap', active: false, detail: 'sandbox disabled' },
    ];
  }

  attach(pid: number, _onBreach: (reason: BreachReason, detail: string) => void): void {
    const st = readProcStat(pid);
    this.identity = { pid, pgid: pid, starttime: st?.starttime ?? 0, ...(this.marker ? { marker: this.marker } : {}) };
    if (this.useSentinel && !this.sentinelChild) {
      const child = spawn('/bin/sh', ['-c', SENTINEL_SCRIPT, 'fedai-runner-sentinel', String(pid), this.marker ?? ''], {
        stdio: ['pipe', 'ignore', 'ignore'],
        detached: true,
        env: { PATH: '/usr/bin:/bin' },
        cwd: '/',
      });
      child.on('error', () => undefined);
      child.stdin?.on('error', () => undefined);
      child.unref();
      (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
      this.sentinelChild = child;
    }
  }

  /** Tree identity, once attached (pid, pgid, starttime, marker). */
  get tree(): TreeIdentity | undefined {
    return this.identity;
  }

  async killTree(): Promise<void> {
    if (this.identity) await killTree(this.identity);
  }

  async dispose(): Promise<void> {
    const s = this.sentinelChild;
    this.sentinelChild = undefined;
    if (s && s.exitCode === null && s.signalCode === null) {
      // SIGKILL, not stdin EOF: after the runner is reaped its pgid may in principle be reused.
      const exited = new Promise<void>((resolve) => s.once('exit', () => resolve()));
      s.kill('SIGKILL');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, 2000)))]);
      clearTimeout(timer);
    }
  }
}
