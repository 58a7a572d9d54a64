/**
 * Key parsing: every accepted form, and a clear, secret-free error for every wrong one.
 */
import { describe, expect, test } from '@jest/globals';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { schnorr } from '@noble/curves/secp256k1.js';
import {
  KeyFormatError,
  bytesToHex,
  encodeNpub,
  encodeNsec,
  generateIdentity,
  hexToBytes,
  identityFromSecret,
  isNpub,
  parseIdentity,
  parsePublicKey,
  parseSecretKey,
  toNpub,
} from '../../supervisor/crypto/keys.js';

const NODE = {
  priv: '1111111111111111111111111111111111111111111111111111111111111111',
  nsec: 'nsec1zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygs4rm7hz',
  pubHex: '4f355bdcb7cc0af728ef3cceb9615d90684bb5b2ca5f859ab0f0b704075871aa',
  npub: 'npub1fu64hh9hes90w2808n8tjc2ajp5yhddjef0ctx4s7zmsgp6cwx4qgy4eg9',
};

function pem(key: KeyObject, type: 'sec1' | 'pkcs8' | 'spki'): string {
  return key.export({ format: 'pem', type } as never) as unknown as string;
}

/** Expects a KeyFormatError whose message matches `re` and never contains `secret`. */
function expectKeyError(fn: () => unknown, re: RegExp, secret?: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(KeyFormatError);
  expect((caught as Error).message).toMatch(re);
  if (secret) expect((caught as Error).message).not.toContain(secret);
}

describe('secret keys', () => {
  test('nsec and 64 hex (either case, surrounding whitespace) give the same key', () => {
    for (const s of [NODE.nsec, NODE.priv, NODE.priv.toUpperCase(), `  ${NODE.nsec}\n`, `\t${NODE.priv} `]) {
      expect(bytesToHex(parseSecretKey(s))).toBe(NODE.priv);
    }
  });

  test.each(['sec1', 'pkcs8'] as const)('secp256k1 PEM (%s) gives the key node:crypto generated', (type) => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
    const text = pem(privateKey, type);
    expect(text).toContain(type === 'sec1' ? 'BEGIN EC PRIVATE KEY' : 'BEGIN PRIVATE KEY');
    const sk = parseSecretKey(text);
    const d = Buffer.from(privateKey.export({ format: 'jwk' }).d!, 'base64url');
    expect(bytesToHex(sk)).toBe(d.toString('hex'));
    // its x-only public key equals the SPKI's x coordinate and noble's derivation
    const id = identityFromSecret(sk);
    expect(id.pubHex).toBe(bytesToHex(parsePublicKey(pem(publicKey, 'spki'))));
    expect(id.pubHex).toBe(bytesToHex(schnorr.getPublicKey(sk)));
    // a PEM with literal "\n" escapes, as env files often hold it, parses too
    expect(bytesToHex(parseSecretKey(text.replace(/\n/g, '\\n')))).toBe(d.toString('hex'));
  });

  test('wrong curve (prime256v1) names the curve, for private and public PEM', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    expectKeyError(() => parseSecretKey(pem(privateKey, 'sec1')), /wrong curve.*secp256k1.*prime256v1/);
    expectKeyError(() => parseSecretKey(pem(privateKey, 'pkcs8')), /wrong curve.*prime256v1/);
    expectKeyError(() => parsePublicKey(pem(publicKey, 'spki')), /wrong curve.*prime256v1/);
  });

  test('Ed25519 PEM is refused by key type', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    expectKeyError(() => parseSecretKey(pem(privateKey, 'pkcs8')), /wrong key type.*secp256k1.*ed25519/);
    expectKeyError(() => parsePublicKey(pem(publicKey, 'spki')), /wrong key type.*ed25519/);
    expectKeyError(() => parseIdentity(pem(privateKey, 'pkcs8')), /ed25519/);
  });

  test.each([63, 65, 1, 128])('%i hex characters: the error names the length', (n) => {
    const s = '1'.repeat(n);
    expectKeyError(() => parseSecretKey(s), new RegExp(`must be 64 characters, got ${n}`), n > 8 ? s : undefined);
    expectKeyError(() => parsePublicKey(s), new RegExp(`must be 64 characters, got ${n}`));
  });

  test('nsec with a bad checksum is refused without echoing it', () => {
    const bad = NODE.nsec.slice(0, -1) + (NODE.nsec.endsWith('z') ? 'q' : 'z');
    expectKeyError(() => parseSecretKey(bad), /not a valid nsec: bech32 checksum mismatch/, bad.slice(5, 40));
  });

  test('npub given where an nsec is expected, and nsec where an npub is expected', () => {
    expectKeyError(() => parseSecretKey(NODE.npub), /expected a secret key \(nsec\), got an npub/);
    expectKeyError(() => parsePublicKey(NODE.nsec), /expected a public key \(npub\), got an nsec/, NODE.nsec);
  });

  test('an nsec holding the wrong length is refused', () => {
    const short = encodeNsec(new Uint8Array(31).fill(1));
    expectKeyError(() => parseSecretKey(short), /nsec must hold 32 bytes, got 31/);
  });

  test('zero and ≥ group order are refused', () => {
    expectKeyError(() => parseSecretKey('0'.repeat(64)), /zero or not below the secp256k1 group order/);
    expectKeyError(() => parseSecretKey('f'.repeat(64)), /group order/);
    expectKeyError(() => parseSecretKey('FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141'), /group order/);
    expect(() => parseSecretKey('FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364140')).not.toThrow();
  });

  test('garbage and broken PEM give KeyFormatError, not a crash', () => {
    expectKeyError(() => parseSecretKey(''), /must be an nsec, 64 hex/);
    expectKeyError(() => parseSecretKey('hello world'), /must be an nsec, 64 hex/);
    expectKeyError(() => parseSecretKey('-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----'), /PEM does not parse/);
    expectKeyError(() => parseSecretKey(undefined as unknown as string), /must be a string/);
    expectKeyError(() => parsePublicKey(42 as unknown as string), /must be a string/);
  });

  test('a public PEM given as a secret key is refused', () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
    expectKeyError(() => parseSecretKey(pem(publicKey, 'spki')), /PEM/);
  });
});

