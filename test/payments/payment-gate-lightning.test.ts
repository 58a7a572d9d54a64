/**
 * PaymentGate with a Lightning backend: fake LND REST and CLN clnrest servers on 127.0.0.1 that issue
 * real BOLT11 invoices signed by a test node key, and a fake NODE_LN_VERIFY_URL service.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { verifyEnvelope, type Envelope } from '../../supervisor/crypto/envelope.js';
import { generateIdentity } from '../../supervisor/crypto/keys.js';
import type { EnvName } from '../../supervisor/config/env-spec.js';
import { ERRORS, type ErrorSpec } from '../../supervisor/errors.js';
import { decodeBolt11 } from '../../supervisor/payments/bolt11.js';
import { LndBackend } from '../../supervisor/payments/lightning/index.js';
import type { InferenceRequest, PaymentRequest } from '../../supervisor/protocol/wire-types.js';
import { encodeBolt11, lnNode, preimagePair } from '../fixtures/lightning/bolt11-encode.js';
import { deadUrl, FakeCln, FakeLnd, FakeVerifier } from '../fixtures/lightning/fake-ln.js';
import { inferenceRequest, openGate, receipt, rejection, withReceipts, type GateHarness } from './gate-helpers.js';

const PRICED = { NODE_PRICE_INPUT_SATS: '1', NODE_PRICE_OUTPUT_SATS: '1' } as const; // price 20 for the default request
const FAST = { NODE_LN_VERIFY_TIMEOUT_MS: '300', NODE_LN_VERIFY_RETRY_MAX_ATTEMPTS: '2', NODE_LN_VERIFY_RETRY_MIN_DELAY_MS: '20', NODE_LN_VERIFY_RETRY_MAX_DELAY_MS: '40' } as const;

const client = generateIdentity();
let h: GateHarness | undefined;
const servers: { stop(): Promise<void> }[] = [];
afterEach(async () => {
  await h?.cleanup();
  h = undefined;
  while (servers.length) await servers.pop()!.stop();
});

async function lnd(setup: (f: FakeLnd) => void = () => {}): Promise<FakeLnd> {
  const f = new FakeLnd();
  setup(f);
  await f.start();
  servers.push(f);
  return f;
}

function lndEnv(f: FakeLnd, more: Partial<Record<EnvName, string>> = {}): Partial<Record<EnvName, string>> {
  return { ...PRICED, ...FAST, NODE_LN_BACKEND: 'lnd', NODE_LND_REST_URL: f.url, NODE_LND_MACAROON_HEX: f.macaroon, ...more };
}

async function expectCode(req: InferenceRequest, code: keyof typeof ERRORS, status: number) {
  const before = h!.failures.length;
  const err = await rejection(() => h!.gate.check(req, {}));
  expect(err.code).toBe(code);
  expect(err.status).toBe(status);
  expect(h!.failures.slice(before)).toEqual([code]);
  return err;
}

/** Gets the 402 for req and returns its (verified) PaymentRequest. */
async function challenge(req: InferenceRequest): Promise<PaymentRequest> {
  const err = await rejection(() => h!.gate.check(req, { estimate: { inputTokens: 12, exact: true } }));
  expect(err.code).toBe('payment-required');
  const env = err.toBody().payment as Envelope<PaymentRequest>;
  expect(verifyEnvelope(env)).toBe(true);
  expect(env.keyId).toBe(h!.node.npub);
  return env.payload;
}

