/**
 * Signed envelopes (../shared/spec/fedai-wire.md §1–2): {payload, nonce, ts, keyId, sig}, where
 * sig = base64(BIP-340(sha256(canonical({payload, nonce, ts, keyId})))) and keyId is the signer's npub.
 * Verification always re-serialises the object it is given: there is no verdict cache to poison.
 */
import { hash, randomUUID } from 'node:crypto';
import { canonicalize } from '../protocol/canonical-json.js';
import { parsePublicKey, type Identity } from './keys.js';
import { signDigest, verifyDigest } from './schnorr.js';

export interface Envelope<T = unknown> {
  payload: T;
  nonce: string;
  ts: number;
  keyId: string;
  sig: string;
}

export type Unsigned<T> = Omit<Envelope<T>, 'sig'>;

/** Padded standard base64 of 64 bytes: 86 alphabet characters and "==". */
const SIG_B64 = /^[A-Za-z0-9+/]{86}==$/;

export function canonicalBytes(env: Unsigned<unknown>): Buffer {
  return Buffer.from(canonicalString(env), 'utf8');
}

function canonicalString(env: Unsigned<unknown>): string {
  // in sorted key order, so a payload that is itself in order takes canonicalize's JSON.stringify path
  return canonicalize({ keyId: env.keyId, nonce: env.nonce, payload: env.payload, ts: env.ts });
}

/** sha256 of the canonical UTF-8 bytes (one-shot hash of the string: no intermediate Buffer). */
export function envelopeDigest(env: Unsigned<unknown>): Uint8Array {
  return hash('sha256', canonicalString(env), 'buffer');
}

export function signEnvelope<T>(
  payload: T,
  signer: Identity,
  opts: { nonce?: string; ts?: number; auxRand?: Uint8Array } = {},
): Envelope<T> {
  const unsigned: Unsigned<T> = { payload, nonce: opts.nonce ?? randomUUID(), ts: opts.ts ?? Date.now(), keyId: signer.npub };
  const sig = Buffer.from(signDigest(envelopeDigest(unsigned), signer.secretKey, opts.auxRand)).toString('base64');
  return { ...unsigned, sig };
}

// npub → x-only key parse cache (parsing only; never a cache of verification results).
const pubCache = new Map<string, Uint8Array>();
const PUB_CACHE_MAX = 4096;

export function publicKeyForKeyId(keyId: string): Uint8Array {
  let pk = pubCache.get(keyId);
  if (pk) return pk;
  pk = parsePublicKey(keyId);
  if (pubCache.size >= PUB_CACHE_MAX) pubCache.delete(pubCache.keys().next().value as string);
  pubCache.set(keyId, pk);
  return pk;
}

export type VerifyFailure = 'invalid-key-id' | 'invalid-signature';

export interface CheckEnvelopeOptions {
  /**
   * Node ingress rule (fedai-wire.md §2): keyId must be an npub; a 64-hex keyId is 'invalid-key-id'.
   * Off by default, because receipt keyIds may be npub or hex.
   */
  requireNpub?: boolean;
}

/** True when keyId has the npub form node ingress requires (the key itself is checked on verify). */
export function isNpubKeyId(keyId: unknown): keyId is string {
  return typeof keyId === 'string' && keyId.startsWith('npub1');
}

type Prepared = { failure: VerifyFailure } | { failure: null; sig: Uint8Array; digest: Uint8Array; pk: Uint8Array };

/** Everything but the curve arithmetic: keyId form, key parse, sig encoding, canonical digest. */
function prepareVerification(env: Envelope<unknown>, opts: CheckEnvelopeOptions): Prepared {
  if (env === null || typeof env !== 'object') return { failure: 'invalid-signature' };
  if (typeof env.keyId !== 'string') return { failure: 'invalid-key-id' };
  if (opts.requireNpub && !isNpubKeyId(env.keyId)) return { failure: 'invalid-key-id' };
  let pk: Uint8Array;
  try {
    pk = publicKeyForKeyId(env.keyId);
  } catch {
    return { failure: 'invalid-key-id' };
  }
  if (typeof env.sig !== 'string' || !SIG_B64.test(env.sig)) return { failure: 'invalid-signature' };
  try {
    return { failure: null, sig: Buffer.from(env.sig, 'base64'), digest: envelopeDigest(env), pk };
  } catch {
    return { failure: 'invalid-signature' }; // e.g. a circular or non-serialisable payload built in-process
  }
}

/**
 * Checks the signature of a parsed envelope under the key its keyId names.
 * Returns null when valid, or the failure class. Never throws for malformed input.
 */
export function checkEnvelopeSignature(env: Envelope<unknown>, opts: CheckEnvelopeOptions = {}): VerifyFailure | null {
  const p = prepareVerification(env, opts);
  if (p.failure) return p.failure;
  return verifyDigest(p.sig, p.digest, p.pk) ? null : 'invalid-signature';
}

/** Schnorr arithmetic off the event loop: what the /infer hot path uses (see crypto-pool.ts). */
export interface SchnorrWorkers {
  sign(digest: Uint8Array, secretKey: Uint8Array): Promise<Uint8Array>;
  verify(sig: Uint8Array, digest: Uint8Array, publicKey: Uint8Array): Promise<boolean>;
}

export async function checkEnvelopeSignatureOn(workers: SchnorrWorkers, env: Envelope<unknown>, opts: CheckEnvelopeOptions = {}): Promise<VerifyFailure | null> {
  const p = prepareVerification(env, opts);
  if (p.failure) return p.failure;
  return (await workers.verify(p.sig, p.digest, p.pk)) ? null : 'invalid-signature';
}

export async function signEnvelopeOn<T>(workers: SchnorrWorkers, payload: T, signer: Identity): Promise<Envelope<T>> {
  const unsigned: Unsigned<T> = { payload, nonce: randomUUID(), ts: Date.now(), keyId: signer.npub };
  const sig = Buffer.from(await workers.sign(envelopeDigest(unsigned), signer.secretKey)).toString('base64');
  return { ...unsigned, sig };
}

export function verifyEnvelope(env: Envelope<unknown>, opts: CheckEnvelopeOptions = {}): boolean {
  return checkEnvelopeSignature(env, opts) === null;
}
