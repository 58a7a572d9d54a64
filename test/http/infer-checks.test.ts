/**
 * Every step of the /infer check order answers its exact status and code (docs/http-api.md), through
 * a real node with the real mock runner. A client fault is never a 5xx.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import http from 'node:http';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { generateIdentity } from '../../supervisor/crypto/keys.js';
import { checkEnvelopeSignature, signEnvelope } from '../../supervisor/crypto/envelope.js';
import { startTestNode, type TestNode } from '../helpers/test-node.js';

let t: TestNode;
const blocked = generateIdentity();

beforeAll(async () => {
  t = await startTestNode({
    NODE_MAX_REQUEST_BYTES: '4096',
    NODE_MAX_PROMPT_BYTES: '2000',
    NODE_MAX_TOKENS: '512',
    NODE_ROUTER_BLOCK: blocked.npub,
  });
});
afterAll(async () => t?.stop());

async function expectError(res: Promise<{ status: number; json: any; headers: Headers }>, status: number, code: string) {
  const r = await res;
  expect({ status: r.status, error: r.json?.error }).toEqual({ status, error: code });
  expect(r.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/); // generated when the client sends none
  return r;
}

function rawPost(url: string, chunks: Buffer[], headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    for (const c of chunks) req.write(c);
    req.end();
  });
}

describe('/infer check order', () => {
  it('1. 413 payload-too-large for a declared or a streamed (chunked) body over the limit', async () => {
    await expectError(t.post('/infer', 'x'.repeat(5000)), 413, 'payload-too-large');
    const r = await rawPost(`${t.url}/infer`, [Buffer.alloc(3000, 'a'), Buffer.alloc(3000, 'b')], { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    expect(r.status).toBe(413);
    expect(JSON.parse(r.body).error).toBe('payload-too-large');
  });

  it('1. 400 empty-body and 2. 400 invalid-json', async () => {
    await expectError(t.post('/infer', ''), 400, 'empty-body');
    await expectError(t.post('/infer', '{"payload":'), 400, 'invalid-json');
  });

  it('3. 400 invalid-envelope: extra top-level key, bad maxTokens, missing fields; details name the path', async () => {
    const env = t.sign(t.request());
    const r = await expectError(t.post('/infer', { ...env, extra: 1 }), 400, 'invalid-envelope');
    expect(JSON.stringify(r.json.details)).toMatch(/extra|additional/);
    for (const maxTokens of [-1, 0, 1.5, '8']) {
      const bad = await expectError(t.post('/infer', t.sign(t.request({ maxTokens: maxTokens as number }))), 400, 'invalid-envelope');
      expect(JSON.stringify(bad.json.details)).toContain('maxTokens');
    }
    await expectError(t.post('/infer', { payload: {}, nonce: 'n', ts: Date.now(), keyId: t.router.npub, sig: 'x' }), 400, 'invalid-envelope');
    await expectError(t.post('/infer', []), 400, 'invalid-envelope');
  });

  it('4. 400 invalid-key-id when keyId is hex, not an npub', async () => {
    const env = t.sign(t.request());
    await expectError(t.post('/infer', { ...env, keyId: t.router.pubHex }), 400, 'invalid-key-id');
  });

  it('5. 403 router-blocked and 401 router-not-allowed', async () => {
    await expectError(t.post('/infer', signEnvelope(t.request(), blocked)), 403, 'router-blocked');
    await expectError(t.post('/infer', signEnvelope(t.request(), generateIdentity())), 401, 'router-not-allowed');
  });

  it('6. 401 invalid-signature for a tampered payload, a short, empty or non-base64 sig — never a 500', async () => {
    const env = t.sign(t.request());
    await expectError(t.post('/infer', { ...env, payload: { ...(env.payload as object), prompt: 'tampered' } }), 401, 'invalid-signature');
    await expectError(t.post('/infer', { ...env, ts: env.ts + 1 }), 401, 'invalid-signature');
    await expectError(t.post('/infer', { ...env, sig: env.sig.slice(0, 40) }), 401, 'invalid-signature');
    await expectError(t.post('/infer', { ...env, sig: '' }), 401, 'invalid-signature');
    await expectError(t.post('/infer', { ...env, sig: '!'.repeat(88) }), 401, 'invalid-signature');
    // a valid signature by another trusted-looking key over the same payload does not pass either
    await expectError(t.post('/infer', { ...signEnvelope(env.payload, generateIdentity(), { nonce: env.nonce, ts: env.ts }), keyId: t.router.npub }), 401, 'invalid-signature');
  });

  it('8. 400 ts-out-of-window in both directions and 400 nonce-reused for a replay', async () => {
    await expectError(t.post('/infer', t.sign(t.request(), { ts: Date.now() - 6 * 60_000 })), 400, 'ts-out-of-window');
    await expectError(t.post('/infer', t.sign(t.request(), { ts: Date.now() + 6 * 60_000 })), 400, 'ts-out-of-window');
    const env = t.sign(t.request());
    expect((await t.post('/infer', env)).status).toBe(200);
    await expectError(t.post('/infer', env), 400, 'nonce-reused');
  });

  it('9. 413 prompt-too-large and 400 max-tokens-exceeded', async () => {
    await expectError(t.post('/infer', t.sign(t.request({ prompt: 'é'.repeat(1001) }))), 413, 'prompt-too-large');
    await expectError(t.post('/infer', t.sign(t.request({ maxTokens: 513 }))), 400, 'max-tokens-exceeded');
  });

  it('10. 404 model-not-found; "auto" picks the served model', async () => {
    await expectError(t.post('/infer', t.sign(t.request({ modelId: 'gpt-imaginary' }))), 404, 'model-not-found');
    const ok = await t.post('/infer', t.sign(t.request({ modelId: 'auto' })));
    expect(ok.status).toBe(200);
    expect(ok.json.response.payload.modelId).toBe('mock-model');
  });

  it('a refused request consumes nothing: the same nonce is accepted once the request is valid', async () => {
    const nonce = `n-${Date.now()}`;
    await expectError(t.post('/infer', t.sign(t.request({ maxTokens: 513 }), { nonce })), 400, 'max-tokens-exceeded');
    await expectError(t.post('/infer', { ...t.sign(t.request(), { nonce }), sig: 'A'.repeat(86) + '==' }), 401, 'invalid-signature');
    expect((await t.post('/infer', t.sign(t.request(), { nonce }))).status).toBe(200);
  });

  it('nonces are scoped per signer: another trusted key may use the same nonce', async () => {
    // two allowed routers use the same nonce string on one node
    const first = generateIdentity();
    const second = generateIdentity();
    const n2 = await startTestNode({ NODE_ROUTER_ALLOWLIST: `${first.npub},${second.npub}` });
    try {
      const nonce = 'shared-nonce-1';
      expect((await n2.post('/infer', signEnvelope(n2.request(), first, { nonce }))).status).toBe(200);
      expect((await n2.post('/infer', signEnvelope(n2.request(), second, { nonce }))).status).toBe(200);
      for (const signer of [first, second]) {
        const again = await n2.post('/infer', signEnvelope(n2.request(), signer, { nonce }));
        expect({ status: again.status, error: again.json.error }).toEqual({ status: 400, error: 'nonce-reused' });
      }
    } finally {
      await n2.stop();
    }
  });

  it('404 not-found for unknown routes and 405 for the wrong method; x-request-id is echoed', async () => {
    const r = await fetch(`${t.url}/nope`, { headers: { 'x-request-id': 'abc-123' } });
    expect(r.status).toBe(404);
    expect(await r.json()).toEqual({ error: 'not-found' });
    expect(r.headers.get('x-request-id')).toBe('abc-123');
    const g = await fetch(`${t.url}/infer`);
    expect(g.status).toBe(405);
    expect(((await g.json()) as { error: string }).error).toBe('method-not-allowed');
    const bad = await fetch(`${t.url}/health`, { headers: { 'x-request-id': 'bad id with spaces' } });
    expect(bad.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('/infer limits that need their own node', () => {
  it('10. 400 context-window-exceeded when prompt tokens + maxTokens exceed the model window', async () => {
    const n = await startTestNode({ NODE_MAX_TOKENS: '4096' });
    try {
      const r = await n.post('/infer', n.sign(n.request({ prompt: 'word '.repeat(3200), maxTokens: 1024 })));
      expect({ status: r.status, error: r.json.error }).toEqual({ status: 400, error: 'context-window-exceeded' });
    } finally {
      await n.stop();
    }
  });

  it('12. 429 capacity-exhausted with Retry-After when load + in-flight reach NODE_CAPACITY_MAX', async () => {
    const n = await startTestNode({ NODE_CAPACITY_MAX: '2', NODE_CAPACITY_LOAD: '2' });
    try {
      const r = await n.post('/infer', n.sign(n.request()));
      expect({ status: r.status, error: r.json.error }).toEqual({ status: 429, error: 'capacity-exhausted' });
      expect(r.headers.get('retry-after')).toBe('1');
    } finally {
      await n.stop();
    }
  });

  it('7. 429 rate-limited per signer', async () => {
    const n = await startTestNode({ NODE_RATE_LIMIT_MAX: '2', NODE_RATE_LIMIT_WINDOW_MS: '60000' });
    try {
      expect((await n.post('/infer', n.sign(n.request()))).status).toBe(200);
      expect((await n.post('/infer', n.sign(n.request()))).status).toBe(200);
      const r = await n.post('/infer', n.sign(n.request()));
      expect({ status: r.status, error: r.json.error }).toEqual({ status: 429, error: 'rate-limited' });
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
    } finally {
      await n.stop();
    }
  });

  it('13. 504 runner-timeout when the runner misses NODE_RUNNER_TIMEOUT_MS, metered as a timeout', async () => {
    const n = await startTestNode({ NODE_RUNNER_TIMEOUT_MS: '300', NODE_RUNNER_KILL_GRACE_MS: '500' }, { runnerEnv: { FEDAI_MOCK_TOKEN_DELAY_MS: '200' } });
    try {
      const req = n.request({ maxTokens: 64 });
      const r = await n.post('/infer', n.sign(req));
      expect({ status: r.status, error: r.json.error }).toEqual({ status: 504, error: 'runner-timeout' });
      const dir = path.join(n.dataDir, 'metering');
      const records = readdirSync(dir).flatMap((f) => readFileSync(path.join(dir, f), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)));
      const rec = records.find((e) => e.payload.requestId === req.requestId);
      expect(rec?.payload.outcome).toBe('timeout');
      expect(checkEnvelopeSignature(rec)).toBeNull();
    } finally {
      await n.stop();
    }
  });

  it('production refuses to start without router trust (fail closed)', async () => {
    await expect(startTestNode({ NODE_ENV: 'production' })).rejects.toThrow(/NODE_PRIVATE_KEY_PEM|trusted router/);
  });
});
