/**
 * Closed-loop HTTP/1.1 load over keep-alive connections: `concurrency` connections each send
 * pre-built bodies back to back until the bodies or the time budget run out. Loopback only.
 *
 * The client is a few dozen lines over `net` sockets (one write per request, a minimal response
 * parser) rather than node:http: on a 2-core machine the load generator shares the CPU with the node
 * under test, and node:http's client costs ~0.45 ms of CPU per request, a third of the budget the
 * target leaves for the whole request. Like wrk, it spends almost nothing per request.
 */
import net from 'node:net';
import { summarize, type Summary } from './stats.js';

export interface LoadResult extends Summary {
  concurrency: number;
  errors: number;
  statuses: Record<number, number>;
}

const CRLF2 = Buffer.from('\r\n\r\n');

/** One parsed response head: status, body framing, whether the server keeps the connection. */
interface Head {
  status: number;
  headerBytes: number;
  contentLength?: number;
  chunked: boolean;
  close: boolean;
}

function parseHead(buf: Buffer): Head | null {
  const end = buf.indexOf(CRLF2);
  if (end < 0) return null;
  const lines = buf.toString('latin1', 0, end).split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
  if (!m) throw new Error(`malformed status line: ${JSON.stringify(lines[0])}`);
  const head: Head = { status: Number(m[1]), headerBytes: end + 4, chunked: false, close: false };
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim().toLowerCase();
    if (name === 'content-length') head.contentLength = Number(value);
    else if (name === 'transfer-encoding') head.chunked = value.includes('chunked');
    else if (name === 'connection') head.close = value.includes('close');
  }
  return head;
}

/** Bytes a complete chunked body takes from `from`, or -1 while incomplete. */
function chunkedLength(buf: Buffer, from: number): number {
  let at = from;
  for (;;) {
    const eol = buf.indexOf('\r\n', at, 'latin1');
    if (eol < 0) return -1;
    const size = parseInt(buf.toString('latin1', at, eol), 16);
    if (!Number.isFinite(size)) throw new Error('malformed chunk size');
    at = eol + 2 + size + 2;
    if (at > buf.length) return -1;
    if (size === 0) return at - from;
  }
}

/** A keep-alive connection that sends one request at a time and resolves with the status code. */
class Connection {
  private socket: net.Socket | null = null;
  private buf: Buffer = Buffer.alloc(0);
  private pending: { resolve(status: number): void } | null = null;

  constructor(private readonly host: string, private readonly port: number) {}

  private connect(): net.Socket {
    const s = net.connect({ host: this.host, port: this.port, noDelay: true });
    s.on('data', (d: Buffer) => {
      this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
      this.drain();
    });
    const fail = () => {
      if (this.socket === s) this.socket = null;
      this.buf = Buffer.alloc(0);
      const p = this.pending;
      this.pending = null;
      p?.resolve(0);
    };
    s.on('error', fail);
    s.on('close', fail);
    return s;
  }

  private drain(): void {
    if (!this.pending) return;
    let head: Head | null;
    try {
      head = parseHead(this.buf);
    } catch {
      this.socket?.destroy();
      return;
    }
    if (!head) return;
    let bodyBytes: number;
    if (head.chunked) {
      bodyBytes = chunkedLength(this.buf, head.headerBytes);
      if (bodyBytes < 0) return;
    } else {
      bodyBytes = head.contentLength ?? 0;
      if (this.buf.length < head.headerBytes + bodyBytes) return;
    }
    this.buf = this.buf.subarray(head.headerBytes + bodyBytes);
    const p = this.pending;
    this.pending = null;
    if (head.close) {
      const s = this.socket;
      this.socket = null;
      s?.removeAllListeners('close').destroy();
    }
    p.resolve(head.status);
  }

  send(request: Buffer): Promise<number> {
    this.socket ??= this.connect();
    return new Promise<number>((resolve) => {
      this.pending = { resolve };
      this.socket!.write(request);
    });
  }

  close(): void {
    this.socket?.destroy();
    this.socket = null;
  }
}

export async function httpLoad(opts: { url: string; bodies: string[]; concurrency: number; seconds: number }): Promise<LoadResult> {
  const u = new URL(opts.url);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname)) throw new Error('benchmarks target loopback only');
  const host = u.hostname === '[::1]' ? '::1' : u.hostname;
  const port = Number(u.port || 80);
  const toRequest = (body: string) => {
    const b = Buffer.from(body, 'utf8');
    const head = `POST ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nContent-Type: application/json\r\nContent-Length: ${b.length}\r\n\r\n`;
    return Buffer.concat([Buffer.from(head, 'latin1'), b]);
  };
  // Requests are rendered before the clock starts: the generator's own work stays out of the figures.
  const requests = opts.bodies.map(toRequest);
  const latencies: number[] = [];
  const statuses: Record<number, number> = {};
  let errors = 0;
  let next = 0;
  const deadline = performance.now() + opts.seconds * 1000;
  const started = performance.now();
  const connections: Connection[] = [];
  const worker = async () => {
    const conn = new Connection(host, port);
    connections.push(conn);
    while (next < requests.length && performance.now() < deadline) {
      const request = requests[next++]!;
      const t0 = performance.now();
      const status = await conn.send(request);
      const dt = performance.now() - t0;
      statuses[status] = (statuses[status] ?? 0) + 1;
      if (status === 200) latencies.push(dt);
      else errors++;
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  const elapsed = performance.now() - started;
  for (const c of connections) c.close();
  return { ...summarize(latencies, elapsed), concurrency: opts.concurrency, errors, statuses };
}
