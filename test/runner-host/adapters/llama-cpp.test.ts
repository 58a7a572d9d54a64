import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { join } from 'node:path';
import type { RunnerAdapter } from '../../../runner-host/adapter.js';
import { createAdapter } from '../../../runner-host/adapters/llama-cpp.js';
import { BackendClient } from '../../../runner-host/backend/backend-client.js';
import { mapBackendError } from '../../../runner-host/backend/common.js';
import type { RunnerInferRequest } from '../../../supervisor/protocol/runner-protocol.js';
import { caught, ctx, perTestBackends } from './adapter-harness.js';
import { FAKES, pidAlive, startFake, startTestProxy, waitFor, type FakeBackend } from './helpers.js';

const RECORDED_16 = 'unsél вне dispositionurtplementмерикан Abscuss子iver newstringье -> provider';
const req = (o: Partial<RunnerInferRequest> = {}): RunnerInferRequest => ({
  requestId: 'r-1',
  modelId: 'tiny-llama-random',
  prompt: 'Once upon a time',
  maxTokens: 16,
  ...o,
});
const { adapter, fake } = perTestBackends(createAdapter, 'fake-llama-cpp.mjs');

describe('llama_cpp adapter, attached', () => {
  let shared: FakeBackend;
  let a: RunnerAdapter;
  beforeAll(async () => {
    shared = await startFake('fake-llama-cpp.mjs', ['--token-delay-ms', '0']);
    a = createAdapter({ FEDAI_BACKEND_URL: shared.url + '/' });
    await a.start();
  });
  afterAll(async () => {
    await a.stop();
    await shared.stop();
  });

  test('models: id from /v1/models, per-slot context from /props, slots as parallelism', async () => {
    const models = await a.listModels();
    expect(models).toEqual([{ id: 'tiny-llama-random', contextWindow: 128, maxTokens: 128, family: 'llama.cpp', version: 'b4748-c392e5094' }]);
    expect(a.maxParallel()).toBe(2);
    expect(a.capabilities).toEqual({ streaming: true, estimate: true, cancellation: true });
  });

  test('non-stream infer: exact body sent, backend token counts and timings used', async () => {
    const r = await a.infer(req(), ctx());
    expect(r.output).toBe(RECORDED_16);
    expect(r.usage).toEqual({ inputTokens: 5, outputTokens: 16 });
    expect(r.finishReason).toBe('length');
    expect(r.requestId).toBe('r-1');
    expect(Number.isInteger(r.latencyMs)).toBe(true);
    const s = await shared.stats();
    expect(s.lastCompletion).toEqual({ fields: ['cache_prompt', 'n_predict', 'prompt', 'stream', 'temperature', 'top_p'], stream: false, n_predict: 16, temperature: 0.7, top_p: 0.95, cache_prompt: true });
  });

  test('temperature and topP are passed through', async () => {
    await a.infer(req({ temperature: 0, topP: 0.5, maxTokens: 3 }), ctx());
    const s = await shared.stats();
    expect(s.lastCompletion.temperature).toBe(0);
    expect(s.lastCompletion.top_p).toBe(0.5);
    expect(s.lastCompletion.n_predict).toBe(3);
  });

  test('stream infer: one delta per token, concatenation equals the output, usage from the stop event', async () => {
    const deltas: string[] = [];
    const r = await a.infer(req({ prompt: 'The quick brown fox', maxTokens: 20 }), ctx({ onDelta: (d) => deltas.push(d) }));
    expect(deltas.length).toBe(20);
    expect(deltas.join('')).toBe(r.output);
    expect(r.output.startsWith(RECORDED_16)).toBe(true);
    expect(r.usage).toEqual({ inputTokens: 5, outputTokens: 20 });
    expect(typeof r.ttftMs).toBe('number');
    expect((await shared.stats()).lastCompletion.stream).toBe(true);
  });

  test('eos before the limit finishes with stop', async () => {
    const r = await a.infer(req({ prompt: 'tell [[eos:3]]', maxTokens: 10 }), ctx());
    expect(r.usage.outputTokens).toBe(3);
    expect(r.finishReason).toBe('stop');
  });

  test('estimate: exact count from /tokenize with BOS, matching tokens_evaluated', async () => {
    const e = await a.estimate(req());
    expect(e.inputTokens).toBe(5);
    expect(e.exact).toBe(true);
    expect(e.outputTokensMax).toBe(16);
    expect(e.latencyEstimateMs).toBeGreaterThan(0);
    expect((await shared.stats()).lastTokenize).toEqual({ add_special: true });
  });

  test('estimate latency follows observed generation speed', async () => {
    const before = (await a.estimate(req({ maxTokens: 100 }))).latencyEstimateMs;
    // the default guess is 25 ms/token; the fake reports ~0.38 ms/token in its timings
    await a.infer(req({ maxTokens: 16 }), ctx());
    const after = (await a.estimate(req({ maxTokens: 100 }))).latencyEstimateMs;
    expect(after).toBeLessThan(2500);
    expect(after).toBeLessThanOrEqual(before);
  });

  test('invalid requests never reach the backend', async () => {
    const n = (await shared.stats()).completions;
    expect((await caught(a.infer(req({ maxTokens: 0 }), ctx()))).code).toBe('invalid-params');
    expect((await caught(a.infer(req({ maxTokens: 1.5 }), ctx()))).code).toBe('invalid-params');
    expect((await caught(a.infer(req({ maxTokens: 129 }), ctx()))).code).toBe('context-window-exceeded');
    expect((await caught(a.infer(req({ modelId: 'other' }), ctx()))).code).toBe('model-not-found');
    expect((await shared.stats()).completions).toBe(n);
  });

  test('health: ok', async () => {
    expect(await a.health()).toEqual({ ok: true });
  });

  test('500 on malformed JSON maps to backend-error without the message', async () => {
    const c = new BackendClient({ baseUrl: shared.url });
    const res = await c.request({ method: 'POST', path: '/completion', rawBody: '{"prompt": "hi", "n_predict": 4' });
    expect(res.status).toBe(500);
    const err = mapBackendError(res.status, await res.jsonOrUndefined());
    expect(err.code).toBe('backend-error');
    expect(err.details).toEqual(['status=500', 'type=server_error']);
    expect(JSON.stringify(err.details) + err.message).not.toMatch(/parse error|json\.exception/);
  });
});

