/**
 * The layered launcher selected by NODE_SANDBOX_MODE=<profile>. One exec chain, in this order:
 *
 *   sh -c '<join cgroups> && exec "$@"'          cgroup join before any runner code runs (root)
 *   prlimit --nofile=… --nproc=… --fsize=… --    rlimits (AS only when the profile sets it)
 *   setpriv --reuid=U --regid=U --clear-groups --inh-caps=-all --ambient-caps=-all
 *           --bounding-set=-all --no-new-privs --pdeathsig KILL --        a real unprivileged pool uid
 *   bwrap --unshare-all --die-with-parent --new-session --args FD(--clearenv --setenv …) --cap-drop ALL
 *         <ro binds> --bind <workDir> /job --tmpfs /tmp --proc /proc --dev /dev --remount-ro /
 *         --seccomp FD --                                       namespaces, fs view, env, seccomp
 *   <runner argv>
 *
 * Each layer is used when the host has it; the profile's `require` list decides which missing layers
 * stop the runner (fail closed, FedaiError('sandbox-layer-missing') naming the layer and its install
 * hint). The seccomp program and the env arguments reach bwrap on inherited file descriptors
 * (`extraFds`), so no secret appears on a command line. The supervisor's NODE_DATA_DIR and key files
 * are never bound in (masked with a tmpfs / /dev/null when a bound directory contains them).
 */
import { promises as fsp, openSync, closeSync, writeFileSync, mkdtempSync, chmodSync, readdirSync, statSync, existsSync, realpathSync, rmSync, readFileSync, mkdirSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve, sep } from 'node:path';
import type { Logger } from 'pino';
import { FedaiError } from '../errors.js';
import type { BreachReason, LaunchPlan, Launcher, LayerReport, RunnerSpec } from './launch-plan.js';
import { DEFAULT_PROXY_SOCKET, envNameAllowed, type LayerName, type SandboxProfile } from './profiles.js';
import { detectHostLayers, type HostLayers } from './host-layers.js';
import { pidAlive, type RunnerCgroup } from './cgroups.js';
import { seccompBpf } from './seccomp-bpf.js';
import { EndpointAllowlist } from './endpoint-allowlist.js';
import { EgressProxy, emptyEgressStats, type EgressStats, type RefusalReason } from './egress-proxy.js';
import { Watchdog } from './watchdog.js';

export interface SandboxLauncherOptions {
  readonly logger: Logger;
  readonly profile: SandboxProfile;
  /** NODE_DATA_DIR: holds keys; never bound into a sandbox. */
  readonly dataDir: string;
  /** More secret files to keep out (e.g. NODE_PRIVATE_KEY_FILE). */
  readonly secretFiles?: readonly string[];
  /** NODE_SANDBOX_ALLOWED_RUNNERS (empty = all). */
  readonly allowedRunners?: readonly string[];
  /** NODE_SANDBOX_ALLOWED_ENDPOINTS. */
  readonly allowedEndpoints?: readonly string[];
  readonly metrics?: { egressRefusal?(reason: string): void };
  /** Treat these layers as absent (tests of a degraded host). */
  readonly skipLayers?: readonly LayerName[];
  /** Pre-detected host layers (default: detectHostLayers()). */
  readonly hostLayers?: HostLayers;
}

/** What the launcher knows about one live plan, for tests and check-sandbox. */
export interface PlanInfo {
  readonly uid?: number;
  readonly cgroup?: RunnerCgroup;
  readonly egress?: EgressProxy;
  readonly watchdog?: Watchdog;
  readonly sandboxed: boolean;
}

const SANDBOX_PATH = '/usr/local/bin:/usr/bin:/bin';

function isUnder(child: string, parent: string): boolean {
  const c = resolve(child);
  const p = resolve(parent);
  return c === p || c.startsWith(p.endsWith(sep) ? p : p + sep);
}

function real(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return resolve(p);
  }
}

