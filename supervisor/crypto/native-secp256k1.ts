/**
 * bcrypto's native libsecp256k1 binding (optional dependency, compiled by node-gyp during `npm ci`),
 * loaded once per thread: its BIP-340 module for schnorr.ts and its ECDSA module for ecdsa.ts. Only
 * the native entry points are loaded: bcrypto's own fallback is a slow pure-JS implementation, and
 * the fallback here is tiny-secp256k1 (WebAssembly), chosen by the callers. (crypto-worker.mjs, plain
 * JavaScript, loads the same module path itself.)
 */
import { createRequire } from 'node:module';

export interface NativeSchnorr {
  native?: number;
  sign(msg: Buffer, key: Buffer, aux: Buffer): Buffer;
  verify(msg: Buffer, sig: Buffer, key: Buffer): boolean;
}

export interface NativeEcdsa {
  native?: number;
  publicKeyVerify(key: Buffer): boolean;
  verify(msg: Buffer, sig: Buffer, key: Buffer): boolean;
  recover(msg: Buffer, sig: Buffer, param: number, compress: boolean): Buffer | null;
}

export type NativeLoad = { schnorr: NativeSchnorr; ecdsa: NativeEcdsa } | { error: string };

let loaded: NativeLoad | undefined;

export function loadNativeSecp256k1(): NativeLoad {
  if (loaded) return loaded;
  try {
    const require = createRequire(import.meta.url);
    const schnorr = require('bcrypto/lib/native/schnorr') as NativeSchnorr;
    const ecdsa = require('bcrypto/lib/native/secp256k1') as NativeEcdsa;
    if (schnorr.native !== 2 || ecdsa.native !== 2) throw new Error('bcrypto loaded without its native binding');
    loaded = { schnorr, ecdsa };
  } catch (err) {
    const reason = err instanceof Error ? err.message.split('\n')[0]! : String(err);
    loaded = { error: `the native libsecp256k1 build (optional dependency bcrypto) is not available: ${reason}` };
  }
  return loaded;
}

/** bcrypto asserts Buffer arguments; a view over the same memory costs no copy. */
export const asBuffer = (u: Uint8Array): Buffer => (Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength));
