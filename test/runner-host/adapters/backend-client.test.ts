import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { BackendClient, stripTrailingSlash } from '../../../runner-host/backend/backend-client.js';
import { caught } from './adapter-harness.js';
import { startTestProxy, waitFor } from './helpers.js';

const connections = { http: 0, https: 0 };
const seenAuth: string[] = [];
const handler: http.RequestListener = (req, res) => {
  seenAuth.push(String(req.headers.authorization ?? ''));
  if (req.url === '/slow') return; // never answers
  if (req.url === '/big') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('"' + 'x'.repeat(5000) + '"');
    return;
  }
  if (req.url === '/not-json') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('NOT-JSON-BODY-3c1e');
    return;
  }
  const b = JSON.stringify({ path: req.url, method: req.method });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(b) });
  res.end(b);
};
let plain: http.Server;
let secure: https.Server;
let plainUrl: string;
let secureUrl: string;
let ca: string;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fedai-tls-'));
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=fedai-test', '-addext', 'subjectAltName=IP:127.0.0.1',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
  ], { stdio: 'ignore' });
  ca = readFileSync(join(dir, 'cert.pem'), 'utf8');
  plain = http.createServer(handler);
  plain.on('connection', () => connections.http++);
  secure = https.createServer({ key: readFileSync(join(dir, 'key.pem')), cert: ca }, handler);
  secure.on('secureConnection', () => connections.https++);
  await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
  await new Promise<void>((r) => secure.listen(0, '127.0.0.1', r));
  plainUrl = `http://127.0.0.1:${(plain.address() as AddressInfo).port}`;
  secureUrl = `https://127.0.0.1:${(secure.address() as AddressInfo).port}`;
});
afterAll(async () => {
  plain.closeAllConnections();
  secure.closeAllConnections();
  await new Promise((r) => plain.close(r));
  await new Promise((r) => secure.close(r));
  rmSync(dir, { recursive: true, force: true });
});

describe('backend client', () => {
  test('base URL trailing slashes are stripped; the key goes out as a bearer token', async () => {
    expect(stripTrailingSlash('http://h:1/api//')).toBe('http://h:1/api');
    const c = new BackendClient({ baseUrl: plainUrl + '/', apiKey: 'k-1' });
    const r = await c.getJson('/x?y=1');
    expect(r).toEqual({ status: 200, body: { path: '/x?y=1', method: 'GET' } });
    expect(seenAuth.at(-1)).toBe('Bearer k-1');
    const res = await c.request({ path: '/no-auth', auth: false });
    res.dispose();
    expect(seenAuth.at(-1)).toBe('');
  });

  test('fresh connection per request by default; keep-alive reuses one', async () => {
    const fresh = new BackendClient({ baseUrl: plainUrl });
    let before = connections.http;
    for (let i = 0; i < 3; i++) await fresh.getJson('/a');
    expect(connections.http - before).toBe(3);
    const pooled = new BackendClient({ baseUrl: plainUrl, keepAlive: true });
    before = connections.http;
    for (let i = 0; i < 3; i++) await pooled.getJson('/a');
    expect(connections.http - before).toBe(1);
    pooled.close();
  });

  test('https directly, with an extra CA', async () => {
    const c = new BackendClient({ baseUrl: secureUrl, ca });
    expect((await c.getJson('/tls')).body).toEqual({ path: '/tls', method: 'GET' });
    const untrusted = new BackendClient({ baseUrl: secureUrl });
    expect((await caught(untrusted.getJson('/tls'))).code).toBe('backend-unavailable');
  });

  test('https through the egress proxy: CONNECT, then TLS end to end', async () => {
    const proxy = await startTestProxy([secureUrl]);
    try {
      const before = connections.https;
      const c = new BackendClient({ baseUrl: secureUrl, ca, egressProxy: proxy.socketPath, apiKey: 'k-tls' });
      const r = await c.request({ method: 'POST', path: '/p', json: { a: 1 } });
      expect(await r.json()).toEqual({ path: '/p', method: 'POST' });
      expect(proxy.seen).toEqual([`CONNECT ${secureUrl.slice('https://'.length)}`]);
      expect(connections.https - before).toBe(1);
      expect(seenAuth.at(-1)).toBe('Bearer k-tls');
      await waitFor(() => proxy.openTunnels() === 0, 5_000); // the tunnel is closed with the response
    } finally {
      await proxy.close();
    }
  });

  test('the proxy refusing a CONNECT or a plain request → egress-not-allowed', async () => {
    const proxy = await startTestProxy([]);
    try {
      const e1 = await caught(new BackendClient({ baseUrl: secureUrl, ca, egressProxy: proxy.socketPath }).getJson('/'));
      expect(e1.code).toBe('egress-not-allowed');
      const e2 = await caught(new BackendClient({ baseUrl: plainUrl, egressProxy: proxy.socketPath }).getJson('/'));
      expect(e2.code).toBe('egress-not-allowed');
      expect(e2.details).toEqual([plainUrl]);
    } finally {
      await proxy.close();
    }
  });

  test('a missing proxy socket is backend-unavailable', async () => {
    const e = await caught(new BackendClient({ baseUrl: plainUrl, egressProxy: join(tmpdir(), 'no-such-egress.sock') }).getJson('/'));
    expect(e.code).toBe('backend-unavailable');
    expect(e.details?.[0]).toBe('unreachable');
  });

  test('timeout and abort', async () => {
    const c = new BackendClient({ baseUrl: plainUrl });
    const e = await caught(c.request({ path: '/slow', timeoutMs: 150 }));
    expect(e.code).toBe('backend-unavailable');
    expect(e.details).toEqual(['timeout']);
    const ac = new AbortController();
    const p = c.request({ path: '/slow', signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    expect((await caught(p)).code).toBe('request-cancelled');
    const pre = new AbortController();
    pre.abort();
    expect((await caught(c.request({ path: '/a', signal: pre.signal }))).code).toBe('request-cancelled');
  });

  test('bodies over the limit are refused; non-JSON is a backend error', async () => {
    const c = new BackendClient({ baseUrl: plainUrl, maxBodyBytes: 1000 });
    const r = await c.request({ path: '/big' });
    const e = await caught(r.text());
    expect(e.code).toBe('backend-error');
    expect(e.details).toEqual(['body-too-large']);
    const e2 = await caught((await c.request({ path: '/not-json' })).json());
    expect(e2.code).toBe('backend-error');
    expect(e2.details).toEqual(['status=200', 'invalid-json']);
    expect(JSON.stringify([e2.message, e2.details])).not.toContain('NOT-JSON-BODY'); // the body itself is never reported
  });
});
