import { describe, expect, it } from '@jest/globals';
import { FrameGuard, type FrameViolation } from '../../supervisor/runners/frame-guard.js';
import { StderrRing } from '../../supervisor/runners/stderr-ring.js';
import { createHash } from 'node:crypto';

function frame(body: string, extra = ''): Buffer {
  const b = Buffer.from(body, 'utf8');
  return Buffer.concat([Buffer.from(`Content-Length: ${b.length}\r\n${extra}\r\n`), b]);
}

/** Feeds `chunks` through a guard and returns what came out plus the violations. */
async function run(chunks: Buffer[], max = 1024): Promise<{ out: Buffer; violations: [FrameViolation, string][] }> {
  const violations: [FrameViolation, string][] = [];
  const g = new FrameGuard(max, (r, d) => violations.push([r, d]));
  const out: Buffer[] = [];
  g.on('data', (c: Buffer) => out.push(c));
  for (const c of chunks) g.write(c);
  g.end();
  await new Promise((r) => setImmediate(r));
  return { out: Buffer.concat(out), violations };
}

describe('FrameGuard', () => {
  it('passes well-formed frames through unchanged, whatever the chunking', async () => {
    const stream = Buffer.concat([frame('{"a":1}'), frame('{"b":"é"}', 'Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n'), frame('')]);
    const whole = await run([stream]);
    expect(whole.violations).toEqual([]);
    expect(whole.out.equals(stream)).toBe(true);
    const bytes = await run([...stream].map((b) => Buffer.from([b])));
    expect(bytes.violations).toEqual([]);
    expect(bytes.out.equals(stream)).toBe(true);
  });

  it('stray bytes where a header belongs are protocol-garbage, and nothing more is forwarded', async () => {
    const r = await run([frame('{"ok":1}'), Buffer.from('loading weights... 42%\n'), frame('{"late":1}')]);
    expect(r.violations.map((v) => v[0])).toEqual(['protocol-garbage']);
    expect(r.out.equals(frame('{"ok":1}'))).toBe(true);
  });

  it('detects garbage early, before a CRLFCRLF arrives', async () => {
    const r = await run([Buffer.from('hello')]);
    expect(r.violations.map((v) => v[0])).toEqual(['protocol-garbage']);
  });

  it.each([
    ['missing length', 'Content-Type: x\r\n\r\n{}'],
    ['non-numeric length', 'Content-Length: abc\r\n\r\n{}'],
    ['negative length', 'Content-Length: -5\r\n\r\n'],
    ['duplicate length', 'Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}'],
    ['unknown header', 'Content-Length: 2\r\nX-Debug: 1\r\n\r\n{}'],
    ['bare LF framing', 'Content-Length: 2\n\n{}'],
  ])('%s is protocol-garbage', async (_name, text) => {
    const r = await run([Buffer.from(text)]);
    expect(r.violations.map((v) => v[0])).toEqual(['protocol-garbage']);
    expect(r.out.length).toBe(0);
  });

  it('a header block that never ends is protocol-garbage', async () => {
    const r = await run([Buffer.from('Content-Type: ' + 'a'.repeat(2000))]);
    expect(r.violations.map((v) => v[0])).toEqual(['protocol-garbage']);
  });

  it('an oversize Content-Length fails from the header alone, before any body byte', async () => {
    const r = await run([Buffer.from('Content-Length: 104857600\r\n\r\n')], 8 * 1024 * 1024);
    expect(r.violations.map((v) => v[0])).toEqual(['frame-too-large']);
    expect(r.out.length).toBe(0);
    const edge = await run([frame('x'.repeat(1024))], 1024);
    expect(edge.violations).toEqual([]);
    const over = await run([frame('x'.repeat(1025))], 1024);
    expect(over.violations.map((v) => v[0])).toEqual(['frame-too-large']);
  });
});

describe('StderrRing', () => {
  it('keeps only the last 64 KiB and reports size and sha256, not text', () => {
    const ring = new StderrRing();
    ring.push(Buffer.alloc(40_000, 'a'));
    ring.push(Buffer.alloc(40_000, 'b'));
    ring.push(Buffer.from('TAIL'));
    const tail = ring.tail();
    expect(tail.length).toBe(65536);
    expect(tail.subarray(-4).toString()).toBe('TAIL');
    const red = ring.redacted();
    expect(red).toEqual({ stderrBytes: 80_004, stderrTailBytes: 65536, stderrTailSha256: createHash('sha256').update(tail).digest('hex') });
    expect(JSON.stringify(red)).not.toContain('TAIL');
    const big = new StderrRing(10);
    big.push(Buffer.from('0123456789abcdef'));
    expect(big.tail().toString()).toBe('6789abcdef');
    expect(new StderrRing().redacted()).toEqual({ stderrBytes: 0, stderrTailBytes: 0, stderrTailSha256: '' });
  });
});
