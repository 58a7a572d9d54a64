/**
 * The hostile runner under every shipped profile, through the real launcher (bwrap, setpriv, prlimit,
 * cgroups, seccomp, egress proxy, watchdog). Every probe must be contained. The `dev` profile is also
 * run on a simulated host without bubblewrap/seccomp (skipLayers), where it must still keep what it
 * promises (docs/sandbox.md, "What each profile guarantees").
 */
import { expect, test } from '@jest/globals';
import { PROBES, probeProfile, runHostileProbes } from '../../supervisor/sandbox/check-sandbox.js';
import { loadProfile } from '../../supervisor/sandbox/profiles.js';
import { describeEveryProbeContained, hostileDataDir } from './hostile-shared.js';
import { captureLogger, describeSandbox, HOSTILE_GPU_FILE_PROFILES } from './sandbox-env.js';

const dataDir = hostileDataDir();

// The second half of hostile.test.ts (split so both run in parallel): gpu, and dev on a degraded host.
const HERE = HOSTILE_GPU_FILE_PROFILES;

describeSandbox('hostile runner', () => {
  describeEveryProbeContained(HERE, dataDir);

  test('dev on a host without bubblewrap/seccomp keeps what it promises', async () => {
    const profile = probeProfile(loadProfile('dev'));
    const r = await runHostileProbes({ profile, logger: captureLogger('error').logger, dataDir, skipLayers: ['bwrap', 'userns', 'seccomp'] });
    const by = Object.fromEntries(r.probes.map((p) => [p.probe, p]));
    expect(r.probes.map((p) => p.probe)).toEqual([...PROBES]);
    // declared in the profile: holds on any host
    expect(profile.guarantees?.length).toBeGreaterThan(0);
    for (const p of profile.guarantees ?? []) expect([p, by[p].contained, by[p].detail]).toEqual([p, true, by[p].detail]);
    // with root + cgroups (this host): the uid drop, rlimits, cgroups and the watchdog still hold
    const withRoot = ['read-shadow', 'read-key-file', 'read-supervisor-environ', 'write-root', 'write-code-dir', 'setuid-root', 'ptrace', 'kill-host-pid', 'fork-bomb', 'cpu-spin', 'memory-hog', 'device-access'];
    for (const p of withRoot) expect([p, by[p].contained, by[p].detail]).toEqual([p, true, by[p].detail]);
    // what only namespaces and seccomp give is honestly reported as leaking
    for (const p of ['connect-loopback', 'unshare-userns']) expect([p, by[p].contained]).toEqual([p, false]);
  }, 80_000);
});
