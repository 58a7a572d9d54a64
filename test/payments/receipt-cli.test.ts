/**
 * `fedai receipt`: a receipt built from a node's 402 passes PaymentGate.check for the same request
 * (pay-then-retry), with and without Lightning; refusals and usage errors have the right exit codes.
 */
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { receiptCommand, splitsFor } from '../../supervisor/cli/commands/receipt.js';
import { dispatch } from '../../supervisor/cli/dispatch.js';
import type { CliIO } from '../../supervisor/cli/command.js';
import { signEnvelope, verifyEnvelope, type Envelope } from '../../supervisor/crypto/envelope.js';
import { encodeNsec, generateIdentity } from '../../supervisor/crypto/keys.js';
import type { PaymentReceipt, PaymentRequest } from '../../supervisor/protocol/wire-types.js';
import { preimagePair } from '../fixtures/lightning/bolt11-encode.js';
import { FakeLnd } from '../fixtures/lightning/fake-ln.js';
import { inferenceRequest, openGate, rejection, withReceipts, type GateHarness } from './gate-helpers.js';

const PRICED = { NODE_PRICE_INPUT_SATS: '1', NODE_PRICE_OUTPUT_SATS: '1' } as const;
const client = generateIdentity();
const nsec = encodeNsec(client.secretKey);

let dir: string;
let h: GateHarness | undefined;
let lnd: FakeLnd | undefined;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'fedai-receipt-cli-'));
});
afterEach(async () => {
  await h?.cleanup();
  h = undefined;
  await lnd?.stop();
  lnd = undefined;
  rmSync(dir, { recursive: true, force: true });
});

function io(): CliIO & { out: string; err: string } {
  const o = { out: '', err: '', env: {}, cwd: '' } as CliIO & { out: string; err: string };
  Object.assign(o, { cwd: dir, stdout: (t: string) => void (o.out += t), stderr: (t: string) => void (o.err += t) });
  return o;
}

async function fedai(args: string[]) {
  const x = io();
  const code = await dispatch('fedai', [receiptCommand], ['receipt', ...args], x);
  return { code, out: x.out, err: x.err };
}

async function save402(req: ReturnType<typeof inferenceRequest>): Promise<string> {
  const err = await rejection(() => h!.gate.check(req, {}));
  expect(err.code).toBe('payment-required');
  const file = join(dir, '402.json');
  writeFileSync(file, JSON.stringify(err.toBody()));
  return file;
}

