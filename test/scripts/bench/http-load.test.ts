/**
 * scripts/bench/http-load.ts: the benchmark's raw keep-alive HTTP/1.1 client against a real node:http
 * server on 127.0.0.1 — content-length and chunked bodies, responses split across packets, a server
 * that closes the connection, non-200 statuses counted as errors, loopback only.
 */
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { httpLoad } from '../../../scripts/bench/http-load.js';

let server: http.Server;
let url: string;
const seen: string[] = [];
const connections = new Set<unknown>();

beforeAll(async () => {
  server = http.createServer((req, res) => {
    connections.add(req.socket);
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => {
      seen.push(body);
      const n = Number(JSON.parse(body).n);
      if (n % 10 === 3) {
        res.statusCode = 429;
        res.end('{"error":"rate-limited"}');
      } else if (n % 10 === 5) {
        res.setHeader('connection', 'close');
        res.end('{"ok":true}');
      } else if (n % 2 === 0) {
        // chunked, written in pieces
        res.write('{"ok":');
        setImmediate(() => res.end('true, "pad":"' + 'x'.repeat(3000) + '"}'));
      } else {
        const payload = Buffer.from(JSON.stringify({ ok: true, pad: 'y'.repeat(70_000) }));
        res.setHeader('content-length', payload.length);
        res.end(payload);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/infer`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

test('every body is sent once; statuses, errors and latencies are counted; closed connections reopen', async () => {
  const bodies = Array.from({ length: 200 }, (_, n) => JSON.stringify({ n }));
  const r = await httpLoad({ url, bodies, concurrency: 4, seconds: 20 });
  expect(seen.sort()).toEqual([...bodies].sort());
  expect(r.statuses).toEqual({ 200: 180, 429: 20 });
  expect(r.errors).toBe(20);
  expect(r.n).toBe(180);
  expect(r.concurrency).toBe(4);
  // 20 responses said "connection: close": the client opened new connections after them
  expect(connections.size).toBeGreaterThan(4);
});

test('refuses anything but loopback', async () => {
  await expect(httpLoad({ url: 'http://192.0.2.1:9/infer', bodies: ['{}'], concurrency: 1, seconds: 1 })).rejects.toThrow(/loopback/);
});
