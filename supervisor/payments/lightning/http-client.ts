/**
 * The one HTTP client the Lightning backends use: JSON in and out, a deadline per attempt, bounded
 * retries with exponential backoff and jitter, and optional TLS trust for a self-signed LND/CLN
 * certificate (NODE_LN_TLS_CA_PATH). It never hangs and never throws anything but a FedaiError:
 * transport failures, timeouts and 5xx/429 answers that outlast the retries become
 * 'payment-backend-unavailable' (503, retryable). Other answers are returned to the caller.
 *
 * Nothing here logs a request or response body: they carry invoices, preimages, macaroons and runes.
 */
import http from 'node:http';
import https from 'node:https';
import { FedaiError } from '../../errors.js';
import type { Logger } from '../../observability/logger.js';

export interface RetryPolicy {
  readonly maxAttempts: number;
  readonly minDelayMs: number;
  readonly maxDelayMs: number;
}

export interface HttpClientOptions {
  readonly baseUrl: string;
  readonly timeoutMs: number;
  readonly retry: RetryPolicy;
  /** PEM CA bundle or certificate to trust for https (self-signed LND/CLN). */
  readonly ca?: string | Buffer;
  readonly headers?: Record<string, string>;
  readonly logger?: Logger;
  /** Short name for logs and error details ("lnd", "cln", "verify"). */
  readonly label: string;
}

export interface JsonResponse {
  readonly status: number;
  /** Parsed JSON body, or undefined when the body was empty or not JSON. */
  readonly json: unknown;
}

/** Largest response body read from a backend. */
const MAX_BODY_BYTES = 1024 * 1024;

/** Delay before retry `attempt` (1-based count of failures so far): exponential, capped, with jitter. */
export function backoffDelayMs(attempt: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const exp = Math.min(policy.maxDelayMs, policy.minDelayMs * 2 ** Math.max(0, attempt - 1));
  // "equal jitter": half fixed, half random, so retries from many requests spread out but never collapse to 0
  return Math.round(exp / 2 + random() * (exp / 2));
}

class RetryableError extends Error {}

export class LnHttpClient {
  private readonly opts: HttpClientOptions;
  private readonly agent: http.Agent | https.Agent;
  private readonly base: URL;
  private readonly exact: URL;

  constructor(opts: HttpClientOptions) {
    this.opts = opts;
    this.exact = new URL(opts.baseUrl);
    this.base = new URL(opts.baseUrl.endsWith('/') ? opts.baseUrl : opts.baseUrl + '/');
    this.agent =
      this.base.protocol === 'https:'
        ? new https.Agent({ keepAlive: true, maxSockets: 16, ...(opts.ca !== undefined ? { ca: opts.ca } : {}) })
        : new http.Agent({ keepAlive: true, maxSockets: 16 });
  }

  /** `path` is relative to the base URL (a leading "/" is allowed and kept under the base path); '' = the base URL itself. */
  async request(method: 'GET' | 'POST', path: string, body?: unknown, headers: Record<string, string> = {}): Promise<JsonResponse> {
    const url = path === '' ? this.exact : new URL(path.replace(/^\/+/, ''), this.base);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body), 'utf8');
    let lastReason = 'no attempt';
    for (let attempt = 1; attempt <= this.opts.retry.maxAttempts; attempt++) {
      try {
        const res = await this.once(method, url, payload, headers);
        if (res.status >= 500 || res.status === 429) throw new RetryableError(`HTTP ${res.status}`);
        return res;
      } catch (err) {
        lastReason = err instanceof Error ? err.message : String(err);
        if (!(err instanceof RetryableError)) throw err;
        if (attempt < this.opts.retry.maxAttempts) {
          const delay = backoffDelayMs(attempt, this.opts.retry);
          this.opts.logger?.debug({ backend: this.opts.label, attempt, delayMs: delay, reason: lastReason }, 'lightning backend call failed; retrying');
          await new Promise((r) => setTimeout(r, delay));
        }
      }
    }
    this.opts.logger?.warn({ backend: this.opts.label, attempts: this.opts.retry.maxAttempts, reason: lastReason }, 'lightning backend unavailable');
    throw new FedaiError('payment-backend-unavailable', { details: [`${this.opts.label}: ${lastReason}`], retryAfterS: 5 });
  }

  private once(method: string, url: URL, payload: Buffer | undefined, extra: Record<string, string>): Promise<JsonResponse> {
    const mod = url.protocol === 'https:' ? https : http;
    const headers: Record<string, string> = { accept: 'application/json', ...this.opts.headers, ...extra };
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(payload.length);
    }
    return new Promise<JsonResponse>((resolve, reject) => {
      let settled = false;
      const done = (fn: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        fn();
      };
      const req = mod.request(url, { method, headers, agent: this.agent }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_BODY_BYTES) {
            req.destroy();
            done(() => reject(new RetryableError('response too large')));
            return;
          }
          chunks.push(c);
        });
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = text.length > 0 ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          done(() => resolve({ status: res.statusCode ?? 0, json }));
        });
        res.on('error', (e) => done(() => reject(new RetryableError(e.message))));
      });
      const timer = setTimeout(() => {
        req.destroy();
        done(() => reject(new RetryableError(`timeout after ${this.opts.timeoutMs} ms`)));
      }, this.opts.timeoutMs);
      req.on('error', (e: NodeJS.ErrnoException) => done(() => reject(new RetryableError(e.code ?? e.message))));
      if (payload) req.write(payload);
      req.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