describe('with LND', () => {
  it('402 carries a real invoice from LND; paying it and sending the preimage is accepted once', async () => {
    const f = await lnd();
    h = await openGate(lndEnv(f));
    expect(h.gate.lightningNodePubkey).toBe(f.node.pubkey);
    const req = inferenceRequest();
    const pr = await challenge(req);
    expect(pr.amountSats).toBe(22); // exact 12 input tokens + 10 output
    const inv = decodeBolt11(pr.invoice, { expectedPayee: f.node.pubkey });
    expect(inv.amountSats).toBe(22);
    expect(inv.paymentHash).toBe(pr.paymentHash);
    expect(f.requests.filter((r) => r.path === '/v1/invoices')).toHaveLength(1);
    expect(f.requests.every((r) => r.auth === f.macaroon)).toBe(true);
    // the same requestId gets the same invoice back, not a new one
    expect((await challenge(req)).invoice).toBe(pr.invoice);
    expect(f.requests.filter((r) => r.path === '/v1/invoices')).toHaveLength(1);

    // not paid yet
    await expectCode(withReceipts(req, receipt(client, req, { amountSats: 22, invoice: pr.invoice, paymentHash: pr.paymentHash })), 'payment-unsettled', 400);
    const preimage = f.pay(pr.paymentHash!);
    const r = receipt(client, req, { amountSats: 22, invoice: pr.invoice, paymentHash: pr.paymentHash, preimage });
    const t = await h.gate.check(withReceipts(req, r), {});
    expect(t.reference).toBe(pr.paymentHash);
    expect(t.amountSats).toBe(22);
    expect(f.requests.some((x) => x.path.startsWith('/v2/invoices/lookup?payment_hash='))).toBe(true);
    await t.commit();
    await expectCode(withReceipts(req, r), 'payment-receipt-reused', 409);
    // and a brand-new receipt wrapping the same payment is refused too
    await expectCode(withReceipts(req, receipt(generateIdentity(), req, { amountSats: 22, invoice: pr.invoice, preimage })), 'payment-receipt-reused', 409);
  });

  it('an invoice issued for one request cannot pay another', async () => {
    const f = await lnd();
    h = await openGate(lndEnv(f));
    const reqA = inferenceRequest();
    const pr = await challenge(reqA);
    const preimage = f.pay(pr.paymentHash!);
    const reqB = inferenceRequest();
    await expectCode(withReceipts(reqB, receipt(client, reqB, { amountSats: 22, invoice: pr.invoice, preimage })), 'payment-request-mismatch', 400);
  });

  it('refuses an invoice signed by another Lightning node (forged invoice with its own preimage)', async () => {
    const f = await lnd();
    h = await openGate(lndEnv(f));
    const req = inferenceRequest();
    const { paymentHash, preimage } = preimagePair();
    const forged = encodeBolt11(lnNode(), { amountMsat: 50_000n, paymentHash });
    await expectCode(withReceipts(req, receipt(client, req, { amountSats: 50, invoice: forged, preimage })), 'invoice-invalid', 400);
  });

  it('learns the node key from its own invoice when the macaroon cannot call getinfo', async () => {
    const f = await lnd((x) => (x.getinfoForbidden = true));
    h = await openGate(lndEnv(f));
    expect(h.gate.lightningNodePubkey).toBeUndefined();
    const req = inferenceRequest();
    await challenge(req);
    expect(h.gate.lightningNodePubkey).toBe(f.node.pubkey);
    const { paymentHash, preimage } = preimagePair();
    const forged = encodeBolt11(lnNode(), { amountMsat: 50_000n, paymentHash });
    await expectCode(withReceipts(req, receipt(client, req, { amountSats: 50, invoice: forged, preimage })), 'invoice-invalid', 400);
  });

  it('keysend: a sender-chosen preimage is accepted only when LND reports the payment settled', async () => {
    const f = await lnd();
    h = await openGate(lndEnv(f));
    const req = inferenceRequest();
    const { paymentHash, preimage } = preimagePair();
    // matching hash and preimage, but nothing arrived at our node
    await expectCode(withReceipts(req, receipt(client, req, { amountSats: 20, paymentHash, preimage })), 'payment-unsettled', 400);
    f.keysend(preimage, paymentHash, 20);
    const t = await h.gate.check(withReceipts(req, receipt(client, req, { amountSats: 20, paymentHash, preimage })), {});
    expect(t.reference).toBe(paymentHash);
    // underpaid keysend
    const small = preimagePair();
    f.keysend(small.preimage, small.paymentHash, 5);
    await expectCode(withReceipts(req, receipt(client, req, { amountSats: 20, paymentHash: small.paymentHash, preimage: small.preimage })), 'payment-insufficient', 402);
  });

  it('requires some proof when Lightning is configured', async () => {
    const f = await lnd();
    h = await openGate(lndEnv(f));
    const req = inferenceRequest();
    await expectCode(withReceipts(req, receipt(client, req, { amountSats: 20 })), 'payment-proof-missing', 400);
  });

  it('falls back to /v1/invoice/{hex} on an LND without v2 lookup', async () => {
    const f = await lnd((x) => (x.noV2 = true));
    h = await openGate(lndEnv(f));
    const req = inferenceRequest();
    const pr = await challenge(req);
    const preimage = f.pay(pr.paymentHash!);
    const t = await h.gate.check(withReceipts(req, receipt(client, req, { amountSats: 22, invoice: pr.invoice, preimage })), {});
    expect(t.reference).toBe(pr.paymentHash);
    expect(f.requests.some((x) => x.path === `/v1/invoice/${pr.paymentHash}`)).toBe(true);
  });

  it('retries a transient 500 and succeeds', async () => {
    const f = await lnd();
    h = await openGate(lndEnv(f));
    const req = inferenceRequest();
    const pr = await challenge(req);
    const preimage = f.pay(pr.paymentHash!);
    f.failNext = 1;
    const n = f.requests.length;
    const t = await h.gate.check(withReceipts(req, receipt(client, req, { amountSats: 22, invoice: pr.invoice, preimage })), {});
    expect(t.reference).toBe(pr.paymentHash);
    expect(f.requests.length - n).toBe(2);
  });

  it('503 payment-backend-unavailable, quickly, when LND refuses connections, hangs or keeps failing', async () => {
    const f = await lnd();
    h = await openGate(lndEnv(f));
    const req = inferenceRequest();
    const pr = await challenge(req);
    const preimage = f.pay(pr.paymentHash!);
    const paid = withReceipts(req, receipt(client, req, { amountSats: 22, invoice: pr.invoice, preimage }));

    f.mode = 'hang';
    const t0 = Date.now();
    const err = await expectCode(paid, 'payment-backend-unavailable', 503);
    expect(Date.now() - t0).toBeLessThan(5000); // 2 attempts × 300 ms + backoff, never a hang
    expect((ERRORS[err.code] as ErrorSpec).retryable).toBe(true);
    expect(err.retryAfterS).toBeGreaterThan(0);

    f.mode = 'fail500';
    await expectCode(paid, 'payment-backend-unavailable', 503);
    // the outage is logged, without the macaroon, invoice or preimage
    const logs = h.logs.text();
    expect(logs).toContain('lightning backend unavailable');
    for (const secret of [f.macaroon, pr.invoice, preimage]) expect(logs).not.toContain(secret);

    await h.cleanup();
    const url = await deadUrl();
    h = await openGate({ ...PRICED, ...FAST, NODE_LN_BACKEND: 'lnd', NODE_LND_REST_URL: url, NODE_LND_MACAROON_HEX: 'aa' });
    await expectCode(paid, 'payment-backend-unavailable', 503);
    // a 402 cannot be issued without the backend either: 503, not a 402 without invoice
    await expectCode(inferenceRequest(), 'payment-backend-unavailable', 503);
  });

  it('uses an injected backend (opts.lightning) instead of building one from config', async () => {
    const f = await lnd();
    const backend = new LndBackend({ restUrl: f.url, macaroonHex: f.macaroon, timeoutMs: 1000, retry: { maxAttempts: 1, minDelayMs: 0, maxDelayMs: 0 } });
    h = await openGate(PRICED, { lightning: backend }); // NODE_LN_BACKEND stays 'none'
    const req = inferenceRequest();
    const pr = await challenge(req);
    expect(decodeBolt11(pr.invoice, { expectedPayee: f.node.pubkey }).paymentHash).toBe(pr.paymentHash);
    await expectCode(withReceipts(req, receipt(client, req, { amountSats: 22, invoice: pr.invoice })), 'payment-unsettled', 400);
  });

  it('a wrong macaroon is a backend failure (503), not a crash', async () => {
    const f = await lnd();
    h = await openGate({ ...lndEnv(f), NODE_LND_MACAROON_HEX: 'bb'.repeat(20) });
    await expectCode(inferenceRequest(), 'payment-backend-unavailable', 503);
  });
});

