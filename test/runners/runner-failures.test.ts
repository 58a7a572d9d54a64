/**
 * Hostile and broken runners, each a real child process (test/fixtures/runners/). For each: the
 * supervisor stays up, the request gets its typed error code, the runner is restarted per policy, and
 * no process is left behind (scanned in /proc by the test marker).
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FedaiError } from '../../supervisor/errors.js';
import type { RunnerState } from '../../supervisor/runners/runner-manager.js';
import type { RunnerExit } from '../../supervisor/runners/runner-process.js';
import { codeOf, fixture, isLive, makeManager, processesWithMarker, REQ, sentinelsOfThisProcess, waitFor, waitForState, type Harness } from './helpers.js';

let h: Harness | undefined;

afterEach(async () => {
  if (!h) return;
  const { marker } = h;
  await h.cleanup();
  h = undefined;
  await waitFor(() => processesWithMarker(marker).length === 0, 5000, 'no leftover runner processes');
  await waitFor(() => sentinelsOfThisProcess().length === 0, 5000, 'no leftover sentinels');
});

describe('runner failure modes', () => {
  it('crash-mid-request: runner-crashed, restarted, ready again', async () => {
    h = makeManager(fixture('crash-mid-request'));
    const restarts: string[] = [];
    const exits: (RunnerExit & { runnerId: string })[] = [];
    h.manager.on('restart', (r: string) => restarts.push(r));
    h.manager.on('exit', (e) => exits.push(e));
    await h.manager.start();
    expect(h.manager.state).toBe('ready');
    const firstPid = h.manager.status().pid;
    expect(await codeOf(h.manager.infer(REQ))).toBe('runner-crashed');
    await waitFor(() => h!.manager.ready && h!.manager.status().pid !== firstPid, 20_000, 'restarted runner');
    expect(restarts).toEqual(['crashed']);
    expect(exits).toHaveLength(1);
    expect(exits[0]).toMatchObject({ code: 3, signal: null, stderr: { stderrBytes: 'about to crash\n'.length, stderrTailSha256: expect.stringMatching(/^[0-9a-f]{64}$/) } });
    expect(exits[0]).not.toHaveProperty('killReason');
    expect(JSON.stringify(exits[0])).not.toContain('about to crash');
    const st = h.manager.status();
    expect(st.restarts).toBe(1);
    expect(st.crashesInWindow).toBe(1);
    expect(st.lastError).toBe('runner-crashed');
    expect(st.inFlight).toBe(0);
    // the crash log carries the stderr size and hash, never the text
    expect(h.log.text()).toContain('stderrTailSha256');
    expect(h.log.text()).not.toContain('about to crash');
    expect(h.log.text()).not.toContain('PROMPT-SECRET-TEXT');
  });

  it('hang-forever: health probes miss, degraded → unhealthy → restart; the pending infer gets runner-killed', async () => {
    h = makeManager(fixture('hang-forever'), { config: { NODE_RUNNER_HEALTH_TIMEOUT_MS: '300', NODE_RUNNER_HEALTH_INTERVAL_MS: '100' } });
    const states: RunnerState[] = [];
    const restarts: string[] = [];
    const kills: string[] = [];
    h.manager.on('state', (s: RunnerState) => states.push(s));
    h.manager.on('restart', (r: string) => restarts.push(r));
    h.manager.on('kill', (r: string) => kills.push(r));
    await h.manager.start();
    expect(h.manager.state).toBe('ready');
    const p = h.manager.infer(REQ).catch((e: FedaiError) => e);
    await waitFor(() => restarts.length >= 1, 20_000, 'a restart');
    const err = await p;
    expect(err).toBeInstanceOf(FedaiError);
    expect((err as FedaiError).code).toBe('runner-killed');
    expect((err as FedaiError).details).toEqual(['health']);
    expect(states.slice(0, 5)).toEqual(['starting', 'ready', 'degraded', 'unhealthy', 'restarting']);
    expect(kills[0]).toBe('health');
    expect(restarts[0]).toBe('health');
  });

  it('ignore-sigterm: stop() escalates shutdown → SIGTERM → SIGKILL and reaps', async () => {
    h = makeManager(fixture('ignore-sigterm'), { config: { NODE_RUNNER_KILL_GRACE_MS: '300' } });
    await h.manager.start();
    const pid = h.manager.status().pid!;
    expect(isLive(pid)).toBe(true);
    await h.manager.stop();
    expect(h.manager.state).toBe('stopped');
    expect(isLive(pid)).toBe(false);
    expect(await codeOf(h.manager.infer(REQ))).toBe('node-draining');
  });

  it('flood-stderr: megabytes of stderr neither block the runner nor reach the logs', async () => {
    const canary = `CANARY-${randomUUID()}`;
    h = makeManager(fixture('flood-stderr'), { env: { FIXTURE_CANARY: canary, FIXTURE_CRASH_AFTER_FLOOD: '1' } });
    const restarts: string[] = [];
    h.manager.on('restart', (r: string) => restarts.push(r));
    await h.manager.start();
    expect(h.manager.state).toBe('ready');
    const r = await h.manager.infer(REQ);
    expect(r.output).toBe('fixture output');
    await waitFor(() => restarts.length >= 1, 20_000, 'restart after the crash');
    await waitForState(h.manager, 'ready');
    const text = h.log.text();
    expect(text).not.toContain(canary);
    expect(text).not.toContain('xxxxxxxxxx');
    const exitLine = h.log.lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'runner exited')!;
    expect(exitLine.stderrTailBytes).toBe(65536);
    expect(exitLine.stderrBytes as number).toBeGreaterThan(4 * 1024 * 1024);
    expect(exitLine.stderrTailSha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it.each([
    ['stdout-garbage', 'protocol-garbage'],
    ['oversize-frame', 'frame-too-large'],
  ])('%s: frame guard kills the runner (%s), request gets runner-protocol-error, runner restarts', async (name, reason) => {
    h = makeManager(fixture(name));
    const violations: string[] = [];
    const kills: string[] = [];
    const restarts: string[] = [];
    h.manager.on('frame-violation', (r: string) => violations.push(r));
    h.manager.on('kill', (r: string) => kills.push(r));
    h.manager.on('restart', (r: string) => restarts.push(r));
    await h.manager.start();
    const firstPid = h.manager.status().pid!;
    expect(await codeOf(h.manager.infer(REQ))).toBe('runner-protocol-error');
    expect(isLive(firstPid)).toBe(false);
    await waitFor(() => restarts.length === 1 && h!.manager.ready, 20_000, 'restart');
    expect(violations).toEqual([reason]);
    expect(kills).toEqual([reason]);
    expect(restarts).toEqual([reason]);
    expect(h.manager.status().lastError).toBe('runner-protocol-error');
  });

  it('setsid-grandchild: the in-group and the setsid grandchild die with the runner', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedai-gc-'));
    const pidsFile = join(dir, 'pids.json');
    h = makeManager(fixture('setsid-grandchild'), { env: { FIXTURE_PIDS_FILE: pidsFile, FIXTURE_CRASH_ON_INFER: '1' } });
    await h.manager.start();
    const pids = JSON.parse(readFileSync(pidsFile, 'utf8')) as { runner: number; inGroup: number; escaped: number };
    await waitFor(() => isLive(pids.inGroup) && isLive(pids.escaped), 5000, 'grandchildren');
    expect(await codeOf(h.manager.infer(REQ))).toBe('runner-crashed');
    // after the crash, before any stop(): the manager swept the tree
    await waitFor(() => !isLive(pids.runner) && !isLive(pids.inGroup) && !isLive(pids.escaped), 5000, 'tree swept after crash');
    await waitForState(h.manager, 'ready');
  });

  it('health-ok-infer-never: deadline → cancel → kill after grace → runner-timeout; slot held until the kill', async () => {
    h = makeManager(fixture('health-ok-infer-never'), { config: { NODE_RUNNER_TIMEOUT_MS: '400', NODE_RUNNER_KILL_GRACE_MS: '400' } });
    const events: string[] = [];
    let inFlightAtKill = -1;
    h.manager.on('kill', (r: string) => {
      events.push(`kill:${r}`);
      inFlightAtKill = h!.manager.status().inFlight;
    });
    h.manager.on('restart', (r: string) => events.push(`restart:${r}`));
    await h.manager.start();
    const err = await h.manager.infer(REQ).catch((e: FedaiError) => e);
    events.push('settled');
    expect((err as FedaiError).code).toBe('runner-timeout');
    expect(events[0]).toBe('kill:timeout');
    expect(events).toContain('settled');
    expect(inFlightAtKill).toBe(1);
    expect(h.manager.status().inFlight).toBe(0);
    await waitFor(() => events.includes('restart:timeout') && h!.manager.ready, 20_000, 'restart');
  });

  it('slow-start: start deadline kills it; after max crashes the manager gives up (failed, Retry-After)', async () => {
    h = makeManager(fixture('slow-start'), { config: { NODE_RUNNER_START_TIMEOUT_MS: '300' }, policy: { maxCrashes: 2, giveUpMs: 60_000 } });
    const restarts: string[] = [];
    h.manager.on('restart', (r: string) => restarts.push(r));
    await h.manager.start();
    expect(h.manager.state).toBe('failed');
    expect(restarts).toEqual(['start-timeout']);
    const st = h.manager.status();
    expect(st.lastError).toBe('runner-timeout');
    expect(st.crashesInWindow).toBe(2);
    expect(st.retryAfterS).toBeGreaterThan(0);
    const err = await h.manager.infer(REQ).catch((e: FedaiError) => e);
    expect((err as FedaiError).code).toBe('runner-unavailable');
    expect((err as FedaiError).retryAfterS).toBeGreaterThan(50);
  });

  it('slow-start within the deadline becomes ready', async () => {
    h = makeManager(fixture('slow-start'), { env: { FIXTURE_START_DELAY_MS: '300' } });
    await h.manager.start();
    expect(h.manager.state).toBe('ready');
    expect(h.manager.listModels().map((m) => m.id)).toEqual(['fixture-model']);
  });

  it('wrong-protocol-version: failed at once (no restart loop), one more try after the give-up pause', async () => {
    h = makeManager(fixture('wrong-protocol-version'), { policy: { giveUpMs: 1000 } });
    const states: RunnerState[] = [];
    h.manager.on('state', (s: RunnerState) => states.push(s));
    await h.manager.start();
    expect(h.manager.state).toBe('failed');
    expect(h.manager.status().lastError).toBe('protocol-version-mismatch');
    expect(h.manager.status().restarts).toBe(0);
    const err = await h.manager.infer(REQ).catch((e: FedaiError) => e);
    expect((err as FedaiError).code).toBe('runner-unavailable');
    expect((err as FedaiError).retryAfterS).toBeGreaterThanOrEqual(1);
    await waitFor(() => h!.manager.status().restarts === 1 && h!.manager.state === 'failed' && states.length >= 4, 20_000, 'second try');
    expect(states.slice(0, 4)).toEqual(['starting', 'failed', 'restarting', 'failed']);
  });

  it('flaky-health: a missed probe marks it degraded (not ready), the next good one makes it ready again', async () => {
    h = makeManager(fixture('flaky-health'), { config: { NODE_RUNNER_HEALTH_MISSES: '4', NODE_RUNNER_HEALTH_INTERVAL_MS: '300' }, env: { FIXTURE_HEALTH_FAIL_FROM: '2', FIXTURE_HEALTH_FAILS: '3' } });
    const states: RunnerState[] = [];
    h.manager.on('state', (s: RunnerState) => states.push(s));
    await h.manager.start();
    await waitForState(h.manager, 'degraded');
    expect(h.manager.ready).toBe(false);
    expect(await codeOf(h.manager.infer(REQ))).toBe('runner-unavailable');
    await waitForState(h.manager, 'ready');
    expect(states).toEqual(['starting', 'ready', 'degraded', 'ready']);
    expect(h.manager.status().restarts).toBe(0);
    expect((await h.manager.infer(REQ)).output).toBe('fixture output');
  });

  it('stop() during the handshake ends start() and reaps the runner', async () => {
    h = makeManager(fixture('slow-start'));
    const started = h.manager.start();
    await waitFor(() => h!.manager.status().pid !== undefined, 10_000, 'spawned');
    const pid = h.manager.status().pid!;
    await h.manager.stop();
    await started;
    expect(h.manager.state).toBe('stopped');
    expect(isLive(pid)).toBe(false);
    expect(h.manager.status().restarts).toBe(0);
  });
});
