/**
 * LND REST client (default port 8080, self-signed TLS): `Grpc-Metadata-macaroon: <hex>` on every call,
 * bytes fields base64. Create: POST /v1/invoices. Lookup: GET /v2/invoices/lookup?payment_hash=<base64url>
 * (falling back to GET /v1/invoice/{hex} on an LND that predates v2). Identity: GET /v1/getinfo, which
 * needs info:read — a plain invoice.macaroon cannot call it, so the key is then learnt from the first
 * invoice this node creates (its signature names the node).
 */
import { FedaiError } from '../../errors.js';
import { decodeBolt11 } from '../bolt11.js';
import { b64ToHex, HEX32, toInt, type CreateInvoiceInput, type CreatedInvoice, type InvoiceLookup, type LightningBackend } from './backend.js';
import { LnHttpClient, type HttpClientOptions } from './http-client.js';

export interface LndOptions extends Omit<HttpClientOptions, 'headers' | 'label' | 'baseUrl'> {
  readonly restUrl: string;
  readonly macaroonHex: string;
}

const NOT_FOUND = /unable to locate invoice|no existing invoices|not found|there are no/i;

function messageOf(json: unknown): string {
  const m = json && typeof json === 'object' ? ((json as { message?: unknown; error?: unknown }).message ?? (json as { error?: unknown }).error) : undefined;
  return typeof m === 'string' ? m : '';
}

/**
 * A bytes query parameter as grpc-gateway decodes it: URL-safe base64 WITH padding (its runtime.Bytes
 * tries padded std then padded URL encoding), percent-encoded so '=' survives the query string.
 */
export function lndQueryBytes(hex: string): string {
  return encodeURIComponent(Buffer.from(hex, 'hex').toString('base64').replace(/\+/g, '-').replace(/\//g, '_'));
}

export class LndBackend implements LightningBackend {
  readonly kind = 'lnd';
  private readonly http: LnHttpClient;
  private pubkey: string | undefined;
  private v1Only = false;

  constructor(opts: LndOptions) {
    this.http = new LnHttpClient({ ...opts, baseUrl: opts.restUrl, label: 'lnd', headers: { 'Grpc-Metadata-macaroon': opts.macaroonHex } });
  }

  async createInvoice(input: CreateInvoiceInput): Promise<CreatedInvoice> {
    const res = await this.http.request('POST', '/v1/invoices', { value: String(input.amountSats), memo: input.memo, expiry: String(input.expirySeconds) });
    const j = res.json as { r_hash?: unknown; payment_request?: unknown } | undefined;
    const paymentHash = b64ToHex(j?.r_hash);
    if (res.status !== 200 || typeof j?.payment_request !== 'string' || !paymentHash || !HEX32.test(paymentHash)) {
      throw new FedaiError('payment-backend-unavailable', { details: [`lnd: invoice creation failed (HTTP ${res.status})`], retryAfterS: 5 });
    }
    if (this.pubkey === undefined) {
      try {
        this.pubkey = decodeBolt11(j.payment_request).payeePubkey;
      } catch {
        /* leave unknown */
      }
    }
    return { invoice: j.payment_request, paymentHash };
  }

  async lookupInvoice(paymentHash: string): Promise<InvoiceLookup> {
    const hash = paymentHash.toLowerCase();
    if (!HEX32.test(hash)) return { state: 'canceled' };
    let res = this.v1Only
      ? undefined
      : await this.http.request('GET', `/v2/invoices/lookup?payment_hash=${lndQueryBytes(hash)}`);
    if (res && (res.status === 404 || res.status === 501) && res.json === undefined) {
      this.v1Only = true; // the route itself does not exist: an LND before v2 lookup
      res = undefined;
    }
    if (!res) res = await this.http.request('GET', `/v1/invoice/${hash}`);
    if (res.status === 404 || (res.status !== 200 && NOT_FOUND.test(messageOf(res.json)))) return { state: 'canceled' };
    if (res.status !== 200 || !res.json || typeof res.json !== 'object') {
      throw new FedaiError('payment-backend-unavailable', { details: [`lnd: invoice lookup failed (HTTP ${res.status})`], retryAfterS: 5 });
    }
    const j = res.json as { state?: unknown; settled?: unknown; r_preimage?: unknown; amt_paid_sat?: unknown; amt_paid_msat?: unknown; settle_date?: unknown };
    const raw = typeof j.state === 'string' ? j.state.toUpperCase() : j.settled === true ? 'SETTLED' : 'OPEN';
    const state = raw === 'SETTLED' ? 'settled' : raw === 'ACCEPTED' ? 'accepted' : raw === 'CANCELED' ? 'canceled' : 'open';
    const msat = toInt(j.amt_paid_msat);
    const sat = toInt(j.amt_paid_sat);
    const amountPaidSats = msat !== undefined ? Math.floor(msat / 1000) : sat;
    const preimage = b64ToHex(j.r_preimage);
    const settleSec = toInt(j.settle_date);
    return {
      state,
      ...(amountPaidSats !== undefined ? { amountPaidSats } : {}),
      ...(preimage && HEX32.test(preimage) && state === 'settled' ? { preimage } : {}),
      ...(settleSec ? { settledAtMs: settleSec * 1000 } : {}),
    };
  }

  async nodePubkey(): Promise<string> {
    if (this.pubkey) return this.pubkey;
    const res = await this.http.request('GET', '/v1/getinfo');
    const id = (res.json as { identity_pubkey?: unknown } | undefined)?.identity_pubkey;
    if (res.status !== 200 || typeof id !== 'string' || !/^0[23][0-9a-f]{64}$/i.test(id)) {
      throw new FedaiError('payment-backend-unavailable', { details: [`lnd: getinfo failed (HTTP ${res.status})`] });
    }
    this.pubkey = id.toLowerCase();
    return this.pubkey;
  }

  close(): void {
    this.http.close();
  }
}
