/**
 * The pay-then-retry flow end to end with the real CLIs and a real node: 402 with a node-signed
 * PaymentRequest → `fedai receipt` → `fedai infer --request-id … --receipts …` → 200 with the payment
 * reference in the signed metering record; the same receipt is refused the second time, also after a
 * restart; a 402 leaves the request's nonce unused.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { dispatch } from '../../supervisor/cli/dispatch.js';
import { inferCommand } from '../../supervisor/cli/commands/infer.js';
import { receiptCommand } from '../../supervisor/cli/commands/receipt.js';
import { keygenCommand } from '../../supervisor/cli/commands/keygen.js';
import { checkEnvelopeSignature, signEnvelope } from '../../supervisor/crypto/envelope.js';
import type { CliIO } from '../../supervisor/cli/command.js';
import { startTestNode, type TestNode } from '../helpers/test-node.js';

const PAID = { NODE_REQUIRE_PAYMENT: 'true', NODE_PRICE_INPUT_SATS: '2', NODE_PRICE_OUTPUT_SATS: '1' } as const;
const cwd = mkdtempSync(path.join(os.tmpdir(), 'fedai-pay-'));

function io(): CliIO & { out: string; err: string } {
  const o = { out: '', err: '', env: {} as NodeJS.ProcessEnv, cwd } as CliIO & { out: string; err: string };
  o.stdout = (s) => void (o.out += s);
  o.stderr = (s) => void (o.err += s);
  return o;
}
const fedai = async (args: string[]) => {
  const i = io();
  const code = await dispatch('fedai', [keygenCommand, inferCommand, receiptCommand], args, i);
  return { code, out: i.out, err: i.err };
};

let t: TestNode;
let clientNsec: string;
beforeAll(async () => {
  t = await startTestNode(PAID);
  clientNsec = JSON.parse((await fedai(['keygen', '--json'])).out).nsec;
});
afterAll(async () => t?.stop());

describe('pay-then-retry', () => {
  it('402 → receipt → retry with the same request id → 200; the receipt cannot be spent twice, even after a restart', async () => {
    const base = ['infer', '--node', t.url, '--data-dir', t.dataDir, '--prompt', 'please answer, I will pay', '--max-tokens', '8', '--request-id', 'paid-req-1'];
    const first = await fedai([...base, '--payment-request-out', 'pr.json']);
    expect(first.code).toBe(3);
    const body = JSON.parse(readFileSync(path.join(cwd, 'pr.json'), 'utf8'));
    expect(body.error).toBe('payment-required');
    expect(checkEnvelopeSignature(body.payment)).toBeNull();
    expect(body.payment.keyId).toBe(t.node.identity.node.npub);
    expect(body.payment.payload).toMatchObject({ requestId: 'paid-req-1', payeeType: 'node', payeeId: 'node-1' });
    expect(body.payment.payload.amountSats).toBeGreaterThanOrEqual(1);
    expect(body.payment.payload.expiresAtMs).toBeGreaterThan(Date.now());

    const rc = await fedai(['receipt', '--payment-request', 'pr.json', '--private-key', clientNsec, '--out', 'receipt.json']);
    expect(rc.code).toBe(0);

    const paid = await fedai([...base, '--receipts', 'receipt.json', '--json']);
    expect(paid.code).toBe(0);
    const reply = JSON.parse(paid.out);
    expect(reply.verified).toBe(true);
    expect(reply.metering.payload.paymentRef).toEqual(expect.any(String));

    const again = await fedai([...base, '--receipts', 'receipt.json']);
    expect(again.code).toBe(1);
    expect(again.err).toContain('payment-receipt-reused');
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(metrics).toMatch(/node_payment_receipt_failures_total\{reason="payment-receipt-reused"\} [1-9]/);

    const dataDir = t.dataDir;
    await t.stop({ keepData: true });
    t = await startTestNode(PAID, { dataDir });
    const restarted = base.map((a) => (a.startsWith('http://') ? t.url : a));
    const afterRestart = await fedai([...restarted, '--receipts', 'receipt.json']);
    expect(afterRestart.code).toBe(1);
    expect(afterRestart.err).toContain('payment-receipt-reused');
  });

  it('a 402 does not consume the nonce: the same nonce with a receipt is then served', async () => {
    const req = t.request({ requestId: 'paid-req-2', prompt: 'nonce test' });
    const nonce = 'nonce-kept-across-402';
    const r402 = await t.post('/infer', t.sign(req, { nonce }));
    expect(r402.status).toBe(402);
    expect(r402.json.error).toBe('payment-required');
    const client = (await import('../../supervisor/crypto/keys.js')).parseIdentity(clientNsec);
    const receipt = signEnvelope(
      { requestId: 'paid-req-2', payeeType: 'node', payeeId: 'node-1', amountSats: r402.json.payment.payload.amountSats, paidAtMs: Date.now() },
      client,
    );
    const ok = await t.post('/infer', t.sign({ ...req, paymentReceipts: [receipt] }, { nonce }));
    expect(ok.status).toBe(200);
  });

  it('an underpaying or foreign-signed receipt is refused with its own code', async () => {
    const client = (await import('../../supervisor/crypto/keys.js')).parseIdentity(clientNsec);
    const req = t.request({ requestId: 'paid-req-3', prompt: 'x'.repeat(400), maxTokens: 64 });
    const cheap = signEnvelope({ requestId: 'paid-req-3', payeeType: 'node', payeeId: 'node-1', amountSats: 1, paidAtMs: Date.now() }, client);
    const r = await t.post('/infer', t.sign({ ...req, paymentReceipts: [cheap] }));
    expect({ status: r.status, error: r.json.error }).toEqual({ status: 402, error: 'payment-insufficient' });
    const forged = { ...cheap, payload: { ...cheap.payload, amountSats: 100000 } };
    const f = await t.post('/infer', t.sign({ ...req, paymentReceipts: [forged] }));
    expect({ status: f.status, error: f.json.error }).toEqual({ status: 401, error: 'invalid-payment-receipt-signature' });
  });
});
