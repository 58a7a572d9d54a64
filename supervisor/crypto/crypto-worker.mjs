// Worker thread for BIP-340 sign/verify (see crypto-pool.ts). Plain JavaScript so it loads the same
// way from sources, from dist/ and under jest. A batch arrives as transferred buffers:
//   ops:  Uint8Array  (0 = sign, 1 = verify), one per job
//   data: Uint8Array  128 bytes per job: sign = digest32 | sk32 | aux32; verify = digest32 | pk32 | sig64
// and goes back as { out: Uint8Array } with 65 bytes per job: status (1 ok / 0 fail) | sig64.
// workerData.backend is the backend the main thread resolved (schnorr.ts): 'native' or 'wasm'.
import { createRequire } from 'node:module';
import { parentPort, workerData } from 'node:worker_threads';
import * as ecc from 'tiny-secp256k1';

const native = workerData?.backend === 'native' ? createRequire(import.meta.url)('bcrypto/lib/native/schnorr') : null;
const toBuf = (u) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
const signSchnorr = native ? (d, sk, aux) => native.sign(toBuf(d), toBuf(sk), toBuf(aux)) : (d, sk, aux) => ecc.signSchnorr(d, sk, aux);
const verifySchnorr = native ? (d, pk, sig) => native.verify(toBuf(d), toBuf(sig), toBuf(pk)) : (d, pk, sig) => ecc.verifySchnorr(d, pk, sig);

parentPort.on('message', ({ ops, data }) => {
  const n = ops.length;
  const out = new Uint8Array(n * 65);
  for (let i = 0; i < n; i++) {
    const o = i * 128;
    const digest = data.subarray(o, o + 32);
    try {
      if (ops[i] === 0) {
        const sig = signSchnorr(digest, data.subarray(o + 32, o + 64), data.subarray(o + 64, o + 96));
        out[i * 65] = 1;
        out.set(sig, i * 65 + 1);
      } else {
        out[i * 65] = verifySchnorr(digest, data.subarray(o + 32, o + 64), data.subarray(o + 64, o + 128)) ? 1 : 0;
      }
    } catch {
      out[i * 65] = 0;
    }
  }
  data.fill(0); // the batch held secret keys
  parentPort.postMessage({ out }, [out.buffer]);
});
