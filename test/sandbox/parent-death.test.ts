/**
 * SIGKILL the supervisor: no runner process may survive it (bwrap --die-with-parent takes the pid
 * namespace down, setsid escapees included), and the next supervisor's init() garbage-collects the
 * cgroups the dead one left behind.
 */
import { afterAll, expect, test } from '@jest/globals';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot, loadProfile } from '../../supervisor/sandbox/profiles.js';
import { SandboxLauncher } from '../../supervisor/sandbox/sandbox-launcher.js';
import { captureLogger, describeSandbox } from './sandbox-env.js';

const scratch = mkdtempSync(join(tmpdir(), 'fedai-pdeath-'));
chmodSync(scratch, 0o755);
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function alive(pid: number): boolean {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return st.slice(st.lastIndexOf(')') + 2, st.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

describeSandbox('parent death', () => {
  test('SIGKILL of the supervisor leaves no runner process; the next init() removes its cgroups', async () => {
    const work = join(scratch, 'work');
    const data = join(scratch, 'data');
    mkdirSync(work);
    mkdirSync(data, { mode: 0o700 });
    const root = packageRoot();
    const sup = spawn(process.execPath, ['--import', join(root, 'scripts', 'register-ts.mjs'), join(root, 'test', 'fixtures', 'hostile', 'sandboxed-supervisor.ts'), work, data], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    sup.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const info = await new Promise<{ cgroup: string; pids: number[] }>((resolve, reject) => {
      let buf = '';
      sup.stdout!.on('data', (d: Buffer) => {
        buf += d.toString();
        const i = buf.indexOf('\n');
        if (i >= 0) resolve(JSON.parse(buf.slice(0, i)) as { cgroup: string; pids: number[] });
      });
      sup.on('exit', () => reject(new Error(`supervisor stub exited: ${err}`)));
    });
    expect(info.pids.length).toBeGreaterThanOrEqual(4);
    expect(info.pids.every(alive)).toBe(true);
    sup.kill('SIGKILL');
    const end = Date.now() + 5000;
    while (info.pids.some(alive) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    expect(info.pids.filter(alive)).toEqual([]);
    // the dead supervisor's cgroups and state dir are still there…
    expect(existsSync(`/sys/fs/cgroup/pids/fedai/${info.cgroup}`)).toBe(true);
    expect(readdirSync(tmpdir()).filter((e) => e.startsWith(`fedai-sandbox-${sup.pid}-`)).length).toBe(1);
    // …until the next supervisor starts
    const next = new SandboxLauncher({ logger: captureLogger('error').logger, profile: loadProfile('strict'), dataDir: data });
    await next.init();
    await next.close();
    for (const ctl of ['memory', 'pids', 'cpu', 'unified']) expect(existsSync(`/sys/fs/cgroup/${ctl}/fedai/${info.cgroup}`)).toBe(false);
    expect(readdirSync(tmpdir()).filter((e) => e.startsWith(`fedai-sandbox-${sup.pid}-`))).toEqual([]);
    const leases = join(tmpdir(), 'fedai-uid-locks');
    expect(readdirSync(leases).filter((f) => readFileSync(join(leases, f), 'utf8').trim() === String(sup.pid))).toEqual([]);
  }, 60_000);
});
