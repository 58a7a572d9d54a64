/**
 * Cgroup drivers for runner trees. Runner cgroups are named `fedai/<runner-id>.p<supervisor-pid>` so
 * that several supervisors on one host never collide and garbage collection at start-up removes only
 * groups whose supervisor is gone (or groups of this very process that are no longer live).
 *
 * - `v1-hybrid` (Debian/CI VMs without systemd): memory, pids and cpu (and cpuacct when mounted apart)
 *   under /sys/fs/cgroup/<ctl>/fedai/<name>, plus a cgroup2 leaf at /sys/fs/cgroup/unified/fedai/<name>
 *   for `cgroup.kill` and `cpu.stat`.
 * - `v2-delegated` (production under systemd with Delegate=yes): the supervisor moves itself into a
 *   `supervisor` leaf of its own cgroup, enables +memory +pids +cpu in `cgroup.subtree_control`, and
 *   creates runner leaves under `<own cgroup>/fedai/<name>`.
 * - `none`: nothing to join; the watchdog falls back to pidusage and kills through the pid namespace.
 *
 * Joining happens before exec (`sh -c 'echo $$ > <cg>/cgroup.procs && exec "$@"'`), so no runner code
 * runs outside its group: `joinFiles` lists the files to write.
 */
import { promises as fsp, existsSync, readFileSync, accessSync, constants as FS } from 'node:fs';
import { join } from 'node:path';

export type CgroupDriverKind = 'v2-delegated' | 'v1-hybrid' | 'none';

export interface CgroupLimits {
  readonly memoryMaxBytes?: number;
  readonly pidsMax?: number;
  readonly cpuMaxPercent?: number;
}

export interface CgroupUsage {
  /** Current memory charge of the tree (bytes). */
  readonly memoryBytes?: number;
  readonly pids?: number;
  /** Cumulative CPU time of the tree (µs). */
  readonly cpuUsageUs?: number;
  /** OOM kills inside the group so far. */
  readonly oomKills?: number;
  /** Times the pids limit refused a fork. */
  readonly pidsLimitHits?: number;
}

export interface RunnerCgroup {
  readonly name: string;
  /** `cgroup.procs` files the launcher's shell writes its pid into before exec. */
  readonly joinFiles: readonly string[];
  /** Limits actually enforced by the kernel (a controller that is missing is not listed). */
  readonly enforced: CgroupLimits;
  /** True when the tree can be killed atomically with cgroup.kill. */
  readonly canKill: boolean;
  usage(): Promise<CgroupUsage>;
  pids(): Promise<number[]>;
  kill(): Promise<void>;
  remove(): Promise<void>;
}

export interface CgroupDriver {
  readonly kind: CgroupDriverKind;
  readonly detail: string;
  create(runnerId: string, limits: CgroupLimits): Promise<RunnerCgroup>;
  /** Kills and removes stale runner groups (owner supervisor gone, or ours and not live). Returns how many. */
  gc(live?: ReadonlySet<string>): Promise<number>;
}

const CG = '/sys/fs/cgroup';

export function cgroupName(runnerId: string, ownerPid = process.pid): string {
  const safe = runnerId.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 80) || 'runner';
  return `${safe}.p${ownerPid}`;
}

