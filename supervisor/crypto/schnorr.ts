/**
 * BIP-340 Schnorr over secp256k1, from one of two builds of libsecp256k1:
 *
 * - `native`: bcrypto's N-API binding (libsecp256k1 with its schnorrsig module, compiled by node-gyp
 *   when `npm ci` installs the optional dependency). ~70 µs per signature or verification here.
 * - `wasm`: tiny-secp256k1 (libsecp256k1 compiled to WebAssembly). Always present; ~250–400 µs.
 *
 * Both are the same algorithm and give byte-identical signatures for the same auxRand (a test keeps
 * them in step). `auto` (the default) takes the native build when it loaded and WebAssembly otherwise;
 * NODE_SCHNORR_BACKEND=native makes a missing native build a start-up error instead. `npm run bench --
 * crypto` measures both. Signing uses fresh random auxRand, as upstream does; `signDigest(..., aux)`
 * takes a fixed one for vectors.
 */
import * as ecc from 'tiny-secp256k1';
import { asBuffer, loadNativeSecp256k1 } from './native-secp256k1.js';
import { random32 } from './random-pool.js';

export type SchnorrBackendName = 'native' | 'wasm';
export type SchnorrBackendChoice = 'auto' | SchnorrBackendName;

export interface SchnorrBackend {
  readonly name: SchnorrBackendName;
  /** Library and build, for logs and /status. */
  readonly detail: string;
  sign(digest: Uint8Array, secretKey: Uint8Array, auxRand: Uint8Array): Uint8Array;
  /** Inputs have the right lengths (checked by the callers); may throw on malformed keys. */
  verify(sig: Uint8Array, digest: Uint8Array, publicKey: Uint8Array): boolean;
}

const WASM: SchnorrBackend = {
  name: 'wasm',
  detail: 'tiny-secp256k1 (libsecp256k1, WebAssembly)',
  sign: (digest, secretKey, auxRand) => ecc.signSchnorr(digest, secretKey, auxRand),
  verify: (sig, digest, publicKey) => ecc.verifySchnorr(digest, publicKey, sig),
};

let nativeBackend: { backend: SchnorrBackend } | { error: string } | undefined;

/** The native build, or why it is not available (loaded once per thread). */
export function loadNativeSchnorr(): { backend: SchnorrBackend } | { error: string } {
  if (nativeBackend) return nativeBackend;
  const lib = loadNativeSecp256k1();
  if ('error' in lib) return (nativeBackend = { error: lib.error });
  const { schnorr } = lib;
  nativeBackend = {
    backend: {
      name: 'native',
      detail: 'bcrypto (libsecp256k1, native N-API build)',
      sign: (digest, secretKey, auxRand) => schnorr.sign(asBuffer(digest), asBuffer(secretKey), asBuffer(auxRand)),
      verify: (sig, digest, publicKey) => schnorr.verify(asBuffer(digest), asBuffer(sig), asBuffer(publicKey)),
    },
  };
  return nativeBackend;
}

/** Resolves a choice to a backend; `native` without the build throws with the reason and the fix. */
export function resolveSchnorrBackend(choice: SchnorrBackendChoice): SchnorrBackend {
  if (choice === 'wasm') return WASM;
  const native = loadNativeSchnorr();
  if ('backend' in native) return native.backend;
  if (choice === 'native') {
    throw new Error(`${native.error}. Install a C++ toolchain and python3 (Debian: apt-get install -y g++ make python3), then run npm ci again, or set NODE_SCHNORR_BACKEND=auto`);
  }
  return WASM;
}

// Until useSchnorrBackend() runs (node start-up, with the validated config): wasm when asked for, else
// the best available. Never throws at import: a missing native build is reported by start-up.
let active: SchnorrBackend = resolveSchnorrBackend(process.env.NODE_SCHNORR_BACKEND === 'wasm' ? 'wasm' : 'auto');

/** Selects the backend for this thread (node start-up calls it with the validated config). */
export function useSchnorrBackend(choice: SchnorrBackendChoice): SchnorrBackend {
  active = resolveSchnorrBackend(choice);
  return active;
}

export function schnorrBackend(): SchnorrBackend {
  return active;
}

export function signDigest(digest: Uint8Array, secretKey: Uint8Array, auxRand?: Uint8Array): Uint8Array {
  return active.sign(digest, secretKey, auxRand ?? random32());
}

/** Never throws: malformed inputs are simply "does not verify". */
export function verifyDigest(sig: Uint8Array, digest: Uint8Array, publicKey: Uint8Array): boolean {
  if (sig.length !== 64 || digest.length !== 32 || publicKey.length !== 32) return false;
  try {
    return active.verify(sig, digest, publicKey);
  } catch {
    return false;
  }
}