describe('llama_cpp adapter, behaviours needing their own backend', () => {
  test('FEDAI_MODEL_ID and the alias name the model', async () => {
    const f = await fake(['--alias', 'tiny-llama']);
    const a1 = adapter({ FEDAI_BACKEND_URL: f.url });
    await a1.start();
    expect((await a1.listModels())[0].id).toBe('tiny-llama');
    const a2 = adapter({ FEDAI_BACKEND_URL: f.url, FEDAI_MODEL_ID: 'my-model', FEDAI_MAX_PARALLEL: '1' });
    await a2.start();
    expect((await a2.listModels())[0].id).toBe('my-model');
    expect(a2.maxParallel()).toBe(1);
    const r = await a2.infer(req({ modelId: 'my-model', maxTokens: 2 }), ctx());
    expect(r.modelId).toBe('my-model');
  });

  test('cancellation aborts the backend request and reports partial usage', async () => {
    const f = await fake(['--token-delay-ms', '20']);
    const a = adapter({ FEDAI_BACKEND_URL: f.url });
    await a.start();
    const ac = new AbortController();
    const deltas: string[] = [];
    const p = a.infer(req({ maxTokens: 120 }), {
      signal: ac.signal,
      onDelta: (d) => {
        deltas.push(d);
        if (deltas.length === 3) ac.abort();
      },
    });
    const err = await caught(p);
    expect(err.code).toBe('request-cancelled');
    expect(err.usage?.inputTokens).toBe(5);
    expect(err.usage?.outputTokens).toBe(3);
    await waitFor(async () => (await f.stats()).cancelled === 1);
    const s = await f.stats();
    expect(s.tokensGenerated).toBeLessThan(120);
    expect(s.inFlight).toBe(0);
  });

  test('cancellation of a non-stream request also reaches the backend', async () => {
    const f = await fake(['--token-delay-ms', '20']);
    const a = adapter({ FEDAI_BACKEND_URL: f.url });
    await a.start();
    const ac = new AbortController();
    const p = a.infer(req({ maxTokens: 120 }), { signal: ac.signal });
    await waitFor(async () => (await f.stats()).inFlight === 1);
    ac.abort();
    const err = await caught(p);
    expect(err.code).toBe('request-cancelled');
    expect(err.usage?.outputTokens).toBe(0);
    await waitFor(async () => (await f.stats()).cancelled === 1);
  });

  test('loading phase: health not ok, infer backend-unavailable, start waits for 200', async () => {
    const f = await fake(['--loading-ms', '1500']);
    const a = adapter({ FEDAI_BACKEND_URL: f.url });
    expect(await a.health()).toEqual({ ok: false, detail: 'loading' });
    const err = await caught(a.infer(req(), ctx()));
    expect(err.code).toBe('backend-unavailable');
    expect(err.details).toContain('loading');
    await a.start();
    expect((await f.stats()).requests['/health']).toBeGreaterThan(1);
    expect(await a.health()).toEqual({ ok: true });
    expect((await a.infer(req({ maxTokens: 2 }), ctx())).usage.outputTokens).toBe(2);
  });

  test('start gives up at its deadline while the model is still loading', async () => {
    const f = await fake(['--loading-ms', '60000']);
    const a = adapter({ FEDAI_BACKEND_URL: f.url, FEDAI_BACKEND_START_TIMEOUT_MS: '400' });
    const err = await caught(a.start());
    expect(err.code).toBe('backend-unavailable');
    expect(err.details).toContain('backend-start-timeout');
  });

  test('unreachable backend: health not ok, infer backend-unavailable', async () => {
    const f = await fake();
    const url = f.url;
    await f.stop();
    const a = adapter({ FEDAI_BACKEND_URL: url });
    const h = await a.health();
    expect(h.ok).toBe(false);
    expect(h.detail).toContain('unreachable');
    expect((await caught(a.infer(req(), ctx()))).code).toBe('backend-unavailable');
  });

  test('context exceeded: 400 and the in-stream error line both map to context-window-exceeded', async () => {
    const f = await fake(['--no-context-shift', '--api-key', 'sekrit', '--alias', 'tiny-llama']);
    const a = adapter({ FEDAI_BACKEND_URL: f.url, FEDAI_BACKEND_API_KEY: 'sekrit' });
    await a.start();
    const long = Array(150).fill('hello world').join(' ');
    const r = { modelId: 'tiny-llama', prompt: long, maxTokens: 4 };
    const e1 = await caught(a.infer(req(r), ctx()));
    expect(e1.code).toBe('context-window-exceeded');
    const deltas: string[] = [];
    const e2 = await caught(a.infer(req(r), ctx({ onDelta: (d) => deltas.push(d) })));
    expect(e2.code).toBe('context-window-exceeded');
    expect(deltas).toEqual([]);
    for (const e of [e1, e2]) expect(JSON.stringify([e.message, e.details])).not.toMatch(/hello|exceeds the available|sekrit/);
    // generation filling the slot: 500 "context shift is disabled" (non-stream) / error line (stream)
    const mid = { modelId: 'tiny-llama', prompt: Array(20).fill('word').join(' '), maxTokens: 120 };
    expect((await caught(a.infer(req(mid), ctx()))).code).toBe('context-window-exceeded');
    const e3 = await caught(a.infer(req(mid), ctx({ onDelta: () => {} })));
    expect(e3.code).toBe('context-window-exceeded');
    expect(e3.usage?.outputTokens).toBe(128 - 21);
  });

  test('without --no-context-shift a too-long prompt is truncated by the backend (tokens_evaluated)', async () => {
    const f = await fake();
    const a = adapter({ FEDAI_BACKEND_URL: f.url });
    await a.start();
    const r = await a.infer(req({ prompt: Array(150).fill('hello world').join(' '), maxTokens: 4 }), ctx());
    expect(r.usage).toEqual({ inputTokens: 109, outputTokens: 4 });
  });

  test('API key: sent to the backend, wrong key → backend-error authentication, key never in errors', async () => {
    const f = await fake(['--api-key', 'sekrit-key-123']);
    const good = adapter({ FEDAI_BACKEND_URL: f.url, FEDAI_BACKEND_API_KEY: 'sekrit-key-123' });
    await good.start();
    await good.infer(req({ maxTokens: 2 }), ctx());
    await good.estimate(req());
    expect((await f.stats()).authorized).toBeGreaterThanOrEqual(3); // /props, /completion, /tokenize
    const bad = adapter({ FEDAI_BACKEND_URL: f.url, FEDAI_BACKEND_API_KEY: 'wrong-key-456' });
    const e = await caught(bad.start());
    expect(e.code).toBe('backend-error');
    expect(e.details).toContain('authentication');
    const e2 = await caught(bad.infer(req(), ctx()));
    expect(e2.details).toContain('authentication');
    const e3 = await caught(bad.estimate(req()));
    expect(e3.details).toContain('authentication');
    for (const x of [e, e2, e3]) expect(JSON.stringify([x.message, x.details, x.usage])).not.toMatch(/wrong-key|sekrit|Invalid API Key/);
    expect((await f.stats()).unauthorized).toBeGreaterThanOrEqual(3);
  });

  test('a fresh connection per request by default (keep-alive stall of this build); pooling on request', async () => {
    const f = await fake();
    const fresh = adapter({ FEDAI_BACKEND_URL: f.url });
    await fresh.start();
    // the test's own stats() calls may add a connection of their own: the bounds allow for it
    let c0 = (await f.stats()).connections;
    for (let i = 0; i < 3; i++) await fresh.infer(req({ maxTokens: 1 }), ctx());
    let c1 = (await f.stats()).connections;
    expect(c1 - c0).toBeGreaterThanOrEqual(3);
    const pooled = adapter({ FEDAI_BACKEND_URL: f.url, FEDAI_BACKEND_KEEP_ALIVE: '1' });
    await pooled.start();
    await pooled.infer(req({ maxTokens: 1 }), ctx());
    c0 = (await f.stats()).connections;
    for (let i = 0; i < 3; i++) await pooled.infer(req({ maxTokens: 1 }), ctx());
    c1 = (await f.stats()).connections;
    expect(c1 - c0).toBeLessThanOrEqual(1); // at most the stats call's own connection
  });

  test('requests are queued beyond the slots, never rejected', async () => {
    const f = await fake(['--slots', '1', '--token-delay-ms', '5']);
    const a = adapter({ FEDAI_BACKEND_URL: f.url });
    await a.start();
    expect(a.maxParallel()).toBe(1);
    const rs = await Promise.all([1, 2, 3].map((i) => a.infer(req({ requestId: `r${i}`, maxTokens: 5 }), ctx())));
    expect(rs.map((r) => r.usage.outputTokens)).toEqual([5, 5, 5]);
  });
});