function ownerOf(name: string): number | undefined {
  const m = /\.p(\d+)$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** A runner group gc may take: not live here, and its owner supervisor is this process or gone. */
function isStale(name: string, live: ReadonlySet<string>): boolean {
  if (live.has(name)) return false;
  const owner = ownerOf(name);
  return !(owner !== undefined && owner !== process.pid && pidAlive(owner));
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readNum(file: string): Promise<number | undefined> {
  try {
    const s = (await fsp.readFile(file, 'utf8')).trim();
    if (s === 'max') return Infinity;
    const n = Number(s);
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

async function readKeyed(file: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  try {
    for (const line of (await fsp.readFile(file, 'utf8')).split('\n')) {
      const [k, v] = line.trim().split(/\s+/);
      if (k && v !== undefined && /^\d+$/.test(v)) out[k] = Number(v);
    }
  } catch {
    /* absent */
  }
  return out;
}

async function readPids(procsFile: string): Promise<number[]> {
  try {
    return (await fsp.readFile(procsFile, 'utf8')).split('\n').filter((l) => /^\d+$/.test(l)).map(Number);
  } catch {
    return [];
  }
}

async function writeFile(file: string, value: string): Promise<boolean> {
  try {
    await fsp.writeFile(file, value);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** SIGKILLs every pid listed in `procsFile` until it is empty (fallback when cgroup.kill is absent). */
async function killByList(procsFile: string, deadlineMs = 3000): Promise<void> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const pids = await readPids(procsFile);
    if (pids.length === 0) return;
    for (const p of pids) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    if (Date.now() > end) return;
    await sleep(20);
  }
}

async function rmdirRetry(dir: string, deadlineMs = 3000): Promise<void> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    try {
      await fsp.rmdir(dir);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (Date.now() > end) throw err;
      await sleep(25);
    }
  }
}

function mountTable(): { type: string; dir: string; opts: string[] }[] {
  try {
    return readFileSync('/proc/self/mounts', 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const f = l.split(' ');
        return { dir: f[1], type: f[2], opts: f[3].split(',') };
      });
  } catch {
    return [];
  }
}

function writable(dir: string): boolean {
  try {
    accessSync(dir, FS.W_OK);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------- v1-hybrid

export class V1HybridDriver implements CgroupDriver {
  readonly kind = 'v1-hybrid' as const;
  readonly detail: string;
  constructor(
    private readonly dirs: { memory: string; pids: string; cpu: string; cpuacct?: string; unified?: string },
  ) {
    this.detail = `v1 memory/pids/cpu under ${CG}/<ctl>/fedai${dirs.unified ? `, cgroup2 leaf under ${dirs.unified}/fedai` : ''}`;
  }

  private bases(): string[] {
    const d = this.dirs;
    return [d.memory, d.pids, d.cpu, ...(d.cpuacct && d.cpuacct !== d.cpu ? [d.cpuacct] : []), ...(d.unified ? [d.unified] : [])];
  }

  async create(runnerId: string, limits: CgroupLimits): Promise<RunnerCgroup> {
    const name = cgroupName(runnerId);
    const d = this.dirs;
    const path = (base: string) => join(base, 'fedai', name);
    const created: string[] = [];
    try {
      for (const b of this.bases()) {
        await fsp.mkdir(path(b), { recursive: true });
        created.push(path(b));
      }
      const enforced: { memoryMaxBytes?: number; pidsMax?: number; cpuMaxPercent?: number } = {};
      if (limits.memoryMaxBytes !== undefined) {
        await fsp.writeFile(join(path(d.memory), 'memory.limit_in_bytes'), String(limits.memoryMaxBytes));
        await writeFile(join(path(d.memory), 'memory.memsw.limit_in_bytes'), String(limits.memoryMaxBytes));
        enforced.memoryMaxBytes = limits.memoryMaxBytes;
      }
      if (limits.pidsMax !== undefined) {
        await fsp.writeFile(join(path(d.pids), 'pids.max'), String(limits.pidsMax));
        enforced.pidsMax = limits.pidsMax;
      }
      if (limits.cpuMaxPercent !== undefined) {
        await fsp.writeFile(join(path(d.cpu), 'cpu.cfs_period_us'), '100000');
        await fsp.writeFile(join(path(d.cpu), 'cpu.cfs_quota_us'), String(limits.cpuMaxPercent * 1000));
        enforced.cpuMaxPercent = limits.cpuMaxPercent;
      }
      const unifiedLeaf = d.unified ? path(d.unified) : undefined;
      const cpuacctLeaf = d.cpuacct ? path(d.cpuacct) : undefined;
      return {
        name,
        joinFiles: created.map((c) => join(c, 'cgroup.procs')),
        enforced,
        canKill: unifiedLeaf !== undefined && existsSync(join(unifiedLeaf, 'cgroup.kill')),
        usage: async () => {
          const mem = await readNum(join(path(d.memory), 'memory.usage_in_bytes'));
          const pids = await readNum(join(path(d.pids), 'pids.current'));
          let cpuUs: number | undefined;
          if (unifiedLeaf) cpuUs = (await readKeyed(join(unifiedLeaf, 'cpu.stat'))).usage_usec;
          if (cpuUs === undefined && cpuacctLeaf) {
            const ns = await readNum(join(cpuacctLeaf, 'cpuacct.usage'));
            if (ns !== undefined) cpuUs = Math.round(ns / 1000);
          }
          const oom = (await readKeyed(join(path(d.memory), 'memory.oom_control'))).oom_kill;
          const pidsHits = (await readKeyed(join(path(d.pids), 'pids.events'))).max;
          return { memoryBytes: mem, pids, cpuUsageUs: cpuUs, oomKills: oom, pidsLimitHits: pidsHits };
        },
        pids: () => readPids(join(path(d.pids), 'cgroup.procs')),
        kill: async () => {
          if (unifiedLeaf && (await writeFile(join(unifiedLeaf, 'cgroup.kill'), '1'))) {
            const end = Date.now() + 3000;
            while ((await readPids(join(unifiedLeaf, 'cgroup.procs'))).length > 0 && Date.now() < end) await sleep(10);
          }
          await killByList(join(path(d.pids), 'cgroup.procs'));
        },
        remove: async () => {
          if (unifiedLeaf) await writeFile(join(unifiedLeaf, 'cgroup.kill'), '1');
          await killByList(join(path(d.pids), 'cgroup.procs'));
          for (const c of [...created].reverse()) await rmdirRetry(c).catch(() => undefined);
        },
      };
    } catch (err) {
      for (const c of [...created].reverse()) await fsp.rmdir(c).catch(() => undefined);
      throw err;
    }
  }

  async gc(live: ReadonlySet<string> = new Set()): Promise<number> {
    const stale = new Set<string>();
    for (const b of this.bases()) {
      let names: string[] = [];
      try {
        names = (await fsp.readdir(join(b, 'fedai'), { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
      } catch {
        continue;
      }
      for (const n of names) if (isStale(n, live)) stale.add(n);
    }
    for (const n of stale) {
      const uni = this.dirs.unified ? join(this.dirs.unified, 'fedai', n) : undefined;
      if (uni) await writeFile(join(uni, 'cgroup.kill'), '1');
      for (const b of this.bases()) await killByList(join(b, 'fedai', n, 'cgroup.procs'), 1000);
      for (const b of this.bases()) await rmdirRetry(join(b, 'fedai', n), 1000).catch(() => undefined);
    }
    return stale.size;
  }
}

// ------------------------------------------------------------------------------------- v2-delegated

export class V2DelegatedDriver implements CgroupDriver {
  readonly kind = 'v2-delegated' as const;
  readonly detail: string;
  private readonly available: Set<string>;
  /**
   * @param base  the supervisor's delegated cgroup directory (e.g. /sys/fs/cgroup/system.slice/fedai-node.service)
   * @param opts.moveSelf  move this process into `<base>/supervisor` first (the no-internal-processes rule)
   */
  constructor(
    private readonly base: string,
    private readonly opts: { moveSelf?: boolean } = {},
  ) {
    this.available = new Set(readFileSyncSafe(join(base, 'cgroup.controllers')).split(/\s+/).filter(Boolean));
    this.detail = `cgroup v2 delegated at ${base} (controllers: ${[...this.available].join(' ') || 'none'})`;
  }

  private prepared = false;
  private async prepare(): Promise<void> {
    if (this.prepared) return;
    if (this.opts.moveSelf) {
      await fsp.mkdir(join(this.base, 'supervisor'), { recursive: true });
      await fsp.writeFile(join(this.base, 'supervisor', 'cgroup.procs'), String(process.pid));
    }
    const want = ['memory', 'pids', 'cpu'].filter((c) => this.available.has(c));
    if (want.length) await writeFile(join(this.base, 'cgroup.subtree_control'), want.map((c) => `+${c}`).join(' '));
    await fsp.mkdir(join(this.base, 'fedai'), { recursive: true });
    if (want.length) await writeFile(join(this.base, 'fedai', 'cgroup.subtree_control'), want.map((c) => `+${c}`).join(' '));
    this.prepared = true;
  }

  async create(runnerId: string, limits: CgroupLimits): Promise<RunnerCgroup> {
    await this.prepare();
    const name = cgroupName(runnerId);
    const dir = join(this.base, 'fedai', name);
    await fsp.mkdir(dir, { recursive: true });
    const enforced: { memoryMaxBytes?: number; pidsMax?: number; cpuMaxPercent?: number } = {};
    try {
      if (limits.memoryMaxBytes !== undefined && existsSync(join(dir, 'memory.max'))) {
        await fsp.writeFile(join(dir, 'memory.max'), String(limits.memoryMaxBytes));
        await writeFile(join(dir, 'memory.swap.max'), '0');
        enforced.memoryMaxBytes = limits.memoryMaxBytes;
      }
      if (limits.pidsMax !== undefined && existsSync(join(dir, 'pids.max'))) {
        await fsp.writeFile(join(dir, 'pids.max'), String(limits.pidsMax));
        enforced.pidsMax = limits.pidsMax;
      }
      if (limits.cpuMaxPercent !== undefined && existsSync(join(dir, 'cpu.max'))) {
        await fsp.writeFile(join(dir, 'cpu.max'), `${limits.cpuMaxPercent * 1000} 100000`);
        enforced.cpuMaxPercent = limits.cpuMaxPercent;
      }
    } catch (err) {
      await fsp.rmdir(dir).catch(() => undefined);
      throw err;
    }
    const procs = join(dir, 'cgroup.procs');
    return {
      name,
      joinFiles: [procs],
      enforced,
      canKill: existsSync(join(dir, 'cgroup.kill')),
      usage: async () => {
        const stat = await readKeyed(join(dir, 'cpu.stat'));
        const events = await readKeyed(join(dir, 'memory.events'));
        const pe = await readKeyed(join(dir, 'pids.events'));
        return {
          memoryBytes: await readNum(join(dir, 'memory.current')),
          pids: await readNum(join(dir, 'pids.current')),
          cpuUsageUs: stat.usage_usec,
          oomKills: events.oom_kill,
          pidsLimitHits: pe.max,
        };
      },
      pids: () => readPids(procs),
      kill: async () => {
        await writeFile(join(dir, 'cgroup.kill'), '1');
        await killByList(procs);
      },
      remove: async () => {
        await writeFile(join(dir, 'cgroup.kill'), '1');
        await killByList(procs);
        await rmdirRetry(dir).catch(() => undefined);
      },
    };
  }

  async gc(live: ReadonlySet<string> = new Set()): Promise<number> {
    let n = 0;
    let names: string[] = [];
    try {
      names = (await fsp.readdir(join(this.base, 'fedai'), { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
    } catch {
      return 0;
    }
    for (const name of names) {
      if (!isStale(name, live)) continue;
      const dir = join(this.base, 'fedai', name);
      await writeFile(join(dir, 'cgroup.kill'), '1');
      await killByList(join(dir, 'cgroup.procs'), 1000);
      await rmdirRetry(dir, 1000).catch(() => undefined);
      n++;
    }
    return n;
  }
}

function readFileSyncSafe(f: string): string {
  try {
    return readFileSync(f, 'utf8');
  } catch {
    return '';
  }
}

// ------------------------------------------------------------------------------------------- detect

export class NoCgroupDriver implements CgroupDriver {
  readonly kind = 'none' as const;
  constructor(readonly detail: string) {}
  async create(): Promise<RunnerCgroup> {
    throw new Error(`no writable cgroup hierarchy: ${this.detail}`);
  }
  async gc(): Promise<number> {
    return 0;
  }
}

/** Picks the driver for this host: v2 delegated (unified at /sys/fs/cgroup, own group writable), else v1 hybrid, else none. */
export function detectCgroupDriver(): CgroupDriver {
  const mounts = mountTable();
  const rootIsV2 = mounts.some((m) => m.dir === CG && m.type === 'cgroup2');
  if (rootIsV2) {
    const line = readFileSyncSafe('/proc/self/cgroup').split('\n').find((l) => l.startsWith('0::'));
    const own = line ? line.slice(3).trim() : '';
    // A process that already lives in our `supervisor` leaf (restart) delegates from the parent.
    const rel = own.endsWith('/supervisor') ? own.slice(0, -'/supervisor'.length) : own;
    const base = join(CG, rel);
    const ctrls = readFileSyncSafe(join(base, 'cgroup.controllers'));
    if (rel !== '' && rel !== '/' && writable(base) && writable(join(base, 'cgroup.procs')) && existsSync(join(base, 'cgroup.subtree_control'))) {
      return new V2DelegatedDriver(base, { moveSelf: !own.endsWith('/supervisor') });
    }
    if ((rel === '' || rel === '/') && process.getuid?.() === 0 && writable(base)) {
      return new V2DelegatedDriver(base, { moveSelf: false });
    }
    return new NoCgroupDriver(`cgroup v2 at ${CG} but ${base} is not delegated to this user (controllers: ${ctrls.trim() || 'none'}); run under systemd with Delegate=yes`);
  }
  const v1 = (ctl: string) => {
    const m = mounts.find((x) => x.type === 'cgroup' && x.opts.includes(ctl));
    return m?.dir;
  };
  const memory = v1('memory');
  const pids = v1('pids');
  const cpu = v1('cpu');
  if (memory && pids && cpu) {
    const okay = [memory, pids, cpu].every(writable);
    if (okay) {
      const unified = mounts.find((m) => m.type === 'cgroup2')?.dir;
      return new V1HybridDriver({ memory, pids, cpu, cpuacct: v1('cpuacct'), unified: unified && writable(unified) ? unified : undefined });
    }
    return new NoCgroupDriver('cgroup v1 hierarchies are not writable (run the supervisor as root)');
  }
  return new NoCgroupDriver('no cgroup v1 memory/pids/cpu hierarchy and no cgroup v2 mount at /sys/fs/cgroup');
}
