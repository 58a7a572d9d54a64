/**
 * scripts/bench/cpu-split.ts: CPU a real busy child process burns is attributed to the descendants of
 * the watched process, and the watched process's own busy loop to its event-loop thread.
 */
import { expect, test } from '@jest/globals';
import { spawn } from 'node:child_process';
import { cpuPerRequest, cpuSnapshot } from '../../../scripts/bench/cpu-split.js';

test('a busy child counts as children; a busy event loop counts as event loop', async () => {
  const before = cpuSnapshot(process.pid);
  const child = spawn(process.execPath, ['-e', 'const end = Date.now() + 400; while (Date.now() < end);'], { stdio: 'ignore' });
  const spinEnd = Date.now() + 200;
  while (Date.now() < spinEnd); // our own event loop, busy
  // sample while the child is still alive (a reaped child's CPU is no longer under /proc/<pid>)
  await new Promise((r) => setTimeout(r, 150));
  const during = cpuSnapshot(process.pid);
  await new Promise((r) => child.once('exit', r));
  const d = cpuPerRequest(before, during, 1);
  expect(d.children).toBeGreaterThan(150);
  expect(d.eventLoop).toBeGreaterThan(150);
  expect(d.self).toBeGreaterThanOrEqual(d.eventLoop - 20); // process.cpuUsage() covers every thread of this process
  expect(d.total).toBeCloseTo(d.eventLoop + d.otherThreads + d.children + d.self, 6);
});
