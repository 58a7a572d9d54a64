/**
 * ../shared/spec/vectors.json against our canonicaliser, envelope signer/verifier, keys and schemas.
 * Byte-exact canonical strings and digests; signatures verify; zero-aux re-signing reproduces them.
 */
import { describe, expect, test } from '@jest/globals';
import { createHash, createPublicKey, verify as cryptoVerify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { canonicalize } from '../../supervisor/protocol/canonical-json.js';
import {
  canonicalBytes,
  checkEnvelopeSignature,
  envelopeDigest,
  signEnvelope,
  verifyEnvelope,
  type Envelope,
} from '../../supervisor/crypto/envelope.js';
import {
  bytesToHex,
  encodeNpub,
  encodeNsec,
  parseIdentity,
  parsePublicKey,
  parseSecretKey,
  toNpub,
  type Identity,
} from '../../supervisor/crypto/keys.js';
import { validateEnvelopeOf } from '../../supervisor/protocol/wire-schemas.js';
import { signDigest, verifyDigest } from '../../supervisor/crypto/schnorr.js';
import { estimateTokens } from '../../runner-host/adapter.js';
import { bech32 } from '@scure/base';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const V = JSON.parse(readFileSync(resolve(repoRoot, '../shared/spec/vectors.json'), 'utf8'));

const ZERO_AUX = new Uint8Array(32);
const sha256 = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');
const clone = <T>(x: T): T => structuredClone(x);
const ids: Record<'node' | 'router' | 'client', Identity> = {
  node: parseIdentity(V.keys.node.priv),
  router: parseIdentity(V.keys.router.priv),
  client: parseIdentity(V.keys.client.priv),
};

/** Rebuilds each signed vector as an Envelope plus the identity that signed it and its expected digest. */
function signedVectors(): Array<{ name: string; env: Envelope<unknown>; signer: Identity; canonical?: string; sha: string }> {
  const v2 = V.v2_client_payment_receipt;
  const v2b = V.v2b_router_infer_with_receipt_and_unicode;
  const v3 = V.v3_node_infer_200_body_for_v1;
  return [
    { name: 'v1', env: V.v1_router_to_node_infer.envelope, signer: ids.router, canonical: V.v1_router_to_node_infer.canonical, sha: V.v1_router_to_node_infer.sha256 },
    { name: 'v2', env: { ...JSON.parse(v2.canonical), sig: v2.sig }, signer: ids.client, canonical: v2.canonical, sha: v2.sha256 },
    { name: 'v2b', env: { ...JSON.parse(v2b.canonical), sig: v2b.sig }, signer: ids.router, canonical: v2b.canonical, sha: v2b.sha256 },
    { name: 'v3.response', env: v3.response, signer: ids.node, sha: v3.response_sha256 },
    { name: 'v3.metering', env: v3.metering, signer: ids.node, sha: v3.metering_sha256 },
    { name: 'v4', env: V.v4_heartbeat_register_node.envelope, signer: ids.node, sha: V.v4_heartbeat_register_node.sha256 },
  ];
}

describe('keys vector', () => {
  test.each(['node', 'router', 'client'] as const)('%s: priv/nsec/pubHex/npub round-trip', (who) => {
    const k = V.keys[who];
    const fromHex = parseIdentity(k.priv);
    const fromNsec = parseIdentity(k.nsec);
    expect(bytesToHex(fromNsec.secretKey)).toBe(k.priv);
    expect(fromHex.pubHex).toBe(k.pubHex);
    expect(fromHex.npub).toBe(k.npub);
    expect(fromNsec.npub).toBe(k.npub);
    expect(encodeNsec(parseSecretKey(k.priv))).toBe(k.nsec);
    expect(encodeNpub(parsePublicKey(k.pubHex))).toBe(k.npub);
    expect(bytesToHex(parsePublicKey(k.npub))).toBe(k.pubHex);
    expect(toNpub(k.pubHex)).toBe(k.npub);
    expect(toNpub(k.pubHex.toUpperCase())).toBe(k.npub);
  });

  test('upstream default keyId: bech32 decodes to the listed hex, and is refused as a key (not on the curve)', () => {
    const npub = 'npub1r72drc4k609u2jwsgt5qy5at4aea9fsu8lqua4f20d26az9h80ms45kp92';
    const d = bech32.decode(npub as `${string}1${string}`, 5000);
    expect(bytesToHex(bech32.fromWords(d.words))).toBe(V.upstream_default_keyId_hex);
    expect(() => parsePublicKey(npub)).toThrow(/not a point on secp256k1/);
    expect(() => parsePublicKey(V.upstream_default_keyId_hex)).toThrow(/not a point on secp256k1/);
  });
});

describe('canonical JSON and digests', () => {
  test.each(signedVectors())('$name: canonical bytes and sha256 match byte for byte', ({ env, canonical, sha }) => {
    const bytes = canonicalBytes(env);
    if (canonical !== undefined) expect(bytes.toString('utf8')).toBe(canonical);
    expect(sha256(bytes)).toBe(sha);
    expect(bytesToHex(envelopeDigest(env))).toBe(sha);
    // key order of the input does not matter
    const shuffled = { sig: env.sig, ts: env.ts, keyId: env.keyId, nonce: env.nonce, payload: env.payload };
    expect(sha256(canonicalBytes(shuffled))).toBe(sha);
  });

  test('v2b canonical string exercises escapes exactly (raw non-ASCII, \\n, \\u0001, emoji)', () => {
    const c: string = V.v2b_router_infer_with_receipt_and_unicode.canonical;
    expect(c).toContain('"prompt":"héllo \\"wörld\\"\\n😀\\u0001"');
    expect(c).toContain('"metadata":{"a":"1","b":"2"}');
  });

  test('v5 (Ed25519 era) canonical bytes match too', () => {
    const v5 = V.v5_legacy_ed25519_OLD_era;
    const p = V.v1_router_to_node_infer.envelope;
    expect(canonicalize({ payload: p.payload, nonce: p.nonce, ts: p.ts, keyId: v5.public_hex })).toBe(v5.canonical);
  });

  test('misc.stable_stringify_numbers', () => {
    const value = { f: [undefined, 1], e: NaN, d: 0.1 + 0.2, c: -0, b: 1e-7, a: 1e21, g: undefined };
    expect(canonicalize(value)).toBe(V.misc.stable_stringify_numbers);
  });

  test('misc.sha256_hello and metering promptHash', () => {
    expect(sha256(Buffer.from('hello', 'utf8'))).toBe(V.misc.sha256_hello);
    expect(V.v3_node_infer_200_body_for_v1.metering.payload.promptHash).toBe(V.misc.sha256_hello);
  });

  test('misc.estimateTokensFromText with estimateTokens', () => {
    for (const [text, n] of Object.entries(V.misc.estimateTokensFromText as Record<string, number>)) {
      expect([text, estimateTokens(text)]).toEqual([text, n]);
    }
    const v3 = V.v3_node_infer_200_body_for_v1.response.payload;
    expect(estimateTokens(V.v1_router_to_node_infer.envelope.payload.prompt)).toBe(v3.usage.inputTokens);
    expect(estimateTokens(v3.output)).toBe(v3.usage.outputTokens);
  });

  test('more canonical edge cases follow fast-json-stable-stringify', () => {
    expect(canonicalize({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: null } })).toBe('{"a":{"c":null,"d":[1,{"x":1,"y":2}]},"b":1}');
    expect(canonicalize({ '\u00e9': 1, z: 2, Z: 3, '10': 4, '9': 5 })).toBe('{"10":4,"9":5,"Z":3,"z":2,"é":1}');
    expect(canonicalize('\u2028\ud800')).toBe('"\u2028\\ud800"');
    expect(canonicalize({ t: { toJSON: () => 'x' } })).toBe('{"t":"x"}');
    expect(canonicalize(new Date(0))).toBe('"1970-01-01T00:00:00.000Z"');
    expect(canonicalize([Infinity, -Infinity, 5e-324, 123456789012345680000])).toBe('[null,null,5e-324,123456789012345680000]');
    expect(canonicalize({ f: () => 1 })).toBe('{}');
    expect(() => canonicalize(undefined)).toThrow(TypeError);
    const cyc: Record<string, unknown> = {};
    cyc.self = cyc;
    expect(() => canonicalize(cyc)).toThrow(TypeError);
  });
});

