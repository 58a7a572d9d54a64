/**
 * The hostile runner under every shipped profile, through the real launcher (bwrap, setpriv, prlimit,
 * cgroups, seccomp, egress proxy, watchdog). Every probe must be contained. The `dev` profile is also
 * run on a simulated host without bubblewrap/seccomp (skipLayers), where it must still keep what it
 * promises (docs/sandbox.md, "What each profile guarantees").
 */
import { afterAll, describe, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROBES, formatContainmentTable, probeProfile, runHostileProbes, checkSandbox } from '../../supervisor/sandbox/check-sandbox.js';
import { listProfiles, loadProfile } from '../../supervisor/sandbox/profiles.js';
import { configFrom } from '../../supervisor/config/load-config.js';
import { captureLogger, describeSandbox, HOSTILE_GPU_FILE_PROFILES } from './sandbox-env.js';

const dataDir = mkdtempSync(join(tmpdir(), 'fedai-hostile-data-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

// Split over two files so that they run in parallel: strict (via checkSandbox), standard and dev here;
// gpu and the degraded dev host in hostile-gpu.test.ts.
const HERE = ['standard', 'dev'];

describeSandbox('hostile runner', () => {
  test('there are at least 15 probes, and every shipped profile is covered by the two files', () => {
    expect(PROBES.length).toBeGreaterThanOrEqual(15);
    expect(new Set(['strict', ...HERE, ...HOSTILE_GPU_FILE_PROFILES])).toEqual(new Set(listProfiles()));
  });

  test('strict via checkSandbox (the CLI path): every probe contained; table lists each probe', async () => {
    const cap = captureLogger('warn');
    const r = await checkSandbox({ profile: 'strict', config: configFrom({}), logger: cap.logger, dataDir });
    expect(r.probes.map((p) => p.probe)).toEqual([...PROBES]);
    expect(r.probes.filter((p) => !p.contained)).toEqual([]);
    const table = formatContainmentTable(r);
    for (const p of PROBES) expect(table).toMatch(new RegExp(`^${p}\\s+contained`, 'm'));
    expect(table).not.toMatch(/LEAKED/);
    expect(r.layers.filter((l) => l.active).map((l) => l.layer)).toEqual(expect.arrayContaining(['cgroup-v1', 'prlimit', 'setpriv', 'bwrap', 'seccomp', 'watchdog']));
  }, 80_000);

  describe.each(HERE)('profile %s', (name) => {
    test('every probe is contained', async () => {
      const r = await runHostileProbes({ profile: probeProfile(loadProfile(name)), logger: captureLogger('error').logger, dataDir });
      const leaks = r.probes.filter((p) => !p.contained);
      expect({ leaks, stderr: leaks.length ? r.stderr.slice(-500) : '' }).toEqual({ leaks: [], stderr: '' });
      expect(r.probes.length).toBe(PROBES.length);
      expect(r.breach?.reason).toBe('wall-time');
      if (loadProfile(name).network.mode === 'egress') {
        expect(r.egress).toEqual({ allowed: 1, refused: 6 });
        expect(r.probes.find((p) => p.probe === 'egress-allowed')!.detail).toMatch(/via proxy .*: 200/);
      } else {
        expect(r.probes.find((p) => p.probe === 'egress-allowed')!.detail).toMatch(/no egress proxy/);
      }
      expect(r.usage?.pidsLimitHits).toBeGreaterThan(0);
      expect(r.usage?.oomKills).toBeGreaterThan(0);
    }, 80_000);
  });

});
