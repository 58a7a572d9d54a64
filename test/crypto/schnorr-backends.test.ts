/**
 * The two Schnorr backends (supervisor/crypto/schnorr.ts) are interchangeable: byte-identical
 * signatures for the same auxRand, the same verdict on valid, tampered and malformed inputs, on the
 * event loop and on the worker pool. CI sets FEDAI_REQUIRE_NATIVE_SCHNORR=1: there the native build
 * must have been made by `npm ci`, so the fast path is what the suite exercises.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { CryptoPool } from '../../supervisor/crypto/crypto-pool.js';
import { generateIdentity } from '../../supervisor/crypto/keys.js';
import {
  loadNativeSchnorr,
  resolveSchnorrBackend,
  schnorrBackend,
  useSchnorrBackend,
  verifyDigest,
  type SchnorrBackend,
} from '../../supervisor/crypto/schnorr.js';

const native = loadNativeSchnorr();
const requireNative = process.env.FEDAI_REQUIRE_NATIVE_SCHNORR === '1';
const P = 2n ** 256n - 2n ** 32n - 977n;
const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const be32 = (x: bigint) => Uint8Array.from(Buffer.from(x.toString(16).padStart(64, '0'), 'hex'));
const int = (b: Uint8Array) => BigInt('0x' + Buffer.from(b).toString('hex'));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function modPow(b: bigint, e: bigint, m: bigint): bigint {
  let r = 1n;
  b %= m;
  for (; e > 0n; e >>= 1n, b = (b * b) % m) if (e & 1n) r = (r * b) % m;
  return r;
}
/** An x with no curve point (x³ + 7 is not a square mod p). */
function xOffCurve(): Uint8Array {
  for (let x = 1n; ; x++) if (modPow((x ** 3n + 7n) % P, (P - 1n) / 2n, P) !== 1n) return be32(x);
}

test('the native build is present where CI requires it', () => {
  if (requireNative) expect('backend' in native ? 'native' : native.error).toBe('native');
  else expect(['native', 'wasm']).toContain(schnorrBackend().name);
});

test('auto picks native when built; wasm is always available', () => {
  expect(resolveSchnorrBackend('wasm').name).toBe('wasm');
  expect(resolveSchnorrBackend('auto').name).toBe('backend' in native ? 'native' : 'wasm');
  if ('backend' in native) expect(resolveSchnorrBackend('native')).toBe(native.backend);
  else expect(() => resolveSchnorrBackend('native')).toThrow(/optional dependency bcrypto.*apt-get install/);
});

// Where CI requires the native build, a missing one fails these tests instead of skipping them.
const describeNative = 'backend' in native || requireNative ? describe : describe.skip;

describeNative('native and wasm agree', () => {
  let a: SchnorrBackend;
  const b = resolveSchnorrBackend('wasm');
  beforeAll(() => {
    a = resolveSchnorrBackend('native'); // throws, with the fix, when the build is missing
  });

  test('byte-identical signatures for the same auxRand, each verified by the other', () => {
    for (let i = 0; i < 300; i++) {
      const id = generateIdentity();
      const digest = randomBytes(32);
      const aux = randomBytes(32);
      const sa = a.sign(digest, id.secretKey, aux);
      const sb = b.sign(digest, id.secretKey, aux);
      expect(hex(sa)).toBe(hex(sb));
      expect(a.verify(sb, digest, id.publicKey)).toBe(true);
      expect(b.verify(sa, digest, id.publicKey)).toBe(true);
    }
  });

  test('the same verdict on tampered and malformed signatures and keys', () => {
    const id = generateIdentity();
    const digest = randomBytes(32);
    const sig = b.sign(digest, id.secretKey, randomBytes(32));
    const r = sig.subarray(0, 32);
    const s = sig.subarray(32);
    const cases: [string, Uint8Array, Uint8Array, Uint8Array][] = [];
    for (let bit = 0; bit < 512; bit += 7) {
      const t = Uint8Array.from(sig);
      t[bit >> 3]! ^= 1 << (bit & 7);
      cases.push([`sig bit ${bit}`, t, digest, id.publicKey]);
    }
    const d2 = Uint8Array.from(digest);
    d2[0]! ^= 1;
    cases.push(['other digest', sig, d2, id.publicKey]);
    cases.push(['other key', sig, digest, generateIdentity().publicKey]);
    cases.push(['key not on the curve', sig, digest, xOffCurve()]);
    cases.push(['key x >= p', sig, digest, new Uint8Array(32).fill(0xff)]);
    cases.push(['key zero', sig, digest, new Uint8Array(32)]);
    if (int(s) + N < 2n ** 256n) cases.push(['s + n', Uint8Array.from([...r, ...be32(int(s) + N)]), digest, id.publicKey]);
    cases.push(['s = n - s', Uint8Array.from([...r, ...be32(N - int(s))]), digest, id.publicKey]);
    cases.push(['r >= p', Uint8Array.from([...be32(P + 1n), ...s]), digest, id.publicKey]);
    cases.push(['r off the curve', Uint8Array.from([...xOffCurve(), ...s]), digest, id.publicKey]);
    cases.push(['all zero', new Uint8Array(64), digest, id.publicKey]);
    for (const [name, sg, dg, pk] of cases) {
      const verdict = (x: SchnorrBackend) => {
        try {
          return x.verify(sg, dg, pk);
        } catch {
          return false;
        }
      };
      expect([name, verdict(a)]).toEqual([name, false]);
      expect([name, verdict(b)]).toEqual([name, false]);
    }
  });
});

describe('the worker pool uses the selected backend', () => {
  const pools: CryptoPool[] = [];
  afterAll(async () => {
    for (const p of pools) await p.close();
    useSchnorrBackend('auto');
  });
  const names: ('wasm' | 'native')[] = ['wasm', ...('backend' in native || requireNative ? (['native'] as const) : [])];
  test.each(names)('%s: signatures from the workers verify inline, and tampering fails on the workers', async (name) => {
    useSchnorrBackend(name);
    const pool = new CryptoPool(2);
    pools.push(pool);
    const id = generateIdentity();
    const digests = Array.from({ length: 24 }, (_, i) => createHash('sha256').update(`${name}${i}`).digest());
    const sigs = await Promise.all(digests.map((d) => pool.sign(d, id.secretKey)));
    expect(sigs.every((sg, i) => verifyDigest(sg, digests[i]!, id.publicKey))).toBe(true);
    expect(await Promise.all(sigs.map((sg, i) => pool.verify(sg, digests[i]!, id.publicKey)))).toEqual(sigs.map(() => true));
    const wrong = await Promise.all(sigs.map((sg, i) => pool.verify(sg, digests[(i + 1) % digests.length]!, id.publicKey)));
    expect(wrong.some(Boolean)).toBe(false);
  });
});
