/**
 * scripts/bench/cpu-split.ts: CPU a real busy child process burns is attributed to the descendants of
 * the watched process, and the watched process's own busy loop to its event-loop thread. Both loops
 * spin until they have used a given amount of CPU (not of wall time), so a loaded machine cannot
 * starve the test.
 */
import { expect, test } from '@jest/globals';
import { spawn } from 'node:child_process';
import { cpuPerRequest, cpuSnapshot } from '../../../scripts/bench/cpu-split.js';

const spinCpu = (ms: number) => {
  const start = process.cpuUsage();
  for (;;) {
    const u = process.cpuUsage(start);
    if (u.user + u.system >= ms * 1000) return;
  }
};

test('a busy child counts as children; a busy event loop counts as event loop', async () => {
  const before = cpuSnapshot(process.pid);
  const child = spawn(
    process.execPath,
    ['-e', `const s = process.cpuUsage(); for (;;) { const u = process.cpuUsage(s); if (u.user + u.system >= 400000) break; } process.stdout.write('done'); setInterval(() => {}, 1000);`],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  spinCpu(300);
  await new Promise<void>((r) => child.stdout!.once('data', () => r()));
  const during = cpuSnapshot(process.pid); // while the child is alive: a reaped child leaves /proc
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  const d = cpuPerRequest(before, during, 1);
  expect(d.children).toBeGreaterThanOrEqual(300);
  expect(d.eventLoop).toBeGreaterThanOrEqual(150); // of 300 ms of process CPU: a first run compiles on other threads meanwhile
  expect(d.self).toBeGreaterThanOrEqual(d.eventLoop - 30); // process.cpuUsage() covers every thread of this process
  expect(d.total).toBeCloseTo(d.eventLoop + d.otherThreads + d.children + d.self, 6);
});