describe('signatures', () => {
  test.each(signedVectors())('$name: verifies under the npub in keyId', ({ env, signer }) => {
    expect(env.keyId).toBe(signer.npub);
    expect(checkEnvelopeSignature(env)).toBeNull();
    expect(checkEnvelopeSignature(env, { requireNpub: true })).toBeNull();
    expect(verifyEnvelope(JSON.parse(JSON.stringify(env)))).toBe(true);
  });

  test.each(signedVectors())('$name: re-signing with aux = 32 zero bytes reproduces the signature exactly', ({ env, signer }) => {
    const again = signEnvelope(env.payload, signer, { nonce: env.nonce, ts: env.ts, auxRand: ZERO_AUX });
    expect(again.keyId).toBe(env.keyId);
    expect(again.sig).toBe(env.sig);
  });

  test('random aux signatures differ but verify', () => {
    const p = V.v1_router_to_node_infer.envelope;
    const a = signEnvelope(p.payload, ids.router, { nonce: p.nonce, ts: p.ts });
    const b = signEnvelope(p.payload, ids.router, { nonce: p.nonce, ts: p.ts });
    expect(a.sig).not.toBe(b.sig);
    expect(a.sig).toMatch(/^[A-Za-z0-9+/]{86}==$/);
    expect(verifyEnvelope(a) && verifyEnvelope(b)).toBe(true);
  });

  test('inner v2 receipt in v2b verifies on its own', () => {
    const v2b = JSON.parse(V.v2b_router_infer_with_receipt_and_unicode.canonical);
    expect(checkEnvelopeSignature(v2b.payload.paymentReceipts[0])).toBeNull();
  });

  describe.each(signedVectors())('$name: tampering fails', ({ env }) => {
    test.each([
      ['payload', (e: any) => { e.payload = { ...e.payload, requestId: e.payload.requestId + 'x' }; }],
      ['payload (unknown field added)', (e: any) => { e.payload = { ...e.payload, extra: 1 }; }],
      ['ts', (e: any) => { e.ts = e.ts + 1; }],
      ['nonce', (e: any) => { e.nonce = e.nonce + 'x'; }],
      ['keyId (another valid npub)', (e: any) => { e.keyId = e.keyId === ids.node.npub ? ids.client.npub : ids.node.npub; }],
    ] as Array<[string, (e: any) => void]>)('%s', (_what, mutate) => {
      const e = clone(env);
      mutate(e);
      expect(checkEnvelopeSignature(e)).toBe('invalid-signature');
    });
  });

  test('no verdict cache: a spread copy of a verified envelope with a tampered payload fails (nostr-tools pitfall)', () => {
    const env = V.v1_router_to_node_infer.envelope as Envelope<Record<string, unknown>>;
    expect(verifyEnvelope(env)).toBe(true);
    const spread = { ...env, payload: { ...env.payload, prompt: 'tampered' } };
    expect(verifyEnvelope(spread)).toBe(false);
    const mutated = clone(env);
    expect(verifyEnvelope(mutated)).toBe(true);
    mutated.payload.prompt = 'tampered';
    expect(verifyEnvelope(mutated)).toBe(false);
  });

  describe('a bad sig is invalid-signature and never throws', () => {
    const base = V.v1_router_to_node_infer.envelope as Envelope<unknown>;
    const good = Buffer.from(base.sig, 'base64');
    test.each([
      ['empty', ''],
      ['63 bytes', good.subarray(0, 63).toString('base64')],
      ['65 bytes', Buffer.concat([good, Buffer.from([0])]).toString('base64')],
      ['non-base64', '!'.repeat(86) + '=='],
      ['unpadded', base.sig.replace(/=+$/, '')],
      ['hex', good.toString('hex')],
      ['all zero 64 bytes', Buffer.alloc(64).toString('base64')],
      ['all 0xff 64 bytes', Buffer.alloc(64, 0xff).toString('base64')],
      ['wrong key (signed by client, keyId router)', signEnvelope(base.payload, ids.client, { nonce: base.nonce, ts: base.ts }).sig],
      ['another vector\'s sig', V.v2_client_payment_receipt.sig],
      ['not a string', 42 as unknown as string],
      ['null', null as unknown as string],
    ])('%s', (_what, sig) => {
      const e = { ...clone(base), sig };
      expect(() => checkEnvelopeSignature(e)).not.toThrow();
      expect(checkEnvelopeSignature(e)).toBe('invalid-signature');
      expect(verifyEnvelope(e)).toBe(false);
    });
  });

  describe('keyId forms', () => {
    const base = V.v1_router_to_node_infer.envelope as Envelope<unknown>;
    test('a hex keyId verifies when hex is allowed (receipts) but is invalid-key-id for node ingress (requireNpub)', () => {
      const hexSigned = signEnvelope(base.payload, ids.router, { nonce: base.nonce, ts: base.ts, auxRand: ZERO_AUX });
      const asHex = { ...hexSigned, keyId: V.keys.router.pubHex };
      // re-sign over the hex keyId (the keyId is covered by the signature)
      const digestSig = signEnvelope(base.payload, { ...ids.router, npub: V.keys.router.pubHex }, { nonce: base.nonce, ts: base.ts });
      expect(digestSig.keyId).toBe(V.keys.router.pubHex);
      expect(checkEnvelopeSignature(digestSig)).toBeNull();
      expect(checkEnvelopeSignature(digestSig, { requireNpub: true })).toBe('invalid-key-id');
      expect(checkEnvelopeSignature(asHex)).toBe('invalid-signature');
      expect(checkEnvelopeSignature(asHex, { requireNpub: true })).toBe('invalid-key-id');
    });

    test.each([
      ['garbage', 'not-a-key'],
      ['npub with bad checksum', V.keys.router.npub.slice(0, -1) + (V.keys.router.npub.endsWith('w') ? 'q' : 'w')],
      ['nsec', V.keys.router.nsec],
      ['63 hex', V.keys.router.pubHex.slice(1)],
      ['hex not on the curve', 'ff'.repeat(32)],
      ['empty', ''],
      ['number', 7 as unknown as string],
    ])('%s keyId → invalid-key-id, no throw', (_what, keyId) => {
      const e = { ...clone(base), keyId };
      expect(() => checkEnvelopeSignature(e)).not.toThrow();
      expect(checkEnvelopeSignature(e)).toBe('invalid-key-id');
      expect(checkEnvelopeSignature(e, { requireNpub: true })).toBe('invalid-key-id');
    });
  });
});

