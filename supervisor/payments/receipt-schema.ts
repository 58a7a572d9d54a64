/**
 * Structural checks for the payment envelopes (schemas/ has no payment schema yet; when
 * supervisor/protocol/wire-schemas.ts lands, these stay as the payment-specific layer): exact outer
 * envelope keys, field types, hex formats and length caps. Amount VALUES (positive integers, sums) are
 * not judged here: the gate reports them with their own codes. Returns "path: message" strings, empty
 * when valid.
 */
import type { Envelope } from '../crypto/envelope.js';
import type { PaymentReceipt, PaymentRequest } from '../protocol/wire-types.js';

const ENVELOPE_KEYS = ['keyId', 'nonce', 'payload', 'sig', 'ts'];
const HEX64 = /^[0-9a-fA-F]{64}$/;
const MAX_ID = 256;
const MAX_INVOICE = 7089;
const MAX_SPLITS = 16;

type Problems = string[];

function isObj(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function str(p: Problems, obj: Record<string, unknown>, key: string, path: string, opts: { optional?: boolean; max?: number; min?: number; re?: RegExp; what?: string } = {}): void {
  const v = obj[key];
  if (v === undefined && opts.optional) return;
  if (typeof v !== 'string') return void p.push(`${path}/${key}: must be a string`);
  if (v.length < (opts.min ?? 0)) return void p.push(`${path}/${key}: must not be empty`);
  if (v.length > (opts.max ?? MAX_ID)) return void p.push(`${path}/${key}: longer than ${opts.max ?? MAX_ID} characters`);
  if (opts.re && !opts.re.test(v)) p.push(`${path}/${key}: must be ${opts.what ?? 'well-formed'}`);
}

function num(p: Problems, obj: Record<string, unknown>, key: string, path: string, optional = false): void {
  const v = obj[key];
  if (v === undefined && optional) return;
  if (typeof v !== 'number' || !Number.isFinite(v)) p.push(`${path}/${key}: must be a finite number`);
}

function payee(p: Problems, obj: Record<string, unknown>, path: string): void {
  if (obj.payeeType !== 'node' && obj.payeeType !== 'router') p.push(`${path}/payeeType: must be "node" or "router"`);
  str(p, obj, 'payeeId', path, { min: 1 });
}

function splits(p: Problems, v: unknown, path: string): void {
  if (v === undefined) return;
  if (!Array.isArray(v)) return void p.push(`${path}: must be an array`);
  if (v.length > MAX_SPLITS) return void p.push(`${path}: more than ${MAX_SPLITS} entries`);
  v.forEach((s, i) => {
    const sp = `${path}/${i}`;
    if (!isObj(s)) return void p.push(`${sp}: must be an object`);
    payee(p, s, sp);
    num(p, s, 'amountSats', sp);
    if (s.role !== undefined && s.role !== 'node-inference' && s.role !== 'router-fee' && s.role !== 'other') p.push(`${sp}/role: must be node-inference, router-fee or other`);
  });
}

function envelope(p: Problems, v: unknown): v is Envelope<Record<string, unknown>> {
  if (!isObj(v)) {
    p.push('/: must be an object');
    return false;
  }
  const keys = Object.keys(v).sort();
  for (const k of keys) if (!ENVELOPE_KEYS.includes(k)) p.push(`/${k}: unknown envelope field`);
  for (const k of ENVELOPE_KEYS) if (!(k in v)) p.push(`/${k}: required`);
  str(p, v, 'nonce', '', { min: 1 });
  num(p, v, 'ts', '');
  str(p, v, 'keyId', '', { min: 1, max: 128 });
  str(p, v, 'sig', '', { min: 1, max: 128 });
  if (!isObj(v.payload)) {
    p.push('/payload: must be an object');
    return false;
  }
  return true;
}

export function paymentReceiptEnvelopeProblems(v: unknown): string[] {
  const p: Problems = [];
  if (!envelope(p, v)) return p;
  const r = v.payload;
  str(p, r, 'requestId', '/payload', { min: 1 });
  payee(p, r, '/payload');
  num(p, r, 'amountSats', '/payload');
  num(p, r, 'paidAtMs', '/payload');
  str(p, r, 'paymentHash', '/payload', { optional: true, re: HEX64, what: '64 hex characters' });
  str(p, r, 'preimage', '/payload', { optional: true, re: HEX64, what: '64 hex characters' });
  str(p, r, 'invoice', '/payload', { optional: true, max: MAX_INVOICE });
  splits(p, r.splits, '/payload/splits');
  return p;
}

export function paymentRequestEnvelopeProblems(v: unknown): string[] {
  const p: Problems = [];
  if (!envelope(p, v)) return p;
  const r = v.payload;
  str(p, r, 'requestId', '/payload', { min: 1 });
  payee(p, r, '/payload');
  num(p, r, 'amountSats', '/payload');
  num(p, r, 'expiresAtMs', '/payload');
  str(p, r, 'invoice', '/payload', { max: MAX_INVOICE });
  str(p, r, 'paymentHash', '/payload', { optional: true, re: HEX64, what: '64 hex characters' });
  splits(p, r.splits, '/payload/splits');
  if (r.metadata !== undefined) {
    if (!isObj(r.metadata)) p.push('/payload/metadata: must be an object');
    else for (const [k, mv] of Object.entries(r.metadata)) if (typeof mv !== 'string' && typeof mv !== 'number') p.push(`/payload/metadata/${k}: must be a string or number`);
  }
  return p;
}

export function isPaymentReceiptEnvelope(v: unknown): v is Envelope<PaymentReceipt> {
  return paymentReceiptEnvelopeProblems(v).length === 0;
}

export function isPaymentRequestEnvelope(v: unknown): v is Envelope<PaymentRequest> {
  return paymentRequestEnvelopeProblems(v).length === 0;
}
