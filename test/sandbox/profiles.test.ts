import { describe, expect, test, afterAll } from '@jest/globals';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FedaiError } from '../../supervisor/errors.js';
import { listProfiles, loadProfile, loadProfileFile, parseProfile, resolveSandboxMode, shippedProfileDir, envNameAllowed } from '../../supervisor/sandbox/profiles.js';

const SHIPPED = ['dev', 'gpu', 'standard', 'strict'];
const strictRaw = () => JSON.parse(readFileSync(join(shippedProfileDir(), 'strict.json'), 'utf8')) as Record<string, any>;

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(FedaiError);
    expect((err as FedaiError).code).toBe('config-invalid');
    return ((err as FedaiError).details ?? []).map(String);
  }
  throw new Error('expected a config-invalid error');
}

describe('sandbox profiles', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'fedai-profiles-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  test('every shipped profile validates against schemas/sandbox-profile.json', () => {
    expect(listProfiles()).toEqual(SHIPPED);
    for (const n of SHIPPED) expect(loadProfile(n).name).toBe(n);
  });

  test('what each shipped profile promises', () => {
    const strict = loadProfile('strict');
    expect(strict.require).toEqual(expect.arrayContaining(['bwrap', 'userns', 'seccomp', 'setpriv', 'root', 'prlimit', 'cgroup']));
    expect(strict.network.mode).toBe('none');
    expect(strict.seccomp).toBe('strict');
    const standard = loadProfile('standard');
    expect(standard.network.mode).toBe('egress');
    expect(standard.require).toEqual(strict.require);
    const dev = loadProfile('dev');
    expect(dev.require).toEqual([]);
    expect(dev.guarantees).toEqual(expect.arrayContaining(['own-env', 'write-past-fsize', 'hang']));
    const gpu = loadProfile('gpu');
    expect(gpu.rlimits.AS).toBeUndefined();
    expect(gpu.gpu?.cudaVisibleDevices).toBe('per-runner');
    expect(gpu.fs.devices.every((d) => d.optional === true)).toBe(true);
    expect(gpu.cgroup.pidsMax!).toBeGreaterThanOrEqual(512);
    expect(gpu.require).toEqual(strict.require);
    for (const p of SHIPPED.map((n) => loadProfile(n))) {
      expect(p.rlimits.AS).toBeUndefined(); // RLIMIT_AS breaks V8 and CUDA
      expect(p.fs.ro.some((r) => (typeof r === 'string' ? r : r.path).startsWith('/root'))).toBe(false);
    }
  });

  test('unknown keys are rejected, at any depth', () => {
    const top = strictRaw();
    top.allowEverything = true;
    expect(problems(() => parseProfile(top, 't')).join('\n')).toMatch(/allowEverything/);
    const deep = strictRaw();
    deep.cgroup.memoryMax = 1;
    expect(problems(() => parseProfile(deep, 't')).join('\n')).toMatch(/memoryMax/);
  });

  test('relative paths and dot segments are rejected', () => {
    for (const bad of ['usr', './usr', '/usr/../root', '/usr/./lib', '']) {
      const p = strictRaw();
      p.fs.ro = [bad];
      expect(problems(() => parseProfile(p, 't')).length).toBeGreaterThan(0);
    }
    const p = strictRaw();
    p.cwd = 'job';
    expect(problems(() => parseProfile(p, 't')).join('\n')).toMatch(/cwd/);
  });

  test('type errors, bad layers and an inverted uid pool are rejected', () => {
    const a = strictRaw();
    a.require = ['bwrap', 'landlockz'];
    expect(problems(() => parseProfile(a, 't')).length).toBeGreaterThan(0);
    const b = strictRaw();
    b.network.mode = 'host';
    expect(problems(() => parseProfile(b, 't')).length).toBeGreaterThan(0);
    const c = strictRaw();
    c.uidPool = { first: 62000, last: 61000 };
    expect(problems(() => parseProfile(c, 't')).join('\n')).toMatch(/uidPool/);
    const d = strictRaw();
    d.uidPool = { first: 0, last: 10 };
    expect(problems(() => parseProfile(d, 't')).length).toBeGreaterThan(0);
  });

  test('NODE_SANDBOX_PROFILE_DIR is searched first and may add profiles', () => {
    const custom = strictRaw();
    custom.description = 'operator override';
    writeFileSync(join(tmp, 'strict.json'), JSON.stringify(custom));
    const extra = strictRaw();
    extra.name = 'lab';
    writeFileSync(join(tmp, 'lab.json'), JSON.stringify(extra));
    expect(loadProfile('strict', tmp).description).toBe('operator override');
    expect(loadProfile('strict').description).not.toBe('operator override');
    expect(loadProfile('lab', tmp).name).toBe('lab');
    expect(listProfiles(tmp)).toEqual(['dev', 'gpu', 'lab', 'standard', 'strict']);
  });

  test('a file whose name differs from its "name" is rejected', () => {
    const p = strictRaw();
    p.name = 'other';
    writeFileSync(join(tmp, 'mismatch.json'), JSON.stringify(p));
    expect(problems(() => loadProfileFile(join(tmp, 'mismatch.json'))).join('\n')).toMatch(/does not match/);
    writeFileSync(join(tmp, 'broken.json'), '{ not json');
    expect(problems(() => loadProfileFile(join(tmp, 'broken.json'))).join('\n')).toMatch(/JSON/);
  });

  test('a typo in the mode is an error listing the available profiles', () => {
    try {
      loadProfile('strcit');
      throw new Error('no error');
    } catch (err) {
      expect((err as FedaiError).code).toBe('config-invalid');
      expect((err as Error).message).toMatch(/strcit/);
      expect((err as Error).message).toMatch(/dev, gpu, standard, strict, disabled/);
    }
    expect(() => loadProfile('../etc/passwd')).toThrow(/available: /);
  });

  test('default mode: dev, or strict when NODE_ENV=production; explicit wins', () => {
    expect(resolveSandboxMode({ NODE_ENV: 'development' })).toBe('dev');
    expect(resolveSandboxMode({ NODE_ENV: 'production' })).toBe('strict');
    expect(resolveSandboxMode({ NODE_ENV: 'production', NODE_SANDBOX_MODE: 'standard' })).toBe('standard');
    expect(resolveSandboxMode({ NODE_ENV: 'production', NODE_SANDBOX_MODE: '  ' })).toBe('strict');
    expect(resolveSandboxMode({ NODE_SANDBOX_MODE: 'disabled' })).toBe('disabled');
  });

  test('env allowlist patterns', () => {
    expect(envNameAllowed('FEDAI_BACKEND_URL', ['FEDAI_*'])).toBe(true);
    expect(envNameAllowed('FEDAIX', ['FEDAI_*'])).toBe(false);
    expect(envNameAllowed('LANG', ['LANG'])).toBe(true);
    expect(envNameAllowed('LANGUAGE', ['LANG'])).toBe(false);
  });
});
