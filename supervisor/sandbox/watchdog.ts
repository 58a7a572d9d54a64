/**
 * Watches one runner tree. Every `intervalMs` it reads the tree's usage — from the runner cgroup
 * (memory.usage_in_bytes / memory.current, pids.current, cpu.stat usage_usec / cpuacct.usage) when
 * there is one, else with pidusage over every pid of the process tree — and on a breach (memory,
 * cpu, pids, wall time of a request, idle time) kills the whole tree first, then reports the reason
 * once through `onBreach`.
 */
import { readdirSync, readFileSync } from 'node:fs';
import pidusage from 'pidusage';
import type { Logger } from 'pino';
import type { BreachReason } from './launch-plan.js';
import type { CgroupUsage, RunnerCgroup } from './cgroups.js';
import type { WatchdogLimits } from './profiles.js';

export interface WatchdogOptions {
  readonly limits: WatchdogLimits;
  readonly pid: number;
  readonly cgroup?: RunnerCgroup;
  /** Kills the whole tree; awaited before onBreach is called. */
  readonly kill: () => Promise<void>;
  readonly onBreach: (reason: BreachReason, detail: string) => void;
  readonly logger?: Logger;
  readonly runnerId?: string;
}

export interface WatchdogSample extends CgroupUsage {
  readonly at: number;
  readonly source: 'cgroup' | 'pidusage';
}

/** Every pid of the tree rooted at `root` (root included), from /proc/<pid>/stat ppid links. */
export function processTree(root: number): number[] {
  return scanTree(root).pids;
}

/**
 * One pass over /proc: the tree's pids and its task (thread) count, both from /proc/<pid>/stat
 * (ppid is field 4, num_threads field 20), so a sample does not list /proc/<pid>/task per pid again.
 */
function scanTree(root: number): { pids: number[]; tasks: number } {
  const children = new Map<number, number[]>();
  const threads = new Map<number, number>();
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  } catch {
    return { pids: [root], tasks: 0 };
  }
  for (const e of entries) {
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ppid = Number(rest[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(e));
      children.set(ppid, list);
      threads.set(Number(e), Number(rest[17]) || 0);
    } catch {
      /* exited */
    }
  }
  const pids: number[] = [];
  let tasks = 0;
  const stack = [root];
  const seen = new Set<number>();
  while (stack.length) {
    const p = stack.pop()!;
    if (seen.has(p)) continue;
    seen.add(p);
    pids.push(p);
    tasks += threads.get(p) ?? 0;
    for (const c of children.get(p) ?? []) stack.push(c);
  }
  return { pids, tasks };
}

export class Watchdog {
  private timer: NodeJS.Timeout | undefined;
  private inFlight: number[] = [];
  private lastActivity = Date.now();
  private cpuWindow: { at: number; us: number }[] = [];
  private oomSeen = 0;
  private sampling = false;
  private stopped = false;
  breach: { reason: BreachReason; detail: string; at: number } | undefined;
  last: WatchdogSample | undefined;
  samples = 0;

  constructor(private readonly o: WatchdogOptions) {}

  start(): void {
    if (this.timer || this.stopped) return;
    this.lastActivity = Date.now();
    this.timer = setInterval(() => void this.tick(), this.o.limits.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  requestStarted(): void {
    this.inFlight.push(Date.now());
    this.lastActivity = Date.now();
  }

  requestEnded(): void {
    this.inFlight.shift();
    this.lastActivity = Date.now();
  }

  /** One sample of the tree's usage. */
  async sample(): Promise<WatchdogSample> {
    if (this.o.cgroup) return { ...(await this.o.cgroup.usage()), at: Date.now(), source: 'cgroup' };
    const { pids, tasks } = scanTree(this.o.pid);
    let memoryBytes = 0;
    let cpuMs = 0;
    try {
      const stats = await pidusage(pids);
      for (const s of Object.values(stats)) {
        memoryBytes += s.memory;
        cpuMs += s.ctime;
      }
    } catch {
      /* the tree is exiting */
    }
    return { memoryBytes, pids: tasks, cpuUsageUs: cpuMs * 1000, at: Date.now(), source: 'pidusage' };
  }

  /** Checks the limits once; exposed for tests. */
  async tick(): Promise<void> {
    if (this.sampling || this.breach || this.stopped) return;
    this.sampling = true;
    try {
      const s = await this.sample();
      this.last = s;
      this.samples++;
      const reason = this.check(s);
      if (reason) await this.trip(reason[0], reason[1]);
    } finally {
      this.sampling = false;
    }
  }

  private check(s: WatchdogSample): [BreachReason, string] | undefined {
    const l = this.o.limits;
    const now = s.at;
    if (s.oomKills !== undefined && s.oomKills > this.oomSeen) {
      this.o.logger?.warn({ runnerId: this.o.runnerId, oomKills: s.oomKills }, 'sandbox: the kernel OOM-killed a process of the runner tree');
      this.oomSeen = s.oomKills;
    }
    if (l.memoryMaxBytes !== undefined && s.memoryBytes !== undefined && s.memoryBytes > l.memoryMaxBytes) {
      return ['memory', `memory ${s.memoryBytes} B > ${l.memoryMaxBytes} B`];
    }
    if (l.pidsMax !== undefined && s.pids !== undefined && s.pids > l.pidsMax) {
      return ['pids', `tasks ${s.pids} > ${l.pidsMax}`];
    }
    if (l.cpuMaxPercent !== undefined && s.cpuUsageUs !== undefined) {
      const win = l.cpuWindowMs ?? 10000;
      this.cpuWindow.push({ at: now, us: s.cpuUsageUs });
      while (this.cpuWindow.length > 1 && now - this.cpuWindow[1].at >= win) this.cpuWindow.shift();
      const first = this.cpuWindow[0];
      const span = now - first.at;
      if (span >= win) {
        const pct = ((s.cpuUsageUs - first.us) / 1000 / span) * 100;
        if (pct > l.cpuMaxPercent) return ['cpu', `cpu ${pct.toFixed(0)}% over ${span} ms > ${l.cpuMaxPercent}%`];
      }
    }
    if (l.wallMaxMs !== undefined && this.inFlight.length > 0) {
      const age = now - this.inFlight[0];
      if (age > l.wallMaxMs) return ['wall-time', `request running ${age} ms > ${l.wallMaxMs} ms`];
    }
    if (l.idleMaxMs !== undefined && this.inFlight.length === 0) {
      const idle = now - this.lastActivity;
      if (idle > l.idleMaxMs) return ['idle', `idle ${idle} ms > ${l.idleMaxMs} ms`];
    }
    return undefined;
  }

  private async trip(reason: BreachReason, detail: string): Promise<void> {
    if (this.breach) return;
    this.breach = { reason, detail, at: Date.now() };
    this.stop();
    this.o.logger?.warn({ runnerId: this.o.runnerId, reason, detail }, 'sandbox watchdog: limit crossed, killing the runner tree');
    try {
      await this.o.kill();
    } catch (err) {
      this.o.logger?.error({ runnerId: this.o.runnerId, err }, 'sandbox watchdog: kill failed');
    }
    this.o.onBreach(reason, detail);
  }
}
