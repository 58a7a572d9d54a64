/**
 * Where the CPU of a benchmark run went, from /proc (Linux): the node's event-loop thread, its other
 * threads (V8 GC helpers, the libuv pool, worker threads), its descendant processes (the runner and
 * its sandbox), and this load-generating process. Clock ticks are converted with CLK_TCK.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

const TICK_MS = (() => {
  try {
    const hz = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return hz > 0 ? 1000 / hz : 10;
  } catch {
    return 10;
  }
})();

/** utime + stime in ms from a /proc stat line (fields 14 and 15; the command name may hold spaces). */
function statMs(path: string): number {
  try {
    const f = readFileSync(path, 'utf8');
    const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) * TICK_MS;
  } catch {
    return 0;
  }
}

function parentOf(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(f.slice(f.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return -1;
  }
}

function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    const ppid = parentOf(pid);
    if (ppid > 0) children.set(ppid, [...(children.get(ppid) ?? []), pid]);
  }
  const out: number[] = [];
  const stack = [...(children.get(root) ?? [])];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    out.push(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return out;
}

export interface CpuSnapshot {
  eventLoop: number;
  otherThreads: number;
  children: number;
  self: number;
}

export function cpuSnapshot(nodePid: number): CpuSnapshot {
  const total = statMs(`/proc/${nodePid}/stat`);
  const eventLoop = statMs(`/proc/${nodePid}/task/${nodePid}/stat`);
  const self = process.cpuUsage();
  return {
    eventLoop,
    otherThreads: Math.max(0, total - eventLoop),
    children: descendants(nodePid).reduce((sum, pid) => sum + statMs(`/proc/${pid}/stat`), 0),
    self: (self.user + self.system) / 1000,
  };
}

/** CPU ms per request between two snapshots (descendants that exited in between are not counted). */
export function cpuPerRequest(before: CpuSnapshot, after: CpuSnapshot, requests: number): CpuSnapshot & { total: number } {
  const per = (k: keyof CpuSnapshot) => (requests > 0 ? (after[k] - before[k]) / requests : NaN);
  const out = { eventLoop: per('eventLoop'), otherThreads: per('otherThreads'), children: per('children'), self: per('self') };
  return { ...out, total: out.eventLoop + out.otherThreads + out.children + out.self };
}
