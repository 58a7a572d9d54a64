/**
 * `fedai receipt`: the client half of pay-then-retry. Reads the 402 a node (or router) answered, checks
 * the PaymentRequest's signature, and builds and signs the PaymentReceipt to put in `paymentReceipts`
 * when retrying the SAME requestId (`fedai infer --request-id … --receipts receipt.json`).
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { checkEnvelopeSignature, signEnvelope, type Envelope } from '../../crypto/envelope.js';
import { KeyFormatError, parseIdentity, toNpub } from '../../crypto/keys.js';
import { paymentRequestEnvelopeProblems } from '../../payments/receipt-schema.js';
import type { PaymentReceipt, PaymentRequest, PaymentSplit } from '../../protocol/wire-types.js';
import { EXIT_FAIL, EXIT_OK, parseFlags, UsageError, writeJson, type CliCommand } from '../command.js';

const HEX64 = /^[0-9a-fA-F]{64}$/;

function intFlag(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) throw new UsageError(`--${name} must be a non-negative integer`);
  return Number(v);
}

function hexFlag(name: string, v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  if (!HEX64.test(v)) throw new UsageError(`--${name} must be 64 hex characters`);
  return v.toLowerCase();
}

/** Accepts a 402 body ({"error":"payment-required","payment":{…}}) or a bare PaymentRequest envelope. */
export function paymentRequestFrom(doc: unknown): unknown {
  if (doc && typeof doc === 'object' && 'payment' in doc) return (doc as { payment: unknown }).payment;
  return doc;
}

/** Splits for the receipt: the request's own, else derived from router metadata {nodeAmountSats, routerFeeSats}. */
export function splitsFor(env: Envelope<PaymentRequest>): PaymentSplit[] | undefined {
  const pr = env.payload;
  if (pr.splits && pr.splits.length > 0) return pr.splits.map((s) => ({ ...s }));
  const m = pr.metadata ?? {};
  const fee = Number(m.routerFeeSats);
  const nodeAmount = Number(m.nodeAmountSats);
  if (Number.isSafeInteger(fee) && fee > 0 && Number.isSafeInteger(nodeAmount) && nodeAmount > 0) {
    const routerId = typeof m.routerId === 'string' ? m.routerId : typeof m.routerKeyId === 'string' ? m.routerKeyId : env.keyId;
    return [
      { payeeType: pr.payeeType, payeeId: pr.payeeId, amountSats: nodeAmount, role: 'node-inference' },
      { payeeType: 'router', payeeId: routerId, amountSats: fee, role: 'router-fee' },
    ];
  }
  return undefined;
}

