/**
 * BIP-340 Schnorr over secp256k1, through tiny-secp256k1 (libsecp256k1 compiled to WebAssembly).
 * Measured against @noble/curves and nostr-wasm by `npm run bench -- crypto`; tiny-secp256k1 is the
 * fastest of the three that exposes a raw 32-byte-digest API (nostr-wasm signs Nostr events only).
 * Signing uses fresh random auxRand, as upstream does; `signDigest(..., zeroAux)` exists for vectors.
 */
import * as ecc from 'tiny-secp256k1';
import { random32 } from './random-pool.js';

export function signDigest(digest: Uint8Array, secretKey: Uint8Array, auxRand?: Uint8Array): Uint8Array {
  return ecc.signSchnorr(digest, secretKey, auxRand ?? random32());
}

/** Never throws: malformed inputs are simply "does not verify". */
export function verifyDigest(sig: Uint8Array, digest: Uint8Array, publicKey: Uint8Array): boolean {
  if (sig.length !== 64 || digest.length !== 32 || publicKey.length !== 32) return false;
  try {
    return ecc.verifySchnorr(digest, publicKey, sig);
  } catch {
    return false;
  }
}
