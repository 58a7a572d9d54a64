/**
 * fed_AI's external settlement verifier: POST NODE_LN_VERIFY_URL with
 * {invoice, paymentHash, preimage, amountSats, payeeId, requestId} → {paid, settledAtMs?, detail?}.
 * Unlike upstream it always has a deadline (NODE_LN_VERIFY_TIMEOUT_MS) and maps failures honestly:
 * unreachable, timing out or 5xx after the retries → 503 payment-backend-unavailable (retryable);
 * any other non-2xx or a malformed answer → 400 payment-verify-failed; {paid:false} → 402
 * payment-unsettled (with the verifier's detail, truncated).
 */
import { FedaiError } from '../../errors.js';
import type { SettlementVerifier, VerifyInput, VerifyResult } from './backend.js';
import { LnHttpClient, type HttpClientOptions } from './http-client.js';

export interface VerifyUrlOptions extends Omit<HttpClientOptions, 'label' | 'baseUrl'> {
  readonly url: string;
}

export class VerifyUrlClient implements SettlementVerifier {
  private readonly http: LnHttpClient;

  constructor(opts: VerifyUrlOptions) {
    this.http = new LnHttpClient({ ...opts, baseUrl: opts.url, label: 'verify' });
  }

  async verify(input: VerifyInput): Promise<VerifyResult> {
    const res = await this.http.request('POST', '', {
      invoice: input.invoice,
      paymentHash: input.paymentHash,
      preimage: input.preimage,
      amountSats: input.amountSats,
      payeeId: input.payeeId,
      requestId: input.requestId,
    });
    if (res.status < 200 || res.status >= 300) {
      throw new FedaiError('payment-verify-failed', { details: [`verifier answered HTTP ${res.status}`] });
    }
    const j = res.json as { paid?: unknown; settledAtMs?: unknown; detail?: unknown } | undefined;
    if (!j || typeof j !== 'object' || typeof j.paid !== 'boolean') {
      throw new FedaiError('payment-verify-failed', { details: ['verifier answer has no boolean "paid"'] });
    }
    return {
      paid: j.paid,
      ...(typeof j.settledAtMs === 'number' && Number.isFinite(j.settledAtMs) ? { settledAtMs: j.settledAtMs } : {}),
      ...(typeof j.detail === 'string' ? { detail: j.detail.slice(0, 200) } : {}),
    };
  }

  close(): void {
    this.http.close();
  }
}