export const receiptCommand: CliCommand = {
  name: 'receipt',
  summary: 'build and sign a PaymentReceipt from a 402 payment request',
  usage: `usage: receipt --payment-request <file> --private-key <nsec|hex> [options]

Reads a 402 body ({"error":"payment-required","payment":{…}}) or a bare PaymentRequest envelope,
verifies its signature (exit 1 if it does not verify, unless --no-verify), and prints a PaymentReceipt
envelope signed with your client key: requestId, payeeType, payeeId, amountSats and splits from the
request, invoice and paymentHash from the request unless overridden, paidAtMs = now. Retry the
request with the SAME requestId and this receipt in paymentReceipts.

  --payment-request <file>  402 body or PaymentRequest envelope (JSON)
  --private-key <nsec|hex>  your client signing key (the receipt's keyId is its npub)
  --key-id <npub>           optional: fail unless the key's npub is this
  --node-key-id <npub|hex>  optional: fail unless the PaymentRequest was signed by this key
  --amount <sats>           amount paid (default: the request's amountSats)
  --paid-at-ms <ms>         payment time (default: now)
  --invoice <bolt11>        invoice paid (default: the request's invoice)
  --payment-hash <hex>      payment hash (default: the request's, else the invoice's)
  --preimage <hex>          payment preimage from your wallet (64 hex); checked against the hash
  --no-verify               build the receipt even if the request signature does not verify
  --out <file>              write the receipt envelope there (mode 0600) instead of stdout
  --json                    with --out: print {"out","requestId","amountSats"} as JSON

exit codes: 0 ok, 1 verification or I/O failure, 2 usage error`,
  async run(args, io) {
    const { values } = parseFlags(args, {
      'payment-request': { type: 'string' },
      'private-key': { type: 'string' },
      'key-id': { type: 'string' },
      'node-key-id': { type: 'string' },
      amount: { type: 'string' },
      'paid-at-ms': { type: 'string' },
      invoice: { type: 'string' },
      'payment-hash': { type: 'string' },
      preimage: { type: 'string' },
      'no-verify': { type: 'boolean' },
      out: { type: 'string' },
      json: { type: 'boolean' },
    });
    if (!values['payment-request']) throw new UsageError('--payment-request is required');
    if (!values['private-key']) throw new UsageError('--private-key is required');
    const amount = intFlag('amount', values.amount);
    if (amount !== undefined && amount < 1) throw new UsageError('--amount must be at least 1');
    const paidAtMs = intFlag('paid-at-ms', values['paid-at-ms']);
    const paymentHashFlag = hexFlag('payment-hash', values['payment-hash']);
    const preimage = hexFlag('preimage', values.preimage);
    let client;
    try {
      client = parseIdentity(values['private-key']);
    } catch (err) {
      throw new UsageError(`--private-key: ${(err as Error).message}`);
    }
    if (values['key-id'] !== undefined && values['key-id'] !== client.npub) {
      io.stderr(`receipt: --key-id ${values['key-id']} is not the npub of --private-key (${client.npub})\n`);
      return EXIT_FAIL;
    }

    let doc: unknown;
    const file = path.resolve(io.cwd, values['payment-request']);
    try {
      doc = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      io.stderr(`receipt: cannot read ${file}: ${(err as Error).message}\n`);
      return EXIT_FAIL;
    }
    const candidate = paymentRequestFrom(doc);
    const problems = paymentRequestEnvelopeProblems(candidate);
    if (problems.length > 0) {
      io.stderr(`receipt: ${file} holds no valid PaymentRequest envelope:\n  ${problems.slice(0, 10).join('\n  ')}\n`);
      return EXIT_FAIL;
    }
    const env = candidate as Envelope<PaymentRequest>;
    const verdict = checkEnvelopeSignature(env);
    if (verdict !== null) {
      if (!values['no-verify']) {
        io.stderr(`receipt: the payment request's signature does not verify (${verdict}); refusing (use --no-verify to override)\n`);
        return EXIT_FAIL;
      }
      io.stderr(`receipt: warning: the payment request's signature does not verify (${verdict})\n`);
    }
    if (values['node-key-id'] !== undefined) {
      let expected: string;
      try {
        expected = toNpub(values['node-key-id']);
      } catch (err) {
        if (err instanceof KeyFormatError) throw new UsageError(`--node-key-id: ${err.message}`);
        throw err;
      }
      let signer = '';
      try {
        signer = toNpub(env.keyId);
      } catch {
        /* unparsable: mismatch */
      }
      if (signer !== expected) {
        io.stderr(`receipt: the payment request was signed by ${env.keyId}, not by --node-key-id ${expected}\n`);
        return EXIT_FAIL;
      }
    }
    const pr = env.payload;
    const now = Date.now();
    if (pr.expiresAtMs < now) io.stderr(`receipt: warning: the payment request expired ${Math.round((now - pr.expiresAtMs) / 1000)} s ago\n`);

    const invoice = values.invoice ?? (pr.invoice !== '' ? pr.invoice : undefined);
    const paymentHash = paymentHashFlag ?? (pr.paymentHash ? pr.paymentHash.toLowerCase() : undefined);
    if (preimage && paymentHash) {
      const digest = createHash('sha256').update(Buffer.from(preimage, 'hex')).digest('hex');
      if (digest !== paymentHash) {
        io.stderr('receipt: sha256(--preimage) does not equal the payment hash; the node would refuse this receipt\n');
        return EXIT_FAIL;
      }
    }
    const splits = splitsFor(env);
    const amountSats = amount ?? pr.amountSats;
    if (splits && amount !== undefined && splits.reduce((s, x) => s + x.amountSats, 0) !== amount) {
      io.stderr('receipt: warning: --amount differs from the sum of the request splits; the node will refuse it\n');
    }
    const payload: PaymentReceipt = {
      requestId: pr.requestId,
      payeeType: pr.payeeType,
      payeeId: pr.payeeId,
      amountSats,
      paidAtMs: paidAtMs ?? now,
      ...(paymentHash ? { paymentHash } : {}),
      ...(preimage ? { preimage } : {}),
      ...(invoice ? { invoice } : {}),
      ...(splits ? { splits } : {}),
    };
    const receipt = signEnvelope(payload, client);
    if (values.out) {
      const out = path.resolve(io.cwd, values.out);
      try {
        writeFileSync(out, JSON.stringify(receipt, null, 2) + '\n', { mode: 0o600 });
      } catch (err) {
        io.stderr(`receipt: cannot write ${out}: ${(err as Error).message}\n`);
        return EXIT_FAIL;
      }
      if (values.json) writeJson(io, { out, requestId: payload.requestId, amountSats });
      else io.stdout(`wrote a receipt for ${payload.requestId} (${amountSats} sats to ${payload.payeeType} ${payload.payeeId}) to ${out}\n`);
    } else {
      writeJson(io, receipt);
    }
    return EXIT_OK;
  },
};