/** Uids owning a live process on this host (so concurrent supervisors do not share a pool uid). */
function uidsInUse(): Set<number> {
  const out = new Set<number>();
  try {
    for (const e of readdirSync('/proc')) {
      if (!/^\d+$/.test(e)) continue;
      try {
        out.add(statSync(`/proc/${e}`).uid);
      } catch {
        /* exited */
      }
    }
  } catch {
    /* no /proc */
  }
  return out;
}

/**
 * Host-wide uid leases (`<tmp>/fedai-uid-locks/<uid>` holding the owner pid), so that two supervisors
 * on one host never hand the same pool uid to two live runners. A lease whose owner is dead is taken over.
 */
const UID_LOCK_DIR = join(tmpdir(), 'fedai-uid-locks');

function lockUid(uid: number): boolean {
  try {
    mkdirSync(UID_LOCK_DIR, { recursive: true, mode: 0o700 });
  } catch {
    return true; // cannot lock: fall back to the process scan alone
  }
  const f = join(UID_LOCK_DIR, String(uid));
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(f, String(process.pid), { flag: 'wx', mode: 0o600 });
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') return true;
      let owner = NaN;
      try {
        owner = Number(readFileSync(f, 'utf8').trim());
      } catch {
        /* vanished */
      }
      if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && pidAlive(owner)) return false;
      if (owner === process.pid) return false; // ours and still in use by another plan of this process
      try {
        unlinkSync(f);
      } catch {
        /* raced */
      }
    }
  }
  return false;
}

function unlockUid(uid: number): void {
  const f = join(UID_LOCK_DIR, String(uid));
  try {
    if (Number(readFileSync(f, 'utf8').trim()) === process.pid) unlinkSync(f);
  } catch {
    /* gone */
  }
}

function gpuIndexes(): number[] {
  try {
    return readdirSync('/dev')
      .map((d) => /^nvidia(\d+)$/.exec(d))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
  } catch {
    return [];
  }
}

const LIMIT_NAMES: Record<string, string> = {
  'Max open files': 'nofile', 'Max processes': 'nproc', 'Max file size': 'fsize', 'Max core file size': 'core', 'Max cpu time': 'cpu', 'Max address space': 'as',
};

let hardLimits: Readonly<Record<string, number>> | undefined;

/**
 * This process's hard rlimits by prlimit flag name (absent = unlimited). Read from /proc once per
 * process, not at every runner start: the supervisor never changes its own limits.
 */
function ownHardLimits(): Readonly<Record<string, number>> {
  if (hardLimits) return hardLimits;
  const out: Record<string, number> = {};
  try {
    for (const line of readFileSync('/proc/self/limits', 'utf8').split('\n')) {
      const m = /^(Max [a-z ]+?)\s{2,}(\S+)\s+(\S+)/.exec(line);
      if (!m || !LIMIT_NAMES[m[1]]) continue;
      if (m[3] !== 'unlimited' && /^\d+$/.test(m[3])) out[LIMIT_NAMES[m[1]]] = Number(m[3]);
    }
  } catch {
    /* no /proc */
  }
  hardLimits = out;
  return out;
}

/** True when every parent of `dir` is searchable by other users and `dir` itself exists. */
function traversableByOthers(dir: string): boolean {
  let d = resolve(dir);
  for (;;) {
    const parent = dirname(d);
    if (parent === d) return true;
    d = parent;
    try {
      if ((statSync(d).mode & 0o001) === 0) return false;
    } catch {
      return false;
    }
  }
}

function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Adds the counters of `s` to `into`. */
function addEgressStats(into: EgressStats, s: EgressStats): void {
  into.allowed += s.allowed;
  into.refused += s.refused;
  into.upstreamErrors += s.upstreamErrors;
  into.active += s.active;
  for (const [k, v] of Object.entries(s.refusedByReason)) into.refusedByReason[k as RefusalReason] += v;
}

/** Runner cgroups in use by any SandboxLauncher of this process. */
const LIVE_CGROUPS = new Set<string>();

