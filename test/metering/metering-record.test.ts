import { describe, expect, test } from '@jest/globals';
import { buildMeteringRecord, sha256Hex } from '../../supervisor/metering/metering-record.js';

describe('buildMeteringRecord', () => {
  test('hashes the prompt, counts UTF-8 bytes and copies usage (vector misc.sha256_hello)', () => {
    const r = buildMeteringRecord({
      request: { requestId: 'r1', prompt: 'hello' },
      nodeId: 'node-1',
      modelId: 'm',
      inputTokens: 2,
      outputTokens: 5,
      wallTimeMs: 12,
      output: 'héllo 😀',
      outcome: 'ok',
      now: 1700000000000,
    });
    expect(r).toEqual({
      requestId: 'r1',
      nodeId: 'node-1',
      modelId: 'm',
      promptHash: '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824',
      inputTokens: 2,
      outputTokens: 5,
      wallTimeMs: 12,
      bytesIn: 5,
      bytesOut: 11,
      ts: 1700000000000,
    });
    expect('outcome' in r).toBe(false);
    expect('paymentRef' in r).toBe(false);
  });

  test('outcome is present only when not ok; paymentRef when given; no content is kept', () => {
    const prompt = 'CANARY-PROMPT-ünïcode';
    const r = buildMeteringRecord({
      request: { requestId: 'r2', prompt },
      nodeId: 'n',
      modelId: 'm',
      inputTokens: 0,
      outputTokens: 0,
      wallTimeMs: 0,
      output: 'CANARY-OUTPUT',
      outcome: 'timeout',
      paymentRef: 'ph',
      now: 1,
    });
    expect(r.outcome).toBe('timeout');
    expect(r.paymentRef).toBe('ph');
    expect(r.promptHash).toBe(sha256Hex(prompt));
    expect(r.bytesIn).toBe(Buffer.byteLength(prompt));
    const text = JSON.stringify(r);
    expect(text).not.toContain('CANARY');
  });

  test('rejects negative or non-finite counts', () => {
    const base = { request: { requestId: 'r', prompt: '' }, nodeId: 'n', modelId: 'm', inputTokens: 0, outputTokens: 0, wallTimeMs: 0, output: '', outcome: 'ok' as const, now: 1 };
    expect(() => buildMeteringRecord({ ...base, inputTokens: -1 })).toThrow(/inputTokens/);
    expect(() => buildMeteringRecord({ ...base, wallTimeMs: Number.NaN })).toThrow(/wallTimeMs/);
  });
});
