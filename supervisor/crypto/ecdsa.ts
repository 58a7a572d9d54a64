/**
 * ECDSA over secp256k1, for BOLT11 invoice signatures: verify under a given public key, or recover
 * the key from a recoverable signature. The same two builds of libsecp256k1 as schnorr.ts, following
 * its backend choice (NODE_SCHNORR_BACKEND): bcrypto's native binding (~80 µs per recovery here) or
 * tiny-secp256k1's WebAssembly (~450–560 µs). Both accept high-S signatures (as BOLT11 readers do) and
 * agree on every input (a test keeps them in step). Neither function throws on malformed input.
 */
import * as ecc from 'tiny-secp256k1';
import { asBuffer as buf, loadNativeSecp256k1, type NativeEcdsa } from './native-secp256k1.js';
import { schnorrBackend } from './schnorr.js';

/** The native ECDSA when the node runs on the native backend, else null (WebAssembly). */
function native(): NativeEcdsa | null {
  if (schnorrBackend().name !== 'native') return null;
  const lib = loadNativeSecp256k1();
  return 'ecdsa' in lib ? lib.ecdsa : null;
}

/** True when `sig64` (r ‖ s, compact) signs `msgHash` under the compressed or uncompressed key. */
export function verifyEcdsa(msgHash: Uint8Array, sig64: Uint8Array, publicKey: Uint8Array): boolean {
  if (msgHash.length !== 32 || sig64.length !== 64) return false;
  try {
    const lib = native();
    if (lib) return lib.publicKeyVerify(buf(publicKey)) && lib.verify(buf(msgHash), buf(sig64), buf(publicKey));
    return ecc.isPoint(publicKey) && ecc.verify(msgHash, publicKey, sig64, false);
  } catch {
    return false;
  }
}

/** The 33-byte compressed key that (sig64, recoveryId) verifies under, or null. */
export function recoverEcdsa(msgHash: Uint8Array, sig64: Uint8Array, recoveryId: number): Uint8Array | null {
  if (msgHash.length !== 32 || sig64.length !== 64 || !(recoveryId >= 0 && recoveryId <= 3)) return null;
  try {
    const lib = native();
    if (lib) return lib.recover(buf(msgHash), buf(sig64), recoveryId, true) ?? null;
    return ecc.recover(msgHash, sig64, recoveryId as 0 | 1 | 2 | 3, true) ?? null;
  } catch {
    return null;
  }
}