export class SandboxLauncher implements Launcher {
  readonly mode: string;
  readonly profile: SandboxProfile;
  private host?: HostLayers;
  private stateDir?: string;
  private readonly usedUids = new Set<number>();
  /** Shared by every launcher in this process: one launcher's GC must never take another's live runners. */
  private readonly liveCgroups = LIVE_CGROUPS;
  private readonly plans = new Set<SandboxPlan>();
  private readonly allowlist: EndpointAllowlist;
  private readonly egressTotals: EgressStats = emptyEgressStats();
  private warned = false;
  private refusalHooks: ((reason: RefusalReason) => void)[] = [];

  constructor(private readonly o: SandboxLauncherOptions) {
    this.profile = o.profile;
    this.mode = o.profile.name;
    try {
      this.allowlist = new EndpointAllowlist(o.allowedEndpoints ?? []);
    } catch (err) {
      throw new FedaiError('config-invalid', { cause: err, details: [`NODE_SANDBOX_ALLOWED_ENDPOINTS: ${(err as Error).message}`], message: `NODE_SANDBOX_ALLOWED_ENDPOINTS: ${(err as Error).message}` });
    }
  }

  /** Registers a hook called once per refused egress request (any runner). */
  onRefusal(hook: (reason: RefusalReason) => void): void {
    this.refusalHooks.push(hook);
  }

  /** Egress counters summed over every runner this launcher started (released ones and live ones). */
  egressStats(): EgressStats {
    const t = { ...this.egressTotals, refusedByReason: { ...this.egressTotals.refusedByReason } };
    for (const p of this.plans) {
      const s = p.info.egress?.stats();
      if (s) addEgressStats(t, s);
    }
    return t;
  }

  /** Host layers after skipLayers, with `present` forced false for skipped ones. */
  async layers(): Promise<HostLayers> {
    if (!this.host) {
      const h = this.o.hostLayers ?? (await detectHostLayers({ probeUid: this.o.profile.uidPool.last }));
      const skip = new Set(this.o.skipLayers ?? []);
      if (skip.size === 0) this.host = h;
      else {
        const layers = { ...h.layers };
        for (const l of skip) layers[l] = { ...layers[l], present: false, detail: `${layers[l].detail} (skipped by configuration)` };
        this.host = { ...h, layers };
      }
    }
    return this.host;
  }

  async init(): Promise<void> {
    const h = await this.layers();
    if (!this.warned) {
      this.warned = true;
      for (const st of Object.values(h.layers)) {
        if (st.present) continue;
        const required = this.profile.require.includes(st.layer);
        this.o.logger.warn(
          { profile: this.profile.name, layer: st.layer, detail: st.detail, hint: st.hint, required },
          required
            ? `sandbox: layer ${st.layer} is missing and profile ${this.profile.name} requires it: runners will not start (${st.hint})`
            : `sandbox: layer ${st.layer} is missing; profile ${this.profile.name} runs without it (${st.hint})`,
        );
      }
    }
    if (h.layers.cgroup.present) {
      const n = await h.cgroup.gc(this.liveCgroups).catch(() => 0);
      if (n > 0) this.o.logger.info({ removed: n }, 'sandbox: removed stale runner cgroups');
    }
    this.removeStaleStateDirs();
    this.ensureStateDir();
  }

  /** State dirs (`fedai-sandbox-<pid>-*`: egress sockets, fd files) of supervisors that died without close(). */
  private removeStaleStateDirs(): void {
    try {
      for (const e of readdirSync(tmpdir())) {
        const m = /^fedai-sandbox-(\d+)-/.exec(e);
        if (!m || Number(m[1]) === process.pid || pidAlive(Number(m[1]))) continue;
        rmSync(join(tmpdir(), e), { recursive: true, force: true });
      }
      for (const e of existsSync(UID_LOCK_DIR) ? readdirSync(UID_LOCK_DIR) : []) {
        const f = join(UID_LOCK_DIR, e);
        const owner = Number(readFileSync(f, 'utf8').trim());
        if (!(Number.isInteger(owner) && owner > 0 && pidAlive(owner))) rmSync(f, { force: true });
      }
    } catch {
      /* best effort */
    }
  }

