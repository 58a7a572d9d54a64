import { describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SseLimitError, SseParser, sseEvents, type SseEvent } from '../../../runner-host/backend/sse.js';
import { FAKES } from './helpers.js';

function recordedBody(name: string): Buffer {
  const raw = readFileSync(join(FAKES, 'llama-cpp-recordings', `${name}.txt`));
  const start = raw.indexOf('\r\n\r\n') + 4;
  const end = raw.lastIndexOf('\n### curl');
  return raw.subarray(start, end);
}

function parseAll(chunks: Array<Uint8Array | string>): SseEvent[] {
  const p = new SseParser();
  const out: SseEvent[] = [];
  for (const c of chunks) out.push(...p.push(c));
  out.push(...p.end());
  return out;
}

function bytewise(b: Buffer): Uint8Array[] {
  return Array.from(b, (x) => Uint8Array.of(x));
}

describe('SSE parser', () => {
  test('the recorded llama.cpp stream, whole and byte by byte (UTF-8 split across chunks), gives 17 events', () => {
    const body = recordedBody('completion_stream');
    const whole = parseAll([body]);
    expect(whole.length).toBe(17);
    expect(whole.every((e) => e.kind === 'data')).toBe(true);
    const contents = whole.map((e) => (e.kind === 'data' ? (JSON.parse(e.data) as { content: string }).content : ''));
    expect(contents.join('')).toBe('unsél вне dispositionurtplementмерикан Abscuss子iver newstringье -> provider');
    expect(parseAll(bytewise(body))).toEqual(whole);
  });

  test("llama.cpp's in-band error line (no data: prefix)", () => {
    const ev = parseAll([recordedBody('err_ctx_exceeded_noshift_stream')]);
    expect(ev).toHaveLength(1);
    expect(ev[0].kind).toBe('error');
    expect(JSON.parse((ev[0] as { data: string }).data)).toMatchObject({ code: 400, type: 'invalid_request_error' });
  });

  test('the /v1 stream ends with [DONE]', () => {
    const ev = parseAll(bytewise(recordedBody('v1_completions_stream')));
    expect(ev.at(-1)).toEqual({ kind: 'done' });
    expect(ev.filter((e) => e.kind === 'data')).toHaveLength(5);
  });

  test('CRLF, CR-only, a CRLF split between chunks, comments, multi-line data and ignored fields', () => {
    expect(parseAll(['data: a\r\n\r\ndata: b\r', '\n\r\ndata: c\r\rdata: [DONE]\n\n'])).toEqual([
      { kind: 'data', data: 'a' },
      { kind: 'data', data: 'b' },
      { kind: 'data', data: 'c' },
      { kind: 'done' },
    ]);
    expect(parseAll([': keep-alive\n', 'event: x\nid: 1\nretry: 5\ndata: l1\ndata:l2\n\n'])).toEqual([{ kind: 'data', data: 'l1\nl2' }]);
  });

  test('an unterminated last event is still delivered at end of stream', () => {
    expect(parseAll(['data: {"x":1}'])).toEqual([{ kind: 'data', data: '{"x":1}' }]);
    expect(parseAll(['data: {"x":1}\n'])).toEqual([{ kind: 'data', data: '{"x":1}' }]);
  });

  test('sseEvents over an async byte stream', async () => {
    async function* gen(): AsyncGenerator<Uint8Array> {
      yield Buffer.from('data: 1\n');
      yield Buffer.from('\ndata: 2\n\n');
    }
    const got: SseEvent[] = [];
    for await (const e of sseEvents(gen())) got.push(e);
    expect(got).toEqual([
      { kind: 'data', data: '1' },
      { kind: 'data', data: '2' },
    ]);
  });
});

describe('SSE parser limits', () => {
  test('an endless line is refused instead of buffered forever', () => {
    const p = new SseParser(100);
    expect(() => p.push('data: ' + 'x'.repeat(200))).toThrow(SseLimitError);
    expect(new SseParser(100).push('data: ' + 'x'.repeat(50) + '\n\n')).toHaveLength(1);
  });
});
