/**
 * Pins the error catalogue: shape of every entry, the upstream codes and statuses routers and SDKs
 * already know (fedai-wire.md §5.1, §8), and FedaiError's wire body.
 */
import { describe, expect, test } from '@jest/globals';
import { ERRORS, FedaiError, fromRpcError, isErrorCode, toFedaiError, type ErrorCode } from '../supervisor/errors.js';
import { validateWire } from '../supervisor/protocol/wire-schemas.js';

const codes = Object.keys(ERRORS) as ErrorCode[];

/** Upstream's codes with upstream's exact status (fedai-wire.md §5, §5.1, §8). */
const UPSTREAM: Record<string, number> = {
  // §5 / §5.1 checks in order
  'not-found': 404,
  'payload-too-large': 413,
  'empty-body': 400,
  'invalid-json': 400,
  'invalid-envelope': 400,
  'invalid-key-id': 400,
  'invalid-signature': 401,
  'router-blocked': 403,
  'router-not-allowed': 401,
  'rate-limited': 429,
  'prompt-too-large': 413,
  'max-tokens-exceeded': 400,
  'context-window-exceeded': 400,
  'ts-out-of-window': 400,
  'nonce-reused': 400,
  'node-private-key-missing': 500,
  'runner-timeout': 504,
  'internal-error': 500,
  // Ed25519-era saturation, §5.2 setup mode
  'capacity-exhausted': 429,
  'service-unconfigured': 503,
  // §8 payments
  'payment-required': 402,
  'invalid-payment-receipt': 400,
  'payment-amount-invalid': 400,
  'payment-request-mismatch': 400,
  'payment-split-total-mismatch': 400,
  'router-fee-exceeds-cap': 400,
  'invalid-payment-receipt-signature': 401,
  'preimage-required': 400,
  'payment-proof-missing': 400,
  'payment-verify-failed': 400,
};

/**
 * Where fedai-node deliberately differs from upstream's status for the same code. Pinned so a change
 * is a conscious one. None today: routers and SDKs see upstream's statuses.
 */
const DEVIATIONS: Record<string, { upstream: number; ours: number }> = {};

const JSONRPC_STANDARD = new Set([-32700, -32600, -32601, -32602, -32603]);
const LSP_REQUEST_CANCELLED = -32800;

describe('catalogue shape', () => {
  test.each(codes)('%s: kebab-case, status 400–599, integer rpc code in an allowed range, a message', (code) => {
    const spec = ERRORS[code];
    expect(code).toMatch(/^[a-z0-9]+(-[a-z0-9]+)*$/);
    expect(Number.isInteger(spec.status)).toBe(true);
    expect(spec.status).toBeGreaterThanOrEqual(400);
    expect(spec.status).toBeLessThanOrEqual(599);
    expect(Number.isInteger(spec.rpc)).toBe(true);
    const ours = spec.rpc <= -32000 && spec.rpc >= -32099;
    expect(ours || JSONRPC_STANDARD.has(spec.rpc) || spec.rpc === LSP_REQUEST_CANCELLED).toBe(true);
    expect(typeof spec.message).toBe('string');
    expect(spec.message.length).toBeGreaterThan(0);
  });

  test('retryable codes are the ones a client can retry (429, 499, 5xx)', () => {
    const retryable = codes.filter((code) => (ERRORS[code] as { retryable?: boolean }).retryable === true);
    // the codes clients and routers are told to retry (Retry-After) are among them
    expect(retryable).toEqual(expect.arrayContaining(['rate-limited', 'capacity-exhausted', 'payment-backend-unavailable', 'runner-unavailable']));
    for (const code of retryable) expect([code, [429, 499, 502, 503, 504].includes(ERRORS[code].status)]).toEqual([code, true]);
    // a client fault is never retryable
    for (const code of ['invalid-signature', 'nonce-reused', 'invalid-envelope', 'payment-required'] as ErrorCode[]) expect([code, (ERRORS[code] as { retryable?: boolean }).retryable === true]).toEqual([code, false]);
  });

  test('the catalogue is non-trivial and has no duplicate spellings differing only by case', () => {
    expect(codes.length).toBeGreaterThan(40);
    expect(new Set(codes.map((c) => c.toLowerCase())).size).toBe(codes.length);
  });
});

