import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { join } from 'node:path';
import type { RunnerAdapter } from '../../../runner-host/adapter.js';
import { createAdapter } from '../../../runner-host/adapters/vllm.js';
import type { RunnerInferRequest } from '../../../supervisor/protocol/runner-protocol.js';
import { caught, ctx, perTestBackends } from './adapter-harness.js';
import { FAKES, pidAlive, startFake, startTestProxy, waitFor, type FakeBackend } from './helpers.js';

const MODEL = 'facebook/opt-125m';
const req = (o: Partial<RunnerInferRequest> = {}): RunnerInferRequest => ({ requestId: 'v-1', modelId: MODEL, prompt: 'Once upon a time', maxTokens: 8, ...o });
const { adapter, fake } = perTestBackends(createAdapter, 'fake-vllm.mjs');

describe('vllm adapter', () => {
  let f: FakeBackend;
  let a: RunnerAdapter;
  beforeAll(async () => {
    f = await startFake('fake-vllm.mjs', ['--max-model-len', '1024']);
    a = createAdapter({ FEDAI_BACKEND_URL: f.url });
    await a.start();
  });
  afterAll(async () => {
    await a.stop();
    await f.stop();
  });

  test('models carry the real max_model_len', async () => {
    expect(await a.listModels()).toEqual([{ id: MODEL, contextWindow: 1024, maxTokens: 1024, family: 'vllm' }]);
  });

  test('non-stream infer: OpenAI completion body, usage from the backend', async () => {
    const r = await a.infer(req(), ctx());
    expect(r.output).toBe(" Hello, I'm a fake vLL");
    expect(r.usage).toEqual({ inputTokens: 5, outputTokens: 8 });
    expect(r.finishReason).toBe('length');
    const s = await f.stats();
    expect(s.lastCompletion).toEqual({ fields: ['max_tokens', 'model', 'prompt', 'stream', 'temperature', 'top_p'], stream: false, max_tokens: 8, temperature: 0.7, top_p: 0.95 });
  });

  test('stream infer: deltas concatenate to the output, usage from the final chunk, include_usage asked', async () => {
    const deltas: string[] = [];
    const r = await a.infer(req({ maxTokens: 12, temperature: 0, topP: 0.9 }), ctx({ onDelta: (d) => deltas.push(d) }));
    expect(deltas.length).toBe(12);
    expect(deltas.join('')).toBe(r.output);
    expect(r.usage).toEqual({ inputTokens: 5, outputTokens: 12 });
    const s = await f.stats();
    expect(s.lastCompletion.stream_options).toEqual({ include_usage: true });
    expect(s.lastCompletion.temperature).toBe(0);
    expect(s.lastCompletion.top_p).toBe(0.9);
  });

  test('stop before the limit', async () => {
    const r = await a.infer(req({ prompt: 'x [[eos:2]]' }), ctx({ onDelta: () => {} }));
    expect(r.usage.outputTokens).toBe(2);
    expect(r.finishReason).toBe('stop');
  });

  test('estimate via /tokenize is exact', async () => {
    const e = await a.estimate(req());
    expect(e).toMatchObject({ inputTokens: 5, exact: true, outputTokensMax: 8 });
    expect(e.latencyEstimateMs).toBeGreaterThan(0);
    expect((await f.stats()).lastTokenize.fields).toEqual(['model', 'prompt']);
  });

  test('context errors: maxTokens over the window (local) and prompt+maxTokens over it (backend 400)', async () => {
    expect((await caught(a.infer(req({ maxTokens: 1025 }), ctx()))).code).toBe('context-window-exceeded');
    const e = await caught(a.infer(req({ prompt: Array(30).fill('word').join(' '), maxTokens: 1000 }), ctx()));
    expect(e.code).toBe('context-window-exceeded');
    expect(e.details).toEqual(['status=400', 'type=BadRequestError']);
    expect(JSON.stringify([e.message, e.details])).not.toMatch(/word|maximum context/);
  });

  test('unknown model is refused before the backend', async () => {
    expect((await caught(a.infer(req({ modelId: 'nope' }), ctx()))).code).toBe('model-not-found');
  });

  test('health: /health plus model presence', async () => {
    expect(await a.health()).toEqual({ ok: true });
    expect((await f.stats()).requests['/v1/models']).toBeGreaterThan(1);
  });
});

