/**
 * Heartbeats to the router (../shared/spec/fedai-wire.md §6): POST {ROUTER_ENDPOINT}/register-node with a
 * node-signed Envelope<NodeDescriptor> (random-UUID nonce, ts = now), at start-up and then every
 * NODE_HEARTBEAT_MS. Routers drop a node that has been silent for 30 s, so:
 *
 * - every request has a timeout (default min(5 s, period/2));
 * - a failed beat is retried with exponential backoff and jitter, capped at period/2, so a node is
 *   never silent for longer than about one period because of backoff (timeout + cap ≤ period);
 * - start() returns at once; the first beat is asynchronous and never blocks start-up;
 * - the descriptor is rebuilt on every beat; if the model snapshot fails the node heartbeats anyway with
 *   the default capability (upstream defect 15.21);
 * - trigger() sends a beat promptly (runner state changed); calls while a beat is pending or in flight
 *   coalesce into one more beat;
 * - with ROUTER_ENDPOINT unset, heartbeats are disabled and that is logged once.
 *
 * Router error bodies are logged only by their `error` code.
 */
import type { Config } from '../config/load-config.js';
import { signEnvelope } from '../crypto/envelope.js';
import type { Identity } from '../crypto/keys.js';
import type { Logger } from '../observability/logger.js';
import type { ModelInfo } from '../protocol/runner-protocol.js';
import type { NodeDescriptor } from '../protocol/wire-types.js';
import { advertisedEndpoint, buildNodeDescriptor, isPrivateEndpoint } from './capabilities.js';

export { buildCapabilities, buildNodeDescriptor } from './capabilities.js';

export interface HeartbeatOptions {
  config: Config;
  identity: Identity;
  logger: Logger;
  snapshot: () => { models: ModelInfo[]; inFlight: number };
  metrics?: { heartbeat(ok: boolean): void };
  fetchImpl?: typeof fetch;
  /** The bound HTTP port, for the default endpoint when NODE_PORT=0. */
  listenPort?: () => number | undefined;
  /** Per-request timeout; default min(5000, period/2). */
  requestTimeoutMs?: number;
  /** First retry delay; default min(1000, period/10). Doubles per failure, capped at period/2. */
  retryBaseMs?: number;
  /** Jitter source in [0, 1); default Math.random. */
  random?: () => number;
}

export interface HeartbeatStatus {
  enabled: boolean;
  lastOkMs?: number;
  lastAttemptMs?: number;
  consecutiveFailures: number;
  beats: number;
}

const MAX_ERROR_BODY = 4096;

export interface HeartbeatTimings {
  periodMs: number;
  timeoutMs: number;
  retryBaseMs: number;
  retryCapMs: number;
}

/** Defaults: timeout min(5 s, period/2), first retry min(1 s, period/10), retry cap period/2. */
export function heartbeatTimings(periodMs: number, over: { requestTimeoutMs?: number; retryBaseMs?: number } = {}): HeartbeatTimings {
  const timeoutMs = over.requestTimeoutMs ?? Math.min(5000, Math.max(50, Math.floor(periodMs / 2)));
  const retryBaseMs = over.retryBaseMs ?? Math.min(1000, Math.max(20, Math.floor(periodMs / 10)));
  return { periodMs, timeoutMs, retryBaseMs, retryCapMs: Math.max(retryBaseMs, Math.floor(periodMs / 2)) };
}

/** Delay before retry number `failures` (≥ 1): base·2^(n−1) capped at retryCapMs, with equal jitter (½..1×). */
export function heartbeatBackoffMs(t: HeartbeatTimings, failures: number, random: () => number = Math.random): number {
  const exp = Math.min(t.retryCapMs, t.retryBaseMs * 2 ** Math.min(30, Math.max(0, failures - 1)));
  return Math.round(exp / 2 + (exp / 2) * random());
}

export class Heartbeat {
  private readonly opts: HeartbeatOptions;
  private readonly fetchImpl: typeof fetch;
  private readonly timings: HeartbeatTimings;
  private readonly random: () => number;
  private timer: NodeJS.Timeout | null = null;
  private inflight: Promise<void> | null = null;
  private abort: AbortController | null = null;
  private again = false;
  private started = false;
  private stopped = false;
  private failures = 0;
  private beats = 0;
  private lastOkMs?: number;
  private lastAttemptMs?: number;

  constructor(opts: HeartbeatOptions) {
    this.opts = opts;
    this.fetchImpl = opts.fetchImpl ?? fetch;
    this.timings = heartbeatTimings(opts.config.NODE_HEARTBEAT_MS, {
      ...(opts.requestTimeoutMs !== undefined ? { requestTimeoutMs: opts.requestTimeoutMs } : {}),
      ...(opts.retryBaseMs !== undefined ? { retryBaseMs: opts.retryBaseMs } : {}),
    });
    this.random = opts.random ?? Math.random;
  }

