/**
 * Structural checks for the payment envelopes, through the shared wire schemas
 * (schemas/payment-receipt.json, payment-request.json, envelope.json via
 * supervisor/protocol/wire-schemas.ts): exact outer envelope keys, field types, hex formats and
 * length caps. Amount VALUES (≥ 1, sums, caps) are judged by the gate with their own codes.
 * Returns "path: message" strings, empty when valid.
 */
import type { Envelope } from '../crypto/envelope.js';
import type { PaymentReceipt, PaymentRequest } from '../protocol/wire-types.js';
import { validateEnvelopeOf } from '../protocol/wire-schemas.js';

export function paymentReceiptEnvelopeProblems(v: unknown): string[] {
  const r = validateEnvelopeOf('payment-receipt', v);
  return r.ok ? [] : r.details;
}

export function paymentRequestEnvelopeProblems(v: unknown): string[] {
  const r = validateEnvelopeOf('payment-request', v);
  return r.ok ? [] : r.details;
}

export function isPaymentReceiptEnvelope(v: unknown): v is Envelope<PaymentReceipt> {
  return paymentReceiptEnvelopeProblems(v).length === 0;
}

export function isPaymentRequestEnvelope(v: unknown): v is Envelope<PaymentRequest> {
  return paymentRequestEnvelopeProblems(v).length === 0;
}
