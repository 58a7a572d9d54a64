/**
 * Runs the hostile runner (runner-host/examples/hostile/hostile-runner.mjs) through the real
 * SandboxLauncher on this host and reports, probe by probe, whether the sandbox held. Used by
 * `fedai-node check-sandbox --profile <name>` and by test/sandbox/hostile.test.ts.
 *
 * To keep the run short and the host safe, two limits of the profile are tightened for the check (the
 * mechanism under test is the same): the wall time per request (the `hang` probe waits for the
 * watchdog's kill) and the memory limit (the `memory-hog` probe allocates up to twice the limit).
 */
import { mkdtempSync, mkdirSync, chmodSync, writeFileSync, existsSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Config } from '../config/load-config.js';
import type { LayerReport, BreachReason } from './launch-plan.js';
import { loadProfile, packageRoot, type LayerName, type SandboxProfile } from './profiles.js';
import { SandboxLauncher, type SandboxPlan } from './sandbox-launcher.js';
import { spawnPlan } from './spawn-plan.js';
import { allowedEndpoints } from './select-launcher.js';

export interface ProbeResult {
  probe: string;
  contained: boolean;
  detail: string;
}

export interface CheckResult {
  profile: string;
  layers: LayerReport[];
  probes: ProbeResult[];
}

export const PROBES = [
  'read-shadow', 'read-key-file', 'read-supervisor-environ', 'own-env', 'write-root', 'write-code-dir',
  'write-outside-workdir', 'write-past-fsize', 'device-access', 'connect-loopback', 'egress-allowed',
  'egress-prefix-trick', 'setuid-root', 'unshare-userns', 'ptrace', 'kill-host-pid', 'fork-bomb', 'cpu-spin',
  'memory-hog', 'hang',
] as const;

const MiB = 1024 * 1024;

export function hostileRunnerPath(): string {
  return join(packageRoot(), 'runner-host', 'examples', 'hostile', 'hostile-runner.mjs');
}

/** The profile with the check's short limits (wall time, memory) applied. */
export function probeProfile(p: SandboxProfile, o: { wallMaxMs?: number; memoryMaxBytes?: number } = {}): SandboxProfile {
  const mem = Math.min(p.cgroup.memoryMaxBytes ?? Infinity, o.memoryMaxBytes ?? 512 * MiB);
  return {
    ...p,
    cgroup: { ...p.cgroup, memoryMaxBytes: mem },
    watchdog: { ...p.watchdog, intervalMs: Math.min(p.watchdog.intervalMs, 100), wallMaxMs: o.wallMaxMs ?? 2500, memoryMaxBytes: mem },
  };
}

export interface HostileRunOptions {
  profile: SandboxProfile;
  logger: Logger;
  /** The supervisor's data dir; a 0600 key file is created in it for the probe. */
  dataDir: string;
  /** Extra allowed endpoints (the probe's own backend is always added). */
  allowedEndpoints?: readonly string[];
  skipLayers?: readonly LayerName[];
  /** Probe subset (default all). */
  only?: readonly string[];
  timeoutMs?: number;
}

export interface HostileRunResult extends CheckResult {
  exit: { code: number | null; signal: string | null };
  breach?: { reason: BreachReason; detail: string };
  usage?: Record<string, unknown>;
  egress?: { allowed: number; refused: number };
  stderr: string;
}

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return (server.address() as net.AddressInfo).port;
}

