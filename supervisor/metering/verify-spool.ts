/**
 * Re-verifies a metering spool file: every line must be a well-formed Envelope<MeteringRecord> whose
 * BIP-340 signature verifies under its keyId. Totals are summed over valid records only.
 * A torn (unterminated) last line is reported as `torn` and not counted as a record: such a record was
 * never acknowledged by the spool (see metering-spool.ts); the spool removes it on its next open.
 */
import { readFile } from 'node:fs/promises';
import { checkEnvelopeSignature, type Envelope } from '../crypto/envelope.js';
import type { MeteringRecord } from '../protocol/wire-types.js';
import { METERING_OUTCOMES } from './metering-record.js';

export interface MeteringTotals {
  records: number;
  inputTokens: number;
  outputTokens: number;
  bytesIn: number;
  bytesOut: number;
  wallTimeMs: number;
}

export interface SpoolVerification {
  /** Complete lines seen (valid + invalid); a torn last line is not counted. */
  records: number;
  valid: number;
  /** 1-based line numbers. */
  invalid: Array<{ line: number; reason: string }>;
  /** True when the file ends in an unterminated line. */
  torn: boolean;
  totals: Omit<MeteringTotals, 'records'>;
  byModel: Record<string, MeteringTotals>;
  /** Outcome counts of valid records ('ok' when absent). */
  byOutcome: Record<string, number>;
  /** Distinct keyIds (npubs) of valid records, sorted. */
  signers: string[];
  /** Valid records per signer. */
  bySigner: Record<string, number>;
}

const HEX64 = /^[0-9a-f]{64}$/;

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0;
}

/** Shape check of an Envelope<MeteringRecord>; returns a reason, or null when it looks right. */
export function meteringShapeProblem(v: unknown): string | null {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return 'not an object';
  const env = v as Record<string, unknown>;
  for (const k of Object.keys(env)) {
    if (!['payload', 'nonce', 'ts', 'keyId', 'sig'].includes(k)) return `unexpected envelope field "${k}"`;
  }
  if (typeof env.nonce !== 'string' || env.nonce.length === 0) return 'nonce must be a non-empty string';
  if (typeof env.ts !== 'number' || !Number.isFinite(env.ts)) return 'ts must be a number';
  if (typeof env.keyId !== 'string') return 'keyId must be a string';
  if (typeof env.sig !== 'string') return 'sig must be a string';
  const p = env.payload as Record<string, unknown> | null;
  if (p === null || typeof p !== 'object' || Array.isArray(p)) return 'payload must be an object';
  for (const k of ['requestId', 'nodeId', 'modelId'] as const) {
    if (typeof p[k] !== 'string' || (p[k] as string).length === 0) return `payload.${k} must be a non-empty string`;
  }
  if (typeof p.promptHash !== 'string' || !HEX64.test(p.promptHash)) return 'payload.promptHash must be 64 lowercase hex';
  for (const k of ['inputTokens', 'outputTokens', 'wallTimeMs', 'bytesIn', 'bytesOut'] as const) {
    if (!isCount(p[k])) return `payload.${k} must be a number ≥ 0`;
  }
  for (const k of ['inputTokens', 'outputTokens', 'bytesIn', 'bytesOut'] as const) {
    if (!Number.isInteger(p[k])) return `payload.${k} must be an integer`;
  }
  if (typeof p.ts !== 'number' || !Number.isFinite(p.ts)) return 'payload.ts must be a number';
  if (p.outcome !== undefined && !(METERING_OUTCOMES as readonly unknown[]).includes(p.outcome)) return 'payload.outcome is not ok|error|cancelled|timeout';
  if (p.paymentRef !== undefined && typeof p.paymentRef !== 'string') return 'payload.paymentRef must be a string';
  const known = ['requestId', 'nodeId', 'modelId', 'promptHash', 'inputTokens', 'outputTokens', 'wallTimeMs', 'bytesIn', 'bytesOut', 'ts', 'outcome', 'paymentRef'];
  for (const k of Object.keys(p)) if (!known.includes(k)) return `unexpected payload field "${k}"`;
  return null;
}

function emptyTotals(): MeteringTotals {
  return { records: 0, inputTokens: 0, outputTokens: 0, bytesIn: 0, bytesOut: 0, wallTimeMs: 0 };
}

function add(t: MeteringTotals, r: MeteringRecord): void {
  t.records++;
  t.inputTokens += r.inputTokens;
  t.outputTokens += r.outputTokens;
  t.bytesIn += r.bytesIn;
  t.bytesOut += r.bytesOut;
  t.wallTimeMs += r.wallTimeMs;
}

/** Verifies spool text (the content of one file). */
export function verifySpoolText(text: string): SpoolVerification {
  const parts = text.split('\n');
  const tail = parts.pop() ?? '';
  const torn = tail.length > 0;
  const all = emptyTotals();
  const out: SpoolVerification = {
    records: 0,
    valid: 0,
    invalid: [],
    torn,
    totals: { inputTokens: 0, outputTokens: 0, bytesIn: 0, bytesOut: 0, wallTimeMs: 0 },
    byModel: {},
    byOutcome: {},
    signers: [],
    bySigner: {},
  };
  parts.forEach((raw, idx) => {
    const line = idx + 1;
    out.records++;
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      out.invalid.push({ line, reason: 'not JSON' });
      return;
    }
    const problem = meteringShapeProblem(parsed);
    if (problem) {
      out.invalid.push({ line, reason: problem });
      return;
    }
    const env = parsed as Envelope<MeteringRecord>;
    const failure = checkEnvelopeSignature(env);
    if (failure) {
      out.invalid.push({ line, reason: failure });
      return;
    }
    out.valid++;
    const r = env.payload;
    add(all, r);
    add((out.byModel[r.modelId] ??= emptyTotals()), r);
    const oc = r.outcome ?? 'ok';
    out.byOutcome[oc] = (out.byOutcome[oc] ?? 0) + 1;
    out.bySigner[env.keyId] = (out.bySigner[env.keyId] ?? 0) + 1;
  });
  const { records: _r, ...totals } = all;
  out.totals = totals;
  out.signers = Object.keys(out.bySigner).sort();
  return out;
}

export async function verifySpoolFile(path: string): Promise<SpoolVerification> {
  return verifySpoolText(await readFile(path, 'utf8'));
}
