/**
 * Core Lightning clnrest client (built-in plugin since v23.08): every RPC is POST /v1/<method> with
 * JSON params and a `Rune` header. invoice → bolt11, payment_hash; listinvoices {payment_hash} →
 * status paid|unpaid|expired, payment_preimage, amount_received_msat, paid_at; getinfo → id.
 */
import { randomUUID } from 'node:crypto';
import { FedaiError } from '../../errors.js';
import { decodeBolt11 } from '../bolt11.js';
import { HEX32, msatOf, toInt, type CreateInvoiceInput, type CreatedInvoice, type InvoiceLookup, type LightningBackend } from './backend.js';
import { LnHttpClient, type HttpClientOptions } from './http-client.js';

export interface ClnOptions extends Omit<HttpClientOptions, 'headers' | 'label' | 'baseUrl'> {
  readonly restUrl: string;
  readonly rune: string;
}

export class ClnBackend implements LightningBackend {
  readonly kind = 'cln';
  private readonly http: LnHttpClient;
  private pubkey: string | undefined;

  constructor(opts: ClnOptions) {
    this.http = new LnHttpClient({ ...opts, baseUrl: opts.restUrl, label: 'cln', headers: { Rune: opts.rune } });
  }

  private fail(what: string, status: number): FedaiError {
    return new FedaiError('payment-backend-unavailable', { details: [`cln: ${what} failed (HTTP ${status})`], retryAfterS: 5 });
  }

  async createInvoice(input: CreateInvoiceInput): Promise<CreatedInvoice> {
    const res = await this.http.request('POST', '/v1/invoice', {
      amount_msat: input.amountSats * 1000,
      label: `fedai-${randomUUID()}`,
      description: input.memo,
      expiry: input.expirySeconds,
    });
    const j = res.json as { bolt11?: unknown; payment_hash?: unknown } | undefined;
    const hash = typeof j?.payment_hash === 'string' ? j.payment_hash.toLowerCase() : '';
    if (res.status !== 200 && res.status !== 201) throw this.fail('invoice', res.status);
    if (typeof j?.bolt11 !== 'string' || !HEX32.test(hash)) throw this.fail('invoice', res.status);
    if (this.pubkey === undefined) {
      try {
        this.pubkey = decodeBolt11(j.bolt11).payeePubkey;
      } catch {
        /* leave unknown */
      }
    }
    return { invoice: j.bolt11, paymentHash: hash };
  }

  async lookupInvoice(paymentHash: string): Promise<InvoiceLookup> {
    const hash = paymentHash.toLowerCase();
    if (!HEX32.test(hash)) return { state: 'canceled' };
    const res = await this.http.request('POST', '/v1/listinvoices', { payment_hash: hash });
    if (res.status !== 200 && res.status !== 201) throw this.fail('listinvoices', res.status);
    const list = (res.json as { invoices?: unknown } | undefined)?.invoices;
    if (!Array.isArray(list)) throw this.fail('listinvoices', res.status);
    const inv = list.find((i) => i && typeof i === 'object' && String((i as { payment_hash?: unknown }).payment_hash).toLowerCase() === hash) as
      | { status?: unknown; payment_preimage?: unknown; amount_received_msat?: unknown; paid_at?: unknown }
      | undefined;
    if (!inv) return { state: 'canceled' };
    const state = inv.status === 'paid' ? 'settled' : inv.status === 'unpaid' ? 'open' : 'canceled';
    const msat = msatOf(inv.amount_received_msat);
    const paidAt = toInt(inv.paid_at);
    const preimage = typeof inv.payment_preimage === 'string' ? inv.payment_preimage.toLowerCase() : undefined;
    return {
      state,
      ...(msat !== undefined ? { amountPaidSats: Math.floor(msat / 1000) } : {}),
      ...(preimage && HEX32.test(preimage) ? { preimage } : {}),
      ...(paidAt ? { settledAtMs: paidAt * 1000 } : {}),
    };
  }

  async nodePubkey(): Promise<string> {
    if (this.pubkey) return this.pubkey;
    const res = await this.http.request('POST', '/v1/getinfo', {});
    const id = (res.json as { id?: unknown } | undefined)?.id;
    if ((res.status !== 200 && res.status !== 201) || typeof id !== 'string' || !/^0[23][0-9a-f]{64}$/i.test(id)) throw this.fail('getinfo', res.status);
    this.pubkey = id.toLowerCase();
    return this.pubkey;
  }

  close(): void {
    this.http.close();
  }
}
