/**
 * Node, router and client identities: secp256k1 keys with x-only (BIP-340) public keys.
 * Private keys: nsec, 64 hex, or a secp256k1 PEM (SEC1 "EC PRIVATE KEY" or PKCS#8). Public keys: npub,
 * 64 hex, or a secp256k1 SPKI PEM. keyId on the wire is always the npub.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { bech32 } from '@scure/base';
import * as ecc from 'tiny-secp256k1';

export class KeyFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyFormatError';
  }
}

export interface Identity {
  /** 32-byte secret scalar. */
  readonly secretKey: Uint8Array;
  /** 32-byte x-only public key. */
  readonly publicKey: Uint8Array;
  readonly pubHex: string;
  readonly npub: string;
}

const HEX64 = /^[0-9a-fA-F]{64}$/;

export function bytesToHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

export function hexToBytes(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) throw new KeyFormatError('not a hex string');
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

function decodeBech32(str: string, prefix: 'npub' | 'nsec'): Uint8Array {
  let decoded;
  try {
    decoded = bech32.decode(str as `${string}1${string}`, 5000);
  } catch (err) {
    // Never echo the input: the bech32 library's messages quote the whole string, which for an nsec is the secret.
    const msg = String((err as Error)?.message ?? '');
    const why = /checksum/i.test(msg) ? 'bech32 checksum mismatch' : /length|long|short/i.test(msg) ? 'bad bech32 length' : 'not bech32';
    throw new KeyFormatError(`not a valid ${prefix}: ${why}`);
  }
  if (decoded.prefix !== prefix) throw new KeyFormatError(`expected an ${prefix}, got prefix "${decoded.prefix}"`);
  const bytes = bech32.fromWords(decoded.words);
  if (bytes.length !== 32) throw new KeyFormatError(`${prefix} must hold 32 bytes, got ${bytes.length}`);
  return bytes;
}

export function encodeNpub(publicKey: Uint8Array): string {
  return bech32.encode('npub', bech32.toWords(publicKey), 5000);
}

export function encodeNsec(secretKey: Uint8Array): string {
  return bech32.encode('nsec', bech32.toWords(secretKey), 5000);
}

function checkSecret(sk: Uint8Array): Uint8Array {
  if (!ecc.isPrivate(sk)) throw new KeyFormatError('secret key is zero or not below the secp256k1 group order');
  return sk;
}

function fromPem(pem: string, kind: 'private' | 'public'): KeyObject {
  try {
    return kind === 'private' ? createPrivateKey(pem) : createPublicKey(pem);
  } catch (err) {
    throw new KeyFormatError(`PEM does not parse: ${(err as Error).message}`);
  }
}

function requireSecp256k1(key: KeyObject): void {
  if (key.asymmetricKeyType !== 'ec') {
    throw new KeyFormatError(`wrong key type: expected an EC secp256k1 key, got ${key.asymmetricKeyType ?? 'unknown'}`);
  }
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (curve !== 'secp256k1') throw new KeyFormatError(`wrong curve: expected secp256k1, got ${curve ?? 'unknown'}`);
}

/** Parses nsec / 64-hex / PEM into a 32-byte secret key. */
export function parseSecretKey(input: string): Uint8Array {
  if (typeof input !== 'string') throw new KeyFormatError('secret key must be a string');
  const s = input.trim();
  if (s.startsWith('npub1')) throw new KeyFormatError('expected a secret key (nsec), got an npub, which is a public key');
  if (s.startsWith('nsec1')) return checkSecret(decodeBech32(s, 'nsec'));
  if (HEX64.test(s)) return checkSecret(hexToBytes(s));
  if (s.includes('-----BEGIN')) {
    const key = fromPem(s.replace(/\\n/g, '\n'), 'private');
    requireSecp256k1(key);
    const jwk = key.export({ format: 'jwk' });
    if (!jwk.d) throw new KeyFormatError('PEM holds no private scalar');
    return checkSecret(new Uint8Array(Buffer.from(jwk.d, 'base64url')));
  }
  if (/^[0-9a-fA-F]+$/.test(s)) throw new KeyFormatError(`hex secret key must be 64 characters, got ${s.length}`);
  throw new KeyFormatError('secret key must be an nsec, 64 hex characters or a secp256k1 PEM');
}

/** Parses npub / 64-hex / SPKI PEM into a 32-byte x-only public key. */
export function parsePublicKey(input: string): Uint8Array {
  if (typeof input !== 'string') throw new KeyFormatError('public key must be a string');
  const s = input.trim();
  let pk: Uint8Array;
  if (s.startsWith('nsec1')) throw new KeyFormatError('expected a public key (npub), got an nsec, which is a secret key');
  if (s.startsWith('npub1')) pk = decodeBech32(s, 'npub');
  else if (HEX64.test(s)) pk = hexToBytes(s);
  else if (s.includes('-----BEGIN')) {
    const key = fromPem(s.replace(/\\n/g, '\n'), 'public');
    requireSecp256k1(key);
    const jwk = key.export({ format: 'jwk' });
    if (!jwk.x) throw new KeyFormatError('PEM holds no public point');
    pk = new Uint8Array(Buffer.from(jwk.x, 'base64url'));
  } else if (/^[0-9a-fA-F]+$/.test(s)) {
    throw new KeyFormatError(`hex public key must be 64 characters, got ${s.length}`);
  } else {
    throw new KeyFormatError('public key must be an npub, 64 hex characters or a secp256k1 PEM');
  }
  if (!ecc.isXOnlyPoint(pk)) throw new KeyFormatError('public key is not a point on secp256k1');
  return pk;
}

export function identityFromSecret(secretKey: Uint8Array): Identity {
  const publicKey = ecc.xOnlyPointFromScalar(checkSecret(secretKey));
  return { secretKey, publicKey, pubHex: bytesToHex(publicKey), npub: encodeNpub(publicKey) };
}

export function parseIdentity(input: string): Identity {
  return identityFromSecret(parseSecretKey(input));
}

export function generateIdentity(): Identity {
  for (;;) {
    const sk = new Uint8Array(32);
    crypto.getRandomValues(sk);
    if (ecc.isPrivate(sk)) return identityFromSecret(sk);
  }
}

/** npub for any accepted public-key form. */
export function toNpub(input: string): string {
  return encodeNpub(parsePublicKey(input));
}

export function isNpub(s: unknown): s is string {
  if (typeof s !== 'string' || !s.startsWith('npub1')) return false;
  try {
    parsePublicKey(s);
    return true;
  } catch {
    return false;
  }
}
