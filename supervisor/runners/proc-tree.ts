/**
 * Linux /proc helpers for finding and killing a runner's process tree without a cgroup or pid namespace
 * (the unsandboxed launcher, and the start-up sweep of runners left by a crashed supervisor).
 *
 * A runner tree is identified by:
 *   - its root pid, verified by /proc/<pid>/stat starttime (so a reused pid is never killed);
 *   - its process group (the root was spawned detached, pgid = root pid). The group is trusted only
 *     while the root is alive with the recorded starttime, or while no process has pid == pgid (a pgid
 *     stays reserved as long as any member lives, so if the leader is gone and members remain, they are
 *     ours; if a new process had taken the number it would itself be the leader);
 *   - descendants by PPid chain from any process already selected (taken before the kill, while the
 *     ancestry is still intact);
 *   - a marker variable in /proc/<pid>/environ (FEDAI_RUNNER_ID=<instance id>), which catches a
 *     `setsid` escapee that was reparented to init before we looked.
 * A runner that scrubs its children's environment and detaches them before we look can still escape:
 * only a pid namespace or cgroup (the sandbox launcher) closes that gap.
 */
import { readFileSync, readdirSync } from 'node:fs';

export interface ProcStat {
  pid: number;
  state: string;
  ppid: number;
  pgid: number;
  starttime: number;
}

/** Parses /proc/<pid>/stat; undefined when the process is gone. */
export function readProcStat(pid: number): ProcStat | undefined {
  let raw: string;
  try {
    raw = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  const close = raw.lastIndexOf(')');
  if (close < 0) return undefined;
  const f = raw.slice(close + 2).split(' ');
  // after "pid (comm) ": state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
  // utime stime cutime cstime priority nice num_threads itrealvalue starttime
  return { pid, state: f[0], ppid: Number(f[1]), pgid: Number(f[2]), starttime: Number(f[19]) };
}

export function listPids(): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (/^\d+$/.test(name)) out.push(Number(name));
  }
  return out;
}

/** True when /proc/<pid>/environ holds exactly `entry` (e.g. "FEDAI_RUNNER_ID=mock-1"). */
export function environHas(pid: number, entry: string): boolean {
  try {
    const env = readFileSync(`/proc/${pid}/environ`, 'latin1');
    return env.split('\0').includes(entry);
  } catch {
    return false;
  }
}

/** True when the process exists, is not a zombie, and (if given) started at `starttime`. */
export function isAlive(pid: number, starttime?: number): boolean {
  const st = readProcStat(pid);
  if (!st || st.state === 'Z' || st.state === 'X') return false;
  return starttime === undefined || st.starttime === starttime;
}

export interface TreeIdentity {
  /** Root pid (the spawned child). */
  pid: number;
  /** Process group id; the root was spawned as a group leader, so normally === pid. */
  pgid: number;
  /** /proc/<pid>/stat starttime of the root, in clock ticks since boot. */
  starttime: number;
  /** "NAME=value" present in the environ of every process of the tree that did not scrub it. */
  marker?: string;
}

/** Every live (non-zombie) process that belongs to the tree right now. Never includes the caller. */
export function findTree(id: TreeIdentity): number[] {
  const stats = new Map<number, ProcStat>();
  for (const pid of listPids()) {
    const st = readProcStat(pid);
    if (st) stats.set(pid, st);
  }
  const selected = new Set<number>();
  const root = stats.get(id.pid);
  const rootValid = root !== undefined && root.starttime === id.starttime;
  if (rootValid) selected.add(id.pid);
  const leader = stats.get(id.pgid);
  const groupValid = leader === undefined ? true : leader.pid === id.pid ? rootValid : false;
  for (const st of stats.values()) {
    if (groupValid && st.pgid === id.pgid && st.starttime >= id.starttime) selected.add(st.pid);
    else if (id.marker !== undefined && environHas(st.pid, id.marker)) selected.add(st.pid);
  }
  // descendants by PPid chain, to a fixpoint
  let grew = true;
  while (grew) {
    grew = false;
    for (const st of stats.values()) {
      if (!selected.has(st.pid) && selected.has(st.ppid) && st.starttime >= id.starttime) {
        selected.add(st.pid);
        grew = true;
      }
    }
  }
  selected.delete(process.pid);
  return [...selected].filter((p) => {
    const st = stats.get(p);
    return st !== undefined && st.state !== 'Z' && st.state !== 'X';
  });
}

function tryKill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    /* gone already */
  }
}

/**
 * SIGKILLs the whole tree: the group (while it is provably ours) and every process findTree selects,
 * repeated until nothing is left (a process may fork while we look). Resolves when the tree is empty
 * or after `maxRounds` rounds.
 */
export async function killTree(id: TreeIdentity, maxRounds = 20): Promise<number[]> {
  const killed = new Set<number>();
  for (let round = 0; round < maxRounds; round++) {
    const tree = findTree(id);
    if (tree.length === 0) break;
    // freeze first so nothing forks between our kills, then kill
    for (const pid of tree) tryKill(pid, 'SIGSTOP');
    const again = new Set([...tree, ...findTree(id)]);
    const leader = readProcStat(id.pgid);
    if (leader === undefined || (leader.pid === id.pid && leader.starttime === id.starttime)) {
      tryKill(-id.pgid, 'SIGKILL');
    }
    for (const pid of again) {
      tryKill(pid, 'SIGKILL');
      killed.add(pid);
    }
    await new Promise((r) => setTimeout(r, 10 * (round + 1)));
  }
  return [...killed];
}
