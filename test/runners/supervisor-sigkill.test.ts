/**
 * SIGKILL of the supervisor. What the unsandboxed launcher guarantees:
 *   - the direct runner dies (setpriv --pdeathsig KILL);
 *   - its in-group and setsid grandchildren die too (the stdin-EOF sentinel kills the group and every
 *     process carrying the runner's marker);
 *   - without the sentinel, the grandchildren survive; the next supervisor's sweepStaleRunners() kills
 *     them from the pidfile (verified by starttime).
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { sweepStaleRunners } from '../../supervisor/runners/pidfile.js';
import { captureLogger, isLive, processesWithMarker, ROOT, waitFor } from './helpers.js';

interface Pids {
  supervisor: number;
  runner: number;
  inGroup: number;
  escaped: number;
}

const dirs: string[] = [];
const markers: string[] = [];

afterAll(async () => {
  for (const m of markers) for (const pid of processesWithMarker(m)) process.kill(pid, 'SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function startHarness(extra: string[]): Promise<{ pids: Pids; dataDir: string; marker: string }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'fedai-sigkill-'));
  const marker = randomUUID();
  dirs.push(dataDir);
  markers.push(marker);
  const child = spawn(process.execPath, ['--import', join(ROOT, 'scripts', 'register-ts.mjs'), join(ROOT, 'test', 'fixtures', 'supervisor-harness.ts'), dataDir, marker, ...extra], {
    stdio: ['ignore', 'pipe', 'inherit'],
    cwd: ROOT,
  });
  const line = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once('line', (l) => {
      rl.close();
      resolve(l);
    });
    child.once('exit', (code) => reject(new Error(`harness exited early (${code})`)));
  });
  const pids = JSON.parse(line) as Pids;
  expect(pids.supervisor).toBe(child.pid);
  child.stdout!.destroy();
  return { pids, dataDir, marker };
}

describe('SIGKILL of the supervisor', () => {
  it('leaves no runner, grandchild or setsid escapee behind', async () => {
    const { pids, marker } = await startHarness([]);
    for (const p of [pids.runner, pids.inGroup, pids.escaped]) expect(isLive(p)).toBe(true);
    process.kill(pids.supervisor, 'SIGKILL');
    await waitFor(() => [pids.supervisor, pids.runner, pids.inGroup, pids.escaped].every((p) => !isLive(p)), 10_000, 'whole tree gone');
    expect(processesWithMarker(marker)).toEqual([]);
  }, 40_000);

  it('without the sentinel only the direct runner dies (pdeathsig); the start-up sweep kills the rest', async () => {
    const { pids, dataDir, marker } = await startHarness(['--no-sentinel']);
    expect(readdirSync(join(dataDir, 'runners')).filter((f) => f.endsWith('.json'))).toHaveLength(1);
    process.kill(pids.supervisor, 'SIGKILL');
    await waitFor(() => !isLive(pids.runner) && !isLive(pids.supervisor), 10_000, 'runner killed by pdeathsig, supervisor gone');
    // documented limit of pdeathsig: it covers the direct child only
    expect(isLive(pids.inGroup)).toBe(true);
    expect(isLive(pids.escaped)).toBe(true);
    const log = captureLogger();
    const swept = await sweepStaleRunners(dataDir, log.logger);
    expect(swept).toHaveLength(1);
    await waitFor(() => !isLive(pids.inGroup) && !isLive(pids.escaped), 5000, 'grandchildren swept');
    expect(processesWithMarker(marker)).toEqual([]);
    expect(readdirSync(join(dataDir, 'runners')).filter((f) => f.endsWith('.json'))).toHaveLength(0);
  }, 40_000);
});