describe('fedai receipt: pay-then-retry against the gate', () => {
  it('without Lightning: the receipt from the 402 is accepted for the same requestId, once', async () => {
    h = await openGate(PRICED);
    const req = inferenceRequest();
    const file = await save402(req);
    const r = await fedai(['--payment-request', file, '--private-key', nsec, '--key-id', client.npub, '--node-key-id', h.node.npub]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const receipt = JSON.parse(r.out) as Envelope<PaymentReceipt>;
    expect(verifyEnvelope(receipt)).toBe(true);
    expect(receipt.keyId).toBe(client.npub);
    expect(receipt.payload).toMatchObject({ requestId: req.requestId, payeeType: 'node', payeeId: 'node-test-1', amountSats: 20 });
    expect(receipt.payload.invoice).toBeUndefined();
    expect(Math.abs(receipt.payload.paidAtMs - Date.now())).toBeLessThan(10_000);
    const t = await h.gate.check(withReceipts(req, receipt), {});
    await t.commit();
    expect((await rejection(() => h!.gate.check(withReceipts(req, receipt), {}))).code).toBe('payment-receipt-reused');
  });

  it('with LND: the invoice is paid, the preimage goes in the receipt, the gate accepts it', async () => {
    lnd = await new FakeLnd().start();
    h = await openGate({ ...PRICED, NODE_LN_BACKEND: 'lnd', NODE_LND_REST_URL: lnd.url, NODE_LND_MACAROON_HEX: lnd.macaroon });
    const req = inferenceRequest();
    const file = await save402(req);
    const pr = (JSON.parse(readFileSync(file, 'utf8')) as { payment: Envelope<PaymentRequest> }).payment.payload;
    expect(pr.invoice).toMatch(/^lnbcrt/);
    const preimage = lnd.pay(pr.paymentHash!); // the wallet pays the invoice and learns the preimage
    const out = join(dir, 'receipt.json');
    const r = await fedai(['--payment-request', file, '--private-key', Buffer.from(client.secretKey).toString('hex'), '--preimage', preimage, '--out', out, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual({ out, requestId: req.requestId, amountSats: 20 });
    expect(statSync(out).mode & 0o777).toBe(0o600);
    const receipt = JSON.parse(readFileSync(out, 'utf8')) as Envelope<PaymentReceipt>;
    expect(receipt.payload).toMatchObject({ invoice: pr.invoice, paymentHash: pr.paymentHash, preimage });
    const t = await h.gate.check(withReceipts(req, receipt), {});
    expect(t.reference).toBe(pr.paymentHash);
    await t.commit();
  });
});

describe('fedai receipt: refusals and usage', () => {
  function request(over: Partial<PaymentRequest> = {}, signer = generateIdentity()): Envelope<PaymentRequest> {
    return signEnvelope({ requestId: 'r-1', payeeType: 'node', payeeId: 'n-1', amountSats: 33, invoice: '', expiresAtMs: Date.now() + 60_000, ...over }, signer);
  }
  function write(doc: unknown): string {
    const f = join(dir, `pr-${Math.random()}.json`);
    writeFileSync(f, JSON.stringify(doc));
    return f;
  }

  it('exit 1 when the 402 signature does not verify; --no-verify overrides with a warning', async () => {
    const env = request();
    const f = write({ error: 'payment-required', payment: { ...env, payload: { ...env.payload, amountSats: 1 } } });
    const r = await fedai(['--payment-request', f, '--private-key', nsec]);
    expect(r.code).toBe(1);
    expect(r.err).toContain('does not verify');
    expect(r.out).toBe('');
    const r2 = await fedai(['--payment-request', f, '--private-key', nsec, '--no-verify']);
    expect(r2.code).toBe(0);
    expect(r2.err).toContain('warning');
    expect((JSON.parse(r2.out) as Envelope<PaymentReceipt>).payload.amountSats).toBe(1);
  });

  it('exit 1 for a request signed by another key than --node-key-id, a preimage that does not match, a file that is not a request', async () => {
    const f = write(request({ paymentHash: preimagePair().paymentHash }));
    expect((await fedai(['--payment-request', f, '--private-key', nsec, '--node-key-id', generateIdentity().npub])).code).toBe(1);
    expect((await fedai(['--payment-request', f, '--private-key', nsec, '--preimage', preimagePair().preimage])).code).toBe(1);
    expect((await fedai(['--payment-request', write({ hello: 1 }), '--private-key', nsec])).code).toBe(1);
    expect((await fedai(['--payment-request', join(dir, 'missing.json'), '--private-key', nsec])).code).toBe(1);
    expect((await fedai(['--payment-request', f, '--private-key', nsec, '--key-id', generateIdentity().npub])).code).toBe(1);
  });

  it('exit 2 for usage errors; --help prints usage', async () => {
    const f = write(request());
    expect((await fedai(['--private-key', nsec])).code).toBe(2);
    expect((await fedai(['--payment-request', f])).code).toBe(2);
    expect((await fedai(['--payment-request', f, '--private-key', 'nope'])).code).toBe(2);
    expect((await fedai(['--payment-request', f, '--private-key', nsec, '--amount', '1.5'])).code).toBe(2);
    expect((await fedai(['--payment-request', f, '--private-key', nsec, '--preimage', 'abc'])).code).toBe(2);
    expect((await fedai(['--payment-request', f, '--private-key', nsec, '--bogus'])).code).toBe(2);
    const help = await fedai(['--help']);
    expect(help.code).toBe(0);
    expect(help.out).toContain('--payment-request');
  });

  it('overrides amount, paidAtMs, invoice and hash; copies router splits or derives them from metadata', async () => {
    const router = generateIdentity();
    const splits = [
      { payeeType: 'node' as const, payeeId: 'n-1', amountSats: 30, role: 'node-inference' as const },
      { payeeType: 'router' as const, payeeId: router.npub, amountSats: 3, role: 'router-fee' as const },
    ];
    const { paymentHash } = preimagePair();
    const f = write(request({ splits }, router));
    const r = await fedai(['--payment-request', f, '--private-key', nsec, '--paid-at-ms', '1700000000000', '--invoice', 'lnbc1x', '--payment-hash', paymentHash.toUpperCase()]);
    expect(r.code).toBe(0);
    const p = (JSON.parse(r.out) as Envelope<PaymentReceipt>).payload;
    expect(p).toMatchObject({ paidAtMs: 1700000000000, invoice: 'lnbc1x', paymentHash, amountSats: 33, splits });
    const fromMeta = request({ metadata: { currency: 'sat', nodeAmountSats: 30, routerFeeSats: 3 } }, router);
    expect(splitsFor(fromMeta)).toEqual(splits);
    expect(splitsFor(request({ metadata: { nodeAmountSats: 33, routerFeeSats: 0 } }))).toBeUndefined();
  });
});
