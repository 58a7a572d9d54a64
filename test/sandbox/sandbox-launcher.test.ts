import { afterAll, expect, test } from '@jest/globals';
import { spawn } from 'node:child_process';
import { execa } from 'execa';
import net from 'node:net';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { FedaiError } from '../../supervisor/errors.js';
import { loadProfile, packageRoot, type LayerName, type SandboxProfile } from '../../supervisor/sandbox/profiles.js';
import { SandboxLauncher, type SandboxPlan } from '../../supervisor/sandbox/sandbox-launcher.js';
import { execaStdio, spawnPlan } from '../../supervisor/sandbox/spawn-plan.js';
import { measureSpawnToReady } from '../../supervisor/sandbox/spawn-to-ready.js';
import type { RunnerSpec } from '../../supervisor/sandbox/launch-plan.js';
import { runnerHostCommand, pythonRunnerCommand, PYTHON_RUNNER_PATH } from '../../supervisor/runners/runner-command.js';
import { captureLogger, describeSandbox } from './sandbox-env.js';

const scratch = mkdtempSync(join(tmpdir(), 'fedai-launcher-'));
chmodSync(scratch, 0o755);
const dataDir = join(scratch, 'data');
mkdirSync(dataDir, { mode: 0o700 });
const launchers: SandboxLauncher[] = [];
afterAll(async () => {
  for (const l of launchers) await l.close();
  rmSync(scratch, { recursive: true, force: true });
});

let seq = 0;
function workDir(): string {
  const d = join(scratch, `work-${++seq}`);
  mkdirSync(d, { mode: 0o755 });
  return d;
}

function launcher(profile: SandboxProfile | string, opts: { skip?: LayerName[]; allowedRunners?: string[]; logger?: ReturnType<typeof captureLogger>['logger']; endpoints?: string[] } = {}): SandboxLauncher {
  const l = new SandboxLauncher({
    logger: opts.logger ?? captureLogger('warn').logger,
    profile: typeof profile === 'string' ? loadProfile(profile) : profile,
    dataDir,
    ...(opts.skip ? { skipLayers: opts.skip } : {}),
    ...(opts.allowedRunners ? { allowedRunners: opts.allowedRunners } : {}),
    ...(opts.endpoints ? { allowedEndpoints: opts.endpoints } : {}),
  });
  launchers.push(l);
  return l;
}

function spec(command: string[], extra: Partial<RunnerSpec> = {}): RunnerSpec {
  return { id: `lt-${process.pid}-${++seq}`, name: 'exec', command, env: { FEDAI_ADAPTER: 'x' }, codeDirs: [], workDir: workDir(), needsEgress: false, ...extra };
}

/** prepare → spawn (with the plan's extra fds) → collect → dispose. */
async function run(l: SandboxLauncher, s: RunnerSpec, opts: { passFds?: boolean } = {}): Promise<{ out: string; err: string; code: number | null; plan: SandboxPlan }> {
  const plan = (await l.prepare(s)) as SandboxPlan;
  try {
    const child = opts.passFds === false
      ? spawn(plan.file, [...plan.args], { env: { ...plan.env }, cwd: plan.cwd, stdio: ['ignore', 'pipe', 'pipe'] })
      : spawnPlan(plan, { stdio: ['ignore', 'pipe', 'pipe'] });
    plan.attach(child.pid!, () => undefined);
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((r) => child.on('close', (c) => r(c)));
    return { out, err, code, plan };
  } finally {
    await plan.dispose();
  }
}

const sh = (script: string) => ['/bin/sh', '-c', script];
const STATUS = 'grep -E "^(Uid|Gid|Groups|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):" /proc/self/status';
const field = (out: string, name: string) => new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(out)?.[1].trim();
const ALL: LayerName[] = ['bwrap', 'userns', 'seccomp', 'setpriv', 'prlimit', 'cgroup'];
const only = (...keep: LayerName[]) => ALL.filter((l) => !keep.includes(l));
const devProfile = () => loadProfile('dev');

