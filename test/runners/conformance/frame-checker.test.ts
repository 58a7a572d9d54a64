import { describe, expect, it } from '@jest/globals';
import { FrameChecker } from '../../../supervisor/runners/conformance/frame-checker.js';

function frame(msg: unknown, extraHeaders = ''): Buffer {
  const body = Buffer.from(JSON.stringify(msg), 'utf8');
  return Buffer.concat([Buffer.from(`Content-Length: ${body.length}\r\n${extraHeaders}\r\n`, 'latin1'), body]);
}

const A = { jsonrpc: '2.0', id: 1, result: { output: 'héllo → 世界 🙂' } };
const B = { jsonrpc: '2.0', method: 'infer/chunk', params: { streamId: 's', index: 0, delta: 'x' } };

describe('FrameChecker', () => {
  it('accepts well-formed frames, counting Content-Length in bytes of UTF-8, even split byte by byte', () => {
    const seen: Buffer[] = [];
    const fc = new FrameChecker(undefined, (f) => seen.push(f));
    const bytes = Buffer.concat([frame(A), frame(B, 'Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n')]);
    for (const b of bytes) fc.push(Buffer.from([b]));
    fc.end();
    expect(fc.issues).toEqual([]);
    expect(fc.frames).toBe(2);
    expect(Buffer.concat(seen).equals(bytes)).toBe(true);
  });

  it('reports a banner as one noise issue and resynchronises at the next frame', () => {
    const seen: Buffer[] = [];
    const fc = new FrameChecker(undefined, (f) => seen.push(f));
    fc.push('my runner v1 starting...\n');
    fc.push(Buffer.concat([frame(A), Buffer.from('debug: done\n'), frame(B)]));
    fc.end();
    expect(fc.frames).toBe(2);
    expect(seen).toHaveLength(2);
    expect(fc.issues.map((i) => i.kind)).toEqual(['noise', 'noise']);
    expect(fc.issues[0]).toMatchObject({ offset: 0 });
    expect(fc.issues[0].detail).toContain('25 byte(s)');
  });

  it('reports bad headers, bad JSON, non-JSON-RPC bodies and a truncated tail', () => {
    const fc = new FrameChecker();
    fc.push('Content-Length: 2\r\nX-Thing: 1\r\n\r\n{}');
    fc.push('Content-Length: 5\r\n\r\nnope!');
    fc.push('Content-Length: 2\r\n\r\n{}');
    fc.push('Content-Length: 10\r\n\r\n{"jso');
    fc.end();
    expect(fc.issues.map((i) => i.kind)).toEqual(['bad-header', 'bad-json', 'not-jsonrpc', 'truncated']);
    expect(fc.frames).toBe(0);
  });

  it('rejects a body that is not UTF-8 and a frame over the cap', () => {
    const bad = new FrameChecker();
    bad.push(Buffer.concat([Buffer.from('Content-Length: 2\r\n\r\n', 'latin1'), Buffer.from([0xc3, 0x28])]));
    expect(bad.issues.map((i) => i.kind)).toEqual(['bad-utf8']);
    const big = new FrameChecker(1024);
    big.push(`Content-Length: 4096\r\n\r\n`);
    expect(big.issues.map((i) => i.kind)).toEqual(['oversize']);
    big.push(frame(A));
    expect(big.frames).toBe(0);
  });
});
