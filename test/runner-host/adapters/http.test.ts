import { describe, expect, test } from '@jest/globals';
import { AdapterError, type RunnerAdapter } from '../../../runner-host/adapter.js';
import { createAdapter } from '../../../runner-host/adapters/http.js';
import type { RunnerInferRequest } from '../../../supervisor/protocol/runner-protocol.js';
import { caught, ctx, perTestBackends } from './adapter-harness.js';
import { startTestProxy, waitFor, type FakeBackend } from './helpers.js';

const req = (o: Partial<RunnerInferRequest> = {}): RunnerInferRequest => ({ requestId: 'h-1', modelId: 'http-model', prompt: 'one two three', maxTokens: 4, ...o });
const { adapter, fake } = perTestBackends(createAdapter, 'fake-http-backend.mjs');
async function setup(args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<{ a: RunnerAdapter; f: FakeBackend }> {
  const f = await fake(args);
  const a = adapter({ FEDAI_BACKEND_URL: f.url + '/', ...env });
  await a.start();
  return { a, f };
}

describe('http adapter', () => {
  test('models from /models; empty list falls back to FEDAI_MODEL_ID with 4096', async () => {
    const { a } = await setup();
    expect(await a.listModels()).toEqual([{ id: 'http-model', contextWindow: 8192, maxTokens: 2048 }]);
    const { a: b } = await setup(['--models', '[]'], { FEDAI_MODEL_ID: 'fallback-id' });
    expect(await b.listModels()).toEqual([{ id: 'fallback-id', contextWindow: 4096, maxTokens: 4096 }]);
    const { a: c } = await setup(['--models', '[]']);
    expect((await c.listModels())[0].id).toBe('http');
  });

  test('FEDAI_MODEL_ID renames a single backend model; the backend still gets its own id', async () => {
    const { a, f } = await setup([], { FEDAI_MODEL_ID: 'public-name' });
    expect((await a.listModels())[0].id).toBe('public-name');
    const r = await a.infer(req({ modelId: 'public-name' }), ctx());
    expect(r.modelId).toBe('public-name');
    expect((await f.stats()).requests['/infer']).toBe(1);
  });

  test('infer sends only the inference fields — never receipts or metadata (defect 16)', async () => {
    const { a, f } = await setup();
    const leaky = { ...req({ temperature: 0.2, topP: 0.9 }), metadata: { apiKey: 'client-key' }, paymentReceipts: [{ sig: 'x' }], jobType: 'chat' } as RunnerInferRequest;
    const r = await a.infer(leaky, ctx());
    expect((await f.stats()).lastInfer.fields).toEqual(['maxTokens', 'modelId', 'prompt', 'requestId', 'temperature', 'topP']);
    expect(r).toMatchObject({ requestId: 'h-1', modelId: 'http-model', output: 'echo-free output from the', usage: { inputTokens: 3, outputTokens: 4 }, latencyMs: 3 });
    const tp = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    await a.infer(req(), { signal: new AbortController().signal, traceparent: tp });
    expect((await f.stats()).lastInfer.fields).toEqual(['maxTokens', 'modelId', 'prompt', 'requestId']);
    expect((await f.stats()).lastInfer.traceparent).toBe(tp); // trace context travels as a header, not in the body
    await a.infer(req(), { signal: new AbortController().signal, traceparent: 'junk\r\nx: y' });
    expect((await f.stats()).lastInfer.traceparent).toBeUndefined();
  });

  test('a non-integer usage is rejected as a backend error', async () => {
    const { a } = await setup(['--bad-usage']);
    const e = await caught(a.infer(req(), ctx()));
    expect(e.code).toBe('backend-error');
    expect(e.details).toEqual(['invalid-response', 'usage']);
  });

  test('streaming: SSE deltas relayed when the backend streams', async () => {
    const { a, f } = await setup(['--sse']);
    const deltas: string[] = [];
    const r = await a.infer(req({ maxTokens: 6 }), ctx({ onDelta: (d) => deltas.push(d) }));
    expect(deltas).toEqual(['echo-free', ' output', ' from', ' the', ' fake', ' backend']);
    expect(deltas.join('')).toBe(r.output);
    expect((await f.stats()).lastInfer.fields).toContain('stream');
  });

  test('streaming: a backend that answers JSON is relayed as one delta', async () => {
    const { a } = await setup();
    const deltas: string[] = [];
    const r = await a.infer(req(), ctx({ onDelta: (d) => deltas.push(d) }));
    expect(r.output).toBe('echo-free output from the');
    expect(deltas).toEqual([r.output]);
  });

  test('cancellation reaches the backend', async () => {
    const { a, f } = await setup(['--sse', '--token-delay-ms', '100']);
    const ac = new AbortController();
    const e = await caught(a.infer(req({ maxTokens: 6 }), { signal: ac.signal, onDelta: () => ac.abort() }));
    expect(e.code).toBe('request-cancelled');
    expect(e.usage).toEqual({ inputTokens: 4, outputTokens: 1 });
    await waitFor(async () => (await f.stats()).cancelled === 1);
  });

  test('estimate from /estimate; 404 falls back to chars/4', async () => {
    const { a, f } = await setup();
    expect(await a.estimate(req())).toEqual({ inputTokens: 3, exact: true, outputTokensMax: 4, latencyEstimateMs: 42 });
    expect((await f.stats()).lastEstimate.fields).toEqual(['maxTokens', 'modelId', 'prompt', 'requestId']);
    const { a: b } = await setup(['--no-estimate']);
    expect(await b.estimate(req({ prompt: 'abcdefghi' }))).toEqual({ inputTokens: 3, exact: false, outputTokensMax: 4, latencyEstimateMs: 50 });
  });

  test('API key on every route, health included (defect 27); a wrong key never shows up in errors', async () => {
    const { a, f } = await setup(['--api-key', 'hk-good'], { FEDAI_BACKEND_API_KEY: 'hk-good' });
    await a.infer(req(), ctx());
    expect(await a.health()).toEqual({ ok: true });
    const s = await f.stats();
    expect(s.unauthorized).toBe(0);
    expect(s.requests['/health']).toBe(1);
    const bad = adapter({ FEDAI_BACKEND_URL: f.url, FEDAI_BACKEND_API_KEY: 'hk-bad' });
    const e = await caught(bad.start());
    expect(e.details).toContain('authentication');
    expect(JSON.stringify([e.message, e.details])).not.toMatch(/hk-/);
    expect(await bad.health()).toEqual({ ok: false, detail: 'authentication' });
  });

  test('health: non-2xx is not ok; unreachable is not ok', async () => {
    const { a, f } = await setup(['--health-status', '500']);
    expect(await a.health()).toEqual({ ok: false, detail: 'status=500' });
    await f.stop();
    const h = await a.health();
    expect(h.ok).toBe(false);
    expect(h.detail).toMatch(/unreachable/);
    expect((await caught(a.infer(req(), ctx()))).code).toBe('backend-unavailable');
  });

  test('through the egress proxy', async () => {
    const f = await fake();
    const proxy = await startTestProxy([f.url]);
    try {
      const a = adapter({ FEDAI_BACKEND_URL: f.url, FEDAI_EGRESS_PROXY: proxy.socketPath });
      await a.start();
      await a.infer(req(), ctx());
      expect(proxy.seen).toEqual([`GET ${f.url}/models`, `POST ${f.url}/infer`]);
    } finally {
      await proxy.close();
    }
  });

  test('missing FEDAI_BACKEND_URL is a configuration error', () => {
    expect(() => createAdapter({})).toThrow(AdapterError);
  });
});
