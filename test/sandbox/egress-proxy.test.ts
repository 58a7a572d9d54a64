import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import http from 'node:http';
import net from 'node:net';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EgressProxy, type RefusalReason } from '../../supervisor/sandbox/egress-proxy.js';
import { EndpointAllowlist } from '../../supervisor/sandbox/endpoint-allowlist.js';
import { captureLogger } from './sandbox-env.js';

let upstream: http.Server;
let upPort: number;
let tlsLike: net.Server;
let tlsPort: number;
let proxy: EgressProxy;
const dir = mkdtempSync(join(tmpdir(), 'fedai-egress-'));
const sock = join(dir, 'egress.sock');
const refusals: RefusalReason[] = [];
const seen: string[] = [];
let sseGate: (() => void) | undefined;
let upstreamAborted: Promise<void> | undefined;
const cap = captureLogger();

beforeAll(async () => {
  upstream = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url} host=${req.headers.host}`);
    if (req.url === '/api/sse') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      let i = 0;
      const next = () => {
        if (i === 3) return res.end('data: [DONE]\n\n');
        res.write(`data: tok${i++}\n\n`);
        // the next token is only sent after the client confirmed the previous one: proves no buffering
        sseGate = next;
      };
      next();
      return;
    }
    if (req.url === '/api/hang') {
      upstreamAborted = new Promise((r) => res.on('close', () => r()));
      res.writeHead(200);
      res.write('partial');
      return;
    }
    if (req.method === 'POST') {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => res.end(`echo:${body}`));
      return;
    }
    res.setHeader('x-upstream', 'yes');
    res.end(`hello ${req.url}`);
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
  upPort = (upstream.address() as net.AddressInfo).port;
  // A raw TCP echo server stands in for an https backend: CONNECT tunnels opaque bytes.
  tlsLike = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => tlsLike.listen(0, '127.0.0.1', () => r()));
  tlsPort = (tlsLike.address() as net.AddressInfo).port;
  proxy = new EgressProxy({
    allowlist: new EndpointAllowlist([`http://127.0.0.1:${upPort}/api`, `https://127.0.0.1:${tlsPort}`]),
    socketPath: sock,
    logger: cap.logger,
    onRefusal: (r) => refusals.push(r),
  });
  await proxy.listen();
});

afterAll(async () => {
  await proxy.close();
  upstream.closeAllConnections();
  await new Promise((r) => upstream.close(r));
  await new Promise((r) => tlsLike.close(r));
  rmSync(dir, { recursive: true, force: true });
});

function get(path: string, opts: { method?: string; body?: string } = {}): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: sock, path, method: opts.method ?? 'GET', headers: { host: 'ignored' } }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

function rawConnect(target: string): Promise<{ head: string; sock: net.Socket }> {
  return new Promise((resolve, reject) => {
    const s = net.connect(sock);
    let buf = '';
    s.on('error', reject);
    s.on('data', function onData(d) {
      buf += d.toString();
      const i = buf.indexOf('\r\n\r\n');
      if (i >= 0) {
        s.off('data', onData);
        resolve({ head: buf, sock: s });
      }
    });
    s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
  });
}

