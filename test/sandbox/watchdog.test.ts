import { afterEach, describe, expect, test } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { Watchdog, processTree } from '../../supervisor/sandbox/watchdog.js';
import { detectCgroupDriver, type RunnerCgroup } from '../../supervisor/sandbox/cgroups.js';
import type { BreachReason } from '../../supervisor/sandbox/launch-plan.js';
import type { WatchdogLimits } from '../../supervisor/sandbox/profiles.js';
import { describeSandbox } from './sandbox-env.js';

const live: ChildProcess[] = [];
const groups: RunnerCgroup[] = [];
const dogs: Watchdog[] = [];
afterEach(async () => {
  for (const d of dogs.splice(0)) d.stop();
  for (const c of live.splice(0)) {
    try {
      process.kill(-c.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  for (const g of groups.splice(0)) await g.remove();
});

function start(script: string, joinFiles: readonly string[] = []): ChildProcess {
  const pre = joinFiles.map((f) => `echo $$ > '${f}' && `).join('');
  const c = spawn('/bin/sh', ['-c', `${pre}exec /bin/sh -c '${script}'`], { stdio: 'ignore', detached: true });
  live.push(c);
  return c;
}

function exited(c: ChildProcess): Promise<string | number | null> {
  return new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(c.signalCode ?? c.exitCode) : c.on('exit', (code, sig) => r(sig ?? code))));
}

function watch(c: ChildProcess, limits: WatchdogLimits, cgroup?: RunnerCgroup) {
  const breaches: Array<[BreachReason, string]> = [];
  const d = new Watchdog({
    limits,
    pid: c.pid!,
    ...(cgroup ? { cgroup } : {}),
    kill: async () => {
      if (cgroup) await cgroup.kill();
      else process.kill(-c.pid!, 'SIGKILL');
    },
    onBreach: (r, detail) => breaches.push([r, detail]),
  });
  dogs.push(d);
  d.start();
  return { d, breaches };
}

/** Watches `c` under `limits` and expects exactly one breach, for `reason`, and the tree SIGKILLed. */
async function expectKilledFor(c: ChildProcess, limits: WatchdogLimits, reason: BreachReason): Promise<Watchdog> {
  const { d, breaches } = watch(c, limits);
  expect(await exited(c)).toBe('SIGKILL');
  await new Promise((r) => setTimeout(r, 50));
  expect(breaches[0][0]).toBe(reason);
  expect(breaches.map((b) => b[0])).toEqual([reason]);
  expect(d.breach?.reason).toBe(reason);
  return d;
}

describe('watchdog (pidusage fallback over the process tree)', () => {
  test('processTree finds grandchildren', async () => {
    const c = start('sleep 30 & (sleep 31 &) ; sleep 32');
    await new Promise((r) => setTimeout(r, 300));
    expect(processTree(c.pid!).length).toBeGreaterThanOrEqual(3);
  });

  test('wall time: a request that runs too long kills the tree, once, with reason wall-time', async () => {
    const c = start('sleep 30');
    const { d, breaches } = watch(c, { intervalMs: 50, wallMaxMs: 400 });
    d.requestStarted();
    expect(await exited(c)).toBe('SIGKILL');
    await new Promise((r) => setTimeout(r, 100));
    expect(breaches.map((b) => b[0])).toEqual(['wall-time']);
    expect(d.breach?.reason).toBe('wall-time');
  });

  test('wall time: requests that end in time do not trip', async () => {
    const c = start('sleep 30');
    const { d, breaches } = watch(c, { intervalMs: 50, wallMaxMs: 300 });
    for (let i = 0; i < 4; i++) {
      d.requestStarted();
      await new Promise((r) => setTimeout(r, 150));
      d.requestEnded();
    }
    expect(breaches).toEqual([]);
    expect(c.exitCode).toBeNull();
  });

  test('idle: no request for idleMaxMs kills the tree', async () => {
    await expectKilledFor(start('sleep 30'), { intervalMs: 50, idleMaxMs: 300 }, 'idle');
  });

  test('memory: RSS summed over the tree above the limit kills it', async () => {
    const c = start(`/usr/bin/node -e "const a=[];for(let i=0;i<12;i++)a.push(Buffer.alloc(16<<20,1));setInterval(()=>{},1000)"`);
    const d = await expectKilledFor(c, { intervalMs: 100, memoryMaxBytes: 120 << 20 }, 'memory');
    expect(d.last?.source).toBe('pidusage');
  });

  test('cpu: sustained use above cpuMaxPercent over the window kills the tree', async () => {
    // 5 %: a spinner gets far more than that even on a heavily loaded 2-core machine
    await expectKilledFor(start('while :; do :; done'), { intervalMs: 100, cpuMaxPercent: 5, cpuWindowMs: 600 }, 'cpu');
  });

  test('pids: more tasks than pidsMax kills the tree', async () => {
    await expectKilledFor(start('for i in 1 2 3 4 5 6 7 8; do sleep 30 & done; wait'), { intervalMs: 100, pidsMax: 4 }, 'pids');
  });
});

describeSandbox('watchdog (cgroup accounting)', () => {
  test('reads the cgroup, kills via cgroup.kill including a setsid escapee', async () => {
    const driver = detectCgroupDriver();
    const cg = await driver.create(`wd-${process.pid}`, {});
    groups.push(cg);
    const c = start('setsid sleep 60 & sleep 60', cg.joinFiles);
    await new Promise((r) => setTimeout(r, 300));
    expect((await cg.pids()).length).toBeGreaterThanOrEqual(3);
    const { d, breaches } = watch(c, { intervalMs: 50, wallMaxMs: 300 }, cg);
    d.requestStarted();
    expect(await exited(c)).toBe('SIGKILL');
    await new Promise((r) => setTimeout(r, 100));
    expect(breaches[0][0]).toBe('wall-time');
    expect(d.last?.source).toBe('cgroup');
    expect(await cg.pids()).toEqual([]);
  });
});
