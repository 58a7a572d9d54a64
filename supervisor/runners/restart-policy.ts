/**
 * The restart policy, pure (no timers, no processes): exponential backoff with full jitter, reset after
 * stable uptime, and give-up after too many crashes inside a window, followed by one more try after a
 * long pause (LSP's "5 crashes in 3 minutes", pm2's stable reset, LocalAI's cooldown with Retry-After).
 */
import type { Config } from '../config/load-config.js';

export interface RestartPolicy {
  /** First backoff ceiling (ms); doubles per consecutive crash. */
  baseMs: number;
  /** Backoff ceiling cap (ms). */
  maxMs: number;
  /** Uptime after which a crash counts as the first again (ms). */
  stableMs: number;
  /** Crashes within crashWindowMs that make us give up. */
  maxCrashes: number;
  crashWindowMs: number;
  /** After giving up, wait this long before one more try (ms). */
  giveUpMs: number;
}

export function policyFromConfig(config: Config, overrides: Partial<RestartPolicy> = {}): RestartPolicy {
  return {
    baseMs: config.NODE_RUNNER_RESTART_BASE_MS,
    maxMs: config.NODE_RUNNER_RESTART_MAX_MS,
    stableMs: config.NODE_RUNNER_STABLE_MS,
    maxCrashes: config.NODE_RUNNER_MAX_CRASHES,
    crashWindowMs: config.NODE_RUNNER_CRASH_WINDOW_MS,
    giveUpMs: config.NODE_RUNNER_GIVE_UP_MS,
    ...overrides,
  };
}

/** Full jitter: uniform in [0, min(maxMs, baseMs · 2^attempt)]. `random` returns [0, 1). */
export function backoffDelayMs(attempt: number, policy: Pick<RestartPolicy, 'baseMs' | 'maxMs'>, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(attempt, 52));
  return Math.floor(random() * ceiling);
}

export type RestartDecision =
  | { action: 'restart'; delayMs: number; attempt: number }
  | { action: 'give-up'; retryAfterMs: number };

export class RestartTracker {
  private crashes: number[] = [];
  private attempt = 0;
  private gaveUp = false;

  constructor(
    readonly policy: RestartPolicy,
    private readonly random: () => number = Math.random,
  ) {}

  /**
   * Records a crash (any unplanned exit, failed start or watchdog kill) at `nowMs`, after the instance
   * had been up `uptimeMs` (0 when it never became ready), and decides what to do next.
   */
  recordCrash(nowMs: number, uptimeMs: number): RestartDecision {
    const stable = uptimeMs >= this.policy.stableMs;
    if (stable) {
      this.attempt = 0;
      this.gaveUp = false;
    }
    this.crashes = this.crashes.filter((t) => nowMs - t < this.policy.crashWindowMs);
    this.crashes.push(nowMs);
    // the one extra try after a give-up failed again: give up again at once
    if (this.gaveUp || this.crashes.length >= this.policy.maxCrashes) {
      this.gaveUp = true;
      return { action: 'give-up', retryAfterMs: this.policy.giveUpMs };
    }
    const delayMs = backoffDelayMs(this.attempt, this.policy, this.random);
    const attempt = this.attempt;
    this.attempt++;
    return { action: 'restart', delayMs, attempt };
  }

  /** Gives up without counting (a deterministic failure such as a protocol-version mismatch). */
  giveUp(): { action: 'give-up'; retryAfterMs: number } {
    this.gaveUp = true;
    return { action: 'give-up', retryAfterMs: this.policy.giveUpMs };
  }

  /** Crashes counted inside the window ending at `nowMs`. */
  crashesInWindow(nowMs: number): number {
    return this.crashes.filter((t) => nowMs - t < this.policy.crashWindowMs).length;
  }

  get givenUp(): boolean {
    return this.gaveUp;
  }
}