describe('vllm adapter, own backends', () => {
  test('no max_model_len: 4096 assumed and said so', async () => {
    const f = await fake(['--no-max-model-len', '--model', 'm1']);
    const a = adapter({ FEDAI_BACKEND_URL: f.url, FEDAI_MODEL_ID: 'renamed' });
    await a.start();
    const [m] = await a.listModels();
    expect(m.id).toBe('renamed');
    expect(m.contextWindow).toBe(4096);
    expect(m.family).toMatch(/assumed/);
    expect((await a.infer(req({ modelId: 'renamed', maxTokens: 2 }), ctx())).usage.outputTokens).toBe(2);
    expect((await f.stats()).lastCompletion.fields).toContain('model');
  });

  test('no /tokenize: chars/4 estimate, exact false', async () => {
    const f = await fake(['--no-tokenize']);
    const a = adapter({ FEDAI_BACKEND_URL: f.url });
    await a.start();
    const e = await a.estimate(req({ prompt: 'abcdefghij' }));
    expect(e.exact).toBe(false);
    expect(e.inputTokens).toBe(3);
  });

  test('cancellation aborts the backend stream with partial usage', async () => {
    const f = await fake(['--token-delay-ms', '20']);
    const a = adapter({ FEDAI_BACKEND_URL: f.url });
    await a.start();
    const ac = new AbortController();
    let n = 0;
    const err = await caught(
      a.infer(req({ maxTokens: 200 }), {
        signal: ac.signal,
        onDelta: () => {
          if (++n === 4) ac.abort();
        },
      }),
    );
    expect(err.code).toBe('request-cancelled');
    expect(err.usage?.outputTokens).toBe(4);
    await waitFor(async () => (await f.stats()).cancelled === 1);
    expect((await f.stats()).tokensGenerated).toBeLessThan(200);
  });

  test('API key: used for inference and health; wrong key → authentication, never echoed', async () => {
    const f = await fake(['--api-key', 'vk-secret-1']);
    const good = adapter({ FEDAI_BACKEND_URL: f.url, FEDAI_BACKEND_API_KEY: 'vk-secret-1' });
    await good.start();
    expect((await good.infer(req({ maxTokens: 1 }), ctx())).usage.outputTokens).toBe(1);
    expect(await good.health()).toEqual({ ok: true });
    const bad = adapter({ FEDAI_BACKEND_URL: f.url, FEDAI_BACKEND_API_KEY: 'vk-wrong-2' });
    const e = await caught(bad.start());
    expect(e.code).toBe('backend-error');
    expect(e.details).toContain('authentication');
    expect(JSON.stringify([e.message, e.details])).not.toMatch(/vk-/);
    expect(await bad.health()).toEqual({ ok: false, detail: 'authentication' });
  });

  test('start waits while the server is not yet listening (engine loading)', async () => {
    const { pickFreePort } = await import('../../../runner-host/backend/managed-backend.js');
    const port = await pickFreePort();
    const a = adapter({ FEDAI_BACKEND_URL: `http://127.0.0.1:${port}` });
    expect((await a.health()).ok).toBe(false);
    const started = a.start();
    const f = await fake(['--port', String(port), '--loading-ms', '300']);
    await started;
    expect(f.port).toBe(port);
    expect(await a.health()).toEqual({ ok: true });
  });

  test('managed: started from FEDAI_BACKEND_COMMAND and stopped with the adapter', async () => {
    const a = adapter({ FEDAI_BACKEND_COMMAND: JSON.stringify([process.execPath, join(FAKES, 'fake-vllm.mjs'), '--port', '{port}', '--loading-ms', '200']) });
    await a.start();
    const pid = (a as unknown as { managedBackend: { pid: number } }).managedBackend.pid;
    expect(pidAlive(pid)).toBe(true);
    expect((await a.infer(req({ maxTokens: 3 }), ctx())).usage).toEqual({ inputTokens: 5, outputTokens: 3 });
    await a.stop();
    expect(pidAlive(pid)).toBe(false);
  });

  test('through the egress proxy', async () => {
    const f = await fake();
    const proxy = await startTestProxy([f.url]);
    try {
      const a = adapter({ FEDAI_BACKEND_URL: f.url, FEDAI_EGRESS_PROXY: proxy.socketPath });
      await a.start();
      const deltas: string[] = [];
      const r = await a.infer(req(), ctx({ onDelta: (d) => deltas.push(d) }));
      expect(deltas.join('')).toBe(r.output);
      expect(proxy.seen).toEqual(expect.arrayContaining([`GET ${f.url}/health`, `GET ${f.url}/v1/models`, `POST ${f.url}/v1/completions`]));
    } finally {
      await proxy.close();
    }
  });
});
