/**
 * PaymentGate without Lightning: every check with its exact status and code, single use across
 * restarts, the signed 402. Real signatures, real lmdb files in temp dirs.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { signEnvelope, verifyEnvelope, type Envelope } from '../../supervisor/crypto/envelope.js';
import { generateIdentity } from '../../supervisor/crypto/keys.js';
import { ERRORS } from '../../supervisor/errors.js';
import type { PaymentRequest } from '../../supervisor/protocol/wire-types.js';
import { encodeBolt11, lnNode, preimagePair } from '../fixtures/lightning/bolt11-encode.js';
import { inferenceRequest, openGate, receipt, rejection, withReceipts, NODE_ID, type GateHarness } from './gate-helpers.js';

// prompt 40 chars → 10 tokens; maxTokens 10; 1 sat/token each way → router price 20
const PRICED = { NODE_PRICE_INPUT_SATS: '1', NODE_PRICE_OUTPUT_SATS: '1' } as const;

let h: GateHarness;
afterEach(async () => {
  await h?.cleanup();
});

const client = generateIdentity();

async function expectCode(req: ReturnType<typeof inferenceRequest>, code: keyof typeof ERRORS, status: number): Promise<void> {
  const before = h.failures.length;
  const err = await rejection(() => h.gate.check(req, {}));
  expect(err.code).toBe(code);
  expect(err.status).toBe(status);
  expect(h.failures.slice(before)).toEqual([code]);
}

describe('402 payment-required', () => {
  it('answers a request without receipts with a node-signed PaymentRequest', async () => {
    h = await openGate({ ...PRICED, NODE_PAYMENT_REQUEST_TTL_MS: '120000' });
    const req = inferenceRequest();
    const t0 = Date.now();
    const err = await rejection(() => h.gate.check(req, { estimate: { inputTokens: 30, exact: true } }));
    expect(err.code).toBe('payment-required');
    expect(err.status).toBe(402);
    expect(h.failures).toEqual(['payment-required']);
    const body = err.toBody();
    expect(body.error).toBe('payment-required');
    const payment = body.payment as Envelope<PaymentRequest>;
    expect(verifyEnvelope(payment)).toBe(true);
    expect(payment.keyId).toBe(h.node.npub);
    expect(payment.payload).toMatchObject({ requestId: req.requestId, payeeType: 'node', payeeId: NODE_ID, amountSats: 40, invoice: '' });
    expect(payment.payload.paymentHash).toBeUndefined();
    expect(payment.payload.expiresAtMs).toBeGreaterThanOrEqual(t0 + 120000);
    expect(payment.payload.expiresAtMs).toBeLessThanOrEqual(Date.now() + 120000);
    expect(payment.payload.metadata).toMatchObject({ minimumSats: 20, nodeKeyId: h.node.npub });
    // a tampered copy does not verify: the signature covers the amount
    expect(verifyEnvelope({ ...payment, payload: { ...payment.payload, amountSats: 1 } })).toBe(false);
  });

  it('ignores receipts for other nodes and for routers', async () => {
    h = await openGate(PRICED);
    const req = inferenceRequest();
    const r1 = receipt(client, req, { payeeId: 'another-node' });
    const r2 = receipt(client, req, { payeeType: 'router', payeeId: NODE_ID });
    await expectCode(withReceipts(req, r1, r2), 'payment-required', 402);
  });

  it('uses the first receipt for this node, by NODE_ID or by the node npub', async () => {
    h = await openGate(PRICED);
    const req = inferenceRequest();
    const good = receipt(client, req, { payeeId: h.node.npub, amountSats: 20 });
    const ticket = await h.gate.check(withReceipts(req, receipt(client, req, { payeeType: 'router', amountSats: 1 }), good), {});
    expect(ticket.amountSats).toBe(20);
    // the first matching receipt decides, even when a later one would pass
    const req2 = inferenceRequest();
    await expectCode(withReceipts(req2, receipt(client, req2, { amountSats: 19 }), receipt(client, req2, { amountSats: 20 })), 'payment-insufficient', 402);
  });

  it('lets a request without receipt through when payment is not required', async () => {
    h = await openGate({ ...PRICED, NODE_REQUIRE_PAYMENT: 'false' });
    expect(h.gate.required).toBe(false);
    const t = await h.gate.check(inferenceRequest(), {});
    expect(t.amountSats).toBe(0);
    await t.commit();
  });
});

describe('receipt checks, in order, with exact codes', () => {
  it('400 invalid-payment-receipt for a malformed envelope or payload', async () => {
    h = await openGate(PRICED);
    const req = inferenceRequest();
    const extraKey = { ...receipt(client, req), extra: 1 };
    await expectCode(withReceipts(req, extraKey as never), 'invalid-payment-receipt', 400);
    const noPaid = receipt(client, req, { paidAtMs: undefined });
    await expectCode(withReceipts(req, noPaid), 'invalid-payment-receipt', 400);
    const badHash = receipt(client, req, { paymentHash: 'zz' });
    const err = await rejection(() => h.gate.check(withReceipts(req, badHash), {}));
    expect(err.code).toBe('invalid-payment-receipt');
    expect(err.details).toHaveLength(1);
    expect(String(err.details![0])).toMatch(/^\/payload\/paymentHash: /);
    const strAmount = receipt(client, req, { amountSats: '20' as never });
    await expectCode(withReceipts(req, strAmount), 'invalid-payment-receipt', 400);
    // the shared schema requires integers: a fractional amount or a negative split is a malformed receipt
    await expectCode(withReceipts(req, receipt(client, req, { amountSats: 20.5 })), 'invalid-payment-receipt', 400);
    const negSplit = receipt(client, req, { amountSats: 20, splits: [{ payeeType: 'node', payeeId: NODE_ID, amountSats: -3 }, { payeeType: 'router', payeeId: 'r', amountSats: 23 }] });
    await expectCode(withReceipts(req, negSplit), 'invalid-payment-receipt', 400);
  });

  it('401 invalid-payment-receipt-signature for a tampered receipt, a bad sig or an unparsable keyId (never a throw)', async () => {
    h = await openGate(PRICED);
    const req = inferenceRequest();
    const r = receipt(client, req, { amountSats: 20 });
    await expectCode(withReceipts(req, { ...r, payload: { ...r.payload, amountSats: 2000 } }), 'invalid-payment-receipt-signature', 401);
    await expectCode(withReceipts(req, { ...r, sig: 'AAAA' }), 'invalid-payment-receipt-signature', 401);
    await expectCode(withReceipts(req, { ...r, keyId: 'npub1notakey' }), 'invalid-payment-receipt-signature', 401);
    await expectCode(withReceipts(req, { ...r, keyId: generateIdentity().npub }), 'invalid-payment-receipt-signature', 401);
    // a hex keyId is accepted for receipts
    const resigned = signEnvelope(r.payload, { ...client, npub: client.pubHex }, {});
    expect(resigned.keyId).toBe(client.pubHex);
    const t = await h.gate.check(withReceipts(req, resigned), {});
    expect(t.amountSats).toBe(20);
  });

  it('400 payment-amount-invalid for zero and negative amounts', async () => {
    h = await openGate(PRICED);
    for (const amountSats of [0, -5]) {
      const req = inferenceRequest();
      await expectCode(withReceipts(req, receipt(client, req, { amountSats })), 'payment-amount-invalid', 400);
    }
  });

  it('400 payment-request-mismatch for another requestId', async () => {
    h = await openGate(PRICED);
    const req = inferenceRequest();
    await expectCode(withReceipts(req, receipt(client, { ...req, requestId: 'other' }, { amountSats: 20 })), 'payment-request-mismatch', 400);
  });

  it('402 payment-insufficient below the router formula, and the router formula is enough', async () => {
    h = await openGate(PRICED);
    const req = inferenceRequest();
    await expectCode(withReceipts(req, receipt(client, req, { amountSats: 19 })), 'payment-insufficient', 402);
    // exact token counts above chars/4 do not raise the accepted minimum (router interoperability)
    const t = await h.gate.check(withReceipts(req, receipt(client, req, { amountSats: 20 })), { estimate: { inputTokens: 500, exact: true } });
    expect(t.amountSats).toBe(20);
  });

  it('checks splits: total, router fee caps (defaults apply), payee and the node share', async () => {
    h = await openGate({ ...PRICED, NODE_ROUTER_FEE_MAX_BPS: '1000', NODE_ROUTER_FEE_MAX_SATS: '3' });
    const router = { payeeType: 'router' as const, payeeId: 'router-1', role: 'router-fee' as const };
    const me = { payeeType: 'node' as const, payeeId: NODE_ID, role: 'node-inference' as const };
    let req = inferenceRequest({ maxTokens: 20 }); // price 30
    await expectCode(withReceipts(req, receipt(client, req, { amountSats: 33, splits: [{ ...me, amountSats: 30 }, { ...router, amountSats: 2 }] })), 'payment-split-total-mismatch', 400);
    await expectCode(withReceipts(req, receipt(client, req, { amountSats: 34, splits: [{ ...me, amountSats: 30 }, { ...router, amountSats: 4 }] })), 'router-fee-exceeds-cap', 400);
    await expectCode(withReceipts(req, receipt(client, req, { amountSats: 33, splits: [{ ...me, payeeId: 'someone-else', amountSats: 30 }, { ...router, amountSats: 3 }] })), 'payment-payee-mismatch', 400);
    await expectCode(withReceipts(req, receipt(client, req, { amountSats: 32, splits: [{ ...me, amountSats: 29 }, { ...router, amountSats: 3 }] })), 'router-fee-exceeds-cap', 400); // 3 > floor(29·10%) = 2
    req = inferenceRequest({ maxTokens: 20 });
    const ok = await h.gate.check(withReceipts(req, receipt(client, req, { amountSats: 33, splits: [{ ...me, amountSats: 30 }, { ...router, amountSats: 3 }] })), {});
    expect(ok.amountSats).toBe(30);
    // node share below the price although the total covers it
    await h.reopen();
    req = inferenceRequest({ maxTokens: 20 });
    await expectCode(withReceipts(req, receipt(client, req, { amountSats: 31, splits: [{ ...me, amountSats: 28 }, { ...router, amountSats: 2 }, { payeeType: 'node', payeeId: 'n2', amountSats: 1 }] })), 'payment-insufficient', 402);
  });

  it('applies the default fee caps (1000 bps, 1000 sats) when none are configured', async () => {
    h = await openGate({ NODE_PRICE_INPUT_SATS: '100', NODE_PRICE_OUTPUT_SATS: '1000' });
    const req = inferenceRequest(); // price 100·10 + 1000·10 = 11000
    const r = receipt(client, req, { amountSats: 12100, splits: [{ payeeType: 'node', payeeId: NODE_ID, amountSats: 11000 }, { payeeType: 'router', payeeId: 'r', amountSats: 1100 }] });
    await expectCode(withReceipts(req, r), 'router-fee-exceeds-cap', 400); // 1100 ≤ 10 % but > 1000 sats
    const r2 = receipt(client, req, { amountSats: 12000, splits: [{ payeeType: 'node', payeeId: NODE_ID, amountSats: 11000 }, { payeeType: 'router', payeeId: 'r', amountSats: 1000 }] });
    expect((await h.gate.check(withReceipts(req, r2), {})).amountSats).toBe(11000);
  });

  it('400 payment-receipt-future beyond the skew, 400 payment-receipt-expired beyond the max age', async () => {
    h = await openGate({ ...PRICED, NODE_RECEIPT_MAX_SKEW_MS: '5000', NODE_RECEIPT_MAX_AGE_MS: '60000' });
    const req = inferenceRequest();
    await expectCode(withReceipts(req, receipt(client, req, { amountSats: 20, paidAtMs: Date.now() + 30_000 })), 'payment-receipt-future', 400);
    await expectCode(withReceipts(req, receipt(client, req, { amountSats: 20, paidAtMs: Date.now() - 120_000 })), 'payment-receipt-expired', 400);
    await expectCode(withReceipts(req, receipt(client, req, { amountSats: 20, paidAtMs: 0 })), 'payment-receipt-expired', 400);
    // within the skew and within the max age: accepted
    expect((await h.gate.check(withReceipts(req, receipt(client, req, { amountSats: 20, paidAtMs: Date.now() + 2000 })), {})).amountSats).toBe(20);
    expect((await h.gate.check(withReceipts(req, receipt(client, req, { amountSats: 20, paidAtMs: Date.now() - 50_000 })), {})).amountSats).toBe(20);
  });
});

describe('single use', () => {
  it('check consumes nothing; commit spends; a second use is 409 payment-receipt-reused', async () => {
    h = await openGate(PRICED);
    const req = inferenceRequest();
    const r = receipt(client, req, { amountSats: 20 });
    const t1 = await h.gate.check(withReceipts(req, r), {});
    const t2 = await h.gate.check(withReceipts(req, r), {}); // e.g. the first attempt got a 429 and was retried
    await t1.commit();
    await t1.commit(); // idempotent for the same ticket
    const lost = await rejection(() => t2.commit()); // a concurrent request with the same receipt
    expect(lost.code).toBe('payment-receipt-reused');
    expect(lost.status).toBe(409);
    await expectCode(withReceipts(req, r), 'payment-receipt-reused', 409);
  });

  it('is refused after a restart (close and reopen the store)', async () => {
    h = await openGate(PRICED);
    const req = inferenceRequest();
    const r = receipt(client, req, { amountSats: 20 });
    await (await h.gate.check(withReceipts(req, r), {})).commit();
    await h.reopen();
    await expectCode(withReceipts(req, r), 'payment-receipt-reused', 409);
  });

  it('a fresh receipt that reuses a spent payment hash is refused', async () => {
    h = await openGate(PRICED);
    const { preimage, paymentHash } = preimagePair();
    const req = inferenceRequest();
    const t = await h.gate.check(withReceipts(req, receipt(client, req, { amountSats: 20, paymentHash, preimage })), {});
    expect(t.reference).toBe(paymentHash);
    await t.commit();
    const req2 = inferenceRequest();
    await expectCode(withReceipts(req2, receipt(generateIdentity(), req2, { amountSats: 20, preimage })), 'payment-receipt-reused', 409);
  });

  it('the same nonce signed as npub and as hex keyId is one receipt', async () => {
    h = await openGate(PRICED);
    const req = inferenceRequest();
    const r = receipt(client, req, { amountSats: 20 }, { nonce: 'fixed-nonce' });
    const t = await h.gate.check(withReceipts(req, r), {});
    expect(t.reference).toBe(createHash('sha256').update(`${client.pubHex}:fixed-nonce`).digest('hex'));
    await t.commit();
    const asHex = signEnvelope(r.payload, { ...client, npub: client.pubHex }, { nonce: 'fixed-nonce' });
    await expectCode(withReceipts(req, asHex), 'payment-receipt-reused', 409);
  });
});

describe('payment proof without a Lightning backend', () => {
  it('400 preimage-required when NODE_LN_REQUIRE_PREIMAGE', async () => {
    h = await openGate({ ...PRICED, NODE_LN_REQUIRE_PREIMAGE: 'true' });
    const req = inferenceRequest();
    const { paymentHash, preimage } = preimagePair();
    await expectCode(withReceipts(req, receipt(client, req, { amountSats: 20, paymentHash })), 'preimage-required', 400);
    const t = await h.gate.check(withReceipts(req, receipt(client, req, { amountSats: 20, paymentHash, preimage })), {});
    expect(t.reference).toBe(paymentHash);
  });

  it('400 preimage-mismatch when sha256(preimage) ≠ paymentHash (or the invoice hash)', async () => {
    h = await openGate(PRICED);
    const req = inferenceRequest();
    const a = preimagePair();
    const b = preimagePair();
    await expectCode(withReceipts(req, receipt(client, req, { amountSats: 20, paymentHash: a.paymentHash, preimage: b.preimage })), 'preimage-mismatch', 400);
    const inv = encodeBolt11(lnNode(), { amountMsat: 20_000n, paymentHash: a.paymentHash });
    await expectCode(withReceipts(req, receipt(client, req, { amountSats: 20, invoice: inv, preimage: b.preimage })), 'preimage-mismatch', 400);
    const t = await h.gate.check(withReceipts(req, receipt(client, req, { amountSats: 20, invoice: inv, preimage: a.preimage })), {});
    expect(t.reference).toBe(a.paymentHash);
  });

  it('checks the invoice: decodes, has an amount that covers the price, not expired at paidAtMs, same hash', async () => {
    h = await openGate(PRICED);
    const ln = lnNode();
    const { paymentHash, preimage } = preimagePair();
    const req = inferenceRequest();
    const at = (invoice: string, extra = {}) => withReceipts(req, receipt(client, req, { amountSats: 20, invoice, paymentHash, ...extra }));
    await expectCode(at('lnbc1notaninvoice'), 'invoice-invalid', 400);
    await expectCode(at(encodeBolt11(ln, { paymentHash })), 'invoice-invalid', 400); // amountless
    await expectCode(at(encodeBolt11(ln, { amountMsat: 19_999n, paymentHash })), 'payment-insufficient', 402);
    const old = encodeBolt11(ln, { amountMsat: 20_000n, paymentHash, timestampSec: Math.floor(Date.now() / 1000) - 3600, expirySec: 600 });
    await expectCode(at(old), 'invoice-expired', 400);
    await expectCode(at(encodeBolt11(ln, { amountMsat: 20_000n, paymentHash: preimagePair().paymentHash })), 'invoice-invalid', 400);
    const good = encodeBolt11(ln, { amountMsat: 20_000n, paymentHash });
    const t = await h.gate.check(at(good, { preimage }), {});
    expect(t.reference).toBe(paymentHash);
    expect(t.amountSats).toBe(20);
  });

  it('without Lightning configured a receipt needs no proof (fed_AI router interoperability)', async () => {
    h = await openGate(PRICED);
    const req = inferenceRequest();
    const t = await h.gate.check(withReceipts(req, receipt(client, req, { amountSats: 20 })), {});
    expect(t.amountSats).toBe(20);
  });
});

describe('logging', () => {
  it('never logs receipts, preimages or invoices', async () => {
    h = await openGate(PRICED);
    const { paymentHash, preimage } = preimagePair();
    const invoice = encodeBolt11(lnNode(), { amountMsat: 20_000n, paymentHash });
    const req = inferenceRequest();
    const r = receipt(client, req, { amountSats: 20, paymentHash, preimage, invoice });
    await (await h.gate.check(withReceipts(req, r), {})).commit();
    await rejection(() => h.gate.check(withReceipts(req, r), {}));
    await h.gate.close();
    const text = h.logs.text();
    expect(text).toContain('payment gate ready');
    for (const secret of [preimage, invoice, r.sig]) expect(text).not.toContain(secret);
  });
});

describe('retention and quotes', () => {
  it('forgets spent receipts only after they could no longer pass the age check', async () => {
    let now = Date.now();
    h = await openGate({ ...PRICED, NODE_RECEIPT_MAX_AGE_MS: '60000', NODE_RECEIPT_MAX_SKEW_MS: '1000' }, { now: () => now });
    const req = inferenceRequest();
    const r = receipt(client, req, { amountSats: 20, paidAtMs: now });
    await (await h.gate.check(withReceipts(req, r), {})).commit();
    expect(h.gate.storeSize()).toBe(1);
    now += 60_000; // still within max age: refused as reused, and still stored
    h.gate.prune();
    await expectCode(withReceipts(req, r), 'payment-receipt-reused', 409);
    now += 1 + 1000 + 60_000 + 1; // past paidAtMs + max age + skew + margin
    expect(h.gate.prune()).toBe(1);
    expect(h.gate.storeSize()).toBe(0);
    await expectCode(withReceipts(req, r), 'payment-receipt-expired', 400);
  });

  it('unit second: the 402 bills the latency estimate; a new price gets a new PaymentRequest', async () => {
    h = await openGate({ NODE_PRICE_UNIT: 'second', NODE_PRICE_INPUT_SATS: '1', NODE_PRICE_OUTPUT_SATS: '4' });
    const req = inferenceRequest(); // router formula: 1·10 + 4·10 = 50
    const pay = async (latencyEstimateMs?: number) =>
      ((await rejection(() => h.gate.check(req, { estimate: { inputTokens: 10, exact: true, ...(latencyEstimateMs !== undefined ? { latencyEstimateMs } : {}) } }))).toBody().payment as Envelope<PaymentRequest>).payload;
    expect((await pay(30_500)).amountSats).toBe(155); // 31 s · 5 sat/s
    expect((await pay(1_000)).amountSats).toBe(50); // 5 sat < router minimum 50
    const first = await pay(1_000);
    expect((await pay(1_000)).expiresAtMs).toBe(first.expiresAtMs); // same price: the same PaymentRequest
  });
});
