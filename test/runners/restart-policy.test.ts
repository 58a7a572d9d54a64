import { describe, expect, it } from '@jest/globals';
import { configFrom } from '../../supervisor/config/load-config.js';
import { backoffDelayMs, policyFromConfig, RestartTracker, type RestartPolicy } from '../../supervisor/runners/restart-policy.js';

const P: RestartPolicy = { baseMs: 100, maxMs: 1000, stableMs: 5000, maxCrashes: 3, crashWindowMs: 60_000, giveUpMs: 30_000 };

describe('restart policy', () => {
  it('reads the config', () => {
    expect(policyFromConfig(configFrom({}))).toEqual({ baseMs: 500, maxMs: 15000, stableMs: 30000, maxCrashes: 5, crashWindowMs: 180000, giveUpMs: 300000 });
    expect(policyFromConfig(configFrom({}), { giveUpMs: 5 }).giveUpMs).toBe(5);
  });

  it('full jitter: uniform below min(max, base·2^attempt)', () => {
    expect(backoffDelayMs(0, P, () => 0.999)).toBe(99);
    expect(backoffDelayMs(1, P, () => 0.5)).toBe(100);
    expect(backoffDelayMs(3, P, () => 0.999)).toBe(799);
    expect(backoffDelayMs(4, P, () => 0.999)).toBe(999); // capped at maxMs
    expect(backoffDelayMs(60, P, () => 0.999)).toBe(999);
    expect(backoffDelayMs(2, P, () => 0)).toBe(0);
  });

  it('backs off exponentially, then gives up after maxCrashes in the window', () => {
    const t = new RestartTracker(P, () => 0.999);
    expect(t.recordCrash(0, 0)).toEqual({ action: 'restart', delayMs: 99, attempt: 0 });
    expect(t.recordCrash(1000, 100)).toEqual({ action: 'restart', delayMs: 199, attempt: 1 });
    expect(t.crashesInWindow(1000)).toBe(2);
    expect(t.recordCrash(2000, 100)).toEqual({ action: 'give-up', retryAfterMs: 30_000 });
    expect(t.givenUp).toBe(true);
    // the one more try after the pause fails quickly: give up again at once
    expect(t.recordCrash(40_000, 100)).toEqual({ action: 'give-up', retryAfterMs: 30_000 });
  });

  it('crashes outside the window are forgotten', () => {
    const t = new RestartTracker(P, () => 0);
    t.recordCrash(0, 0);
    t.recordCrash(1, 0);
    expect(t.recordCrash(70_000, 0).action).toBe('restart');
    expect(t.crashesInWindow(70_000)).toBe(1);
  });

  it('stable uptime resets the backoff and a give-up', () => {
    const t = new RestartTracker({ ...P, maxCrashes: 10 }, () => 0.999);
    t.recordCrash(0, 0);
    t.recordCrash(1, 0);
    expect(t.recordCrash(2, 0)).toMatchObject({ attempt: 2 });
    expect(t.recordCrash(10_000, 6000)).toMatchObject({ action: 'restart', attempt: 0, delayMs: 99 });
    const g = new RestartTracker(P);
    g.giveUp();
    expect(g.givenUp).toBe(true);
    expect(g.recordCrash(100_000, 6000).action).toBe('restart');
  });
});
