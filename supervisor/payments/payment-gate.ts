/**
 * The payment gate the /infer pipeline calls (docs/payments.md). `check` verifies the receipt aimed at
 * this node — every check in a fixed order, each failure its own catalogued FedaiError plus an
 * onFailure(code) call — and consumes nothing; the returned ticket's `commit` spends the receipt
 * atomically, and the HTTP layer calls it only once the request is admitted, so a later 429/503 does not
 * burn a paid receipt. Without a receipt it answers 402 with a node-signed PaymentRequest (with a real
 * invoice when a Lightning backend is configured).
 *
 * Order of checks (first failure wins):
 *   1 no receipt for this node → 402 payment-required (+ signed PaymentRequest)
 *   2 envelope structure → 400 invalid-payment-receipt
 *   3 client signature under the receipt's own keyId → 401 invalid-payment-receipt-signature
 *   4 amountSats a positive integer → 400 payment-amount-invalid
 *   5 requestId → 400 payment-request-mismatch
 *   6 amountSats ≥ router-formula price → 402 payment-insufficient
 *   7 splits: non-negative integers (400 payment-amount-invalid), Σ = amountSats
 *     (400 payment-split-total-mismatch), router fee ≤ both caps (400 router-fee-exceeds-cap), node
 *     splits name this node (400 payment-payee-mismatch), this node's share ≥ price (402 payment-insufficient)
 *   8 paidAtMs ≤ now + skew (400 payment-receipt-future), ≥ now − max age (400 payment-receipt-expired)
 *   9 not spent before, by signer+nonce or payment hash → 409 payment-receipt-reused
 *  10 proof: preimage required (400 preimage-required); some proof when Lightning is configured
 *     (400 payment-proof-missing); sha256(preimage) = hash (400 preimage-mismatch); invoice decodes,
 *     verifies, is this node's LN node's, has an amount (400 invoice-invalid), covers the price
 *     (402 payment-insufficient), was not expired at paidAtMs (400 invoice-expired), carries the
 *     receipt's hash (400 invoice-invalid); an invoice this node issued belongs to this requestId
 *     (400 payment-request-mismatch)
 *  11 settlement (only when configured): backend lookup settled (400 payment-unsettled), paid amount
 *     covers the price (402 payment-insufficient), settled within the max age (400
 *     payment-receipt-expired); NODE_LN_VERIFY_URL paid:true (400 payment-unsettled, 400
 *     payment-verify-failed); backend down or slow → 503 payment-backend-unavailable
 */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import path from 'node:path';
import type { Config } from '../config/load-config.js';
import { checkEnvelopeSignature, publicKeyForKeyId, signEnvelope, type Envelope } from '../crypto/envelope.js';
import { bytesToHex, type Identity } from '../crypto/keys.js';
import { FedaiError, type ErrorCode } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { InferenceRequest, PaymentReceipt, PaymentRequest } from '../protocol/wire-types.js';
import { decodeBolt11, type DecodedInvoice } from './bolt11.js';
import {
  lightningBackendFromConfig,
  settlementVerifierFromConfig,
  type LightningBackend,
  type SettlementVerifier,
} from './lightning/index.js';
import { quoteSats, ratesFromConfig, routerMinimumSats, type Rates } from './pricing.js';
import { paymentReceiptEnvelopeProblems } from './receipt-schema.js';
import { ReceiptStore, type ReceiptKeys } from './receipt-store.js';

export interface PaymentGateOptions {
  config: Config;
  node: { nodeId: string; identity: Identity };
  dataDir: string;
  logger: Logger;
  onFailure?: (reason: ErrorCode) => void;
  lightning?: LightningBackend;
  /** Overrides the NODE_LN_VERIFY_URL client (tests). */
  verifier?: SettlementVerifier;
  now?: () => number;
}

export interface PaymentTicket {
  /** Payment hash, else sha256 hex of `<receipt signer hex>:<receipt nonce>`. */
  reference: string;
  /** This node's share of the receipt (amountSats, or Σ of this node's splits). */
  amountSats: number;
  /** Atomically marks the receipt (and its payment hash) spent; throws FedaiError('payment-receipt-reused') if someone spent it first. Call only when the request is admitted. */
  commit(): Promise<void>;
  /** Resolves once the spend is synced to disk (the node waits for it before it meters or answers). */
  durable(): Promise<void>;
}

