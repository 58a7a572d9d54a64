/**
 * What the payment gate needs from a Lightning node: issue an invoice for a 402, look up whether an
 * invoice was settled, and (when the credentials allow) name the node's public key so invoices in
 * receipts can be checked against it. Implemented by the LND REST and CLN clnrest clients; the
 * NODE_LN_VERIFY_URL verifier is a separate, narrower interface (it only answers "paid?").
 */
export type InvoiceState = 'open' | 'settled' | 'canceled' | 'accepted';

export interface CreateInvoiceInput {
  readonly amountSats: number;
  readonly memo: string;
  readonly expirySeconds: number;
}

export interface CreatedInvoice {
  /** BOLT11 payment request. */
  readonly invoice: string;
  /** 64 hex, lowercase. */
  readonly paymentHash: string;
}

export interface InvoiceLookup {
  /** 'canceled' also covers "expired" and "no such invoice". */
  readonly state: InvoiceState;
  readonly amountPaidSats?: number;
  /** 64 hex, when settled. */
  readonly preimage?: string;
  readonly settledAtMs?: number;
}

export interface LightningBackend {
  /** 'lnd', 'cln', … (logs only). */
  readonly kind?: string;
  createInvoice(input: CreateInvoiceInput): Promise<CreatedInvoice>;
  lookupInvoice(paymentHash: string): Promise<InvoiceLookup>;
  /** 33-byte compressed node key, hex. May reject when the credentials do not allow it. */
  nodePubkey?(): Promise<string>;
  close?(): void;
}

export interface VerifyInput {
  readonly invoice?: string;
  readonly paymentHash?: string;
  readonly preimage?: string;
  readonly amountSats: number;
  readonly payeeId: string;
  readonly requestId: string;
}

export interface VerifyResult {
  readonly paid: boolean;
  readonly settledAtMs?: number;
  readonly detail?: string;
}

/** fed_AI's external settlement verifier (NODE_LN_VERIFY_URL, e.g. upstream's ln-adapter /verify). */
export interface SettlementVerifier {
  verify(input: VerifyInput): Promise<VerifyResult>;
  close?(): void;
}

export const HEX32 = /^[0-9a-f]{64}$/;

/** Standard or url-safe base64 → hex (LND REST encodes bytes fields as base64). */
export function b64ToHex(b64: unknown): string | undefined {
  if (typeof b64 !== 'string' || b64.length === 0) return undefined;
  return Buffer.from(b64.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('hex');
}

/** A non-negative integer from a JSON number or decimal string (LND int64s are strings), else undefined. */
export function toInt(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
  if (typeof v === 'string' && /^\d+$/.test(v)) {
    const n = Number(v);
    return Number.isSafeInteger(n) ? n : undefined;
  }
  return undefined;
}

/** CLN msat amounts: a number, or the older "1234msat" string. */
export function msatOf(v: unknown): number | undefined {
  if (typeof v === 'string' && /^\d+msat$/.test(v)) return toInt(v.slice(0, -4));
  return toInt(v);
}