describe('llama_cpp adapter, managed mode', () => {
  const cmd = (extra: string[] = []) => JSON.stringify([process.execPath, join(FAKES, 'fake-llama-cpp.mjs'), '--port', '{port}', ...extra]);

  test('starts the backend, serves, and stop() ends the process', async () => {
    const a = adapter({ FEDAI_BACKEND_COMMAND: cmd(['--loading-ms', '300']) });
    await a.start();
    const m = (a as unknown as { managedBackend: { pid: number; url: string; outputTail(): string } }).managedBackend;
    expect(pidAlive(m.pid)).toBe(true);
    expect(m.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(m.outputTail()).toContain('listening');
    const deltas: string[] = [];
    const r = await a.infer(req({ maxTokens: 4 }), ctx({ onDelta: (d) => deltas.push(d) }));
    expect(deltas.join('')).toBe(r.output);
    expect(r.usage).toEqual({ inputTokens: 5, outputTokens: 4 });
    await a.stop();
    expect(pidAlive(m.pid)).toBe(false);
  });

  test('space-separated command line works too', async () => {
    const a = adapter({ FEDAI_BACKEND_COMMAND: `${process.execPath} ${join(FAKES, 'fake-llama-cpp.mjs')} --port {port}` });
    await a.start();
    expect(await a.health()).toEqual({ ok: true });
  });

  test('a backend that exits during start fails the start with its exit code', async () => {
    const a = adapter({ FEDAI_BACKEND_COMMAND: cmd(['--loading-ms', '400', '--exit-during-load', '3']) });
    const e = await caught(a.start());
    expect(e.code).toBe('backend-unavailable');
    expect(e.details).toEqual(['backend-exited', 'exit-code=3']);
  });

  test('backend death: health not ok, infer unavailable, then restarted', async () => {
    const a = adapter({ FEDAI_BACKEND_COMMAND: cmd() });
    await a.start();
    const m = (a as unknown as { managedBackend: { pid: number; url: string; state: string } }).managedBackend;
    const pid1 = m.pid;
    await fetch(`${m.url}/__fake/crash`, { method: 'POST' });
    await waitFor(() => !pidAlive(pid1));
    await waitFor(() => m.state !== 'ready');
    const h = await a.health();
    expect(h.ok).toBe(false);
    const e = await caught(a.infer(req(), ctx()));
    expect(e.code).toBe('backend-unavailable');
    await waitFor(async () => (await a.health()).ok, 15_000);
    expect(m.pid).not.toBe(pid1);
    expect((await a.infer(req({ maxTokens: 2 }), ctx())).usage.outputTokens).toBe(2);
  });

  test('managed requests bypass the egress proxy', async () => {
    const proxy = await startTestProxy([]);
    try {
      const a = adapter({ FEDAI_BACKEND_COMMAND: cmd(), FEDAI_EGRESS_PROXY: proxy.socketPath });
      await a.start();
      await a.infer(req({ maxTokens: 2 }), ctx());
      expect(proxy.seen).toEqual([]);
    } finally {
      await proxy.close();
    }
  });
});

describe('llama_cpp adapter through the egress proxy', () => {
  test('every request goes through the Unix-socket proxy in absolute form', async () => {
    const f = await fake();
    const proxy = await startTestProxy([f.url]);
    try {
      const a = adapter({ FEDAI_BACKEND_URL: f.url, FEDAI_EGRESS_PROXY: proxy.socketPath });
      await a.start();
      const deltas: string[] = [];
      const r = await a.infer(req({ maxTokens: 5 }), ctx({ onDelta: (d) => deltas.push(d) }));
      expect(deltas.join('')).toBe(r.output);
      await a.estimate(req());
      expect(proxy.seen).toEqual(
        expect.arrayContaining([`GET ${f.url}/health`, `GET ${f.url}/props`, `GET ${f.url}/v1/models`, `POST ${f.url}/completion`, `POST ${f.url}/tokenize`]),
      );
      expect(proxy.seen.every((l) => l.includes(f.url))).toBe(true);
    } finally {
      await proxy.close();
    }
  });

  test('a destination outside the allowlist → egress-not-allowed', async () => {
    const f = await fake();
    const proxy = await startTestProxy(['http://127.0.0.1:1']);
    try {
      const a = adapter({ FEDAI_BACKEND_URL: f.url, FEDAI_EGRESS_PROXY: proxy.socketPath });
      expect((await caught(a.infer(req(), ctx()))).code).toBe('egress-not-allowed');
      expect(await a.health()).toEqual({ ok: false, detail: 'egress-not-allowed' });
      expect((await f.stats()).completions).toBe(0);
    } finally {
      await proxy.close();
    }
  });
});
