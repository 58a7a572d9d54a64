/**
 * The backend adapters through the supervisor's real egress proxy (supervisor/sandbox/egress-proxy.ts),
 * the way a sandboxed runner reaches an attached backend.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdapterError, type RunnerAdapter } from '../../../runner-host/adapter.js';
import { createAdapter as llama } from '../../../runner-host/adapters/llama-cpp.js';
import { createAdapter as vllm } from '../../../runner-host/adapters/vllm.js';
import { createAdapter as httpAdapter } from '../../../runner-host/adapters/http.js';
import { EgressProxy } from '../../../supervisor/sandbox/egress-proxy.js';
import { EndpointAllowlist } from '../../../supervisor/sandbox/endpoint-allowlist.js';
import { startFake, waitFor, type FakeBackend } from './helpers.js';

let dir: string;
let proxy: EgressProxy;
let fl: FakeBackend;
let fv: FakeBackend;
let fh: FakeBackend;
let refused: FakeBackend;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fedai-real-egress-'));
  [fl, fv, fh, refused] = await Promise.all([
    startFake('fake-llama-cpp.mjs', ['--token-delay-ms', '20']),
    startFake('fake-vllm.mjs'),
    startFake('fake-http-backend.mjs', ['--sse']),
    startFake('fake-llama-cpp.mjs'),
  ]);
  proxy = new EgressProxy({ allowlist: new EndpointAllowlist([fl.url, fv.url, fh.url]), socketPath: join(dir, 'egress.sock') });
  await proxy.listen();
});
afterAll(async () => {
  await proxy.close();
  await Promise.all([fl, fv, fh, refused].map((f) => f.stop()));
  rmSync(dir, { recursive: true, force: true });
});

async function run(a: RunnerAdapter, modelId: string): Promise<void> {
  try {
    await a.start();
    const deltas: string[] = [];
    const r = await a.infer({ requestId: 'e-1', modelId, prompt: 'Once upon a time', maxTokens: 4 }, { signal: new AbortController().signal, onDelta: (d) => deltas.push(d) });
    expect(deltas.length).toBeGreaterThan(0);
    expect(deltas.join('')).toBe(r.output);
    expect(await a.health()).toEqual({ ok: true });
  } finally {
    await a.stop();
  }
}

describe('adapters through the real egress proxy', () => {
  test('llama_cpp, vllm and http stream through it', async () => {
    const before = proxy.stats().allowed;
    await run(llama({ FEDAI_BACKEND_URL: fl.url, FEDAI_EGRESS_PROXY: proxy.socketPath }), 'tiny-llama-random');
    await run(vllm({ FEDAI_BACKEND_URL: fv.url, FEDAI_EGRESS_PROXY: proxy.socketPath }), 'facebook/opt-125m');
    await run(httpAdapter({ FEDAI_BACKEND_URL: fh.url, FEDAI_EGRESS_PROXY: proxy.socketPath }), 'http-model');
    expect(proxy.stats().allowed - before).toBeGreaterThanOrEqual(10);
  });

  test('cancellation propagates through the proxy to the backend', async () => {
    const a = llama({ FEDAI_BACKEND_URL: fl.url, FEDAI_EGRESS_PROXY: proxy.socketPath });
    try {
      await a.start();
      const ac = new AbortController();
      const err = await a
        .infer({ requestId: 'e-2', modelId: 'tiny-llama-random', prompt: 'x', maxTokens: 100 }, { signal: ac.signal, onDelta: () => ac.abort() })
        .then(() => undefined, (e: unknown) => e as AdapterError);
      expect(err?.code).toBe('request-cancelled');
      await waitFor(async () => (await fl.stats()).cancelled === 1);
    } finally {
      await a.stop();
    }
  });

  test('a backend outside NODE_SANDBOX_ALLOWED_ENDPOINTS → egress-not-allowed, and the backend never sees a request', async () => {
    const a = llama({ FEDAI_BACKEND_URL: refused.url, FEDAI_EGRESS_PROXY: proxy.socketPath, FEDAI_BACKEND_START_TIMEOUT_MS: '500' });
    const e = await a.start().then(() => undefined, (err: unknown) => err as AdapterError);
    expect(e?.code).toBe('egress-not-allowed');
    expect(await a.health()).toEqual({ ok: false, detail: 'egress-not-allowed' });
    expect((await refused.stats()).requests).toEqual({ '/__fake/stats': 1 });
    await a.stop();
  });
});
