/**
 * The contract between the runner manager (supervisor/runners/) and the sandbox launcher
 * (supervisor/sandbox/). The manager describes what to run; a Launcher turns that into the exact
 * command line (cgroup join → prlimit → setpriv → bwrap → seccomp → runner) plus the handles needed to
 * watch and kill the whole tree. `unsandboxed-launcher.ts` is the plain implementation (process group
 * + setpriv --pdeathsig); `sandbox-launcher.ts` the layered one selected by NODE_SANDBOX_MODE.
 *
 * Egress: a runner never gets a network namespace with outside access. When its profile allows egress,
 * the plan sets FEDAI_EGRESS_PROXY in its env to the path (as seen inside the sandbox) of a Unix socket
 * served by the supervisor's egress proxy. Adapters send plain-HTTP requests in absolute form
 * (`GET http://host:port/path HTTP/1.1`) to that socket and `CONNECT host:port` for https; the proxy
 * checks each against NODE_SANDBOX_ALLOWED_ENDPOINTS (parsed scheme, host, port, path prefix), answers
 * 403 {"error":"egress-not-allowed"} otherwise, and streams responses without buffering.
 */

export interface RunnerSpec {
  /** Instance id, unique per start (e.g. "mock-0-3"); names cgroups, work dirs and pidfiles. */
  readonly id: string;
  /** Runner name checked against NODE_SANDBOX_ALLOWED_RUNNERS (mock, http, llama_cpp, vllm, exec). */
  readonly name: string;
  /** argv: argv[0] is an absolute path to the program. */
  readonly command: readonly string[];
  /** The runner's whole environment, already reduced to the allowlist by the manager. */
  readonly env: Readonly<Record<string, string>>;
  /** Host directories the runner must read (its code, node_modules, an interpreter's libs). */
  readonly codeDirs: readonly string[];
  /** Host directory the runner may write; created by the manager, owned by the launcher's uid. */
  readonly workDir: string;
  /** True when the runner must reach a backend over the network (http, llama_cpp, vllm). */
  readonly needsEgress: boolean;
  /** Extra read-only binds (e.g. model files for a managed backend). */
  readonly readOnlyPaths?: readonly string[];
}

export interface LayerReport {
  /** e.g. "cgroup-v1", "prlimit", "setpriv", "bwrap", "seccomp", "egress-proxy", "pdeathsig". */
  readonly layer: string;
  readonly active: boolean;
  readonly detail?: string;
}

export type BreachReason = 'memory' | 'cpu' | 'pids' | 'wall-time' | 'idle' | 'oom';

export interface LaunchPlan {
  readonly file: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly cwd: string;
  readonly layers: readonly LayerReport[];
  /**
   * Open file descriptors the manager hands to the child as fds 3, 4, … in this order
   * (`stdio: ['pipe', 'pipe', 'pipe', ...extraFds]` with execa or child_process); `args` refer to them by
   * those numbers (e.g. `bwrap --seccomp 3`). Absent or empty: nothing extra. The plan closes its own
   * copies in attach() (after spawn) and in dispose(). (Additive; the sandbox launcher's sh prelude
   * reopens them from private files when a manager does not pass them.)
   */
  readonly extraFds?: readonly number[];
  /**
   * Called by the manager right after spawn with the child's pid. Starts the watchdog, if any;
   * `onBreach` is called once when a limit is crossed, after the tree has been killed.
   */
  attach(pid: number, onBreach: (reason: BreachReason, detail: string) => void): void;
  /** Marks the start/end of a request for wall-time and idle accounting. */
  requestStarted?(): void;
  requestEnded?(): void;
  /** Kills every process of the runner tree (cgroup.kill, pid namespace, or process group). */
  killTree(): Promise<void>;
  /** Releases cgroups, sockets and temporary files. Idempotent. */
  dispose(): Promise<void>;
}

export interface Launcher {
  /** Profile name, or "disabled". */
  readonly mode: string;
  /** Throws FedaiError('sandbox-layer-missing' | 'sandbox-runner-not-allowed') when it must not start. */
  prepare(spec: RunnerSpec): Promise<LaunchPlan>;
  /** Start-up housekeeping: garbage-collect stale runner cgroups, stop servers. */
  init?(): Promise<void>;
  close?(): Promise<void>;
}