describe('with CLN (clnrest)', () => {
  it('issues invoices with the rune, checks settlement through listinvoices', async () => {
    const f = new FakeCln();
    await f.start();
    servers.push(f);
    h = await openGate({ ...PRICED, ...FAST, NODE_LN_BACKEND: 'cln', NODE_CLN_REST_URL: f.url, NODE_CLN_RUNE: f.rune });
    expect(h.gate.lightningNodePubkey).toBe(f.node.pubkey);
    const req = inferenceRequest();
    const pr = await challenge(req);
    expect(decodeBolt11(pr.invoice, { expectedPayee: f.node.pubkey }).amountMsat).toBe(22_000n);
    expect(f.requests.every((r) => r.auth === f.rune)).toBe(true);
    const unpaid = withReceipts(req, receipt(client, req, { amountSats: 22, invoice: pr.invoice }));
    await expectCode(unpaid, 'payment-unsettled', 400);
    const preimage = f.pay(pr.paymentHash!);
    const t = await h.gate.check(withReceipts(req, receipt(client, req, { amountSats: 22, invoice: pr.invoice, preimage })), {});
    expect(t.reference).toBe(pr.paymentHash);
    expect(t.amountSats).toBe(22);
    await t.commit();
    expect(f.requests.some((r) => r.path === '/v1/listinvoices')).toBe(true);
    for (const secret of [f.rune, pr.invoice, preimage]) expect(h.logs.text()).not.toContain(secret);
  });

  it('a bad rune is 503 payment-backend-unavailable', async () => {
    const f = new FakeCln();
    await f.start();
    servers.push(f);
    h = await openGate({ ...PRICED, ...FAST, NODE_LN_BACKEND: 'cln', NODE_CLN_REST_URL: f.url, NODE_CLN_RUNE: 'wrong' });
    await expectCode(inferenceRequest(), 'payment-backend-unavailable', 503);
  });
});

