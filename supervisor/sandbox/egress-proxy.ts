/**
 * The egress proxy: the only way out for a runner whose sandbox has no network (bwrap --unshare-net).
 * The supervisor serves it on a Unix socket that is bound into the sandbox (FEDAI_EGRESS_PROXY holds the
 * in-sandbox path). Every request is checked against NODE_SANDBOX_ALLOWED_ENDPOINTS:
 *   - plain HTTP in absolute form (`GET http://host:port/path HTTP/1.1`) is forwarded, streaming in both
 *     directions without buffering (SSE flows token by token); a client disconnect aborts the upstream;
 *   - `CONNECT host:port` (https) opens a raw tunnel only when an https entry matches host and port;
 *   - anything else is answered 403 {"error":"egress-not-allowed"}, counted, and reported to onRefusal.
 * Only host:port is logged, never a path, a query, a header or a body.
 */
import http from 'node:http';
import net from 'node:net';
import { promises as fsp } from 'node:fs';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { EndpointAllowlist } from './endpoint-allowlist.js';

export type RefusalReason = 'not-allowlisted' | 'not-absolute-form' | 'https-needs-connect' | 'bad-request';

export interface EgressStats {
  allowed: number;
  refused: number;
  refusedByReason: Record<RefusalReason, number>;
  upstreamErrors: number;
  active: number;
}

export interface EgressProxyOptions {
  readonly allowlist: EndpointAllowlist;
  readonly socketPath: string;
  readonly logger?: Logger;
  /** Called once per refused request (for a metrics counter). */
  readonly onRefusal?: (reason: RefusalReason) => void;
  /** Owner of the socket file (the runner's uid/gid); mode 0600. */
  readonly owner?: { uid: number; gid: number };
  readonly runnerId?: string;
}

const HOP_BY_HOP = new Set([
  'connection', 'proxy-connection', 'keep-alive', 'proxy-authorization', 'proxy-authenticate', 'te', 'trailer',
  'transfer-encoding', 'upgrade',
]);

const REFUSAL_BODY = JSON.stringify({ error: 'egress-not-allowed' });

/** All counters at zero (one proxy's start, or a launcher's running totals). */
export function emptyEgressStats(): EgressStats {
  return {
    allowed: 0,
    refused: 0,
    refusedByReason: { 'not-allowlisted': 0, 'not-absolute-form': 0, 'https-needs-connect': 0, 'bad-request': 0 },
    upstreamErrors: 0,
    active: 0,
  };
}

/** The end-to-end headers of a message (hop-by-hop ones dropped), for the next leg. */
function endToEndHeaders(from: http.IncomingHttpHeaders): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(from)) {
    if (!HOP_BY_HOP.has(k.toLowerCase()) && v !== undefined) out[k] = v;
  }
  return out;
}

/** A URL host as net/http want it: an IPv6 literal without its brackets. */
const unbracket = (host: string): string => host.replace(/^\[|\]$/g, '');

export class EgressProxy {
  private readonly server: http.Server;
  private readonly sockets = new Set<Duplex>();
  private readonly s: EgressStats = emptyEgressStats();

  constructor(private readonly o: EgressProxyOptions) {
    this.server = http.createServer({ requestTimeout: 0, headersTimeout: 30_000, keepAliveTimeout: 5_000 });
    this.server.on('request', (req, res) => this.onRequest(req, res));
    this.server.on('connect', (req, socket, head) => this.onConnect(req, socket, head));
    this.server.on('connection', (sock: net.Socket) => {
      this.sockets.add(sock);
      sock.on('close', () => this.sockets.delete(sock));
    });
    this.server.on('clientError', (_err, sock) => {
      if (sock.writable) sock.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      else sock.destroy();
    });
  }

  get socketPath(): string {
    return this.o.socketPath;
  }

  stats(): EgressStats {
    return { ...this.s, refusedByReason: { ...this.s.refusedByReason } };
  }

