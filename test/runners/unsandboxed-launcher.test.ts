/**
 * The plain launcher: argv through setpriv --pdeathsig, env exactly as given, cwd = workDir, and
 * killTree() reaching the process group, descendants and marker-carrying setsid escapees.
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FedaiError } from '../../supervisor/errors.js';
import type { RunnerSpec } from '../../supervisor/sandbox/launch-plan.js';
import { UnsandboxedLauncher } from '../../supervisor/runners/unsandboxed-launcher.js';
import { FIXTURES, isLive, processesWithMarker, sentinelsOfThisProcess, waitFor } from './helpers.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function spec(marker: string, command: string[], extraEnv: Record<string, string> = {}): RunnerSpec {
  const workDir = mkdtempSync(join(tmpdir(), 'fedai-launch-'));
  dirs.push(workDir);
  return {
    id: `fixture-${process.pid}-${marker.slice(0, 8)}`,
    name: 'fixture',
    command,
    env: { PATH: '/usr/bin:/bin', FEDAI_RUNNER_ID: `fixture-${process.pid}-${marker.slice(0, 8)}`, FEDAI_TEST_MARKER: marker, ...extraEnv },
    codeDirs: [],
    workDir,
    needsEgress: false,
  };
}

describe('UnsandboxedLauncher', () => {
  it('builds a setpriv --pdeathsig KILL command line with the exact env and cwd', async () => {
    const s = spec(randomUUID(), ['/bin/sleep', '1']);
    const plan = await new UnsandboxedLauncher().prepare(s);
    expect(plan.file).toBe('/usr/bin/setpriv');
    expect(plan.args).toEqual(['--pdeathsig', 'KILL', '--', '/bin/sleep', '1']);
    expect(plan.env).toEqual(s.env);
    expect(plan.cwd).toBe(s.workDir);
    expect(plan.layers.find((l) => l.layer === 'pdeathsig')?.active).toBe(true);
    expect(plan.layers.find((l) => l.layer === 'cgroup')?.active).toBe(false);
    const plain = await new UnsandboxedLauncher({ setprivPath: null }).prepare(s);
    expect(plain.file).toBe('/bin/sleep');
    expect(plain.args).toEqual(['1']);
    expect(plain.layers.find((l) => l.layer === 'pdeathsig')?.active).toBe(false);
    await plan.dispose();
    await plain.dispose();
  });

  it('refuses a relative or missing program', async () => {
    const l = new UnsandboxedLauncher();
    await expect(l.prepare(spec(randomUUID(), ['sleep', '1']))).rejects.toBeInstanceOf(FedaiError);
    await expect(l.prepare(spec(randomUUID(), ['/nonexistent/x']))).rejects.toMatchObject({ code: 'runner-unavailable' });
  });

  it('killTree kills the runner, its in-group child and its setsid escapee; dispose stops the sentinel', async () => {
    const marker = randomUUID();
    const pidsFile = join(tmpdir(), `fedai-pids-${marker}.json`);
    const s = spec(marker, [process.execPath, join(FIXTURES, 'setsid-grandchild.mjs')], { FIXTURE_PIDS_FILE: pidsFile });
    const plan = await new UnsandboxedLauncher().prepare(s);
    const child = spawn(plan.file, [...plan.args], { env: { ...plan.env }, cwd: plan.cwd, detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
    plan.attach(child.pid!, () => undefined);
    try {
      await waitFor(() => {
        try {
          readFileSync(pidsFile, 'utf8');
          return true;
        } catch {
          return false;
        }
      }, 15_000, 'fixture pids');
      const pids = JSON.parse(readFileSync(pidsFile, 'utf8')) as { runner: number; inGroup: number; escaped: number };
      expect(pids.runner).toBe(child.pid);
      await waitFor(() => isLive(pids.inGroup) && isLive(pids.escaped), 5000, 'grandchildren up');
      // cwd = workDir, env = spec.env exactly
      expect(readlinkSync(`/proc/${child.pid}/cwd`)).toBe(s.workDir);
      const environ = readFileSync(`/proc/${child.pid}/environ`, 'latin1').split('\0').filter(Boolean).sort();
      expect(environ).toEqual(Object.entries(s.env).map(([k, v]) => `${k}=${v}`).sort());
      expect(sentinelsOfThisProcess().length).toBeGreaterThanOrEqual(1);
      await plan.killTree();
      await waitFor(() => processesWithMarker(marker).length === 0, 5000, 'tree killed');
      expect(isLive(pids.escaped)).toBe(false);
      await plan.dispose();
      await plan.dispose(); // idempotent
      await waitFor(() => sentinelsOfThisProcess().length === 0, 5000, 'sentinel gone');
    } finally {
      child.stdin?.destroy();
      rmSync(pidsFile, { force: true });
      for (const p of processesWithMarker(marker)) process.kill(p, 'SIGKILL');
    }
  });
});
