/**
 * Payment verification cost: how long PaymentGate.check takes for one receipt (no Lightning backend,
 * so no network: envelope structure + BIP-340 verify + pricing + lmdb isSpent), the same with a BOLT11
 * invoice and preimage (adds bech32 decode + ECDSA public-key recovery + sha256), BOLT11 decoding alone,
 * and check + commit (the atomic lmdb spend). Pre-signed receipts, a temp data dir, a bounded loop.
 * Run directly: node --import ./scripts/register-ts.mjs scripts/bench/payments.ts [seconds]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { configFrom } from '../../supervisor/config/load-config.js';
import { signEnvelope, type Envelope } from '../../supervisor/crypto/envelope.js';
import { parseIdentity } from '../../supervisor/crypto/keys.js';
import { createLogger } from '../../supervisor/observability/logger.js';
import { decodeBolt11 } from '../../supervisor/payments/bolt11.js';
import { PaymentGate } from '../../supervisor/payments/payment-gate.js';
import type { InferenceRequest, PaymentReceipt } from '../../supervisor/protocol/wire-types.js';
import { encodeBolt11, lnNode, preimagePair } from '../../test/fixtures/lightning/bolt11-encode.js';
import { fmt, table } from './stats.js';

export interface PaymentsBenchRow {
  name: string;
  ops: number;
  /** Mean over the whole run. */
  usPerOp: number;
  opsPerSec: number;
  /** Median of the per-batch means (batches of BATCH ops): less sensitive to a loaded machine. */
  medianBatchUs: number;
  /** Best batch mean: the closest to the cost on an idle core. */
  bestBatchUs: number;
}

const BATCH = 50;

async function loop(name: string, seconds: number, pool: number, fn: (i: number) => Promise<unknown> | unknown): Promise<PaymentsBenchRow> {
  const warm = Math.min(200, Math.floor(pool / 10));
  for (let i = 0; i < warm; i++) await fn(i); // warm-up on its own items (commit spends them)
  const deadline = performance.now() + seconds * 1000;
  let ops = 0;
  const batches: number[] = [];
  const t0 = performance.now();
  let tb = t0;
  while (performance.now() < deadline && warm + ops < pool) {
    await fn(warm + ops);
    ops++;
    if (ops % BATCH === 0) {
      const t = performance.now();
      batches.push(((t - tb) * 1000) / BATCH);
      tb = t;
    }
  }
  const us = ((performance.now() - t0) * 1000) / ops;
  const sorted = [...batches].sort((a, b) => a - b);
  return { name, ops, usPerOp: us, opsPerSec: 1e6 / us, medianBatchUs: sorted[Math.floor(sorted.length / 2)] ?? us, bestBatchUs: sorted[0] ?? us };
}

export async function runPaymentsBenchRows(opts: { seconds?: number } = {}): Promise<PaymentsBenchRow[]> {
  const seconds = opts.seconds ?? 2;
  const dataDir = await mkdtemp(join(tmpdir(), 'fedai-bench-pay-'));
  const node = parseIdentity('22'.repeat(32));
  const client = parseIdentity('33'.repeat(32));
  const config = configFrom({ NODE_REQUIRE_PAYMENT: 'true', NODE_ID: 'bench-node', NODE_PRICE_INPUT_SATS: '1', NODE_PRICE_OUTPUT_SATS: '1' });
  const gate = await PaymentGate.open({ config, node: { nodeId: 'bench-node', identity: node }, dataDir, logger: createLogger({ level: 'silent' }) });
  const ln = lnNode('44'.repeat(32));
  const rows: PaymentsBenchRow[] = [];
  try {
    const POOL = 4000;
    const request = (i: number, tag: string): InferenceRequest => ({ requestId: `${tag}-${i}`, modelId: 'm', prompt: 'p'.repeat(400), maxTokens: 100 });
    const mk = (tag: string, withInvoice: boolean) =>
      Array.from({ length: POOL }, (_, i) => {
        const req = request(i, tag);
        const extra: Partial<PaymentReceipt> = {};
        if (withInvoice) {
          const { paymentHash, preimage } = preimagePair();
          extra.invoice = encodeBolt11(ln, { amountMsat: 200_000n, paymentHash, expirySec: 3600 });
          extra.paymentHash = paymentHash;
          extra.preimage = preimage;
        }
        const env: Envelope<PaymentReceipt> = signEnvelope({ requestId: req.requestId, payeeType: 'node', payeeId: 'bench-node', amountSats: 200, paidAtMs: Date.now(), ...extra }, client);
        return { ...req, paymentReceipts: [env] };
      });
    const plain = mk('plain', false);
    const invoiced = mk('inv', true);
    const committed = mk('commit', false);
    rows.push(await loop('gate.check: receipt only (sig + price + store lookup)', seconds, POOL, (i) => gate.check(plain[i]!, {})));
    rows.push(await loop('gate.check: receipt + BOLT11 invoice + preimage', seconds, POOL, (i) => gate.check(invoiced[i]!, {})));
    rows.push(await loop('decodeBolt11 alone (decode + ECDSA recovery)', seconds, POOL, (i) => decodeBolt11(invoiced[i]!.paymentReceipts![0]!.payload.invoice!)));
    rows.push(
      await loop('gate.check + ticket.commit + durable (lmdb spend, one at a time)', seconds, POOL, async (i) => {
        const ticket = await gate.check(committed[i]!, {});
        await ticket.commit();
        await ticket.durable();
      }),
    );
  } finally {
    await gate.close();
    await rm(dataDir, { recursive: true, force: true });
  }
  return rows;
}

export async function runPaymentsBench(opts: { seconds?: number } = {}): Promise<string> {
  const rows = await runPaymentsBenchRows(opts);
  return (
    '## payments (one receipt verification, no Lightning network calls)\n\n' +
    table(
      ['operation', 'ops', 'µs/op (mean)', 'µs/op (median batch)', 'µs/op (best batch)', 'ops/s'],
      rows.map((r) => [r.name, r.ops, fmt(r.usPerOp, 1), fmt(r.medianBatchUs, 1), fmt(r.bestBatchUs, 1), fmt(r.opsPerSec, 0)]),
    ) +
    `\n\nBatches of ${BATCH} ops; "best batch" approximates an idle core. Load average at the end: ${loadavg()[0]!.toFixed(1)} on ${cpus().length} CPUs.`
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const seconds = Number(process.argv[2] ?? 2);
  process.stdout.write((await runPaymentsBench({ seconds })) + '\n');
}
