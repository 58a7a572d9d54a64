/**
 * The conformance kit against real runners: the built-in runner host (mock adapter) passes every check;
 * deliberately broken fixtures fail exactly the rule they break; every process the kit starts is gone
 * when it returns.
 */
import { describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CHECK_NAMES,
  checkRunner,
  formatCheckResults,
  type CheckResult,
} from '../../../supervisor/runners/conformance/check-runner.js';
import { PACKAGE_ROOT, pythonRunnerCommand, runnerHostCommand } from '../../../supervisor/runners/runner-command.js';

const FIXTURES = join(PACKAGE_ROOT, 'test', 'fixtures', 'conformance');

/** A marker in the environment of every runner this file starts (other tests run in parallel). */
const MARK = `conformance-test-${process.pid}-${Date.now()}`;

/** Live (non-zombie) pids whose environment carries `mark` (read from /proc; kills nothing). */
function livePids(mark: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const env = readFileSync(`/proc/${d}/environ`, 'utf8');
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      if (env.includes(`FEDAI_TEST_MARK=${mark}`) && !/\) Z /.test(stat)) out.push(Number(d));
    } catch {
      // gone already
    }
  }
  return out;
}

function byName(results: CheckResult[]): Record<string, CheckResult> {
  return Object.fromEntries(results.map((r) => [r.name, r]));
}

describe('checkRunner', () => {
  it('passes the built-in mock runner on every check', async () => {
    const results = await checkRunner(runnerHostCommand(), {
      env: { FEDAI_ADAPTER: 'mock', FEDAI_MOCK_TOKEN_DELAY_MS: '10', FEDAI_TEST_MARK: `${MARK}-mock` },
      timeoutMs: 15_000,
    });
    expect(results.map((r) => r.name)).toEqual([...CHECK_NAMES]);
    expect(results.filter((r) => !r.ok)).toEqual([]);
    const text = formatCheckResults(results);
    expect(text.split('\n')).toHaveLength(CHECK_NAMES.length);
    expect(text.split('\n').every((l) => /^ok {3}[a-z-]+ \(\d+ ms\)/.test(l))).toBe(true);
    expect(livePids(`${MARK}-mock`)).toEqual([]);
  }, 60_000);

  it('fails no-stdout-noise (and only that) for a runner that prints a banner on stdout', async () => {
    const results = await checkRunner([pythonRunnerCommand()[0], join(FIXTURES, 'noisy_runner.py')], {
      env: { FEDAI_MOCK_TOKEN_DELAY_MS: '10', FEDAI_TEST_MARK: `${MARK}-noisy` },
      timeoutMs: 15_000,
    });
    const r = byName(results);
    expect(r['no-stdout-noise'].ok).toBe(false);
    expect(r['no-stdout-noise'].detail).toContain('noisy runner 0.1 ready');
    expect(results.filter((x) => !x.ok).map((x) => x.name)).toEqual(['no-stdout-noise']);
    expect(formatCheckResults(results)).toMatch(/^FAIL no-stdout-noise: .*noise at byte 0/m);
    expect(livePids(`${MARK}-noisy`)).toEqual([]);
  }, 60_000);

  it('fails exit-on-stdin-close for a runner that lingers, and still kills it', async () => {
    const fixture = join(FIXTURES, 'lingering_runner.py');
    const results = await checkRunner([pythonRunnerCommand()[0], fixture], {
      env: { FEDAI_MOCK_TOKEN_DELAY_MS: '10', FEDAI_TEST_MARK: `${MARK}-linger` },
      timeoutMs: 15_000,
    });
    const r = byName(results);
    expect(r['exit-on-stdin-close']).toMatchObject({ ok: false, detail: expect.stringContaining('still running') });
    expect(results.filter((x) => !x.ok).map((x) => x.name)).toEqual(['exit-on-stdin-close']);
    expect(livePids(`${MARK}-linger`)).toEqual([]);
  }, 60_000);

  it('fails cancellation for a runner that ignores $/cancelRequest', async () => {
    const results = await checkRunner([pythonRunnerCommand()[0], join(FIXTURES, 'deaf_runner.py')], {
      env: { FEDAI_MOCK_TOKEN_DELAY_MS: '5', FEDAI_TEST_MARK: `${MARK}-deaf` },
      timeoutMs: 15_000,
    });
    const r = byName(results);
    expect(r.cancellation).toMatchObject({ ok: false, detail: expect.stringContaining('ignores cancellation') });
    expect(results.filter((x) => !x.ok).map((x) => x.name)).toEqual(['cancellation']);
    expect(livePids(`${MARK}-deaf`)).toEqual([]);
  }, 60_000);

  it('passes a runner faster than a round trip when an immediate cancel is honoured', async () => {
    const results = await checkRunner(runnerHostCommand(), {
      env: { FEDAI_ADAPTER: 'mock', FEDAI_MOCK_TOKEN_DELAY_MS: '0', FEDAI_TEST_MARK: `${MARK}-fast` },
      timeoutMs: 15_000,
    });
    expect(byName(results).cancellation).toMatchObject({ ok: true, detail: expect.stringContaining('partial usage') });
    expect(results.filter((x) => !x.ok)).toEqual([]);
    expect(livePids(`${MARK}-fast`)).toEqual([]);
  }, 60_000);

  it('reports failures instead of throwing for a program that is not a runner', async () => {
    const results = await checkRunner(['/bin/sh', '-c', 'echo hello; sleep 30'], {
      env: { FEDAI_TEST_MARK: `${MARK}-sh` },
      timeoutMs: 1500,
    });
    const r = byName(results);
    expect(r.handshake.ok).toBe(false);
    expect(r['no-stdout-noise'].ok).toBe(false);
    expect(r['exit-on-stdin-close'].ok).toBe(false);
    // It sent no notification at all, so that one rule holds; every other one fails.
    expect(results.filter((x) => x.ok).map((x) => x.name)).toEqual(['notifications']);
    expect(livePids(`${MARK}-sh`)).toEqual([]);
  }, 60_000);
});

describe('formatCheckResults', () => {
  it('prints one line per check', () => {
    expect(
      formatCheckResults([
        { name: 'handshake', ok: true, ms: 12 },
        { name: 'streaming', ok: false, detail: 'chunk #2 has index 3', ms: 4 },
      ]),
    ).toBe('ok   handshake (12 ms)\nFAIL streaming: chunk #2 has index 3');
  });
});