describe('upstream compatibility', () => {
  test.each(Object.entries(UPSTREAM))('%s keeps upstream status %i', (code, status) => {
    expect(isErrorCode(code)).toBe(true);
    expect(ERRORS[code as ErrorCode].status).toBe(status);
  });

  test('documented deviations from upstream hold (and none is silent)', () => {
    for (const [code, d] of Object.entries(DEVIATIONS)) {
      expect(isErrorCode(code)).toBe(true);
      expect(ERRORS[code as ErrorCode].status).toBe(d.ours);
      expect(d.ours).not.toBe(d.upstream);
    }
    expect(ERRORS['payment-unsettled'].status).toBe(400);
  });

  test('extra fields never overwrite the error code', () => {
    const body = new FedaiError('payment-required', { extra: { error: 'spoofed', payment: { x: 1 } } }).toBody();
    expect(body.error).toBe('payment-required');
    expect(body.payment).toEqual({ x: 1 });
  });

  test('isErrorCode', () => {
    expect(isErrorCode('invalid-signature')).toBe(true);
    expect(isErrorCode('toString')).toBe(false);
    expect(isErrorCode('__proto__')).toBe(false);
    expect(isErrorCode(401)).toBe(false);
  });
});

describe('FedaiError', () => {
  test('status, rpc code, default message, name', () => {
    const e = new FedaiError('invalid-signature');
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('FedaiError');
    expect(e.code).toBe('invalid-signature');
    expect(e.status).toBe(401);
    expect(e.rpcCode).toBe(ERRORS['invalid-signature'].rpc);
    expect(e.message).toBe(`invalid-signature: ${ERRORS['invalid-signature'].message}`);
  });

  test('toBody: {"error": code} alone, with details when non-empty, with extra fields merged', () => {
    expect(new FedaiError('nonce-reused').toBody()).toEqual({ error: 'nonce-reused' });
    expect(JSON.stringify(new FedaiError('nonce-reused').toBody())).toBe('{"error":"nonce-reused"}');
    expect(new FedaiError('invalid-envelope', { details: [] }).toBody()).toEqual({ error: 'invalid-envelope' });
    expect(new FedaiError('invalid-envelope', { details: ['/payload/maxTokens: must be >= 1'] }).toBody()).toEqual({
      error: 'invalid-envelope',
      details: ['/payload/maxTokens: must be >= 1'],
    });
    const payment = { payload: { requestId: 'r' }, nonce: 'n', ts: 1, keyId: 'k', sig: 's' };
    expect(new FedaiError('payment-required', { extra: { payment } }).toBody()).toEqual({ error: 'payment-required', payment });
  });

  test('the cause stays internal: never in the body', () => {
    const e = new FedaiError('internal-error', { cause: new Error('secret backend detail') });
    expect(e.cause).toBeInstanceOf(Error);
    expect(JSON.stringify(e.toBody())).not.toContain('secret');
  });

  test('retryAfterS is carried', () => {
    expect(new FedaiError('rate-limited', { retryAfterS: 7 }).retryAfterS).toBe(7);
    expect(new FedaiError('rate-limited').retryAfterS).toBeUndefined();
  });

  test.each(codes)('%s: the body validates against schemas/error-body.json', (code) => {
    const r = validateWire('error-body', new FedaiError(code, { details: ['x'] }).toBody());
    expect(r.ok ? [] : r.details).toEqual([]);
  });

  test('toFedaiError keeps FedaiErrors and hides anything else as internal-error', () => {
    const e = new FedaiError('runner-timeout');
    expect(toFedaiError(e)).toBe(e);
    const wrapped = toFedaiError(new Error('ECONNREFUSED 10.0.0.1:8080'));
    expect(wrapped.code).toBe('internal-error');
    expect(wrapped.message).not.toContain('ECONNREFUSED');
    expect(toFedaiError('a string').code).toBe('internal-error');
    expect(toFedaiError(undefined).code).toBe('internal-error');
  });

  test('fromRpcError prefers the catalogued code in error.data, then maps JSON-RPC codes', () => {
    expect(fromRpcError(-32009, { code: 'backend-unavailable', details: ['loading'] }).toBody()).toEqual({
      error: 'backend-unavailable',
      details: ['loading'],
    });
    expect(fromRpcError(-32009, { code: 'not-a-code' }).code).toBe('runner-error');
    expect(fromRpcError(-32800, undefined).code).toBe('request-cancelled');
    expect(fromRpcError(-32602, null).code).toBe('invalid-params');
    expect(fromRpcError(-32601, 'x').code).toBe('method-not-found');
    expect(fromRpcError(-1, {}).code).toBe('runner-error');
  });
});