/** Slack added to every retention period (clock steps, slow requests). */
const RETENTION_MARGIN_MS = 60_000;
/** How long a failed node-pubkey lookup is not retried. */
const PUBKEY_RETRY_MS = 60_000;
/** 402s remembered per requestId so a retried request gets the same invoice, not a new one. */
const QUOTE_CACHE_MAX = 10_000;

const FREE_TICKET: PaymentTicket = { reference: '', amountSats: 0, commit: async () => {}, durable: async () => {} };

function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

function hexEqual(a: string, b: string): boolean {
  const x = Buffer.from(a.toLowerCase(), 'hex');
  const y = Buffer.from(b.toLowerCase(), 'hex');
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

export class PaymentGate {
  private readonly config: Config;
  private readonly nodeId: string;
  private readonly identity: Identity;
  private readonly logger: Logger;
  private readonly onFailure: ((reason: ErrorCode) => void) | undefined;
  private readonly lightning: LightningBackend | undefined;
  private readonly verifier: SettlementVerifier | undefined;
  private readonly store: ReceiptStore;
  private readonly now: () => number;
  private readonly rates: Rates;
  private readonly quotes = new Map<string, Envelope<PaymentRequest>>();
  private lnPubkey: string | undefined;
  private lnPubkeyRetryAt = 0;
  private closed = false;

  private constructor(opts: PaymentGateOptions, store: ReceiptStore, lightning: LightningBackend | undefined, verifier: SettlementVerifier | undefined) {
    this.config = opts.config;
    this.nodeId = opts.node.nodeId;
    this.identity = opts.node.identity;
    this.logger = opts.logger;
    this.onFailure = opts.onFailure;
    this.lightning = lightning;
    this.verifier = verifier;
    this.store = store;
    this.now = opts.now ?? Date.now;
    this.rates = ratesFromConfig(opts.config);
  }

  /** Opens the receipt store under `<dataDir>/receipts` and builds the Lightning backend from config when opts.lightning is absent. */
  static async open(opts: PaymentGateOptions): Promise<PaymentGate> {
    const store = ReceiptStore.open(path.join(opts.dataDir, 'receipts'), { now: opts.now ?? Date.now });
    const lightning = opts.lightning ?? lightningBackendFromConfig(opts.config, opts.logger);
    const verifier = opts.verifier ?? settlementVerifierFromConfig(opts.config, opts.logger);
    const gate = new PaymentGate(opts, store, lightning, verifier);
    await gate.learnLnPubkey();
    opts.logger.info(
      {
        required: opts.config.NODE_REQUIRE_PAYMENT,
        lnBackend: lightning ? (lightning.kind ?? 'custom') : 'none',
        lnNodeKnown: gate.lnPubkey !== undefined,
        verifyUrl: verifier !== undefined,
        requirePreimage: opts.config.NODE_LN_REQUIRE_PREIMAGE,
      },
      'payment gate ready',
    );
    return gate;
  }

  get required(): boolean {
    return this.config.NODE_REQUIRE_PAYMENT;
  }

  /** The configured Lightning node's key (compressed, hex), when known. */
  get lightningNodePubkey(): string | undefined {
    return this.lnPubkey;
  }

  /** `force`: ignore the retry back-off (after creating an invoice the backend knows its key offline). */
  private async learnLnPubkey(force = false): Promise<string | undefined> {
    if (this.lnPubkey || !this.lightning?.nodePubkey) return this.lnPubkey;
    if (!force && this.now() < this.lnPubkeyRetryAt) return undefined;
    try {
      this.lnPubkey = (await this.lightning.nodePubkey()).toLowerCase();
    } catch (err) {
      this.lnPubkeyRetryAt = this.now() + PUBKEY_RETRY_MS;
      this.logger.warn({ backend: this.lightning.kind ?? 'custom', code: err instanceof FedaiError ? err.code : 'error' }, 'could not learn the Lightning node key; invoices are checked for a valid signature only until it is known');
    }
    return this.lnPubkey;
  }

  private fail(code: ErrorCode, detail?: string, extra?: { retryAfterS?: number; cause?: unknown }): FedaiError {
    this.onFailure?.(code);
    return new FedaiError(code, { ...(detail !== undefined ? { details: [detail] } : {}), ...(extra ?? {}) });
  }

  private rethrow(err: unknown): FedaiError {
    const e = err instanceof FedaiError ? err : new FedaiError('payment-backend-unavailable', { cause: err, retryAfterS: 5 });
    this.onFailure?.(e.code);
    return e;
  }

  private isOurs(payeeId: unknown): boolean {
    return payeeId === this.nodeId || payeeId === this.identity.npub;
  }

  /** Verifies the receipt aimed at this node. Throws FedaiError (402 payment-required with a node-signed PaymentRequest envelope in extra.payment when none is present). Does NOT consume anything. */
  async check(request: InferenceRequest, opts: { estimate?: { inputTokens: number; exact: boolean; latencyEstimateMs?: number } } = {}): Promise<PaymentTicket> {
    if (this.closed) throw new FedaiError('node-draining');
    const cfg = this.config;
    const now = this.now();

    // 1. selection
    const candidates = Array.isArray(request.paymentReceipts) ? request.paymentReceipts : [];
    const env = candidates.find((r) => {
      const p = (r as { payload?: unknown } | null)?.payload as Record<string, unknown> | undefined;
      return p !== null && typeof p === 'object' && p.payeeType === 'node' && this.isOurs(p.payeeId);
    }) as Envelope<PaymentReceipt> | undefined;
    if (!env) {
      if (!this.required) return FREE_TICKET;
      const payment = await this.paymentRequest(request, opts.estimate);
      this.onFailure?.('payment-required');
      throw new FedaiError('payment-required', { extra: { payment } });
    }

    // 2. structure
    const problems = paymentReceiptEnvelopeProblems(env);
    if (problems.length > 0) {
      this.onFailure?.('invalid-payment-receipt');
      throw new FedaiError('invalid-payment-receipt', { details: problems.slice(0, 10) });
    }
    const r = env.payload;

    // 3. signature under the receipt's own keyId (npub or hex; unparsable → 401, never a throw)
    let signer: string;
    try {
      if (checkEnvelopeSignature(env) !== null) throw new Error('bad signature');
      signer = bytesToHex(publicKeyForKeyId(env.keyId));
    } catch {
      throw this.fail('invalid-payment-receipt-signature');
    }

    // 4. amount
    if (!Number.isSafeInteger(r.amountSats) || r.amountSats < 1) throw this.fail('payment-amount-invalid', 'amountSats must be a positive integer');

    // 5. request binding
    if (r.requestId !== request.requestId) throw this.fail('payment-request-mismatch');

    // 6. price (router formula: never above what a fed_AI router charged for the same rates)
    const price = routerMinimumSats(request, this.rates);
    if (r.amountSats < price) throw this.fail('payment-insufficient', `amountSats ${r.amountSats} is below the price ${price}`);

    // 7. splits and router fee
    let share = r.amountSats;
    if (r.splits && r.splits.length > 0) {
      let total = 0;
      let routerFee = 0;
      let nodeTotal = 0;
      let ours = 0;
      let nodeSplits = 0;
      for (const s of r.splits) {
        if (!Number.isSafeInteger(s.amountSats) || s.amountSats < 0) throw this.fail('payment-amount-invalid', 'split amounts must be non-negative integers');
        total += s.amountSats;
        if (s.payeeType === 'router') routerFee += s.amountSats;
        else {
          nodeSplits++;
          nodeTotal += s.amountSats;
          if (this.isOurs(s.payeeId)) ours += s.amountSats;
        }
      }
      if (total !== r.amountSats) throw this.fail('payment-split-total-mismatch', `splits add up to ${total}, amountSats is ${r.amountSats}`);
      const nodeAmount = nodeSplits > 0 ? nodeTotal : r.amountSats;
      const bpsCap = Math.floor((nodeAmount * cfg.NODE_ROUTER_FEE_MAX_BPS) / 10_000);
      if (routerFee > cfg.NODE_ROUTER_FEE_MAX_SATS) throw this.fail('router-fee-exceeds-cap', `router fee ${routerFee} > NODE_ROUTER_FEE_MAX_SATS ${cfg.NODE_ROUTER_FEE_MAX_SATS}`);
      if (routerFee > bpsCap) throw this.fail('router-fee-exceeds-cap', `router fee ${routerFee} > ${cfg.NODE_ROUTER_FEE_MAX_BPS} bps of ${nodeAmount}`);
      if (nodeSplits > 0) {
        if (ours === 0) throw this.fail('payment-payee-mismatch', 'no node split pays this node');
        share = ours;
      } else share = r.amountSats - routerFee;
      if (share < price) throw this.fail('payment-insufficient', `this node's share ${share} is below the price ${price}`);
    }

    // 8. freshness
    if (r.paidAtMs > now + cfg.NODE_RECEIPT_MAX_SKEW_MS) throw this.fail('payment-receipt-future');
    if (r.paidAtMs < now - cfg.NODE_RECEIPT_MAX_AGE_MS) throw this.fail('payment-receipt-expired');

    // the payment hash the receipt names or implies (invoice errors are reported in step 10)
    let invoice: DecodedInvoice | undefined;
    let invoiceError: FedaiError | undefined;
    const expectedPayee = await this.learnLnPubkey();
    if (r.invoice !== undefined && r.invoice !== '') {
      try {
        invoice = decodeBolt11(r.invoice, expectedPayee ? { expectedPayee } : {});
      } catch (err) {
        invoiceError = err instanceof FedaiError ? err : new FedaiError('invoice-invalid');
      }
    }
    const paymentHash = (r.paymentHash ?? invoice?.paymentHash ?? (r.preimage ? sha256Hex(Buffer.from(r.preimage, 'hex')) : undefined))?.toLowerCase();
    const keys: ReceiptKeys = { signer, nonce: env.nonce, ...(paymentHash ? { paymentHash } : {}) };

    // 9. single use
    if (this.store.isSpent(keys)) throw this.fail('payment-receipt-reused');

    // 10. proof
    const lnConfigured = this.lightning !== undefined || this.verifier !== undefined;
    if (cfg.NODE_LN_REQUIRE_PREIMAGE && !r.preimage) throw this.fail('preimage-required');
    if (lnConfigured && !r.preimage && !r.paymentHash && !r.invoice) throw this.fail('payment-proof-missing');
    if (r.preimage && paymentHash) {
      const digest = sha256Hex(Buffer.from(r.preimage, 'hex'));
      if (!hexEqual(digest, paymentHash)) throw this.fail('preimage-mismatch');
    }
    if (invoiceError) {
      this.onFailure?.(invoiceError.code);
      throw invoiceError;
    }
    if (invoice) {
      if (invoice.amountMsat === undefined) throw this.fail('invoice-invalid', 'amountless invoices do not prove a price');
      if (invoice.amountMsat < BigInt(price) * 1000n) throw this.fail('payment-insufficient', `invoice amount ${invoice.amountSats} is below the price ${price}`);
      if (r.paidAtMs > invoice.expiresAtMs) throw this.fail('invoice-expired');
      if (r.paymentHash && !hexEqual(r.paymentHash, invoice.paymentHash)) throw this.fail('invoice-invalid', 'invoice payment hash differs from the receipt paymentHash');
    }
    if (paymentHash) {
      const issued = this.store.issued(paymentHash);
      if (issued && issued.requestId !== request.requestId) throw this.fail('payment-request-mismatch', 'the invoice was issued for another request');
    }

    // 11. settlement
    let settledAtMs: number | undefined;
    if (this.lightning && paymentHash) {
      let lookup;
      try {
        lookup = await this.lightning.lookupInvoice(paymentHash);
      } catch (err) {
        throw this.rethrow(err);
      }
      if (lookup.state !== 'settled') throw this.fail('payment-unsettled', `invoice is ${lookup.state}`);
      if (lookup.amountPaidSats !== undefined && lookup.amountPaidSats < price) throw this.fail('payment-insufficient', `paid ${lookup.amountPaidSats} is below the price ${price}`);
      settledAtMs = lookup.settledAtMs;
    } else if (this.lightning && !paymentHash) {
      throw this.fail('payment-proof-missing');
    }
    if (this.verifier) {
      let verdict;
      try {
        verdict = await this.verifier.verify({
          ...(r.invoice !== undefined ? { invoice: r.invoice } : {}),
          ...(paymentHash !== undefined ? { paymentHash } : {}),
          ...(r.preimage !== undefined ? { preimage: r.preimage } : {}),
          amountSats: r.amountSats,
          payeeId: r.payeeId,
          requestId: r.requestId,
        });
      } catch (err) {
        throw this.rethrow(err);
      }
      if (!verdict.paid) throw this.fail('payment-unsettled', verdict.detail);
      settledAtMs ??= verdict.settledAtMs;
    }
    if (settledAtMs !== undefined && settledAtMs > 0 && settledAtMs < now - cfg.NODE_RECEIPT_MAX_AGE_MS - cfg.NODE_RECEIPT_MAX_SKEW_MS) {
      throw this.fail('payment-receipt-expired', 'the payment settled longer ago than NODE_RECEIPT_MAX_AGE_MS');
    }

    return this.ticket(keys, r, share, invoice);
  }

  private ticket(keys: ReceiptKeys, r: PaymentReceipt, share: number, invoice: DecodedInvoice | undefined): PaymentTicket {
    const cfg = this.config;
    const reference = keys.paymentHash ?? sha256Hex(`${keys.signer}:${keys.nonce}`);
    let committed = false;
    return {
      reference,
      amountSats: share,
      commit: async () => {
        if (committed) return;
        const now = this.now();
        const horizon = cfg.NODE_RECEIPT_MAX_AGE_MS + cfg.NODE_RECEIPT_MAX_SKEW_MS + RETENTION_MARGIN_MS;
        const ok = await this.store.spend(keys, {
          requestId: r.requestId,
          amountSats: r.amountSats,
          paidAtMs: r.paidAtMs,
          // after this the receipt fails the age check anyway
          keepUntilMs: Math.max(r.paidAtMs, now) + horizon,
          // a fresh receipt could wrap the same hash: keep it past the invoice's life and the settlement age check
          hashKeepUntilMs: Math.max(now, invoice?.expiresAtMs ?? 0) + horizon,
        });
        if (!ok) throw this.fail('payment-receipt-reused');
        committed = true;
      },
      durable: () => this.store.durable(),
    };
  }

  /** Builds (or reuses, per requestId) the node-signed PaymentRequest of a 402. */
  private async paymentRequest(request: InferenceRequest, estimate: { inputTokens: number; exact: boolean; latencyEstimateMs?: number } | undefined): Promise<Envelope<PaymentRequest>> {
    const now = this.now();
    const requestId = typeof request.requestId === 'string' ? request.requestId : '';
    const amountSats = quoteSats(request, estimate, this.rates);
    const cached = this.quotes.get(requestId);
    // reuse (same requestId, same price) while at least half of its life remains, so a client has time to pay it
    if (cached && cached.payload.amountSats === amountSats && cached.payload.expiresAtMs - now > this.config.NODE_PAYMENT_REQUEST_TTL_MS / 2) return cached;

    const expiresAtMs = now + this.config.NODE_PAYMENT_REQUEST_TTL_MS;
    let invoice = '';
    let paymentHash: string | undefined;
    if (this.lightning) {
      try {
        const created = await this.lightning.createInvoice({
          amountSats,
          memo: `fed_AI inference ${requestId}`.slice(0, 200),
          expirySeconds: Math.ceil(this.config.NODE_PAYMENT_REQUEST_TTL_MS / 1000),
        });
        invoice = created.invoice;
        paymentHash = created.paymentHash.toLowerCase();
      } catch (err) {
        throw this.rethrow(err);
      }
      await this.store.recordIssued(paymentHash, { requestId, amountSats, expiresAtMs }, expiresAtMs + this.config.NODE_RECEIPT_MAX_AGE_MS + RETENTION_MARGIN_MS);
      if (!this.lnPubkey) await this.learnLnPubkey(true);
    }
    const payload: PaymentRequest = {
      requestId,
      payeeType: 'node',
      payeeId: this.nodeId,
      amountSats,
      invoice,
      expiresAtMs,
      ...(paymentHash ? { paymentHash } : {}),
      metadata: {
        currency: 'sat',
        nodeAmountSats: amountSats,
        routerFeeSats: 0,
        minimumSats: routerMinimumSats(request, this.rates),
        nodeKeyId: this.identity.npub,
      },
    };
    const env = signEnvelope(payload, this.identity, { nonce: randomUUID(), ts: now });
    if (requestId) {
      if (this.quotes.size >= QUOTE_CACHE_MAX) this.quotes.delete(this.quotes.keys().next().value as string);
      this.quotes.set(requestId, env);
    }
    return env;
  }

  /** Entries in the receipt store (spent keys and issued invoices), for metrics and tests. */
  storeSize(): number {
    return this.store.size();
  }

  /** Drops store entries past their retention now (also runs on open and every minute). */
  prune(): number {
    return this.store.prune();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.lightning?.close?.();
    this.verifier?.close?.();
    await this.store.close();
  }
}
