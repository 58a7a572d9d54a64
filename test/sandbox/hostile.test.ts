/**
 * The hostile runner under every shipped profile, through the real launcher (bwrap, setpriv, prlimit,
 * cgroups, seccomp, egress proxy, watchdog). Every probe must be contained. The `dev` profile is also
 * run on a simulated host without bubblewrap/seccomp (skipLayers), where it must still keep what it
 * promises (docs/sandbox.md, "What each profile guarantees").
 */
import { expect, test } from '@jest/globals';
import { PROBES, formatContainmentTable, checkSandbox } from '../../supervisor/sandbox/check-sandbox.js';
import { listProfiles } from '../../supervisor/sandbox/profiles.js';
import { configFrom } from '../../supervisor/config/load-config.js';
import { describeEveryProbeContained, hostileDataDir } from './hostile-shared.js';
import { captureLogger, describeSandbox, HOSTILE_GPU_FILE_PROFILES } from './sandbox-env.js';

const dataDir = hostileDataDir();

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

  describeEveryProbeContained(HERE, dataDir);
});