describeSandbox('SandboxLauncher', () => {
  test('require: a missing required layer fails closed, naming the layer and how to install it', async () => {
    const l = launcher('strict', { skip: ['bwrap'] });
    const s = spec(['/bin/true']);
    const err = await l.prepare(s).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(FedaiError);
    expect((err as FedaiError).code).toBe('sandbox-layer-missing');
    expect((err as Error).message).toMatch(/bwrap: apt-get install bubblewrap/);
    // nothing was allocated for it
    expect(existsSync(`/sys/fs/cgroup/pids/fedai/${s.id}.p${process.pid}`)).toBe(false);
    expect(statSync(s.workDir).uid).toBe(0);
  });

  test('NODE_SANDBOX_ALLOWED_RUNNERS: other runners are refused', async () => {
    const l = launcher('dev', { allowedRunners: ['mock', 'llama_cpp'] });
    const err = await l.prepare(spec(['/bin/true'], { name: 'http' })).then(() => undefined, (e: unknown) => e);
    expect((err as FedaiError).code).toBe('sandbox-runner-not-allowed');
    expect((err as Error).message).toMatch(/"http"/);
    const ok = await run(l, spec(sh('echo fine'), { name: 'mock' }));
    expect(ok.out.trim()).toBe('fine');
  });

  test('dev on a host missing layers: one warning per missing layer at init, runner still starts', async () => {
    const cap = captureLogger('warn');
    const l = launcher('dev', { skip: ['bwrap', 'seccomp'], logger: cap.logger });
    await l.init();
    await l.init();
    const warned = cap.lines().filter((x) => typeof x.layer === 'string').map((x) => x.layer);
    expect(warned.sort()).toEqual(['bwrap', 'seccomp']);
    expect(JSON.stringify(cap.lines())).toMatch(/apt-get install bubblewrap/);
    const r = await run(l, spec(sh('id -u')));
    expect(Number(r.out.trim())).toBeGreaterThanOrEqual(61000);
  });

  // ---- each layer alone

  test('layer alone: cgroup join happens before exec', async () => {
    const l = launcher(devProfile(), { skip: only('cgroup') });
    const r = await run(l, spec(sh('cat /proc/self/cgroup; id -u')));
    expect(r.plan.layers.filter((x) => x.active).map((x) => x.layer).sort()).toEqual(['cgroup-v1', 'watchdog'].sort());
    expect(r.out).toMatch(new RegExp(`pids:/fedai/lt-${process.pid}-\\d+\\.p${process.pid}`));
    expect(r.out).toMatch(new RegExp(`memory:/fedai/lt-`));
    expect(r.out).toMatch(new RegExp(`0::/fedai/lt-`));
  });

  test('layer alone: prlimit sets the profile limits (soft = hard)', async () => {
    const l = launcher(devProfile(), { skip: only('prlimit') });
    const r = await run(l, spec(sh('cat /proc/self/limits')));
    expect(r.out).toMatch(/Max open files\s+8192\s+8192/);
    expect(r.out).toMatch(/Max file size\s+4294967296\s+4294967296/);
    expect(r.out).toMatch(/Max core file size\s+0\s+0/);
    expect(r.out).toMatch(/Max address space\s+unlimited/);
  });

  test('layer alone: setpriv drops to a pool uid with no capabilities, no groups, no_new_privs', async () => {
    const l = launcher(devProfile(), { skip: only('setpriv') });
    const s = spec(sh(`${STATUS}; touch ./mine && echo wrote`));
    const r = await run(l, s);
    const uid = Number(field(r.out, 'Uid')!.split(/\s+/)[0]);
    expect(uid).toBeGreaterThanOrEqual(61000);
    expect(uid).toBeLessThanOrEqual(61999);
    expect(field(r.out, 'Uid')!.split(/\s+/)).toEqual([uid, uid, uid, uid].map(String));
    expect(field(r.out, 'Groups')).toBe('');
    expect(field(r.out, 'CapEff')).toBe('0000000000000000');
    expect(field(r.out, 'CapBnd')).toBe('0000000000000000');
    expect(field(r.out, 'CapAmb')).toBe('0000000000000000');
    expect(field(r.out, 'NoNewPrivs')).toBe('1');
    // the work dir was chowned to that uid (0700) and is writable by it
    expect(r.out).toMatch(/wrote/);
    expect(statSync(s.workDir).uid).toBe(uid);
    expect(statSync(s.workDir).mode & 0o777).toBe(0o700);
  });

  test('layer alone: bwrap gives namespaces, a read-only fs view, a private /tmp and only allowlisted env', async () => {
    const l = launcher(devProfile(), { skip: only('bwrap', 'userns') });
    const r = await run(l, spec(sh('hostname; ls /proc | grep -cE "^[0-9]+$"; env | sort; touch /usr/x 2>&1; touch /x 2>&1; ls /tmp | wc -l; pwd; ls / | tr "\\n" " "; grep Seccomp: /proc/self/status'), {
      env: { FEDAI_ADAPTER: 'x', NOT_ALLOWED: 'leak', HOME: '/root' },
    }));
    expect(r.out).toMatch(/^fedai-runner$/m);
    expect(r.out).not.toMatch(/NOT_ALLOWED|leak/);
    expect(r.out).toMatch(/^HOME=\/job$/m);
    expect(r.out).toMatch(/^FEDAI_ADAPTER=x$/m);
    expect(r.out).toMatch(/Read-only file system/);
    expect(r.out).toMatch(/^\/job$/m);
    expect(r.out).not.toMatch(/\broot\b|\bhome\b|\bwork\b/);
    expect(r.out).toMatch(/Seccomp:\s+0/);
    const procs = Number(r.out.split('\n')[1]);
    expect(procs).toBeLessThan(6);
  });

  test('layer with bwrap: seccomp filter is loaded (Seccomp: 2), unshare -U refused', async () => {
    const l = launcher(devProfile(), { skip: only('bwrap', 'userns', 'seccomp') });
    const r = await run(l, spec(sh('grep Seccomp: /proc/self/status; unshare -U true 2>&1; echo rc=$?')));
    expect(r.out).toMatch(/Seccomp:\s+2/);
    expect(r.out).toMatch(/Operation not permitted/);
    expect(r.out).toMatch(/rc=1/);
  });

  // ---- all together

  test('the runner has a passwd entry (Node os.userInfo, Python getpass) and nothing else of /etc/passwd', async () => {
    const l = launcher('strict');
    const r = await run(l, spec(sh('node -e "console.log(require(\\"os\\").userInfo().username)"; python3 -c "import getpass; print(getpass.getuser())"; id -un; wc -l < /etc/passwd')));
    expect(r.out.split('\n').slice(0, 3)).toEqual(['runner', 'runner', 'runner']);
    expect(Number(r.out.split('\n')[3])).toBe(3);
  });

  test('strict, all layers together', async () => {
    const l = launcher('strict');
    const r = await run(l, spec(sh(`${STATUS}; cat /proc/self/cgroup | grep -c fedai; grep "Max open files" /proc/self/limits; hostname; ls /run 2>&1; env | sort`)));
    expect(r.plan.layers.filter((x) => !x.active).map((x) => x.layer)).toEqual(['egress-proxy']);
    expect(Number(field(r.out, 'Uid')!.split(/\s+/)[0])).toBeGreaterThanOrEqual(61000);
    expect(field(r.out, 'CapEff')).toBe('0000000000000000');
    expect(field(r.out, 'NoNewPrivs')).toBe('1');
    expect(field(r.out, 'Seccomp')).toBe('2');
    expect(r.out).toMatch(/^0$/m); // the cgroup namespace hides the host path (fedai/...)
    expect(r.out).toMatch(/Max open files\s+4096\s+4096/);
    expect(r.out).not.toMatch(/FEDAI_EGRESS_PROXY/);
  });

  test('env values travel on a file descriptor, never on a command line', async () => {
    const l = launcher('strict');
    const secret = `sk-${process.pid}-do-not-leak`;
    const s = spec(sh('echo "$FEDAI_BACKEND_API_KEY"; cat /proc/1/cmdline | tr "\\0" " "'), { env: { FEDAI_BACKEND_API_KEY: secret } });
    const plan = (await l.prepare(s)) as SandboxPlan;
    try {
      expect(JSON.stringify([plan.file, plan.args, plan.env])).not.toContain(secret);
      expect(plan.extraFds.length).toBe(4); // env args, passwd, group, seccomp program
    } finally {
      await plan.dispose();
    }
    const r = await run(l, { ...s, id: `${s.id}-b`, workDir: workDir() });
    expect(r.out.split('\n')[0]).toBe(secret);
    expect(r.out.split('\n')[1]).not.toContain(secret);
  });

  test('a work dir under a 0700 NODE_DATA_DIR (as the runner manager lays it out) is reachable and writable; no host mount remains', async () => {
    const l = launcher('strict');
    const wd = join(dataDir, 'runners', 'work', 'mock');
    mkdirSync(wd, { recursive: true, mode: 0o700 });
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
    const r = await run(l, spec(sh('echo hi > /job/out.txt && cat /job/out.txt; ls /job'), { workDir: wd }));
    expect(r.err).toBe('');
    expect(r.out.split('\n')[0]).toBe('hi');
    expect(readFileSync(join(wd, 'out.txt'), 'utf8')).toBe('hi\n');
    expect(statSync(dataDir).mode & 0o777).toBe(0o700); // untouched
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain('fedai-sandbox-');
  });

  test('code dirs and read-only files under a 0700 parent (a checkout under /root) are reachable at their own paths', async () => {
    const priv = join(scratch, 'private-home');
    mkdirSync(join(priv, 'repo', 'lib'), { recursive: true });
    chmodSync(priv, 0o700);
    chmodSync(join(priv, 'repo'), 0o755);
    chmodSync(join(priv, 'repo', 'lib'), 0o755);
    writeFileSync(join(priv, 'repo', 'lib', 'code.txt'), 'runner-code', { mode: 0o644 });
    writeFileSync(join(priv, 'model.bin'), 'weights', { mode: 0o644 });
    writeFileSync(join(priv, 'secret.txt'), 'not-bound', { mode: 0o644 });
    const l = launcher('strict');
    const r = await run(l, spec(sh(`cat ${priv}/repo/lib/code.txt; echo; cat ${priv}/model.bin; echo; cat ${priv}/secret.txt 2>&1; touch ${priv}/repo/x 2>&1`), {
      codeDirs: [join(priv, 'repo')],
      readOnlyPaths: [join(priv, 'model.bin')],
    }));
    const lines = r.out.split('\n');
    expect(lines[0]).toBe('runner-code');
    expect(lines[1]).toBe('weights');
    expect(r.out).toMatch(/secret.txt: No such file/);
    expect(r.out).toMatch(/Read-only file system/);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain('fedai-sandbox-');
  });

  test('a manager that passes no extra fds still gets seccomp and env (sh prelude reopens them)', async () => {
    const l = launcher('strict');
    const r = await run(l, spec(sh('grep Seccomp: /proc/self/status; echo "A=$FEDAI_ADAPTER"')), { passFds: false });
    expect(r.out).toMatch(/Seccomp:\s+2/);
    expect(r.out).toMatch(/A=x/);
  });

  test('execa with stdio extra entries (how the runner manager spawns) works', async () => {
    const l = launcher('strict');
    const plan = (await l.prepare(spec(sh('grep Seccomp: /proc/self/status')))) as SandboxPlan;
    try {
      const stdio = execaStdio(plan);
      const r = await execa(plan.file, [...plan.args], {
        env: { ...plan.env },
        extendEnv: false,
        cwd: plan.cwd,
        stdio,
        reject: false,
      });
      expect(String(r.stdout)).toMatch(/Seccomp:\s+2/);
    } finally {
      await plan.dispose();
    }
  });

  test('NODE_DATA_DIR and key files are never visible, even under a bound code dir', async () => {
    const code = join(scratch, 'app');
    mkdirSync(join(code, 'state'), { recursive: true });
    chmodSync(code, 0o755);
    writeFileSync(join(code, 'app.txt'), 'app-code');
    writeFileSync(join(code, 'state', 'node.key'), 'nsec1secret', { mode: 0o600 });
    writeFileSync(join(code, 'other.key'), 'other-secret', { mode: 0o644 });
    const l = new SandboxLauncher({ logger: captureLogger('warn').logger, profile: loadProfile('strict'), dataDir: join(code, 'state'), secretFiles: [join(code, 'other.key')] });
    launchers.push(l);
    const r = await run(l, spec(sh(`cat ${code}/app.txt; echo; ls -A ${code}/state | wc -l; cat ${code}/state/node.key 2>&1; cat ${code}/other.key | wc -c`), { codeDirs: [code] }));
    const lines = r.out.split('\n');
    expect(lines[0]).toBe('app-code');
    expect(lines[1].trim()).toBe('0');
    expect(r.out).toMatch(/No such file/);
    expect(lines[3].trim()).toBe('0');
    expect(r.out).not.toMatch(/nsec1secret|other-secret/);
  });

  test('killTree takes down the whole tree, including a setsid escapee; dispose removes cgroups and sockets', async () => {
    const l = launcher('standard');
    const s = spec(sh('setsid sleep 60 & sleep 61 & echo started; wait'), { needsEgress: true });
    const plan = (await l.prepare(s)) as SandboxPlan;
    const cg = plan.info.cgroup!;
    const egressSock = plan.info.egress!.socketPath;
    const child = spawnPlan(plan, { stdio: ['ignore', 'pipe', 'ignore'] });
    plan.attach(child.pid!, () => undefined);
    await new Promise<void>((r) => child.stdout!.on('data', () => r()));
    const pids = await cg.pids();
    expect(pids.length).toBeGreaterThanOrEqual(4);
    await plan.killTree();
    expect(await cg.pids()).toEqual([]);
    await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.on('exit', r)));
    await plan.dispose();
    await plan.dispose(); // idempotent
    expect(existsSync(`/sys/fs/cgroup/pids/fedai/${cg.name}`)).toBe(false);
    expect(existsSync(`/sys/fs/cgroup/unified/fedai/${cg.name}`)).toBe(false);
    expect(existsSync(egressSock)).toBe(false);
  });

  test('a backend a runner serves on 127.0.0.1 inside its sandbox is unreachable from outside', async () => {
    const l = launcher('standard');
    const token = `inside-${process.pid}`;
    const script = `const s=require('net').createServer(c=>c.end('${token}'));s.listen(0,'127.0.0.1',()=>{const p=s.address().port;require('net').connect(p,'127.0.0.1').on('data',d=>{console.log(p+' '+d);}).on('error',e=>console.log(p+' '+e.code));});setTimeout(()=>process.exit(0),4000);`;
    const plan = (await l.prepare(spec(['/usr/bin/node', '-e', script]))) as SandboxPlan;
    try {
      const child = spawnPlan(plan, { stdio: ['ignore', 'pipe', 'pipe'] });
      plan.attach(child.pid!, () => undefined);
      const line = await new Promise<string>((r) => child.stdout!.on('data', (d: Buffer) => r(d.toString().trim())));
      const [port, inside] = line.split(' ');
      expect(inside).toBe(token); // reachable from inside
      const outside = await new Promise<string>((resolve) => {
        const c = net.connect(Number(port), '127.0.0.1');
        let got = '';
        c.on('data', (d) => (got += d.toString()));
        c.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
        c.on('close', () => resolve(got || 'closed'));
        c.setTimeout(1500, () => c.destroy());
      });
      expect(outside).not.toContain(token);
    } finally {
      await plan.dispose();
    }
  });

  test('the built-in Node runner host (tsx) starts under strict and answers initialize', async () => {
    const l = launcher('strict');
    const r = await measureSpawnToReady({
      launcher: l,
      spec: spec(runnerHostCommand(), { name: 'mock', env: { FEDAI_ADAPTER: 'mock' }, codeDirs: [packageRoot()] }),
      timeoutMs: 30000,
    });
    expect((r.result as { protocolVersion: string }).protocolVersion).toMatch(/^1\./);
    expect(r.ms).toBeGreaterThan(0);
  });

  test('the Python reference runner starts under strict and answers initialize', async () => {
    const l = launcher('strict');
    const r = await measureSpawnToReady({
      launcher: l,
      spec: spec(pythonRunnerCommand(), { name: 'exec', codeDirs: [dirname(PYTHON_RUNNER_PATH)] }),
      timeoutMs: 20000,
    });
    expect((r.result as { protocolVersion: string }).protocolVersion).toMatch(/^1\./);
  });

  test('gpu: CUDA_VISIBLE_DEVICES is set per runner (empty without GPUs), device binds are optional', async () => {
    const l = launcher('gpu');
    const r = await run(l, spec(sh('echo "CVD=[${CUDA_VISIBLE_DEVICES-unset}]"; ls /dev | tr "\\n" " "')));
    const hasGpu = existsSync('/dev/nvidia0');
    if (hasGpu) expect(r.out).toMatch(/CVD=\[\d+\]/);
    else {
      expect(r.out).toMatch(/CVD=\[\]/);
      expect(r.out).not.toMatch(/nvidia/);
    }
    expect(r.code).toBe(0);
    // every optional device of the profile is bound with --dev-bind-try (skipped by bwrap when absent)
    const optional = l.profile.fs.devices.filter((d) => d.optional).map((d) => d.path);
    expect(optional.length).toBeGreaterThan(0);
    for (const dev of optional) {
      const i = r.plan.args.indexOf(dev);
      expect(r.plan.args.slice(i - 1, i + 2)).toEqual(['--dev-bind-try', dev, dev]);
    }
  });
});
