/**
 * supervisor/crypto/envelope.ts beyond the vectors: sign/verify round trips, what the signature
 * covers, upstream interop (nostr-tools' signer), and the node-ingress npub rule.
 */
import { describe, expect, test } from '@jest/globals';
import { createHash } from 'node:crypto';
import { schnorr } from '@noble/curves/secp256k1.js';
import {
  canonicalBytes,
  checkEnvelopeSignature,
  envelopeDigest,
  isNpubKeyId,
  publicKeyForKeyId,
  signEnvelope,
  verifyEnvelope,
  type Envelope,
} from '../../supervisor/crypto/envelope.js';
import { bytesToHex, generateIdentity, parsePublicKey } from '../../supervisor/crypto/keys.js';

const signer = generateIdentity();

describe('signEnvelope / verifyEnvelope', () => {
  test('defaults: random UUID nonce, ts = now, keyId = npub, 88-char padded base64 sig', () => {
    const before = Date.now();
    const env = signEnvelope({ a: 1 }, signer);
    expect(env.nonce).toMatch(/^[0-9a-f-]{36}$/);
    expect(env.ts).toBeGreaterThanOrEqual(before);
    expect(env.ts).toBeLessThanOrEqual(Date.now());
    expect(env.keyId).toBe(signer.npub);
    expect(env.sig).toHaveLength(88);
    expect(Object.keys(env).sort()).toEqual(['keyId', 'nonce', 'payload', 'sig', 'ts']);
    expect(verifyEnvelope(env)).toBe(true);
    expect(signEnvelope({ a: 1 }, signer).nonce).not.toBe(env.nonce);
  });

  test('the signature is BIP-340 over sha256(canonical({payload, nonce, ts, keyId})) — checkable with noble', () => {
    const env = signEnvelope({ z: 'é', a: [1, 2] }, signer, { nonce: 'n', ts: 5 });
    const canonical = `{"keyId":"${signer.npub}","nonce":"n","payload":{"a":[1,2],"z":"é"},"ts":5}`;
    expect(canonicalBytes(env).toString('utf8')).toBe(canonical);
    const digest = createHash('sha256').update(canonical, 'utf8').digest();
    expect(bytesToHex(envelopeDigest(env))).toBe(digest.toString('hex'));
    expect(schnorr.verify(Buffer.from(env.sig, 'base64'), digest, signer.publicKey)).toBe(true);
  });

  test('an envelope signed by @noble/curves the way upstream does verifies here', () => {
    const unsigned = { payload: { requestId: 'r', unknownField: { deep: true } }, nonce: 'u', ts: 1700000000000, keyId: signer.npub };
    const digest = envelopeDigest(unsigned);
    const sig = Buffer.from(schnorr.sign(digest, signer.secretKey)).toString('base64');
    expect(checkEnvelopeSignature({ ...unsigned, sig })).toBeNull();
  });

  test('unknown payload fields are covered by the signature (adding or removing one breaks it)', () => {
    const env = signEnvelope({ a: 1, extra: 'x' }, signer) as Envelope<Record<string, unknown>>;
    expect(verifyEnvelope(JSON.parse(JSON.stringify(env)))).toBe(true);
    const { extra: _drop, ...rest } = env.payload;
    expect(verifyEnvelope({ ...env, payload: rest })).toBe(false);
    expect(verifyEnvelope({ ...env, payload: { ...env.payload, more: 1 } })).toBe(false);
  });

  test('undefined-valued payload keys are not covered (canonical form drops them), as upstream', () => {
    const env = signEnvelope({ a: 1 }, signer);
    expect(verifyEnvelope({ ...env, payload: { a: 1, b: undefined } })).toBe(true);
  });

  test('sig and any extra outer key are not part of the signed bytes', () => {
    const env = signEnvelope({ a: 1 }, signer);
    expect(canonicalBytes({ ...env, sig: 'other' } as Envelope<unknown>).equals(canonicalBytes(env))).toBe(true);
    expect(canonicalBytes({ ...env, extra: 'x' } as Envelope<unknown>).equals(canonicalBytes(env))).toBe(true);
  });

  test('a non-serialisable payload built in process is invalid-signature, not a throw', () => {
    const env = signEnvelope({ a: 1 }, signer) as Envelope<unknown>;
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(checkEnvelopeSignature({ ...env, payload: cyclic })).toBe('invalid-signature');
    expect(checkEnvelopeSignature({ ...env, payload: { n: 1n } })).toBe('invalid-signature');
    expect(checkEnvelopeSignature(null as unknown as Envelope<unknown>)).toBe('invalid-signature');
  });
});

describe('hostile payloads from the wire', () => {
  test('a "__proto__" key parsed from JSON is an ordinary signed field', () => {
    const env = signEnvelope(JSON.parse('{"__proto__":{"x":1},"a":2}'), signer, { nonce: 'p', ts: 1 });
    expect(canonicalBytes(env).toString()).toContain('"payload":{"__proto__":{"x":1},"a":2}');
    const wire = JSON.parse(JSON.stringify(env).replace('"a":2', '"a":2')) as Envelope<unknown>;
    expect(checkEnvelopeSignature(wire)).toBeNull();
    const tampered = JSON.parse(JSON.stringify(env).replace('{"x":1}', '{"x":2}')) as Envelope<unknown>;
    expect(checkEnvelopeSignature(tampered)).toBe('invalid-signature');
  });

  test('a payload nested 100 000 levels deep is invalid-signature, not a stack overflow', () => {
    const env = signEnvelope({ a: 1 }, signer) as Envelope<unknown>;
    const deep = JSON.parse('['.repeat(100_000) + ']'.repeat(100_000)) as unknown;
    expect(() => checkEnvelopeSignature({ ...env, payload: deep })).not.toThrow();
    expect(checkEnvelopeSignature({ ...env, payload: deep })).toBe('invalid-signature');
  });
});

describe('keyId rules', () => {
  test('isNpubKeyId', () => {
    expect(isNpubKeyId(signer.npub)).toBe(true);
    expect(isNpubKeyId(signer.pubHex)).toBe(false);
    expect(isNpubKeyId(undefined)).toBe(false);
  });

  test('publicKeyForKeyId parses npub and hex to the same key and refuses garbage', () => {
    expect(bytesToHex(publicKeyForKeyId(signer.npub))).toBe(signer.pubHex);
    expect(bytesToHex(publicKeyForKeyId(signer.pubHex))).toBe(signer.pubHex);
    expect(() => publicKeyForKeyId('nope')).toThrow();
  });

  test('the key cache holds parses only: many distinct keyIds still verify correctly', () => {
    const ids = Array.from({ length: 50 }, () => generateIdentity());
    const envs = ids.map((id) => signEnvelope({ i: id.npub }, id));
    for (const e of envs) expect(checkEnvelopeSignature(e)).toBeNull();
    // a swap of keyIds between two valid envelopes fails both ways
    expect(checkEnvelopeSignature({ ...envs[0], keyId: envs[1].keyId })).toBe('invalid-signature');
    expect(bytesToHex(parsePublicKey(envs[2].keyId))).toBe(ids[2].pubHex);
  });
});
