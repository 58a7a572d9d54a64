/** Shared by hostile.test.ts and hostile-gpu.test.ts (split in two so that they run in parallel). */
import { afterAll, describe, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROBES, probeProfile, runHostileProbes } from '../../supervisor/sandbox/check-sandbox.js';
import { loadProfile } from '../../supervisor/sandbox/profiles.js';
import { captureLogger } from './sandbox-env.js';

/** A data directory for the hostile runs, removed after the file's tests. Call at the top level. */
export function hostileDataDir(): string {
  const dataDir = mkdtempSync(join(tmpdir(), 'fedai-hostile-data-'));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));
  return dataDir;
}

/** One test per shipped profile: the hostile runner under it, every probe contained. */
export function describeEveryProbeContained(profiles: readonly string[], dataDir: string): void {
  describe.each([...profiles])('profile %s', (name) => {
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
}
