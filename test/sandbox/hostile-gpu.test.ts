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
import { PROBES, probeProfile, runHostileProbes } from '../../supervisor/sandbox/check-sandbox.js';
import { loadProfile } from '../../supervisor/sandbox/profiles.js';
import { captureLogger, describeSandbox, HOSTILE_GPU_FILE_PROFILES } from './sandbox-env.js';

const dataDir = mkdtempSync(join(tmpdir(), 'fedai-hostile-data-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

// The second half of hostile.test.ts (split so both run in parallel): gpu, and dev on a degraded host.
const HERE = HOSTILE_GPU_FILE_PROFILES;

describeSandbox('hostile runner', () => {
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


  test('dev on a host without bubblewrap/seccomp keeps what it promises', async () => {
    const profile = probeProfile(loadProfile('dev'));
    const r = await runHostileProbes({ profile, logger: captureLogger('error').logger, dataDir, skipLayers: ['bwrap', 'userns', 'seccomp'] });
    const by = Object.fromEntries(r.probes.map((p) => [p.probe, p]));
    // declared in the profile: holds on any host
    for (const p of profile.guarantees ?? []) expect([p, by[p].contained, by[p].detail]).toEqual([p, true, by[p].detail]);
    // with root + cgroups (this host): the uid drop, rlimits, cgroups and the watchdog still hold
    const withRoot = ['read-shadow', 'read-key-file', 'read-supervisor-environ', 'write-root', 'write-code-dir', 'setuid-root', 'ptrace', 'kill-host-pid', 'fork-bomb', 'cpu-spin', 'memory-hog', 'device-access'];
    for (const p of withRoot) expect([p, by[p].contained, by[p].detail]).toEqual([p, true, by[p].detail]);
    // what only namespaces and seccomp give is honestly reported as leaking
    for (const p of ['connect-loopback', 'unshare-userns']) expect([p, by[p].contained]).toEqual([p, false]);
  }, 80_000);
});