  private ensureStateDir(): string {
    if (!this.stateDir) {
      // 0711: runner uids may traverse to their own (0700, runner-owned) egress directory, list nothing.
      this.stateDir = mkdtempSync(join(tmpdir(), `fedai-sandbox-${process.pid}-`));
      chmodSync(this.stateDir, 0o711);
    }
    return this.stateDir;
  }

  async close(): Promise<void> {
    await Promise.all([...this.plans].map((p) => p.dispose()));
    if (this.stateDir) rmSync(this.stateDir, { recursive: true, force: true });
    this.stateDir = undefined;
  }

  private allocUid(): number {
    const { first, last } = this.profile.uidPool;
    const busy = uidsInUse();
    for (let u = first; u <= last; u++) {
      if (this.usedUids.has(u) || busy.has(u)) continue;
      if (!lockUid(u)) continue; // held by another live supervisor on this host
      this.usedUids.add(u);
      return u;
    }
    throw new FedaiError('capacity-exhausted', { message: `sandbox: uid pool ${first}-${last} exhausted` });
  }

  /** @internal */
  release(plan: SandboxPlan): void {
    this.plans.delete(plan);
    if (plan.info.uid !== undefined) {
      this.usedUids.delete(plan.info.uid);
      unlockUid(plan.info.uid);
    }
    if (plan.info.cgroup) this.liveCgroups.delete(plan.info.cgroup.name);
    const s = plan.info.egress?.stats();
    if (s) addEgressStats(this.egressTotals, { ...s, active: 0 });
  }

  private refusal(reason: RefusalReason): void {
    try {
      this.o.metrics?.egressRefusal?.(reason);
    } catch {
      /* metrics must not break the proxy */
    }
    for (const h of this.refusalHooks) {
      try {
        h(reason);
      } catch {
        /* ignore */
      }
    }
  }

