// Worker thread for BIP-340 sign/verify (see crypto-pool.ts). Plain JavaScript so it loads the same
// way from sources, from dist/ and under jest. Messages: {id, op:'sign', digest, sk, aux} → {id, sig}
// and {id, op:'verify', digest, pk, sig} → {id, ok}. Inputs are 32/64-byte Uint8Arrays.
import { parentPort } from 'node:worker_threads';
import * as ecc from 'tiny-secp256k1';

parentPort.on('message', (batch) => {
  const out = [];
  for (const m of batch) {
    try {
      if (m.op === 'sign') out.push({ id: m.id, sig: ecc.signSchnorr(m.digest, m.sk, m.aux) });
      else out.push({ id: m.id, ok: m.sig.length === 64 && ecc.verifySchnorr(m.digest, m.pk, m.sig) });
    } catch (err) {
      out.push({ id: m.id, ok: false, error: String(err && err.message) });
    }
  }
  parentPort.postMessage(out);
});
