import { afterEach, describe, expect, test } from '@jest/globals';
import { configFrom } from '../../supervisor/config/load-config.js';
import { parseIdentity } from '../../supervisor/crypto/keys.js';
import { Heartbeat, heartbeatBackoffMs, heartbeatTimings } from '../../supervisor/heartbeat/heartbeat.js';
import type { ModelInfo } from '../../supervisor/protocol/runner-protocol.js';
import { captureLogger } from '../metering/helpers.js';
import { FakeRouter } from './fake-router.js';

const node = parseIdentity('11'.repeat(32));
const models: ModelInfo[] = [{ id: 'mock-model', contextWindow: 4096, maxTokens: 4096 }];
const live: Array<{ stop: () => Promise<void> }> = [];
afterEach(async () => {
  while (live.length) await live.pop()!.stop();
});

async function router(): Promise<FakeRouter> {
  const r = await new FakeRouter().start();
  live.push({ stop: () => r.close() });
  return r;
}

function heartbeat(r: { url: string } | undefined, env: Record<string, string>, extra: Partial<ConstructorParameters<typeof Heartbeat>[0]> = {}) {
  const cap = captureLogger();
  const results: boolean[] = [];
  let inFlight = 0;
  const hb = new Heartbeat({
    config: configFrom({ ...(r ? { ROUTER_ENDPOINT: r.url } : {}), NODE_ENDPOINT: 'https://node1.example.com', ...env }),
    identity: node,
    logger: cap.logger,
    snapshot: () => ({ models, inFlight }),
    metrics: { heartbeat: (ok) => void results.push(ok) },
    ...extra,
  });
  live.push({ stop: () => hb.stop() });
  return { hb, cap, results, setInFlight: (n: number) => (inFlight = n) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, what: string, timeoutMs = 10000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

describe('Heartbeat', () => {
  test('start() returns at once; beats are node-signed, keyId-consistent and repeat every NODE_HEARTBEAT_MS', async () => {
    const r = await router();
    const { hb, results, setInFlight } = heartbeat(r, { NODE_HEARTBEAT_MS: '150' }, { requestTimeoutMs: 5000 });
    hb.start();
    expect(r.attempts.length).toBe(0); // nothing sent synchronously: start-up is never blocked
    await r.waitForBeats(1);
    setInFlight(2);
    await r.waitForBeats(3);
    const [first, , third] = r.beats;
    expect(first.envelope.keyId).toBe(node.npub);
    expect(first.envelope.payload).toMatchObject({ nodeId: 'node-1', keyId: node.npub, endpoint: 'https://node1.example.com' });
    expect(first.envelope.payload.capabilities[0].modelId).toBe('mock-model');
    expect(third.envelope.payload.capacity).toEqual({ maxConcurrent: 4, currentLoad: 2 });
    expect(new Set(r.beats.map((b) => b.envelope.nonce)).size).toBe(r.beats.length);
    // Periodic, not a busy loop: consecutive successful beats are at least one period apart.
    for (let i = 1; i < r.beats.length; i++) expect(r.beats[i].at - r.beats[i - 1].at).toBeGreaterThanOrEqual(145);
    expect(results.every((x) => x)).toBe(true);
    expect(hb.status()).toMatchObject({ enabled: true, consecutiveFailures: 0 });
  });

  test('router failing: retries with growing backoff, then recovers and logs it', async () => {
    const r = await router();
    r.mode = 'fail503';
    const { hb, cap, results } = heartbeat(r, { NODE_HEARTBEAT_MS: '5000' }, { retryBaseMs: 40, random: () => 0 });
    hb.start();
    await r.waitForAttempts(5);
    await until(() => results.length >= 5, 'five results');
    // random=0 ⇒ delays 20, 40, 80, 160 ms: each gap is at least its delay (timers never fire early).
    const gaps = r.attempts.slice(1, 5).map((t, i) => t - r.attempts[i]);
    [20, 40, 80, 160].forEach((d, i) => expect(gaps[i]).toBeGreaterThanOrEqual(d - 2));
    expect(gaps[3]).toBeGreaterThan(gaps[0]);
    expect(results.slice(0, 5)).toEqual([false, false, false, false, false]);
    const warn = cap.lines().find((l) => l.msg === 'heartbeat failed; retrying with backoff');
    expect(warn).toMatchObject({ level: 'warn', status: 503, error: 'unavailable', attempt: 1 });
    r.mode = 'ok';
    await r.waitForBeats(1);
    await until(() => results.at(-1) === true, 'a successful result');
    expect(cap.lines().some((l) => l.msg === 'heartbeat: router reachable again' && typeof l.failedAttempts === 'number')).toBe(true);
    expect(hb.status().consecutiveFailures).toBe(0);
  });

  test('connection refused, then the router comes up on that port: the node registers', async () => {
    const probe = await new FakeRouter().start();
    const port = probe.port;
    const url = probe.url;
    await probe.close();
    const { hb, results } = heartbeat({ url }, { NODE_HEARTBEAT_MS: '5000' }, { retryBaseMs: 30 });
    hb.start();
    const deadline = Date.now() + 10000;
    while (results.length < 2 && Date.now() < deadline) await sleep(10);
    expect(results.slice(0, 2)).toEqual([false, false]);
    const r = await new FakeRouter().start(port);
    live.push({ stop: () => r.close() });
    await r.waitForBeats(1);
  });

  test('a hanging router is cut off by the request timeout and retried', async () => {
    const r = await router();
    r.mode = 'hang';
    const { hb, cap } = heartbeat(r, { NODE_HEARTBEAT_MS: '5000' }, { requestTimeoutMs: 150, retryBaseMs: 20 });
    hb.start();
    await r.waitForAttempts(2);
    await until(() => cap.lines().some((l) => l.msg === 'heartbeat failed; retrying with backoff'), 'the failure log');
    expect(cap.lines().find((l) => l.msg === 'heartbeat failed; retrying with backoff')).toMatchObject({ reason: 'timeout' });
    r.mode = 'ok';
    await r.waitForBeats(1);
  });

  test('trigger() sends promptly and coalesces; stop() stops', async () => {
    const r = await router();
    const { hb } = heartbeat(r, { NODE_HEARTBEAT_MS: '29000' });
    hb.start();
    await r.waitForBeats(1);
    for (let i = 0; i < 5; i++) hb.trigger();
    await r.waitForBeats(2, 5000); // well before the 29 s period
    await sleep(200);
    expect(r.beats.length).toBe(2);
    await hb.stop();
    hb.trigger();
    await sleep(200);
    expect(r.beats.length).toBe(2);
  });

  test('stop() during a beat in flight aborts it and resolves; nothing is sent afterwards', async () => {
    const r = await router();
    r.mode = 'hang';
    const { hb, results } = heartbeat(r, { NODE_HEARTBEAT_MS: '100' }, { requestTimeoutMs: 20000 });
    hb.start();
    await r.waitForAttempts(1);
    await hb.stop();
    const n = r.attempts.length;
    await sleep(300);
    expect(r.attempts.length).toBe(n);
    expect(results).toEqual([]);
  });

  test('a failing model snapshot still heartbeats with the default capability', async () => {
    const r = await router();
    const { hb } = heartbeat(r, {}, { snapshot: () => { throw new Error('runner not ready'); } });
    hb.start();
    await r.waitForBeats(1);
    expect(r.beats[0].envelope.payload.capabilities).toEqual([
      { modelId: 'default-model', contextWindow: 4096, maxTokens: 4096, pricing: { unit: 'token', inputRate: 0, outputRate: 0, currency: 'SAT' } },
    ]);
  });

  test('router refusal codes are logged by code only; a private endpoint is warned about once at start', async () => {
    const r = await router();
    r.mode = 'reject-400';
    const { hb, cap } = heartbeat(r, { NODE_ENDPOINT: 'http://192.168.1.5:8081', NODE_HEARTBEAT_MS: '5000' }, { retryBaseMs: 1000 });
    hb.start();
    await until(() => cap.lines().some((l) => l.msg === 'heartbeat failed; retrying with backoff'), 'the failure log');
    const lines = cap.lines();
    expect(lines.filter((l) => String(l.msg).includes('endpoint is private')).length).toBe(1);
    expect(lines.find((l) => l.msg === 'heartbeat failed; retrying with backoff')).toMatchObject({ status: 400, error: 'private-ip-blocked' });
  });

  test('ROUTER_ENDPOINT unset: disabled, logged once, nothing is fetched', async () => {
    let calls = 0;
    const { hb, cap } = heartbeat(undefined, {}, { fetchImpl: ((...a: Parameters<typeof fetch>) => (calls++, fetch(...a))) as typeof fetch });
    hb.start();
    hb.start();
    hb.trigger();
    await sleep(100);
    expect(calls).toBe(0);
    expect(cap.lines().filter((l) => String(l.msg).startsWith('heartbeat disabled')).length).toBe(1);
    expect(hb.status().enabled).toBe(false);
  });

  test('timings: default timeout + longest backoff stay within one period, so backoff never makes the node silent 30 s', () => {
    for (const period of [100, 1000, 10000, 29000]) {
      const t = heartbeatTimings(period);
      const worst = Math.max(...Array.from({ length: 40 }, (_, i) => heartbeatBackoffMs(t, i + 1, () => 0.999999)));
      expect(t.timeoutMs + worst).toBeLessThanOrEqual(period);
      expect(t.timeoutMs + worst).toBeLessThan(30000);
    }
    const t = heartbeatTimings(10000);
    expect(t).toEqual({ periodMs: 10000, timeoutMs: 5000, retryBaseMs: 1000, retryCapMs: 5000 });
    expect([1, 2, 3, 4, 5].map((n) => heartbeatBackoffMs(t, n, () => 0))).toEqual([500, 1000, 2000, 2500, 2500]);
    expect(heartbeatBackoffMs(t, 2, () => 0.999999)).toBe(2000);
  });
});