  get enabled(): boolean {
    return this.opts.config.ROUTER_ENDPOINT !== undefined;
  }

  status(): HeartbeatStatus {
    return {
      enabled: this.enabled,
      consecutiveFailures: this.failures,
      beats: this.beats,
      ...(this.lastOkMs !== undefined ? { lastOkMs: this.lastOkMs } : {}),
      ...(this.lastAttemptMs !== undefined ? { lastAttemptMs: this.lastAttemptMs } : {}),
    };
  }

  /** Starts heartbeating; returns immediately (the first beat is sent asynchronously). */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    const { config, logger } = this.opts;
    if (!this.enabled) {
      logger.info('heartbeat disabled: ROUTER_ENDPOINT is unset (the node will not register with a router)');
      return;
    }
    const endpoint = advertisedEndpoint(config, this.opts.listenPort?.());
    if (isPrivateEndpoint(endpoint)) {
      logger.warn({ endpoint }, 'heartbeat: advertised endpoint is private or localhost; routers refuse it unless they allow private endpoints (set NODE_ENDPOINT)');
    }
    logger.info({ router: config.ROUTER_ENDPOINT, periodMs: this.timings.periodMs, endpoint }, 'heartbeat started');
    this.schedule(0);
  }

  /** Refresh now (e.g. the runner's state or models changed). Coalesced. */
  trigger(): void {
    if (!this.started || this.stopped || !this.enabled) return;
    if (this.inflight) {
      this.again = true;
      return;
    }
    this.schedule(0);
  }

  /** Stops the timer, aborts a beat in flight and waits for it to settle. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.abort?.abort();
    const p = this.inflight;
    if (p) await p.catch(() => undefined);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.run(), ms);
    this.timer.unref();
  }

  private run(): void {
    this.timer = null;
    if (this.stopped) return;
    if (this.inflight) {
      this.again = true;
      return;
    }
    this.inflight = this.beatOnce().then((ok) => {
      this.inflight = null;
      if (this.stopped) return;
      if (this.again) {
        this.again = false;
        this.schedule(0);
      } else this.schedule(ok ? this.timings.periodMs : this.backoffMs());
    });
  }

  private backoffMs(): number {
    return heartbeatBackoffMs(this.timings, this.failures, this.random);
  }

  private descriptor(): NodeDescriptor {
    const { config, identity, logger } = this.opts;
    let models: ModelInfo[] = [];
    let inFlight = 0;
    try {
      const s = this.opts.snapshot();
      models = s.models;
      inFlight = s.inFlight;
    } catch (err) {
      logger.warn({ err }, 'heartbeat: model snapshot failed; advertising the default capability');
    }
    const listenPort = this.opts.listenPort?.();
    return buildNodeDescriptor({ config, identity, models, inFlight, ...(listenPort !== undefined ? { listenPort } : {}) });
  }

  /** One POST; resolves true on 2xx. Never rejects. */
  private async beatOnce(): Promise<boolean> {
    const { config, identity, logger } = this.opts;
    const url = `${config.ROUTER_ENDPOINT}/register-node`;
    const ac = new AbortController();
    this.abort = ac;
    const timer = setTimeout(() => ac.abort(new Error(`heartbeat timed out after ${this.timings.timeoutMs} ms`)), this.timings.timeoutMs);
    this.lastAttemptMs = Date.now();
    let ok = false;
    let detail: Record<string, unknown> = {};
    try {
      const body = JSON.stringify(signEnvelope(this.descriptor(), identity));
      const res = await this.fetchImpl(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'fedai-node' },
        body,
        signal: ac.signal,
      });
      const text = await res.text().catch(() => '');
      if (res.ok) ok = true;
      else {
        detail = { status: res.status };
        try {
          const code = (JSON.parse(text.slice(0, MAX_ERROR_BODY)) as { error?: unknown }).error;
          if (typeof code === 'string') detail.error = code.slice(0, 100);
        } catch {
          /* not JSON: status only */
        }
      }
    } catch (err) {
      if (this.stopped) return false;
      detail = { reason: ac.signal.aborted ? 'timeout' : ((err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name) };
    } finally {
      clearTimeout(timer);
      if (this.abort === ac) this.abort = null;
    }
    if (this.stopped) return ok;
    this.opts.metrics?.heartbeat(ok);
    if (ok) {
      this.beats++;
      this.lastOkMs = Date.now();
      if (this.failures > 0) logger.info({ failedAttempts: this.failures }, 'heartbeat: router reachable again');
      else logger.debug('heartbeat sent');
      this.failures = 0;
    } else {
      this.failures++;
      const fields = { ...detail, router: config.ROUTER_ENDPOINT, attempt: this.failures };
      if (this.failures === 1 || this.failures % 10 === 0) logger.warn(fields, 'heartbeat failed; retrying with backoff');
      else logger.debug(fields, 'heartbeat failed');
    }
    return ok;
  }
}