/** Starts the hostile runner under `profile` and collects its probe lines plus host-side checks. */
export async function runHostileProbes(o: HostileRunOptions): Promise<HostileRunResult> {
  const secretName = 'SUPERVISOR_SECRET_TOKEN';
  const secretValue = `s3cr3t-${randomBytes(8).toString('hex')}`;
  const keyFile = join(o.dataDir, `node-key-${randomBytes(4).toString('hex')}.pem`);
  writeFileSync(keyFile, `-----BEGIN PRIVATE KEY-----\n${randomBytes(32).toString('base64')}\n-----END PRIVATE KEY-----\n`, { mode: 0o600 });
  chmodSync(keyFile, 0o600);

  let loopbackHits = 0;
  const loopback = net.createServer((s) => {
    loopbackHits++;
    s.destroy();
  });
  const backendHits: string[] = [];
  const allowedBody = `allowed-${randomBytes(4).toString('hex')}`;
  const backend = http.createServer((req, res) => {
    backendHits.push(req.url ?? '');
    if (req.url === '/ok/data') res.end(allowedBody);
    else {
      res.statusCode = 404;
      res.end('nope');
    }
  });
  const loopbackPort = await listen(loopback);
  const backendPort = await listen(backend);

  const scratch = mkdtempSync(join(tmpdir(), 'fedai-hostile-'));
  chmodSync(scratch, 0o755);
  const workDir = join(scratch, 'work');
  const escapeDir = join(scratch, 'escape');
  mkdirSync(workDir, { mode: 0o755 });
  mkdirSync(escapeDir);
  chmodSync(escapeDir, 0o777);
  const hostWritePath = join(escapeDir, 'escaped.txt');

  const profile = o.profile;
  const launcher = new SandboxLauncher({
    logger: o.logger,
    profile,
    dataDir: o.dataDir,
    allowedEndpoints: [`http://127.0.0.1:${backendPort}/ok`, ...(o.allowedEndpoints ?? [])],
    ...(o.skipLayers ? { skipLayers: o.skipLayers } : {}),
  });
  const runner = hostileRunnerPath();
  let plan: SandboxPlan | undefined;
  try {
    await launcher.init();
    const pidsLimit = profile.cgroup.pidsMax ?? profile.rlimits.NPROC ?? 256;
    const cfg = {
      keyFile,
      supervisorPid: process.pid,
      secretName,
      secretValue,
      envAllow: [...profile.env.allow, ...Object.keys(profile.env.set), 'FEDAI_EGRESS_PROXY', 'CUDA_VISIBLE_DEVICES'],
      loopbackPort,
      allowedUrl: `http://127.0.0.1:${backendPort}/ok/data`,
      allowedBody,
      refusedUrls: [
        `http://127.0.0.1:${backendPort}/okay`,
        `http://127.0.0.1:${backendPort}/ok/../secret`,
        `http://localhost:${backendPort}/ok/data`,
        `http://127.0.0.1:${backendPort}.evil.com/ok/data`,
        `http://127.0.0.1.evil.com:${backendPort}/ok/data`,
        `http://127.0.0.1:${loopbackPort}/ok/data`,
      ],
      hostWritePath,
      forkMax: pidsLimit + 64,
      cpuQuotaPct: undefined as number | undefined,
      memHogMaxBytes: Math.min(2 * (profile.cgroup.memoryMaxBytes ?? 512 * MiB), 1024 * MiB),
      spinMs: 1500,
      ...(o.only ? { only: o.only } : {}),
    };
    plan = (await launcher.prepare({
      id: `hostile-${profile.name}`,
      name: 'exec',
      command: [process.execPath, runner, '__CFG__'],
      env: { FEDAI_ADAPTER: 'hostile', [secretName]: secretValue },
      codeDirs: [join(packageRoot(), 'runner-host', 'examples', 'hostile')],
      workDir,
      needsEgress: true,
    })) as SandboxPlan;
    const cg = plan.layers.find((l) => l.layer.startsWith('cgroup'));
    if (cg?.active && plan.info.cgroup?.enforced.cpuMaxPercent !== undefined) cfg.cpuQuotaPct = plan.info.cgroup.enforced.cpuMaxPercent;
    // The config goes in as the last argv element (the plan was built with a placeholder).
    plan.args = plan.args.map((a) => (a === '__CFG__' ? JSON.stringify(cfg) : a));
    const child = spawnPlan(plan);
    const lines: ProbeResult[] = [];
    let stderr = '';
    let buf = '';
    const activePlan = plan;
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          const j = JSON.parse(line) as ProbeResult & { phase?: string };
          if (j.probe === 'hang' && j.phase === 'start') activePlan.requestStarted();
          else if (typeof j.probe === 'string') lines.push({ probe: j.probe, contained: j.contained === true, detail: String(j.detail) });
        } catch {
          /* not a probe line */
        }
      }
    });
    child.stderr!.on('data', (d: Buffer) => {
      if (stderr.length < 4000) stderr += d.toString();
    });
    let breach: { reason: BreachReason; detail: string } | undefined;
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
      child.on('error', () => resolve({ code: null, signal: 'spawn-error' }));
      child.on('close', (code, signal) => resolve({ code, signal }));
    });
    plan.attach(child.pid!, (reason, detail) => {
      breach = { reason, detail };
    });
    const timeoutMs = o.timeoutMs ?? 60_000;
    let timer: NodeJS.Timeout | undefined;
    const exit = await Promise.race([
      exited,
      new Promise<{ code: number | null; signal: string | null }>((resolve) => {
        timer = setTimeout(() => {
          void activePlan.killTree();
          resolve({ code: null, signal: 'timeout' });
        }, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    // The watchdog records its verdict before it kills; its callback runs after the kill completed.
    if (!breach && plan.info.watchdog?.breach) breach = { reason: plan.info.watchdog.breach.reason, detail: plan.info.watchdog.breach.detail };
    const usage = plan.info.cgroup ? ((await plan.info.cgroup.usage()) as Record<string, unknown>) : undefined;

    // Host-side verdicts override what the runner believes.
    const set = (probe: string, contained: boolean, detail: string) => {
      const i = lines.findIndex((l) => l.probe === probe);
      if (i >= 0) lines[i] = { probe, contained: lines[i].contained && contained, detail: contained ? lines[i].detail : `${lines[i].detail}; HOST: ${detail}` };
    };
    if (existsSync(hostWritePath)) set('write-outside-workdir', false, `${hostWritePath} exists on the host`);
    if (loopbackHits > 0) set('connect-loopback', false, `host listener saw ${loopbackHits} connection(s)`);
    const refusedHits = backendHits.filter((u) => u !== '/ok/data');
    if (refusedHits.length > 0) set('egress-prefix-trick', false, `backend saw ${refusedHits.length} refused request(s)`);
    if (readFileSync(keyFile).length === 0) set('read-key-file', false, 'key file was truncated');

    const wanted = o.only ?? PROBES;
    if (wanted.includes('hang')) {
      lines.push(
        breach?.reason === 'wall-time'
          ? { probe: 'hang', contained: true, detail: `watchdog: ${breach.detail}; runner ${exit.signal ?? exit.code}` }
          : { probe: 'hang', contained: false, detail: breach ? `killed for ${breach.reason} before the hang probe` : `no watchdog kill (exit ${exit.signal ?? exit.code})` },
      );
    }
    for (const name of wanted) {
      if (lines.some((l) => l.probe === name)) continue;
      if (name === 'memory-hog' && breach?.reason === 'memory') lines.push({ probe: name, contained: true, detail: `watchdog killed the tree: ${breach.detail}` });
      else lines.push({ probe: name, contained: false, detail: `no report (runner exit ${exit.signal ?? exit.code}${breach ? `, breach ${breach.reason}` : ''}): ${stderr.slice(-200)}` });
    }
    lines.sort((a, b) => wanted.indexOf(a.probe as (typeof PROBES)[number]) - wanted.indexOf(b.probe as (typeof PROBES)[number]));
    const eg = plan.info.egress?.stats();
    return {
      profile: profile.name,
      layers: [...plan.layers],
      probes: lines,
      exit,
      ...(breach ? { breach } : {}),
      ...(usage ? { usage } : {}),
      ...(eg ? { egress: { allowed: eg.allowed, refused: eg.refused } } : {}),
      stderr,
    };
  } finally {
    await plan?.dispose();
    await launcher.close();
    await new Promise<void>((r) => loopback.close(() => r()));
    backend.closeAllConnections?.();
    await new Promise<void>((r) => backend.close(() => r()));
    rmSync(scratch, { recursive: true, force: true });
    rmSync(keyFile, { force: true });
  }
}

/** `fedai-node check-sandbox`: the hostile probes under a profile on this host. */
export async function checkSandbox(opts: { profile: string; config: Config; logger: Logger; dataDir: string }): Promise<CheckResult> {
  const profile = loadProfile(opts.profile, opts.config.NODE_SANDBOX_PROFILE_DIR);
  const r = await runHostileProbes({
    profile: probeProfile(profile),
    logger: opts.logger,
    dataDir: opts.dataDir,
    allowedEndpoints: allowedEndpoints(opts.config),
  });
  return { profile: r.profile, layers: r.layers, probes: r.probes };
}

/** A plain-text table: the layers, then one row per probe. */
export function formatContainmentTable(result: CheckResult): string {
  const out: string[] = [`sandbox profile: ${result.profile}`, '', 'layers:'];
  for (const l of result.layers) out.push(`  ${l.active ? '[x]' : '[ ]'} ${l.layer.padEnd(13)} ${l.detail ?? ''}`);
  out.push('', `${'probe'.padEnd(24)} ${'result'.padEnd(10)} detail`);
  for (const p of result.probes) out.push(`${p.probe.padEnd(24)} ${(p.contained ? 'contained' : 'LEAKED').padEnd(10)} ${p.detail.replace(/\s+/g, ' ').slice(0, 160)}`);
  return out.join('\n');
}
