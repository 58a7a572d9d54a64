/**
 * Spawns a LaunchPlan the way the runner manager must: explicit env (no inheritance), the plan's cwd,
 * its own process group, and the plan's extra file descriptors as fds 3, 4, …
 * Used by check-sandbox, the tests and measureSpawnToReady; the manager may use it too.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import type { LaunchPlan } from './launch-plan.js';

export function planStdio(plan: LaunchPlan, first: StdioOptions = ['pipe', 'pipe', 'pipe']): StdioOptions {
  const base = Array.isArray(first) ? [...first] : [first, first, first];
  return [...base, ...(plan.extraFds ?? [])] as StdioOptions;
}

export function spawnPlan(plan: LaunchPlan, opts: { stdio?: StdioOptions } = {}): ChildProcess {
  return spawn(plan.file, [...plan.args], {
    env: { ...plan.env },
    cwd: plan.cwd,
    detached: true,
    stdio: planStdio(plan, opts.stdio),
  });
}

/**
 * The same stdio for execa, whose types only accept fixed-length tuples (at run time extra fd numbers
 * work): `execa(plan.file, [...plan.args], { ..., stdio: execaStdio(plan) })`.
 */
export function execaStdio(plan: LaunchPlan): ['pipe', 'pipe', 'pipe'] {
  return ['pipe', 'pipe', 'pipe', ...(plan.extraFds ?? [])] as unknown as ['pipe', 'pipe', 'pipe'];
}