describe('public keys', () => {
  test('npub, hex (either case) and SPKI PEM give the x-only key', () => {
    expect(bytesToHex(parsePublicKey(NODE.npub))).toBe(NODE.pubHex);
    expect(bytesToHex(parsePublicKey(NODE.pubHex.toUpperCase()))).toBe(NODE.pubHex);
    expect(toNpub(NODE.pubHex)).toBe(NODE.npub);
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
    const id = parseIdentity(pem(privateKey, 'pkcs8'));
    expect(toNpub(pem(publicKey, 'spki'))).toBe(id.npub);
  });

  test('hex that is not an x coordinate on the curve is refused', () => {
    expectKeyError(() => parsePublicKey('ff'.repeat(32)), /not a point on secp256k1/);
    expectKeyError(() => parsePublicKey(encodeNpub(new Uint8Array(32))), /not a point/);
  });

  test('isNpub accepts only valid npubs', () => {
    expect(isNpub(NODE.npub)).toBe(true);
    expect(isNpub(NODE.pubHex)).toBe(false);
    expect(isNpub(NODE.nsec)).toBe(false);
    expect(isNpub(NODE.npub.slice(0, -1) + 'x')).toBe(false);
    expect(isNpub(undefined)).toBe(false);
    expect(isNpub(42)).toBe(false);
  });
});

describe('identities', () => {
  test('generated identities are valid, distinct and round-trip through nsec and npub', () => {
    const a = generateIdentity();
    const b = generateIdentity();
    expect(a.npub).not.toBe(b.npub);
    const again = parseIdentity(encodeNsec(a.secretKey));
    expect(again.npub).toBe(a.npub);
    expect(again.pubHex).toBe(a.pubHex);
    expect(bytesToHex(parsePublicKey(a.npub))).toBe(a.pubHex);
    expect(a.npub).toMatch(/^npub1[02-9ac-hj-np-z]{58}$/);
  });

  test('hexToBytes refuses odd length and non-hex', () => {
    expect(() => hexToBytes('abc')).toThrow(KeyFormatError);
    expect(() => hexToBytes('zz')).toThrow(KeyFormatError);
    expect(bytesToHex(hexToBytes('00ff'))).toBe('00ff');
  });
});