  async prepare(spec: RunnerSpec): Promise<LaunchPlan> {
    const p = this.profile;
    const log = this.o.logger;
    if (spec.command.length === 0 || !spec.command[0].startsWith('/')) {
      throw new FedaiError('config-invalid', { message: 'runner command must start with an absolute program path' });
    }
    const allowed = this.o.allowedRunners ?? [];
    if (allowed.length > 0 && !allowed.includes(spec.name)) {
      throw new FedaiError('sandbox-runner-not-allowed', {
        details: [`runner "${spec.name}" is not in NODE_SANDBOX_ALLOWED_RUNNERS (${allowed.join(', ')})`],
        message: `sandbox-runner-not-allowed: runner "${spec.name}" is not in NODE_SANDBOX_ALLOWED_RUNNERS (${allowed.join(', ')})`,
      });
    }
    const h = await this.layers();
    const missing = p.require.filter((l) => !h.layers[l].present);
    if (missing.length > 0) {
      const lines = missing.map((l) => `${l}: ${h.layers[l].hint} (${h.layers[l].detail})`);
      throw new FedaiError('sandbox-layer-missing', {
        details: lines,
        message: `sandbox-layer-missing: profile ${p.name} requires ${missing.join(', ')}, missing on this host:\n  - ${lines.join('\n  - ')}`,
      });
    }
    const state = this.ensureStateDir();
    const L = h.layers;
    const useCgroup = L.cgroup.present && L.root.present;
    const usePrlimit = L.prlimit.present && Object.keys(p.rlimits).length > 0;
    const useSetpriv = L.setpriv.present && L.root.present;
    const useBwrap = L.bwrap.present && L.userns.present;
    const useSeccomp = useBwrap && L.seccomp.present && p.seccomp !== 'off';
    const useEgress = p.network.mode === 'egress' && useBwrap;
    if (spec.needsEgress && p.network.mode === 'none') {
      log.warn({ runnerId: spec.id, profile: p.name }, `sandbox: runner ${spec.name} needs egress but profile ${p.name} has no network; use a profile with network.mode "egress" (e.g. standard)`);
    }

    const plan = new SandboxPlan(this, log, spec.id);
    this.plans.add(plan);
    try {
      // ---- uid
      let uid: number | undefined;
      if (useSetpriv) {
        uid = this.allocUid();
        plan.info.uid = uid;
        await fsp.chown(spec.workDir, uid, uid);
        await fsp.chmod(spec.workDir, 0o700);
      }
      // ---- cgroup
      if (useCgroup) {
        const cg = await h.cgroup.create(spec.id, p.cgroup);
        plan.info.cgroup = cg;
        this.liveCgroups.add(cg.name);
      }
      // ---- env
      const env: Record<string, string> = {};
      for (const [k, v] of Object.entries(spec.env)) if (envNameAllowed(k, p.env.allow)) env[k] = v;
      Object.assign(env, p.env.set);
      const devices: { path: string; optional: boolean }[] = p.fs.devices.map((d) => ({ path: d.path, optional: d.optional ?? false }));
      if (p.gpu?.cudaVisibleDevices === 'per-runner') {
        const gpus = gpuIndexes();
        if (gpus.length > 0) {
          const slot = uid !== undefined ? uid - p.uidPool.first : this.plans.size - 1;
          const idx = gpus[slot % gpus.length];
          env.CUDA_VISIBLE_DEVICES = String(idx);
          devices.push({ path: `/dev/nvidia${idx}`, optional: false });
        } else env.CUDA_VISIBLE_DEVICES = '';
      } else if (p.gpu?.cudaVisibleDevices === 'all') {
        for (const i of gpuIndexes()) devices.push({ path: `/dev/nvidia${i}`, optional: false });
      }
      // ---- egress proxy
      const proxyPath = p.network.proxySocket ?? DEFAULT_PROXY_SOCKET;
      let egressDir: string | undefined;
      if (useEgress) {
        egressDir = join(state, `egress-${plan.key}`);
        await fsp.mkdir(egressDir, { mode: 0o700 });
        if (uid !== undefined) await fsp.chown(egressDir, uid, uid);
        plan.egressDir = egressDir;
        const proxy = new EgressProxy({
          allowlist: this.allowlist,
          socketPath: join(egressDir, proxyPath.slice(proxyPath.lastIndexOf('/') + 1)),
          logger: log,
          runnerId: spec.id,
          onRefusal: (r) => this.refusal(r),
          ...(uid !== undefined ? { owner: { uid, gid: uid } } : {}),
        });
        await proxy.listen();
        plan.info.egress = proxy;
        env.FEDAI_EGRESS_PROXY = proxyPath;
      }

      // ---- reachability. bwrap resolves bind sources as the runner uid, which cannot traverse a 0700
      // parent: the manager keeps work dirs under NODE_DATA_DIR (0700), and a checkout may live under
      // /root. For such paths a root-owned private mount namespace, created just for this exec chain,
      // binds them onto <state>/… (0711 parent) first; nothing is mounted on the host and nothing of
      // NODE_DATA_DIR changes.
      const hostBinds: string[] = [];
      let mountSeq = 0;
      const reach = async (src: string, kind: 'work' | 'ro'): Promise<string> => {
        if (!useBwrap || uid === undefined || traversableByOthers(src)) return src;
        if (!h.paths.unshare || !h.paths.mount) {
          log.warn({ runnerId: spec.id, path: src }, `sandbox: ${src} is not reachable by runner uids and unshare/mount are missing; bind it from a world-traversable place`);
          return src;
        }
        const dst = join(state, `${kind}-${plan.key}-${++mountSeq}`);
        if (statSync(src).isDirectory()) await fsp.mkdir(dst, { mode: kind === 'work' ? 0o700 : 0o755 });
        else await fsp.writeFile(dst, '', { mode: 0o644 });
        if (kind === 'work') await fsp.chown(dst, uid, uid);
        plan.mountPoints.push(dst);
        hostBinds.push(src, dst);
        return dst;
      };
      const workSource = await reach(spec.workDir, 'work');
      const roSources = new Map<string, string>();
      for (const d of [...spec.codeDirs, ...(spec.readOnlyPaths ?? [])]) roSources.set(d, await reach(d, 'ro'));
      const mountNs = hostBinds.length === 0 ? [] : [
        h.paths.unshare!, '--mount', '--propagation', 'private', '--', h.paths.sh, '-c',
        'while [ "$1" != -- ]; do mount --bind -- "$1" "$2" || exit 126; shift 2; done; shift; exec "$@"',
        'fedai-mnt', ...hostBinds, '--',
      ];

      // ---- argv, from the inside out
      const extraFiles: string[] = [];
      const fdArg = (): number => 3 + extraFiles.length - 1;
      let inner: string[] = [...spec.command];
      if (useBwrap) {
        const b: string[] = ['--unshare-all', '--die-with-parent', '--new-session', '--hostname', 'fedai-runner'];
        const envArgs: string[] = ['--clearenv'];
        for (const [k, v] of Object.entries(env)) envArgs.push('--setenv', k, v);
        extraFiles.push(this.privateFile(state, `${plan.key}.args`, Buffer.from(envArgs.map((a) => `${a}\0`).join(''))));
        b.push('--args', String(fdArg()));
        b.push('--cap-drop', 'ALL');
        const bound: string[] = [];
        for (const r of p.fs.ro) {
          const path = typeof r === 'string' ? r : r.path;
          b.push('--ro-bind-try', path, path);
          bound.push(path);
        }
        // tmpfs mounts first, so that a code dir or work dir below one (e.g. under /tmp) is not hidden by it
        for (const t of p.fs.tmpfs) b.push('--tmpfs', t);
        for (const s of p.fs.symlinks ?? []) b.push('--symlink', s.target, s.link);
        for (const [d, src] of roSources) {
          b.push('--ro-bind', src, d);
          bound.push(d);
        }
        b.push('--bind', workSource, p.cwd);
        for (const rw of p.fs.rw) {
          b.push('--bind', rw.host, rw.sandbox);
          bound.push(rw.host);
        }
        // Never let the supervisor's data dir or key files through a broader bind.
        const secrets = [this.o.dataDir, ...(this.o.secretFiles ?? [])].filter(Boolean).map(real);
        for (const s of secrets) {
          if (!bound.some((bnd) => isUnder(s, real(bnd)) || isUnder(s, bnd))) continue;
          if (!existsSync(s)) continue;
          if (statSync(s).isDirectory()) b.push('--tmpfs', s);
          else b.push('--ro-bind', '/dev/null', s);
        }
        if (isUnder(spec.workDir, this.o.dataDir)) {
          log.debug({ runnerId: spec.id }, 'sandbox: the runner work dir is inside NODE_DATA_DIR; only it is bound, the rest of the data dir is not');
        }
        // A passwd/group entry for the runner's uid: getpwuid() (Node os.userInfo(), Python getpass,
        // torch caches) fails without one. Only root, the runner and nobody are listed.
        const ruid = uid ?? process.getuid?.() ?? 65534;
        const home = p.cwd;
        extraFiles.push(this.privateFile(state, `${plan.key}.passwd`, Buffer.from(`root:x:0:0:root:/root:/usr/sbin/nologin\nrunner:x:${ruid}:${ruid}:fedai runner:${home}:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n`)));
        b.push('--ro-bind-data', String(fdArg()), '/etc/passwd');
        extraFiles.push(this.privateFile(state, `${plan.key}.group`, Buffer.from(`root:x:0:\nrunner:x:${ruid}:\nnogroup:x:65534:\n`)));
        b.push('--ro-bind-data', String(fdArg()), '/etc/group');
        b.push('--proc', '/proc', '--dev', '/dev');
        for (const d of devices) b.push(d.optional ? '--dev-bind-try' : '--dev-bind', d.path, d.path);
        if (egressDir) b.push('--ro-bind', egressDir, dirname(proxyPath));
        b.push('--remount-ro', '/', '--chdir', p.cwd);
        if (useSeccomp) {
          extraFiles.push(this.privateFile(state, `${plan.key}.bpf`, seccompBpf(p.seccomp === 'strict' ? 'strict' : 'default')));
          b.push('--seccomp', String(fdArg()));
        }
        inner = [h.paths.bwrap!, ...b, '--', ...spec.command];
      }
      if (useSetpriv) {
        inner = [
          h.paths.setpriv!, `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--inh-caps=-all', '--ambient-caps=-all',
          '--bounding-set=-all', '--no-new-privs', '--pdeathsig', 'KILL', '--', ...inner,
        ];
      }
      if (usePrlimit) {
        const r = p.rlimits;
        // Without CAP_SYS_RESOURCE a limit cannot exceed our own hard limit: clamp instead of failing.
        const hard = ownHardLimits();
        const lim = (flag: string, want: number | undefined) => {
          if (want === undefined) return [];
          const h = hard[flag];
          const v = h !== undefined && want > h ? h : want;
          if (v !== want) log.debug({ runnerId: spec.id, limit: flag, want, clamped: v }, 'sandbox: rlimit clamped to the supervisor hard limit');
          return [`--${flag}=${v}:${v}`];
        };
        inner = [
          h.paths.prlimit!, ...lim('nofile', r.NOFILE), ...lim('nproc', r.NPROC), ...lim('fsize', r.FSIZE), ...lim('core', r.CORE),
          ...lim('cpu', r.CPU), ...lim('as', r.AS), '--', ...inner,
        ];
      }
      if (mountNs.length > 0) inner = [...mountNs, ...inner];
      // sh prelude: reopen fds the manager did not pass, join the cgroups, then exec the chain.
      const pre: string[] = [];
      extraFiles.forEach((f, i) => pre.push(`[ -e /proc/self/fd/${3 + i} ] || exec ${3 + i}<${shQuote(f)}`));
      for (const j of plan.info.cgroup?.joinFiles ?? []) pre.push(`echo $$ > ${shQuote(j)}`);
      let file: string;
      let args: string[];
      if (pre.length > 0) {
        file = h.paths.sh;
        args = ['-c', `set -e; ${pre.join('; ')}; exec "$@"`, 'fedai-sandbox', ...inner];
      } else {
        [file, ...args] = inner;
      }
      plan.extraFiles = extraFiles;
      plan.stateDir = state;
      plan.extraFds = extraFiles.map((f) => openSync(f, 'r'));

      const layers: LayerReport[] = [
        { layer: useCgroup ? (h.cgroup.kind === 'v1-hybrid' ? 'cgroup-v1' : 'cgroup-v2') : 'cgroup', active: useCgroup, detail: useCgroup ? `${plan.info.cgroup!.name}: ${JSON.stringify(plan.info.cgroup!.enforced)}` : L.cgroup.detail },
        { layer: 'prlimit', active: usePrlimit, detail: usePrlimit ? JSON.stringify(p.rlimits) : L.prlimit.detail },
        { layer: 'setpriv', active: useSetpriv, detail: useSetpriv ? `uid ${uid}, no capabilities, no_new_privs` : (L.root.present ? L.setpriv.detail : L.root.detail) },
        { layer: 'bwrap', active: useBwrap, detail: useBwrap ? 'user/pid/net/ipc/uts/mount namespaces, clearenv, read-only fs view' : (L.bwrap.present ? L.userns.detail : L.bwrap.detail) },
        { layer: 'seccomp', active: useSeccomp, detail: useSeccomp ? `level ${p.seccomp}` : p.seccomp === 'off' ? 'off in profile' : L.seccomp.present ? 'needs bwrap' : L.seccomp.detail },
        { layer: 'egress-proxy', active: useEgress, detail: useEgress ? `${proxyPath} (${this.allowlist.size} allowed endpoints)` : `network mode ${p.network.mode}` },
        { layer: 'pdeathsig', active: useBwrap || useSetpriv, detail: useBwrap ? 'bwrap --die-with-parent' : 'setpriv --pdeathsig KILL' },
        { layer: 'watchdog', active: true, detail: JSON.stringify(p.watchdog) },
      ];
      plan.finish({
        file,
        args,
        env: useBwrap ? { PATH: SANDBOX_PATH } : env,
        cwd: spec.workDir,
        layers,
        watchdogLimits: p.watchdog,
        sandboxed: useBwrap,
      });
      return plan;
    } catch (err) {
      await plan.dispose();
      throw err;
    }
  }

  private privateFile(state: string, name: string, content: Buffer): string {
    const f = join(state, name);
    writeFileSync(f, content, { mode: 0o600 });
    return f;
  }
}

let planSeq = 0;

export class SandboxPlan implements LaunchPlan {
  file = '';
  args: readonly string[] = [];
  env: Readonly<Record<string, string>> = {};
  cwd = '';
  layers: readonly LayerReport[] = [];
  extraFds: number[] = [];
  /** @internal */ extraFiles: string[] = [];
  /** @internal */ stateDir = '';
  /** @internal */ mountPoints: string[] = [];
  /** @internal */ egressDir?: string;
  readonly key: string;
  readonly info: { -readonly [K in keyof PlanInfo]: PlanInfo[K] } = { sandboxed: false };
  /** The reason and detail of the watchdog's kill, once it happened. */
  breach?: { reason: BreachReason; detail: string };
  private pid?: number;
  private limits?: SandboxProfile['watchdog'];
  private disposed?: Promise<void>;

  constructor(
    private readonly launcher: SandboxLauncher,
    private readonly logger: Logger,
    private readonly runnerId: string,
  ) {
    this.key = `${runnerId.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 60)}-${process.pid}-${++planSeq}`;
  }

  /** @internal */
  finish(v: { file: string; args: string[]; env: Record<string, string>; cwd: string; layers: LayerReport[]; watchdogLimits: SandboxProfile['watchdog']; sandboxed: boolean }): void {
    this.file = v.file;
    this.args = v.args;
    this.env = v.env;
    this.cwd = v.cwd;
    this.layers = v.layers;
    this.limits = v.watchdogLimits;
    this.info.sandboxed = v.sandboxed;
  }

  private closeFds(): void {
    for (const fd of this.extraFds) {
      try {
        closeSync(fd);
      } catch {
        /* closed */
      }
    }
    this.extraFds = [];
  }

  attach(pid: number, onBreach: (reason: BreachReason, detail: string) => void): void {
    this.pid = pid;
    this.closeFds();
    if (!this.limits || this.info.watchdog) return;
    const wd = new Watchdog({
      limits: this.limits,
      pid,
      ...(this.info.cgroup ? { cgroup: this.info.cgroup } : {}),
      kill: () => this.killTree(),
      onBreach: (reason, detail) => {
        this.breach = { reason, detail };
        onBreach(reason, detail);
      },
      logger: this.logger,
      runnerId: this.runnerId,
    });
    this.info.watchdog = wd;
    wd.start();
  }

  requestStarted(): void {
    this.info.watchdog?.requestStarted();
  }

  requestEnded(): void {
    this.info.watchdog?.requestEnded();
  }

  async killTree(): Promise<void> {
    if (this.info.cgroup) await this.info.cgroup.kill().catch(() => undefined);
    if (this.pid !== undefined) {
      // bwrap's monitor process: SIGKILL takes the pid namespace down (--die-with-parent inside).
      for (const target of [this.pid, -this.pid]) {
        try {
          process.kill(target, 'SIGKILL');
        } catch {
          /* gone, or not a group leader */
        }
      }
    }
  }

  dispose(): Promise<void> {
    this.disposed ??= (async () => {
      this.info.watchdog?.stop();
      await this.killTree();
      this.closeFds();
      for (const f of this.extraFiles) if (f.startsWith(this.stateDir + sep)) await fsp.rm(f, { force: true }).catch(() => undefined);
      if (this.info.egress) await this.info.egress.close().catch(() => undefined);
      if (this.egressDir) await fsp.rm(this.egressDir, { recursive: true, force: true }).catch(() => undefined);
      // Only the (empty) mount points: the binds lived in the runner's private mount namespace.
      for (const m of this.mountPoints) await fsp.rm(m, { force: true, recursive: false }).catch(() => fsp.rmdir(m).catch(() => undefined));
      if (this.info.cgroup) await this.info.cgroup.remove().catch((err: unknown) => this.logger.warn({ runnerId: this.runnerId, err }, 'sandbox: cgroup removal failed'));
      this.launcher.release(this);
    })();
    return this.disposed;
  }
}
