import { afterAll, describe, expect, test } from '@jest/globals';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configFrom } from '../../supervisor/config/load-config.js';
import { FedaiError } from '../../supervisor/errors.js';
import { allowedEndpoints, createLauncher } from '../../supervisor/sandbox/select-launcher.js';
import { SandboxLauncher, type SandboxPlan } from '../../supervisor/sandbox/sandbox-launcher.js';
import { UnsandboxedLauncher } from '../../supervisor/runners/unsandboxed-launcher.js';
import { shippedProfileDir } from '../../supervisor/sandbox/profiles.js';
import { spawnPlan } from '../../supervisor/sandbox/spawn-plan.js';
import { captureLogger, describeSandbox } from './sandbox-env.js';

const dataDir = mkdtempSync(join(tmpdir(), 'fedai-select-'));
chmodSync(dataDir, 0o755);
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe('createLauncher (NODE_SANDBOX_MODE)', () => {
  test('disabled → the plain launcher, logged loudly at warn', async () => {
    const cap = captureLogger('info');
    const l = await createLauncher(configFrom({ NODE_SANDBOX_MODE: 'disabled' }), cap.logger, { dataDir });
    expect(l).toBeInstanceOf(UnsandboxedLauncher);
    expect(l.mode).toBe('disabled');
    const warn = cap.lines().find((x) => x.level === 'warn');
    expect(String(warn?.msg)).toMatch(/SANDBOX DISABLED/);
  });

  test('unset: dev by default, strict when NODE_ENV=production', async () => {
    const { logger } = captureLogger();
    const dev = await createLauncher(configFrom({}), logger, { dataDir });
    expect(dev).toBeInstanceOf(SandboxLauncher);
    expect(dev.mode).toBe('dev');
    const prod = await createLauncher(configFrom({ NODE_ENV: 'production' }), logger, { dataDir });
    expect(prod.mode).toBe('strict');
    expect((await createLauncher(configFrom({ NODE_SANDBOX_MODE: 'gpu' }), logger, { dataDir })).mode).toBe('gpu');
  });

  test('a typo is an error listing the available profiles', async () => {
    const err = await createLauncher(configFrom({ NODE_SANDBOX_MODE: 'stritc' }), captureLogger().logger, { dataDir }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(FedaiError);
    expect((err as Error).message).toMatch(/stritc.*available: dev, gpu, standard, strict, disabled/s);
  });

  test('NODE_SANDBOX_PROFILE_DIR: a custom profile is found', async () => {
    const dir = join(dataDir, 'profiles');
    mkdirSync(dir, { recursive: true });
    const p = JSON.parse(readFileSync(join(shippedProfileDir(), 'standard.json'), 'utf8')) as Record<string, unknown>;
    p.name = 'site';
    writeFileSync(join(dir, 'site.json'), JSON.stringify(p));
    const l = await createLauncher(configFrom({ NODE_SANDBOX_MODE: 'site', NODE_SANDBOX_PROFILE_DIR: dir }), captureLogger().logger, { dataDir });
    expect(l.mode).toBe('site');
  });

  test('NODE_SANDBOX_ALLOWED_RUNNERS is enforced by the selected launcher', async () => {
    const l = await createLauncher(configFrom({ NODE_SANDBOX_MODE: 'dev', NODE_SANDBOX_ALLOWED_RUNNERS: 'mock' }), captureLogger().logger, { dataDir });
    const err = await l
      .prepare({ id: 'x', name: 'exec', command: ['/bin/true'], env: {}, codeDirs: [], workDir: dataDir, needsEgress: false })
      .then(() => undefined, (e: unknown) => e);
    expect((err as FedaiError).code).toBe('sandbox-runner-not-allowed');
  });

  test('allowed endpoints: NODE_SANDBOX_ALLOWED_ENDPOINTS plus the configured backend URL', () => {
    const c = configFrom({ NODE_SANDBOX_ALLOWED_ENDPOINTS: 'https://api.example.com/v1', NODE_LLAMA_CPP_URL: 'http://127.0.0.1:8085' });
    expect(allowedEndpoints(c)).toEqual(['https://api.example.com/v1', 'http://127.0.0.1:8085']);
  });
});

describeSandbox('createLauncher → egress refusals reach the metrics hook', () => {
  test('a refused request is counted and reported to metrics.egressRefusal', async () => {
    const reasons: string[] = [];
    const l = (await createLauncher(configFrom({ NODE_SANDBOX_MODE: 'standard', NODE_SANDBOX_ALLOWED_ENDPOINTS: 'http://127.0.0.1:9/only' }), captureLogger('error').logger, {
      dataDir,
      metrics: { egressRefusal: (r) => reasons.push(r) },
    })) as SandboxLauncher;
    await l.init();
    const work = join(dataDir, 'w');
    mkdirSync(work, { recursive: true });
    const script = `require('http').request({socketPath: process.env.FEDAI_EGRESS_PROXY, path: 'http://127.0.0.1:9/elsewhere'}, (r) => { console.log(r.statusCode); }).end();`;
    const plan = (await l.prepare({ id: 'egress-metrics', name: 'http', command: ['/usr/bin/node', '-e', script], env: {}, codeDirs: [], workDir: work, needsEgress: true })) as SandboxPlan;
    const child = spawnPlan(plan, { stdio: ['ignore', 'pipe', 'ignore'] });
    plan.attach(child.pid!, () => undefined);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    await new Promise((r) => child.on('close', r));
    // a live runner's refusals count before its plan is released, and are not counted twice after
    expect(l.egressStats().refused).toBe(1);
    await plan.dispose();
    expect(out.trim()).toBe('403');
    expect(reasons).toEqual(['not-allowlisted']);
    expect(l.egressStats().refused).toBe(1);
    await l.close();
  });
});

describe('bad allowed endpoints', () => {
  test('an entry with credentials or a query is a config-invalid error at construction', async () => {
    const err = await createLauncher(configFrom({ NODE_SANDBOX_MODE: 'dev', NODE_SANDBOX_ALLOWED_ENDPOINTS: 'http://u:p@example.com/' }), captureLogger().logger, { dataDir }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as FedaiError).code).toBe('config-invalid');
    expect((err as Error).message).toMatch(/NODE_SANDBOX_ALLOWED_ENDPOINTS: .*credentials/);
  });
});
