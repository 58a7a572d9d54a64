/**
 * The HTTP client every backend adapter uses (http, llama_cpp, vllm). node:http rather than fetch, for
 * three reasons: requests can go through the supervisor's egress proxy on a Unix socket (`socketPath`,
 * absolute-form request lines, CONNECT tunnels for https), Nagle can be switched off per socket, and
 * connection reuse is a per-backend choice.
 *
 * Egress proxy (FEDAI_EGRESS_PROXY, see supervisor/sandbox/launch-plan.ts): plain http is sent to the
 * socket as `GET http://host:port/path HTTP/1.1` with a Host header; https opens `CONNECT host:port`
 * and runs TLS over the tunnel. The proxy answers 403 {"error":"egress-not-allowed"} for destinations
 * outside NODE_SANDBOX_ALLOWED_ENDPOINTS, which becomes AdapterError('egress-not-allowed').
 *
 * Keep-alive: off by default (a fresh connection per request). The llama.cpp build in the reference
 * does not set TCP_NODELAY on accepted sockets, so every request on a reused connection stalls ~40 ms
 * (Nagle against delayed ACK); a fresh connection costs well under a millisecond on loopback.
 *
 * Errors are AdapterErrors with safe details only (status codes, errno names): never a body, a prompt
 * or the API key. The key is sent only to the configured backend URL (through the proxy's tunnel or as
 * a header the proxy forwards to that same destination).
 */
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import net, { type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { AdapterError } from '../adapter.js';

export interface BackendClientOptions {
  /** Base URL (trailing slashes stripped); a function when it can change (managed backend restarts). */
  baseUrl: string | (() => string);
  apiKey?: string;
  /** Unix socket path of the egress forward proxy; when set every request goes through it. */
  egressProxy?: string;
  /** Reuse connections (default false: one fresh connection per request). */
  keepAlive?: boolean;
  /** Default whole-request deadline, headers and body (default 30 s). */
  timeoutMs?: number;
  /** Largest body text()/json() will buffer (default 32 MiB). */
  maxBodyBytes?: number;
  /** Extra trusted CA certificates (PEM) for https backends. */
  ca?: string | Buffer;
}

export interface BackendRequestOptions {
  method?: 'GET' | 'POST';
  /** Path (with query) appended to the base URL, e.g. "/completion". */
  path: string;
  /** JSON request body (sent with content-type application/json). */
  json?: unknown;
  /** Raw request body (tests of malformed input; content-type application/json). */
  rawBody?: string;
  signal?: AbortSignal;
  timeoutMs?: number;
  /** False to omit the Authorization header (default: sent whenever a key is set). */
  auth?: boolean;
  accept?: string;
  /** W3C trace context to propagate to the backend (sent only when well-formed). */
  traceparent?: string;
}

const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

export function stripTrailingSlash(url: string): string {
  return url.replace(/\/+$/, '');
}

function cancelled(): AdapterError {
  return new AdapterError('request-cancelled', 'backend request cancelled');
}

function timedOut(ms: number): AdapterError {
  return new AdapterError('backend-unavailable', `backend did not answer within ${ms} ms`, { details: ['timeout'] });
}

function networkError(err: unknown, phase: 'connect' | 'read'): AdapterError {
  if (err instanceof AdapterError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const details = [phase === 'connect' ? 'unreachable' : 'connection-lost'];
  if (typeof code === 'string' && /^[A-Z0-9_]+$/.test(code)) details.push(code);
  return new AdapterError('backend-unavailable', phase === 'connect' ? 'backend is not reachable' : 'backend connection lost', {
    details,
    cause: err,
  });
}

/** A response whose body has not been read yet. Iterate it for streams, or call text()/json(). */
export class BackendResponse implements AsyncIterable<Buffer> {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  private consumed = false;

  constructor(
    private readonly res: http.IncomingMessage,
    private readonly state: { failure?: AdapterError; finish: () => void; destroy: () => void },
    private readonly maxBodyBytes: number,
  ) {
    this.status = res.statusCode ?? 0;
    this.headers = res.headers;
  }

  get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }

  get contentType(): string {
    return String(this.headers['content-type'] ?? '').toLowerCase();
  }

  get isEventStream(): boolean {
    return this.contentType.startsWith('text/event-stream');
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    if (this.consumed) throw new Error('BackendResponse body already consumed');
    this.consumed = true;
    try {
      for await (const chunk of this.res) {
        if (this.state.failure) throw this.state.failure;
        yield chunk as Buffer;
      }
      if (this.state.failure) throw this.state.failure;
      if (!this.res.complete) throw networkError(new Error('response truncated'), 'read');
    } catch (err) {
      throw this.state.failure ?? networkError(err, 'read');
    } finally {
      this.state.finish();
    }
  }

  async text(): Promise<string> {
    const parts: Buffer[] = [];
    let n = 0;
    for await (const chunk of this) {
      n += chunk.length;
      if (n > this.maxBodyBytes) {
        this.dispose();
        throw new AdapterError('backend-error', 'backend response body too large', { details: ['body-too-large'] });
      }
      parts.push(chunk);
    }
    return Buffer.concat(parts).toString('utf8');
  }

  /** Parses the body as JSON; a non-JSON body is a backend error (the body itself is never reported). */
  async json(): Promise<unknown> {
    const t = await this.text();
    try {
      return JSON.parse(t);
    } catch {
      throw new AdapterError('backend-error', 'backend sent a body that is not JSON', { details: [`status=${this.status}`, 'invalid-json'] });
    }
  }

  /** Like json() but never throws: undefined when the body is not JSON or cannot be read. */
  async jsonOrUndefined(): Promise<unknown> {
    try {
      return JSON.parse(await this.text());
    } catch {
      return undefined;
    }
  }

  /** Drops the connection and releases timers (use when the body is not needed). */
  dispose(): void {
    this.state.destroy();
    this.state.finish();
  }
}

export class BackendClient {
  private readonly agent: http.Agent | undefined;
  private readonly httpsAgent: https.Agent | undefined;
  private readonly timeoutMs: number;
  private readonly maxBodyBytes: number;

  constructor(private readonly opts: BackendClientOptions) {
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.maxBodyBytes = opts.maxBodyBytes ?? 32 * 1024 * 1024;
    if (opts.keepAlive && !opts.egressProxy) {
      // Idle pooled sockets are dropped after 4 s, before the usual 5 s server keep-alive timeout
      // (uvicorn, cpp-httplib), so a request never races the server closing a stale socket.
      this.agent = new http.Agent({ keepAlive: true, timeout: 4_000 });
      this.httpsAgent = new https.Agent({ keepAlive: true, timeout: 4_000, ...(opts.ca ? { ca: opts.ca } : {}) });
    }
  }

  get baseUrl(): string {
    const b = typeof this.opts.baseUrl === 'function' ? this.opts.baseUrl() : this.opts.baseUrl;
    return stripTrailingSlash(b);
  }

  get viaProxy(): boolean {
    return this.opts.egressProxy !== undefined;
  }

  /** Releases pooled connections. */
  close(): void {
    this.agent?.destroy();
    this.httpsAgent?.destroy();
  }

  async getJson(path: string, o: Omit<BackendRequestOptions, 'path' | 'method'> = {}): Promise<{ status: number; body: unknown }> {
    const res = await this.request({ ...o, method: 'GET', path });
    return { status: res.status, body: await res.jsonOrUndefined() };
  }

  async request(o: BackendRequestOptions): Promise<BackendResponse> {
    const url = new URL(this.baseUrl + o.path);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new AdapterError('invalid-params', 'backend URL must be http or https', { details: ['backend-url-scheme'] });
    }
    const signal = o.signal;
    if (signal?.aborted) throw cancelled();
    const timeoutMs = o.timeoutMs ?? this.timeoutMs;
    const method = o.method ?? (o.json !== undefined || o.rawBody !== undefined ? 'POST' : 'GET');
    const body = o.rawBody !== undefined ? Buffer.from(o.rawBody, 'utf8') : o.json !== undefined ? Buffer.from(JSON.stringify(o.json), 'utf8') : undefined;
    const headers: Record<string, string> = {
      host: url.host,
      'user-agent': 'fedai-node-runner',
      accept: o.accept ?? 'application/json',
    };
    if (body) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(body.length);
    }
    if (this.opts.apiKey && o.auth !== false) headers.authorization = `Bearer ${this.opts.apiKey}`;
    if (o.traceparent !== undefined && TRACEPARENT.test(o.traceparent)) headers.traceparent = o.traceparent;
    const keepAlive = this.agent !== undefined;
    if (!keepAlive) headers.connection = 'close';

    // Shared state between the request phase and the body phase.
    let req: http.ClientRequest | undefined;
    let tunnel: tls.TLSSocket | undefined;
    let tunnelRaw: Socket | undefined;
    let timer: NodeJS.Timeout | undefined;
    let done = false;
    const state: { failure?: AdapterError; finish: () => void; destroy: () => void } = {
      finish: () => {
        if (done) return;
        done = true;
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        // A CONNECT tunnel carries exactly one request: close it (and the socket under the TLS) with the response.
        tunnel?.destroy();
        tunnelRaw?.destroy();
      },
      destroy: () => {
        req?.destroy();
        tunnel?.destroy();
        tunnelRaw?.destroy();
      },
    };
    let rejectPending: ((e: AdapterError) => void) | undefined;
    const fail = (e: AdapterError): void => {
      if (!state.failure) state.failure = e;
      rejectPending?.(e);
      state.destroy();
    };
    const onAbort = (): void => fail(cancelled());
    signal?.addEventListener('abort', onAbort, { once: true });
    timer = setTimeout(() => fail(timedOut(timeoutMs)), timeoutMs);
    timer.unref?.();

    try {
      let reqOpts: http.RequestOptions;
      let mod: typeof http | typeof https = http;
      if (this.opts.egressProxy && url.protocol === 'http:') {
        reqOpts = {
          socketPath: this.opts.egressProxy,
          method,
          path: `${url.protocol}//${url.host}${url.pathname}${url.search}`,
          headers,
          agent: false,
        };
      } else if (this.opts.egressProxy) {
        const opened = await this.openTunnel(url, signal, (r) => (rejectPending = r));
        tunnel = opened.tls;
        tunnelRaw = opened.raw;
        const sock = tunnel;
        reqOpts = { method, path: url.pathname + url.search, headers, createConnection: () => sock as unknown as Socket };
      } else {
        mod = url.protocol === 'https:' ? https : http;
        reqOpts = {
          host: url.hostname,
          port: url.port || (url.protocol === 'https:' ? 443 : 80),
          method,
          path: url.pathname + url.search,
          headers,
          agent: (url.protocol === 'https:' ? this.httpsAgent : this.agent) ?? false,
        };
        if (url.protocol === 'https:') {
          const o = reqOpts as https.RequestOptions;
          if (!net.isIP(url.hostname)) o.servername = url.hostname;
          if (this.opts.ca) o.ca = this.opts.ca;
        }
      }
      if (state.failure) throw state.failure;

      const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
        rejectPending = reject;
        const r = mod.request(reqOpts, resolve);
        req = r;
        r.on('socket', (s: Socket) => {
          if (typeof s.setNoDelay === 'function') s.setNoDelay(true);
        });
        r.on('error', (err) => reject(state.failure ?? networkError(err, 'connect')));
        if (state.failure) {
          reject(state.failure);
          return;
        }
        r.end(body);
      });
      rejectPending = undefined;
      if (state.failure) throw state.failure;
      res.on('error', () => {
        /* surfaced by iteration */
      });

      if (this.opts.egressProxy && url.protocol === 'http:' && res.statusCode === 403) {
        // Distinguish the proxy's refusal from a backend 403: only the proxy's own body is a refusal.
        const br = new BackendResponse(res, state, 64 * 1024);
        const j = (await br.jsonOrUndefined()) as { error?: unknown } | undefined;
        if (j && j.error === 'egress-not-allowed') throw egressRefused(url);
        // Re-wrap an already-read 403 as a minimal synthetic response.
        return syntheticResponse(403, res.headers, j === undefined ? '' : JSON.stringify(j), this.maxBodyBytes);
      }
      return new BackendResponse(res, state, this.maxBodyBytes);
    } catch (err) {
      state.destroy();
      state.finish();
      throw err instanceof AdapterError ? err : networkError(err, 'connect');
    }
  }

  /** CONNECT host:port through the egress proxy's Unix socket, then TLS over the tunnel. */
  private openTunnel(
    url: URL,
    signal: AbortSignal | undefined,
    setReject: (r: (e: AdapterError) => void) => void,
  ): Promise<{ tls: tls.TLSSocket; raw: Socket }> {
    const port = url.port || '443';
    const authority = `${url.hostname}:${port}`;
    return new Promise<{ tls: tls.TLSSocket; raw: Socket }>((resolve, reject) => {
      setReject(reject);
      const creq = http.request({
        socketPath: this.opts.egressProxy,
        method: 'CONNECT',
        path: authority,
        headers: { host: authority },
        agent: false,
      });
      creq.on('connect', (res, socket, head) => {
        if (res.statusCode === 403) {
          socket.destroy();
          reject(egressRefused(url));
          return;
        }
        if (res.statusCode !== 200) {
          socket.destroy();
          reject(new AdapterError('backend-unavailable', 'egress proxy refused the tunnel', { details: ['proxy', `status=${res.statusCode}`] }));
          return;
        }
        socket.on('error', () => {
          /* surfaced through the TLS socket / the request */
        });
        if (head && head.length > 0) socket.unshift(head);
        const t = tls.connect(
          {
            socket,
            host: url.hostname, // certificate identity check (an IP is checked against IP SANs)
            ...(net.isIP(url.hostname) ? {} : { servername: url.hostname }),
            ...(this.opts.ca ? { ca: this.opts.ca } : {}),
            ALPNProtocols: ['http/1.1'],
          },
          () => resolve({ tls: t, raw: socket }),
        );
        t.on('error', () => socket.destroy());
        t.on('error', (err) => reject(networkError(err, 'connect')));
        // until the caller owns it, an abort must close the raw socket too
        signal?.addEventListener('abort', () => socket.destroy(), { once: true });
        if (signal?.aborted) t.destroy();
      });
      creq.on('error', (err) => reject(networkError(err, 'connect')));
      creq.end();
    });
  }
}

function egressRefused(url: URL): AdapterError {
  return new AdapterError('egress-not-allowed', 'the egress proxy refused the backend destination', {
    details: [`${url.protocol}//${url.host}`],
  });
}

function syntheticResponse(status: number, headers: http.IncomingHttpHeaders, text: string, max: number): BackendResponse {
  const r = Readable.from([Buffer.from(text, 'utf8')]) as unknown as http.IncomingMessage;
  (r as unknown as { statusCode: number }).statusCode = status;
  (r as unknown as { headers: http.IncomingHttpHeaders }).headers = headers;
  (r as unknown as { complete: boolean }).complete = true;
  return new BackendResponse(r, { finish: () => {}, destroy: () => {} }, max);
}
