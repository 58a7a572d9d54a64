/**
 * Signature and canonical-JSON throughput: the numbers behind the Schnorr backends in
 * supervisor/crypto/schnorr.ts and the cost of one /infer verification.
 *
 *   node --import ./scripts/register-ts.mjs scripts/bench/crypto.ts [seconds-per-row]
 *   npm run bench -- crypto
 *
 * Every row runs for a bounded time (default 0.5 s after a short warm-up). Results vary with the host;
 * they are for comparison between rows, not for assertions.
 */
import { createHash, randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { schnorr } from '@noble/curves/secp256k1.js';
import * as ecc from 'tiny-secp256k1';
import { initNostrWasm } from 'nostr-wasm';
import { canonicalize } from '../../supervisor/protocol/canonical-json.js';
import { checkEnvelopeSignature, signEnvelope, verifyEnvelope, type Envelope } from '../../supervisor/crypto/envelope.js';
import { parseIdentity } from '../../supervisor/crypto/keys.js';
import { loadNativeSchnorr, schnorrBackend } from '../../supervisor/crypto/schnorr.js';
import { validateEnvelopeOf } from '../../supervisor/protocol/wire-schemas.js';

export interface CryptoBenchRow {
  name: string;
  opsPerSec: number;
  usPerOp: number;
}

/** Runs fn in batches until `seconds` have passed; returns throughput. */
function measure(name: string, seconds: number, fn: () => unknown): CryptoBenchRow {
  const warmEnd = performance.now() + Math.min(100, seconds * 200);
  while (performance.now() < warmEnd) fn();
  const budgetMs = seconds * 1000;
  let ops = 0;
  let batch = 1;
  const t0 = performance.now();
  let elapsed = 0;
  while (elapsed < budgetMs) {
    for (let i = 0; i < batch; i++) fn();
    ops += batch;
    elapsed = performance.now() - t0;
    if (elapsed < budgetMs / 20) batch *= 2;
  }
  const usPerOp = (elapsed * 1000) / ops;
  return { name, opsPerSec: 1e6 / usPerOp, usPerOp };
}

/** The v2b vector's shape: a router-signed /infer payload carrying a client-signed receipt, non-ASCII text. */
function v2bLikePayload() {
  const client = parseIdentity('3333333333333333333333333333333333333333333333333333333333333333');
  const router = parseIdentity('2222222222222222222222222222222222222222222222222222222222222222');
  const receipt = signEnvelope(
    {
      requestId: 'req-2',
      payeeType: 'node',
      payeeId: 'node-1',
      amountSats: 21,
      paidAtMs: 1700000000000,
      invoice: 'lnbc210n1mock',
      splits: [
        { payeeType: 'node', payeeId: 'node-1', amountSats: 20, role: 'node-inference' },
        { payeeType: 'router', payeeId: router.npub, amountSats: 1, role: 'router-fee' },
      ],
    },
    client,
    { nonce: 'receipt-nonce-1', ts: 1700000000000 },
  );
  return {
    router,
    payload: {
      requestId: 'req-2',
      modelId: 'mock-model',
      prompt: 'h\u00e9llo "w\u00f6rld"\n\ud83d\ude00\u0001',
      maxTokens: 16,
      temperature: 0.7,
      topP: 0.95,
      metadata: { b: '2', a: '1' },
      paymentReceipts: [receipt],
    },
  };
}

export async function runCryptoBench(opts: { seconds?: number } = {}): Promise<CryptoBenchRow[]> {
  const seconds = opts.seconds ?? 0.5;
  const rows: CryptoBenchRow[] = [];

  const sk = schnorr.utils.randomSecretKey();
  const pk = schnorr.getPublicKey(sk);
  const digest = new Uint8Array(randomBytes(32));
  const nobleSig = schnorr.sign(digest, sk);
  rows.push(measure('@noble/curves schnorr.sign (32-byte digest)', seconds, () => schnorr.sign(digest, sk)));
  rows.push(measure('@noble/curves schnorr.verify', seconds, () => schnorr.verify(nobleSig, digest, pk)));

  const aux = new Uint8Array(32);
  const tinySig = ecc.signSchnorr(digest, sk, aux);
  rows.push(measure('tiny-secp256k1 signSchnorr (32-byte digest)', seconds, () => ecc.signSchnorr(digest, sk, randomBytes(32))));
  rows.push(measure('tiny-secp256k1 verifySchnorr', seconds, () => ecc.verifySchnorr(digest, pk, tinySig)));

  const native = loadNativeSchnorr();
  if ('backend' in native) {
    const b = native.backend;
    rows.push(measure('bcrypto native schnorr sign (32-byte digest)', seconds, () => b.sign(digest, sk, randomBytes(32))));
    rows.push(measure('bcrypto native schnorr verify', seconds, () => b.verify(tinySig, digest, pk)));
  } else {
    rows.push({ name: `bcrypto native: ${native.error}`, opsPerSec: NaN, usPerOp: NaN });
  }

  const nostr = await initNostrWasm();
  const content = 'x'.repeat(1024);
  const template = { kind: 1, created_at: 1700000000, tags: [] as string[][], content };
  const signed = { ...template, id: '', pubkey: '', sig: '' };
  nostr.finalizeEvent(signed, sk);
  const wire = JSON.stringify(signed);
  // finalizeEvent serialises and hashes the event itself (id = sha256 of its own serialisation).
  rows.push(measure('nostr-wasm finalizeEvent (1 KB content)', seconds, () => nostr.finalizeEvent({ ...template, id: '', pubkey: '', sig: '' }, sk)));
  // a freshly parsed object every time: no verdict can be reused (sandbox-on-linux.md §2.7)
  rows.push(measure('nostr-wasm verifyEvent(JSON.parse(wire)) (1 KB)', seconds, () => nostr.verifyEvent(JSON.parse(wire))));

  const { router, payload } = v2bLikePayload();
  const env = signEnvelope(payload, router, { nonce: 'nonce-2', ts: 1700000000123 });
  const envWire = JSON.stringify(env);
  const active = schnorrBackend().name;
  rows.push(measure(`signEnvelope (v2b-size payload, ${active})`, seconds, () => signEnvelope(payload, router)));
  rows.push(measure(`verifyEnvelope (v2b-size payload, ${active})`, seconds, () => verifyEnvelope(env)));
  rows.push(
    measure('JSON.parse + validateEnvelopeOf + checkEnvelopeSignature (v2b)', seconds, () => {
      const parsed = JSON.parse(envWire) as unknown;
      const v = validateEnvelopeOf('inference-request', parsed);
      if (!v.ok || checkEnvelopeSignature(v.value as Envelope<unknown>, { requireNpub: true }) !== null) throw new Error('bench envelope does not verify');
    }),
  );
  const unsigned = { payload: env.payload, nonce: env.nonce, ts: env.ts, keyId: env.keyId };
  rows.push(measure('canonicalize (v2b)', seconds, () => canonicalize(unsigned)));
  rows.push(measure('canonicalize + sha256 (v2b)', seconds, () => createHash('sha256').update(canonicalize(unsigned), 'utf8').digest()));
  rows.push(measure('validateEnvelopeOf inference-request (v2b)', seconds, () => validateEnvelopeOf('inference-request', env)));
  return rows;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const seconds = Number(process.argv[2] ?? '0.5');
  const rows = await runCryptoBench({ seconds: Number.isFinite(seconds) && seconds > 0 ? seconds : 0.5 });
  const { table, fmt } = await import('./stats.js');
  process.stdout.write(
    `# crypto (node ${process.version}, ${seconds} s per row)\n\n` +
      table(['operation', 'ops/s', 'µs/op'], rows.map((r) => [r.name, fmt(r.opsPerSec, 0), fmt(r.usPerOp, 1)])) +
      '\n',
  );
}
