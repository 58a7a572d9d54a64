/**
 * The fake llama-server is only useful if it is faithful: for every recorded exchange it can reproduce,
 * the status line, the header block (order, spelling, values) and the body bytes must equal the
 * recording's (de-chunked for streams, as curl printed them).
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FAKES, startFake, type FakeBackend } from './helpers.js';

interface Recording {
  method: string;
  path: string;
  body?: string;
  head: string;
  responseBody: Buffer;
}

function load(name: string): Recording {
  const raw = readFileSync(join(FAKES, 'llama-cpp-recordings', `${name}.txt`));
  const text = raw.toString('latin1');
  const req = /^### REQUEST: (\w+) (\S+)/m.exec(text)!;
  const body = /^### BODY: (.*)$/m.exec(text)?.[1];
  const start = text.indexOf('HTTP/1.1 ');
  const headEnd = text.indexOf('\r\n\r\n', start);
  const end = text.lastIndexOf('\n### curl');
  return {
    method: req[1],
    path: req[2],
    body: body === undefined ? undefined : Buffer.from(body, 'latin1').toString('utf8'),
    head: text.slice(start, headEnd),
    responseBody: raw.subarray(headEnd + 4, end),
  };
}

function dechunk(b: Buffer): Buffer {
  const out: Buffer[] = [];
  let i = 0;
  for (;;) {
    const nl = b.indexOf('\r\n', i);
    const size = parseInt(b.subarray(i, nl).toString('latin1'), 16);
    if (!size) break;
    out.push(b.subarray(nl + 2, nl + 2 + size));
    i = nl + 2 + size + 2;
  }
  return Buffer.concat(out);
}

function rawExchange(port: number, method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<{ head: string; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    const parts: Buffer[] = [];
    s.on('data', (d) => parts.push(d));
    s.on('error', reject);
    s.on('close', () => {
      const all = Buffer.concat(parts);
      const he = all.indexOf('\r\n\r\n');
      const head = all.subarray(0, he).toString('latin1');
      const rest = all.subarray(he + 4);
      resolve({ head, body: /Transfer-Encoding: chunked/i.test(head) ? dechunk(rest) : rest });
    });
    const b = body === undefined ? undefined : Buffer.from(body, 'utf8');
    const lines = [`${method} ${path} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close'];
    for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
    if (b) lines.push('Content-Type: application/json', `Content-Length: ${b.length}`);
    s.write(lines.join('\r\n') + '\r\n\r\n');
    if (b) s.write(b);
  });
}

let plain: FakeBackend;
let strict: FakeBackend;
let loading: FakeBackend;
beforeAll(async () => {
  [plain, strict, loading] = await Promise.all([
    startFake('fake-llama-cpp.mjs'),
    startFake('fake-llama-cpp.mjs', ['--api-key', 'sekrit', '--no-context-shift', '--alias', 'tiny-llama']),
    startFake('fake-llama-cpp.mjs', ['--loading-ms', '60000']),
  ]);
});
afterAll(async () => {
  await Promise.all([plain, strict, loading].map((f) => f.stop()));
});

// The model path in these three was shortened after capture; the fake sends the body's real length.
const LENGTH_FIXED = new Set(['props', 'models', 'v1_models']);

describe('fake llama-server replays the recordings byte for byte', () => {
  const cases: Array<[string, () => FakeBackend, Record<string, string>]> = [
    ['health', () => plain, {}],
    ['props', () => plain, {}],
    ['models', () => plain, {}],
    ['v1_models', () => plain, {}],
    ['tokenize', () => plain, {}],
    ['tokenize_pieces', () => plain, {}],
    ['err_tokenize_missing', () => plain, {}],
    ['completion', () => plain, {}],
    ['completion_stream', () => plain, {}],
    ['err_404', () => plain, {}],
    ['err_get_completion', () => plain, {}],
    ['err_malformed_completion', () => plain, {}],
    ['err_missing_prompt', () => plain, {}],
    ['err_prompt_wrongtype', () => plain, {}],
    ['apikey_missing_401', () => strict, {}],
    ['apikey_health_no_key', () => strict, {}],
    ['err_ctx_exceeded_noshift', () => strict, { Authorization: 'Bearer sekrit' }],
    ['err_ctx_exceeded_noshift_stream', () => strict, { Authorization: 'Bearer sekrit' }],
  ];
  test.each(cases)('%s', async (name, fake, headers) => {
    const rec = load(name);
    const got = await rawExchange(fake().port, rec.method, rec.path, rec.body, headers);
    const expectedHead = LENGTH_FIXED.has(name) ? rec.head.replace(/Content-Length: \d+/, `Content-Length: ${got.body.length}`) : rec.head;
    expect(got.head).toBe(expectedHead);
    expect(got.body.equals(rec.responseBody)).toBe(true);
  });

  test.each([
    ['health_loading_503', 'GET', '/health'],
    ['v1_models_loading_503', 'GET', '/v1/models'],
    ['completion_loading_503', 'POST', '/completion'],
  ])('%s', async (name, method, path) => {
    const raw = readFileSync(join(FAKES, 'llama-cpp-recordings', `${name}.txt`), 'latin1');
    const he = raw.indexOf('\r\n\r\n');
    const got = await rawExchange(loading.port, method, path, method === 'POST' ? '{"prompt":"hi","n_predict":2}' : undefined);
    expect(got.head).toBe(raw.slice(0, he));
    expect(got.body.toString('latin1')).toBe(raw.slice(he + 4).replace(/\n$/, ''));
  });
});