describe('with NODE_LN_VERIFY_URL', () => {
  async function verifier(): Promise<FakeVerifier> {
    const v = new FakeVerifier();
    await v.start();
    servers.push(v);
    return v;
  }

  it('posts {invoice, paymentHash, preimage, amountSats, payeeId, requestId} and accepts paid:true', async () => {
    const v = await verifier();
    h = await openGate({ ...PRICED, ...FAST, NODE_LN_VERIFY_URL: v.url });
    const req = inferenceRequest();
    const { paymentHash, preimage } = preimagePair();
    const t = await h.gate.check(withReceipts(req, receipt(client, req, { amountSats: 20, paymentHash, preimage })), {});
    expect(t.reference).toBe(paymentHash);
    expect(v.bodies).toEqual([{ paymentHash, preimage, amountSats: 20, payeeId: 'node-test-1', requestId: req.requestId }]);
  });

  it('paid:false → 402 payment-unsettled with the detail; 4xx → 400 payment-verify-failed', async () => {
    const v = await verifier();
    h = await openGate({ ...PRICED, ...FAST, NODE_LN_VERIFY_URL: v.url });
    const req = inferenceRequest();
    const r = withReceipts(req, receipt(client, req, { amountSats: 20, paymentHash: preimagePair().paymentHash }));
    v.answer = () => ({ paid: false, detail: 'invoice not found' });
    const err = await expectCode(r, 'payment-unsettled', 400);
    expect(err.details).toEqual(['invoice not found']);
    v.status = 422;
    v.answer = () => ({ error: 'bad' });
    await expectCode(r, 'payment-verify-failed', 400);
    v.status = 200;
    v.answer = () => ({ ok: true });
    await expectCode(r, 'payment-verify-failed', 400);
  });

  it('a verifier that is down, hangs or answers 5xx → 503 payment-backend-unavailable without hanging', async () => {
    const down = await deadUrl('/verify');
    h = await openGate({ ...PRICED, ...FAST, NODE_LN_VERIFY_URL: down });
    const req = inferenceRequest();
    const r = withReceipts(req, receipt(client, req, { amountSats: 20, paymentHash: preimagePair().paymentHash }));
    await expectCode(r, 'payment-backend-unavailable', 503);
    await h.cleanup();

    const v = await verifier();
    v.mode = 'hang';
    h = await openGate({ ...PRICED, ...FAST, NODE_LN_VERIFY_URL: v.url });
    const t0 = Date.now();
    await expectCode(r, 'payment-backend-unavailable', 503);
    expect(Date.now() - t0).toBeLessThan(5000);
    v.mode = 'fail500';
    await expectCode(r, 'payment-backend-unavailable', 503);
    // the receipt was not burnt by the outage: once the verifier is back it is accepted
    v.mode = 'ok';
    const t = await h.gate.check(r, {});
    expect(t.amountSats).toBe(20);
    await t.commit();
    await expectCode(r, 'payment-receipt-reused', 409);
  });

  it('refuses a payment that settled longer ago than the max receipt age', async () => {
    const v = await verifier();
    h = await openGate({ ...PRICED, ...FAST, NODE_LN_VERIFY_URL: v.url, NODE_RECEIPT_MAX_AGE_MS: '60000' });
    v.answer = () => ({ paid: true, settledAtMs: Date.now() - 3_600_000 });
    const req = inferenceRequest();
    await expectCode(withReceipts(req, receipt(client, req, { amountSats: 20, paymentHash: preimagePair().paymentHash })), 'payment-receipt-expired', 400);
  });
});