  async listen(): Promise<void> {
    await fsp.rm(this.o.socketPath, { force: true });
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.o.socketPath, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    await fsp.chmod(this.o.socketPath, 0o600);
    if (this.o.owner) await fsp.chown(this.o.socketPath, this.o.owner.uid, this.o.owner.gid);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await fsp.rm(this.o.socketPath, { force: true }).catch(() => undefined);
  }

  private refuse(reason: RefusalReason, target: string, res?: http.ServerResponse, sock?: Duplex): void {
    this.s.refused++;
    this.s.refusedByReason[reason]++;
    this.o.logger?.warn({ runnerId: this.o.runnerId, target, reason }, 'egress proxy: refused');
    try {
      this.o.onRefusal?.(reason);
    } catch {
      /* a metrics hook must not break the proxy */
    }
    if (res) {
      res.writeHead(403, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(REFUSAL_BODY) });
      res.end(REFUSAL_BODY);
    } else if (sock) {
      sock.end(
        `HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(REFUSAL_BODY)}\r\nConnection: close\r\n\r\n${REFUSAL_BODY}`,
      );
    }
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const raw = req.url ?? '';
    if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(raw)) return this.refuse('not-absolute-form', '(origin-form)', res);
    let u: URL;
    try {
      u = new URL(raw);
    } catch {
      return this.refuse('bad-request', '(unparsable)', res);
    }
    const target = `${u.protocol}//${u.host}`;
    if (u.protocol === 'https:') return this.refuse('https-needs-connect', target, res);
    const decision = this.o.allowlist.checkUrl(raw);
    if (!decision.allowed) return this.refuse('not-allowlisted', target, res);

    this.s.allowed++;
    this.s.active++;
    const headers = endToEndHeaders(req.headers);
    headers.host = u.host;
    const upstream = http.request({
      host: unbracket(u.hostname),
      port: u.port === '' ? 80 : Number(u.port),
      method: req.method,
      path: `${u.pathname}${u.search}`,
      headers,
      agent: false,
    });
    let finished = false;
    const done = () => {
      if (!finished) {
        finished = true;
        this.s.active--;
      }
    };
    upstream.on('socket', (s) => (s as net.Socket).setNoDelay?.(true));
    upstream.on('response', (up) => {
      res.writeHead(up.statusCode ?? 502, endToEndHeaders(up.headers));
      res.flushHeaders();
      up.on('data', (chunk: Buffer) => {
        if (!res.write(chunk)) {
          up.pause();
          res.once('drain', () => up.resume());
        }
      });
      up.on('end', () => {
        res.end();
        done();
      });
      up.on('error', () => {
        res.destroy();
        done();
      });
    });
    upstream.on('error', () => {
      this.s.upstreamErrors++;
      if (!res.headersSent) {
        const body = JSON.stringify({ error: 'backend-unavailable' });
        res.writeHead(502, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      } else res.destroy();
      done();
    });
    // The client went away before the response finished: abort the upstream request.
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
      done();
    });
    req.pipe(upstream);
  }

  private onConnect(req: http.IncomingMessage, client: Duplex, head: Buffer): void {
    const authority = req.url ?? '';
    const decision = this.o.allowlist.checkConnect(authority);
    if (!decision.allowed) return this.refuse('not-allowlisted', `CONNECT ${authority.slice(0, 300)}`, undefined, client);
    this.s.allowed++;
    this.s.active++;
    const { host, port } = decision.entry;
    const up = net.connect({ host: unbracket(host), port });
    this.sockets.add(up);
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      this.s.active--;
      this.sockets.delete(up);
      up.destroy();
      client.destroy();
    };
    up.once('connect', () => {
      up.setNoDelay(true);
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) up.write(head);
      up.pipe(client);
      client.pipe(up);
    });
    up.on('error', () => {
      this.s.upstreamErrors++;
      if (client.writable && !up.remoteAddress) client.end('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      close();
    });
    up.on('close', close);
    client.on('error', close);
    client.on('close', close);
  }
}