describe('egress proxy on a Unix socket', () => {
  test('the socket is mode 0600', () => {
    expect(statSync(sock).mode & 0o777).toBe(0o600);
  });

  test('forwards an allowed absolute-form GET with the right Host, strips hop-by-hop headers', async () => {
    const r = await get(`http://127.0.0.1:${upPort}/api/models?x=1`);
    expect(r.status).toBe(200);
    expect(r.body).toBe('hello /api/models?x=1');
    expect(r.headers['x-upstream']).toBe('yes');
    expect(seen).toContain(`GET /api/models?x=1 host=127.0.0.1:${upPort}`);
  });

  test('forwards a POST body', async () => {
    const r = await get(`http://127.0.0.1:${upPort}/api/infer`, { method: 'POST', body: '{"a":1}' });
    expect(r.body).toBe('echo:{"a":1}');
  });

  test('refuses look-alikes with 403 {"error":"egress-not-allowed"}, counts them and calls onRefusal', async () => {
    const before = proxy.stats().refused;
    const n0 = seen.length;
    const bad = [
      `http://127.0.0.1:${upPort}/apix`,
      `http://127.0.0.1:${upPort}/`,
      `http://localhost:${upPort}/api`,
      `http://127.0.0.1:${upPort}.evil.com/api`,
      `http://127.0.0.1:${upPort}/api/../admin`,
      `https://127.0.0.1:${tlsPort}/x`,
      `/api/models`,
    ];
    for (const u of bad) {
      const r = await get(u);
      expect([u, r.status, r.body]).toEqual([u, 403, '{"error":"egress-not-allowed"}']);
    }
    expect(proxy.stats().refused - before).toBe(bad.length);
    expect(seen.length).toBe(n0); // nothing reached the upstream
    expect(refusals).toEqual(expect.arrayContaining(['not-allowlisted', 'not-absolute-form', 'https-needs-connect']));
    expect(proxy.stats().refusedByReason['not-absolute-form']).toBeGreaterThanOrEqual(1);
    const logged = cap.lines().filter((l) => l.msg === 'egress proxy: refused');
    expect(logged.length).toBeGreaterThanOrEqual(bad.length);
    // only scheme://host:port is logged, never a path
    expect(JSON.stringify(logged)).not.toMatch(/admin|apix/);
  });

  test('SSE flows token by token (each token is read before the next one is sent)', async () => {
    const tokens: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const req = http.request({ socketPath: sock, path: `http://127.0.0.1:${upPort}/api/sse`, headers: { host: 'x' } }, (res) => {
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          tokens.push(d);
          const g = sseGate;
          sseGate = undefined;
          g?.();
        });
        res.on('end', () => resolve());
      });
      req.on('error', reject);
      req.end();
    });
    expect(tokens.join('')).toBe('data: tok0\n\ndata: tok1\n\ndata: tok2\n\ndata: [DONE]\n\n');
    expect(tokens.length).toBeGreaterThanOrEqual(4);
  });

  test('a client disconnect aborts the upstream request', async () => {
    await new Promise<void>((resolve) => {
      const req = http.request({ socketPath: sock, path: `http://127.0.0.1:${upPort}/api/hang`, headers: { host: 'x' } }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => undefined);
      req.end();
    });
    await expect(upstreamAborted).resolves.toBeUndefined();
  });

  test('CONNECT to an allowed https host:port opens a tunnel', async () => {
    const { head, sock: s } = await rawConnect(`127.0.0.1:${tlsPort}`);
    expect(head).toMatch(/^HTTP\/1.1 200/);
    const echoed = await new Promise<string>((r) => {
      s.once('data', (d) => r(d.toString()));
      s.write('ping-through-tunnel');
    });
    expect(echoed).toBe('ping-through-tunnel');
    s.destroy();
  });

  test('CONNECT to anything else is refused with 403', async () => {
    for (const t of [`127.0.0.1:${upPort}`, `127.0.0.1:${tlsPort + 1}`, `localhost:${tlsPort}`, `127.0.0.1:${tlsPort}.evil.com:443`]) {
      const { head, sock: s } = await rawConnect(t);
      expect([t, head.split('\r\n')[0]]).toEqual([t, 'HTTP/1.1 403 Forbidden']);
      s.destroy();
    }
  });

  test('an upstream that is down gives 502 backend-unavailable, not a hang', async () => {
    const p2 = new EgressProxy({ allowlist: new EndpointAllowlist(['http://127.0.0.1:1/']), socketPath: join(dir, 'p2.sock') });
    await p2.listen();
    try {
      const r = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = http.request({ socketPath: join(dir, 'p2.sock'), path: 'http://127.0.0.1:1/x', headers: { host: 'x' } }, (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode!, body }));
        });
        req.on('error', reject);
        req.end();
      });
      expect(r).toEqual({ status: 502, body: '{"error":"backend-unavailable"}' });
      expect(p2.stats().upstreamErrors).toBe(1);
    } finally {
      await p2.close();
    }
  });
});
