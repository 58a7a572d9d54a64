import { afterAll, expect, test } from '@jest/globals';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, mkdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { cgroupName, detectCgroupDriver, V1HybridDriver, V2DelegatedDriver, type RunnerCgroup } from '../../supervisor/sandbox/cgroups.js';
import { describeSandbox } from './sandbox-env.js';

const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

/** Starts `sh -c` joined to the group before exec, the way the launcher does. */
function joined(cg: RunnerCgroup, script: string): ChildProcess {
  const pre = cg.joinFiles.map((f) => `echo $$ > '${f}'`).join(' && ');
  const c = spawn('/bin/sh', ['-c', `${pre} && exec /bin/sh -c '${script}'`], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(c);
  return c;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(fn: () => Promise<boolean> | boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return true;
    await sleep(25);
  }
  return false;
}

describeSandbox('cgroup drivers', () => {
  const driver = detectCgroupDriver();

  test('names carry the owner pid and are safe path components', () => {
    expect(cgroupName('mock-0-3')).toBe(`mock-0-3.p${process.pid}`);
    expect(cgroupName('../../etc')).toBe(`______etc.p${process.pid}`);
    expect(cgroupName('a b/c', 42)).toBe('a_b_c.p42');
  });

  test('detected driver on this host is writable and not "none"', () => {
    expect(['v1-hybrid', 'v2-delegated']).toContain(driver.kind);
  });

  test('create → limits written → join before exec → usage → kill (incl. a setsid escapee) → remove', async () => {
    const cg = await driver.create('cgtest-a', { memoryMaxBytes: 64 * 1024 * 1024, pidsMax: 16, cpuMaxPercent: 50 });
    try {
      expect(cg.enforced).toEqual({ memoryMaxBytes: 64 * 1024 * 1024, pidsMax: 16, cpuMaxPercent: 50 });
      if (driver.kind === 'v1-hybrid') {
        expect(readFileSync(`/sys/fs/cgroup/memory/fedai/${cg.name}/memory.limit_in_bytes`, 'utf8').trim()).toBe(String(64 * 1024 * 1024));
        expect(readFileSync(`/sys/fs/cgroup/pids/fedai/${cg.name}/pids.max`, 'utf8').trim()).toBe('16');
        expect(readFileSync(`/sys/fs/cgroup/cpu/fedai/${cg.name}/cpu.cfs_quota_us`, 'utf8').trim()).toBe('50000');
        expect(cg.joinFiles).toContain(`/sys/fs/cgroup/unified/fedai/${cg.name}/cgroup.procs`);
      }
      const c = joined(cg, 'sleep 60 & setsid sleep 61 & cat /proc/self/cgroup; while :; do :; done');
      let out = '';
      c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      expect(await until(() => out.includes(cg.name))).toBe(true);
      expect(await until(async () => (await cg.pids()).length >= 3)).toBe(true);
      await sleep(400);
      const u = await cg.usage();
      expect(u.pids).toBeGreaterThanOrEqual(3);
      expect(u.memoryBytes).toBeGreaterThan(0);
      expect(u.cpuUsageUs).toBeGreaterThan(50_000);
      const pids = await cg.pids();
      await cg.kill();
      expect(await cg.pids()).toEqual([]);
      for (const p of pids) expect(existsSync(`/proc/${p}/cmdline`) && readFileSync(`/proc/${p}/stat`, 'utf8').split(' ')[2] !== 'Z').toBe(false);
    } finally {
      await cg.remove();
    }
    if (driver.kind === 'v1-hybrid') {
      for (const ctl of ['memory', 'pids', 'cpu', 'unified']) expect(existsSync(`/sys/fs/cgroup/${ctl}/fedai/${cg.name}`)).toBe(false);
    }
  });

  test('the pids limit refuses forks and counts them', async () => {
    const cg = await driver.create('cgtest-pids', { pidsMax: 8 });
    try {
      const c = joined(cg, 'i=0; while [ $i -lt 50 ]; do sleep 30 </dev/null >/dev/null 2>&1 & i=$((i+1)); echo x; done');
      let n = 0;
      c.stdout!.on('data', (d: Buffer) => (n += d.toString().split('\n').filter(Boolean).length));
      await new Promise((r) => c.on('exit', r));
      expect(n).toBeLessThan(8);
      expect((await cg.usage()).pidsLimitHits).toBeGreaterThan(0);
    } finally {
      await cg.remove();
    }
  });

  test('gc removes groups whose owner is gone, keeps those of live owners and live names', async () => {
    if (driver.kind !== 'v1-hybrid') return;
    const dead = spawnSync('/bin/true').pid!; // a pid that has exited
    const stale = join('/sys/fs/cgroup/pids/fedai', `gc-stale.p${dead}`);
    const other = join('/sys/fs/cgroup/pids/fedai', 'gc-other.p1'); // pid 1 is always alive
    const mine = await driver.create('gc-mine', {});
    mkdirSync(stale, { recursive: true });
    mkdirSync(other, { recursive: true });
    try {
      const n = await driver.gc(new Set([mine.name]));
      expect(n).toBeGreaterThanOrEqual(1);
      expect(existsSync(stale)).toBe(false);
      expect(existsSync(other)).toBe(true);
      expect(existsSync(`/sys/fs/cgroup/pids/fedai/${mine.name}`)).toBe(true);
      // Without the live set, our own group is stale too.
      await driver.gc();
      expect(existsSync(`/sys/fs/cgroup/pids/fedai/${mine.name}`)).toBe(false);
    } finally {
      if (existsSync(other)) rmdirSync(other);
      if (existsSync(stale)) rmdirSync(stale);
      await mine.remove();
    }
  });

  test('v1 driver: cpu quota throttles a spinning tree', async () => {
    if (!(driver instanceof V1HybridDriver)) return;
    // 5 %: low enough that a spinner hits the quota even when a loaded machine gives it only a small share
    const cg = await driver.create('cgtest-cpu', { cpuMaxPercent: 5 });
    try {
      const c = joined(cg, 'while :; do :; done');
      await sleep(1500);
      const u = await cg.usage();
      c.kill('SIGKILL');
      // 5 % of 1.5 s is 75 ms; generous slack for scheduling.
      expect(u.cpuUsageUs!).toBeLessThan(300_000);
      const stat = readFileSync(`/sys/fs/cgroup/cpu/fedai/${cg.name}/cpu.stat`, 'utf8');
      expect(Number(/nr_throttled (\d+)/.exec(stat)![1])).toBeGreaterThan(0);
    } finally {
      await cg.remove();
    }
  });

  test('v2 delegated driver mechanics on the cgroup2 mount (join, cpu.stat, cgroup.kill, gc)', async () => {
    const uni = '/sys/fs/cgroup/unified';
    const base = driver.kind === 'v1-hybrid' && existsSync(join(uni, 'cgroup.procs')) ? join(uni, `fedai-v2test-${process.pid}`) : undefined;
    if (!base) return;
    mkdirSync(base, { recursive: true });
    const v2 = new V2DelegatedDriver(base, { moveSelf: false });
    const cg = await v2.create('v2-a', { memoryMaxBytes: 64 << 20, pidsMax: 16 });
    try {
      expect(cg.joinFiles).toEqual([join(base, 'fedai', cg.name, 'cgroup.procs')]);
      expect(cg.canKill).toBe(true);
      const c = joined(cg, 'setsid sleep 60 & while :; do :; done');
      expect(await until(async () => (await cg.pids()).length >= 2)).toBe(true);
      await sleep(300);
      expect((await cg.usage()).cpuUsageUs).toBeGreaterThan(0);
      await cg.kill();
      expect(await cg.pids()).toEqual([]);
      await new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(null) : c.on("exit", r)));
    } finally {
      await cg.remove();
      await v2.gc();
      for (const d of [join(base, 'fedai'), base]) if (existsSync(d)) rmdirSync(d);
    }
  });
});