describe('other signed vectors', () => {
  test('v6 manifest: stable-stringified manifest hashes to the vector and its BIP-340 signature verifies (zero aux reproduces it)', () => {
    const manifest = {
      id: 'node-1',
      role_types: ['prepost_node'],
      capability_bands: { cpu: 'cpu_mid', ram: 'ram_16', disk: 'disk_ssd', net: 'net_ok', gpu: 'gpu_none' },
      limits: { max_concurrency: 2, max_payload_bytes: 262144, max_tokens: 256 },
      supported_formats: ['text'],
      pricing_defaults: { unit: 'token', input_rate: 0, output_rate: 0, currency: 'USD' },
      benchmarks: null,
      software_version: '0.0.1',
      relay_discovery: {
        discoveredAtMs: 1700000000000,
        relays: [{ url: 'wss://relay.damus.io/', read: true, write: true, score: 5, priority: 2.5, tags: [], lastSeenMs: 1700000000000 }],
        options: { minScore: 1, maxResults: 25 },
      },
    };
    const digest = createHash('sha256').update(canonicalize(manifest), 'utf8').digest();
    expect(digest.toString('hex')).toBe(V.v6_manifest_signature.sha256);
    const sig = Buffer.from(V.v6_manifest_signature.signature, 'base64');
    expect(verifyDigest(sig, digest, ids.node.publicKey)).toBe(true);
    expect(Buffer.from(signDigest(digest, ids.node.secretKey, ZERO_AUX)).toString('base64')).toBe(V.v6_manifest_signature.signature);
  });

  test('v5 (Ed25519 era) signature verifies over the canonical bytes with node:crypto, and fails when tampered', () => {
    const v5 = V.v5_legacy_ed25519_OLD_era;
    const key = createPublicKey(v5.public_pem);
    expect(key.export({ format: 'der', type: 'spki' }).subarray(-32).toString('hex')).toBe(v5.public_hex);
    expect(cryptoVerify(null, Buffer.from(v5.canonical, 'utf8'), key, Buffer.from(v5.sig, 'base64'))).toBe(true);
    expect(cryptoVerify(null, Buffer.from(v5.canonical.replace('hello', 'hellp'), 'utf8'), key, Buffer.from(v5.sig, 'base64'))).toBe(false);
  });
});

describe('vectors against the schemas', () => {
  test('v4 heartbeat envelope validates as node-descriptor, and payload.keyId equals the envelope keyId', () => {
    const env = V.v4_heartbeat_register_node.envelope;
    expect(validateEnvelopeOf('node-descriptor', env)).toEqual({ ok: true, value: env });
    expect(env.payload.keyId).toBe(env.keyId);
  });

  test('v1 and v2b validate as inference-request, v3 as response and metering', () => {
    expect(validateEnvelopeOf('inference-request', V.v1_router_to_node_infer.envelope).ok).toBe(true);
    const v2b = { ...JSON.parse(V.v2b_router_infer_with_receipt_and_unicode.canonical), sig: V.v2b_router_infer_with_receipt_and_unicode.sig };
    expect(validateEnvelopeOf('inference-request', v2b).ok).toBe(true);
    expect(validateEnvelopeOf('payment-receipt', v2b.payload.paymentReceipts[0]).ok).toBe(true);
    expect(validateEnvelopeOf('inference-response', V.v3_node_infer_200_body_for_v1.response).ok).toBe(true);
    expect(validateEnvelopeOf('metering-record', V.v3_node_infer_200_body_for_v1.metering).ok).toBe(true);
  });
});
