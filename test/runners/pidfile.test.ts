/** sweepStaleRunners: kills only what a dead supervisor left, and never a reused pid. */
import { afterAll, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pidfilePath, selfStarttime, sweepStaleRunners, writePidfile, type RunnerPidfile } from '../../supervisor/runners/pidfile.js';
import { readProcStat } from '../../supervisor/runners/proc-tree.js';
import { captureLogger, isLive, processesWithMarker, waitFor } from './helpers.js';

const children: ChildProcess[] = [];
const dirs: string[] = [];
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function sleeper(marker: string): ChildProcess {
  const c = spawn('/bin/sleep', ['300'], { detached: true, stdio: 'ignore', env: { FEDAI_TEST_MARKER: marker, FEDAI_RUNNER_ID: marker } });
  children.push(c);
  return c;
}

async function deadSupervisor(): Promise<{ pid: number; starttime: number }> {
  const c = spawn('/bin/true');
  const pid = c.pid!;
  const starttime = readProcStat(pid)?.starttime ?? 1;
  await new Promise((r) => c.once('exit', r));
  return { pid, starttime };
}

function record(id: string, runner: ChildProcess, sup: { pid: number; starttime: number }, starttime?: number): RunnerPidfile {
  return {
    id,
    name: 'fixture',
    pid: runner.pid!,
    pgid: runner.pid!,
    starttime: starttime ?? readProcStat(runner.pid!)!.starttime,
    marker: `FEDAI_RUNNER_ID=${id}`,
    supervisorPid: sup.pid,
    supervisorStarttime: sup.starttime,
    startedAtMs: Date.now(),
  };
}

describe('sweepStaleRunners', () => {
  it('kills runners of a dead supervisor, leaves a live supervisor’s and a reused pid alone', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'fedai-sweep-'));
    dirs.push(dataDir);
    const dead = await deadSupervisor();
    const [m1, m2, m3] = [randomUUID(), randomUUID(), randomUUID()];
    const stale = sleeper(m1);
    const ours = sleeper(m2);
    const reused = sleeper(m3);
    await waitFor(() => [stale, ours, reused].every((c) => isLive(c.pid!)), 5000, 'sleepers');
    writePidfile(dataDir, record(m1, stale, dead));
    writePidfile(dataDir, record(m2, ours, { pid: process.pid, starttime: selfStarttime() }));
    // same pid, but the recorded starttime is not this process's: a reused pid. Different marker too.
    writePidfile(dataDir, { ...record(`other-${m3}`, reused, dead, 12345) });
    const log = captureLogger();
    const swept = await sweepStaleRunners(dataDir, log.logger);
    expect(swept.sort()).toEqual([m1, `other-${m3}`].sort());
    await waitFor(() => !isLive(stale.pid!), 5000, 'stale runner killed');
    expect(processesWithMarker(m1)).toEqual([]);
    expect(isLive(ours.pid!)).toBe(true);
    expect(isLive(reused.pid!)).toBe(true);
    expect(existsSync(pidfilePath(dataDir, m1))).toBe(false);
    expect(existsSync(pidfilePath(dataDir, m2))).toBe(true);
    expect(existsSync(pidfilePath(dataDir, `other-${m3}`))).toBe(false);
  });

  it('an unreadable pidfile is removed; a missing directory is fine', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'fedai-sweep-'));
    dirs.push(dataDir);
    expect(await sweepStaleRunners(join(dataDir, 'nope'), captureLogger().logger)).toEqual([]);
    const { writeFileSync, mkdirSync } = await import('node:fs');
    mkdirSync(join(dataDir, 'runners'));
    writeFileSync(join(dataDir, 'runners', 'junk.json'), '{not json');
    await sweepStaleRunners(dataDir, captureLogger().logger);
    expect(existsSync(join(dataDir, 'runners', 'junk.json'))).toBe(false);
  });
});
