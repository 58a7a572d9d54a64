/**
 * Full signed round trips through a real node and the real mock runner: /infer and /infer/stream,
 * verified envelopes, durable metering (also for cancelled streams), replay refused across a restart.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import http from 'node:http';
import { createHash } from 'node:crypto';
import { checkEnvelopeSignature } from '../../supervisor/crypto/envelope.js';
import { loadNativeSchnorr, useSchnorrBackend } from '../../supervisor/crypto/schnorr.js';
import { startTestNode, parseSse, type TestNode } from '../helpers/test-node.js';

function spoolRecords(dataDir: string): any[] {
  const dir = path.join(dataDir, 'metering');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.jsonl'))
    .sort()
    .flatMap((f) => readFileSync(path.join(dir, f), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)));
}

let t: TestNode;
beforeAll(async () => {
  t = await startTestNode({}, { runnerEnv: { FEDAI_MOCK_TOKEN_DELAY_MS: '5' } });
});
afterAll(async () => t?.stop());

describe('POST /infer', () => {
  it('answers node-signed response and metering envelopes tied to the request, and spools the metering first', async () => {
    const req = t.request({ prompt: 'The quick brown fox', maxTokens: 12 });
    const r = await t.post('/infer', t.sign(req), { 'x-request-id': 'trace-me-1' });
    expect(r.status).toBe(200);
    expect(r.headers.get('x-request-id')).toBe('trace-me-1');
    const { response, metering } = r.json;
    for (const env of [response, metering]) {
      expect(checkEnvelopeSignature(env)).toBeNull();
      expect(env.keyId).toBe(t.node.identity.node.npub);
      expect(env.payload.requestId).toBe(req.requestId);
    }
    expect(response.nonce).not.toBe(metering.nonce);
    expect(response.payload.output.length).toBeGreaterThan(0);
    expect(response.payload.output).not.toContain('quick brown fox');
    expect(response.payload.usage.inputTokens).toBe(5);
    expect(response.payload.usage.outputTokens).toBeGreaterThanOrEqual(1);
    expect(response.payload.usage.outputTokens).toBeLessThanOrEqual(12);
    const m = metering.payload;
    expect(m).toMatchObject({
      requestId: req.requestId,
      nodeId: 'node-1',
      modelId: 'mock-model',
      promptHash: createHash('sha256').update(req.prompt).digest('hex'),
      inputTokens: response.payload.usage.inputTokens,
      outputTokens: response.payload.usage.outputTokens,
      bytesIn: Buffer.byteLength(req.prompt),
      bytesOut: Buffer.byteLength(response.payload.output),
    });
    expect(m.outcome).toBeUndefined();
    const spooled = spoolRecords(t.dataDir).find((e) => e.payload.requestId === req.requestId);
    expect(spooled).toEqual(metering);
    // the spool never holds the prompt
    expect(JSON.stringify(spoolRecords(t.dataDir))).not.toContain('quick brown fox');
  });
});

describe('POST /infer/stream', () => {
  it('streams token-by-token chunks in order, then one signed final whose output is their concatenation', async () => {
    const req = t.request({ prompt: 'stream please', maxTokens: 10 });
    const r = await t.post('/infer/stream', t.sign(req));
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(r.headers.get('cache-control')).toBe('no-cache');
    expect(r.headers.get('x-accel-buffering')).toBe('no');
    const frames = parseSse(r.text);
    const chunks = frames.filter((f) => f.event === 'chunk');
    const finals = frames.filter((f) => f.event === 'final');
    expect(chunks.length).toBeGreaterThan(1);
    expect(finals).toHaveLength(1);
    expect(frames[frames.length - 1]!.event).toBe('final');
    chunks.forEach((c, i) => {
      expect(c.data).toEqual({ requestId: req.requestId, modelId: 'mock-model', delta: expect.any(String), index: i });
    });
    const { response, metering } = finals[0]!.data;
    expect(checkEnvelopeSignature(response)).toBeNull();
    expect(checkEnvelopeSignature(metering)).toBeNull();
    expect(chunks.map((c) => c.data.delta).join('')).toBe(response.payload.output);
    expect(response.payload.usage.outputTokens).toBe(chunks.length);
  });

  it('errors before admission are plain JSON, not a stream', async () => {
    const r = await t.post('/infer/stream', t.sign(t.request({ maxTokens: 0 })));
    expect(r.status).toBe(400);
    expect(r.json.error).toBe('invalid-envelope');
  });

  it('a client that disconnects cancels the runner request; the partial usage is metered as cancelled', async () => {
    const req = t.request({ prompt: 'long one', maxTokens: 400 });
    const body = JSON.stringify(t.sign(req));
    const u = new URL(t.url);
    await new Promise<void>((resolve, reject) => {
      const cr = http.request({ host: u.hostname, port: u.port, path: '/infer/stream', method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
        let seen = 0;
        res.on('data', (d: Buffer) => {
          seen += (d.toString().match(/event: chunk/g) ?? []).length;
          if (seen >= 3) {
            cr.destroy();
            resolve();
          }
        });
        res.on('end', () => reject(new Error('stream ended before we hung up')));
      });
      cr.on('error', () => {});
      cr.end(body);
    });
    let rec: any;
    for (let i = 0; i < 100 && !rec; i++) {
      await new Promise((r) => setTimeout(r, 50));
      rec = spoolRecords(t.dataDir).find((e) => e.payload.requestId === req.requestId);
    }
    expect(rec).toBeDefined();
    expect(checkEnvelopeSignature(rec)).toBeNull();
    expect(rec.payload.outcome).toBe('cancelled');
    expect(rec.payload.outputTokens).toBeGreaterThanOrEqual(3);
    expect(rec.payload.outputTokens).toBeLessThan(400);
    // the slot is released once the runner has settled, right after the record is durable
    let inFlight = -1;
    for (let i = 0; i < 40 && inFlight !== 0; i++) {
      inFlight = ((await (await fetch(`${t.url}/status`)).json()) as { inFlight: number }).inFlight;
      if (inFlight !== 0) await new Promise((r) => setTimeout(r, 25));
    }
    expect(inFlight).toBe(0);
    const st = (await (await fetch(`${t.url}/status`)).json()) as any;
    expect(st.runner.state).toBe('ready');
    expect(st.runner.restarts).toBe(0);
  });
});

describe('replay protection across a restart', () => {
  it('refuses a nonce used before the node restarted (same data dir)', async () => {
    const n1 = await startTestNode();
    const env = n1.sign(n1.request());
    expect((await n1.post('/infer', env)).status).toBe(200);
    const dataDir = n1.dataDir;
    await n1.stop({ keepData: true });
    const n2 = await startTestNode({}, { dataDir });
    try {
      const r = await n2.post('/infer', env);
      expect({ status: r.status, error: r.json.error }).toEqual({ status: 400, error: 'nonce-reused' });
      expect((await n2.post('/infer', n2.sign(n2.request()))).status).toBe(200);
    } finally {
      await n2.stop();
    }
  });
});

describe('GET routes', () => {
  it('/health, /ready, /status and /metrics', async () => {
    expect(await (await fetch(`${t.url}/health`)).json()).toEqual({ ok: true });
    expect((await fetch(`${t.url}/ready`)).status).toBe(200);
    const st = (await (await fetch(`${t.url}/status`)).json()) as any;
    expect(st).toMatchObject({ ok: true, ready: true, nodeId: 'node-1', npub: t.node.identity.node.npub, capacity: { maxConcurrent: 4 }, payments: { requirePayment: false } });
    expect(st.runner.state).toBe('ready');
    const native = 'backend' in loadNativeSchnorr();
    expect(st.crypto).toEqual({ schnorr: native ? 'native' : 'wasm', workers: native ? 1 : 2 });
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(metrics).toMatch(/node_inference_requests_total\{[^}]*status="200"[^}]*\} \d+/);
    expect(metrics).toContain('node_inference_duration_seconds_bucket');
    expect(metrics).toContain('node_time_to_first_token_seconds');
  });
});

describe('NODE_SCHNORR_BACKEND', () => {
  it('wasm: the node reports it and its signed answers verify like the native ones', async () => {
    const n = await startTestNode({ NODE_SCHNORR_BACKEND: 'wasm' });
    try {
      expect(((await (await fetch(`${n.url}/status`)).json()) as any).crypto).toEqual({ schnorr: 'wasm', workers: 2 });
      const r = await n.post('/infer', n.sign(n.request()));
      expect(r.status).toBe(200);
      const body = r.json;
      useSchnorrBackend('auto');
      expect(checkEnvelopeSignature(body.response)).toBeNull();
      expect(checkEnvelopeSignature(body.metering)).toBeNull();
    } finally {
      await n.stop();
      useSchnorrBackend('auto');
    }
  });
});
