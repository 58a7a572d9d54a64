/** A real HTTP "router" on 127.0.0.1 that checks heartbeats the way fed_AI routers do (§6). */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isNpub } from '../../supervisor/crypto/keys.js';
import { verifyEnvelope, type Envelope } from '../../supervisor/crypto/envelope.js';
import type { NodeDescriptor } from '../../supervisor/protocol/wire-types.js';

export interface Beat {
  at: number;
  envelope: Envelope<NodeDescriptor>;
  answered: number;
}

export type Mode = 'ok' | 'fail503' | 'hang' | 'reject-400';

export class FakeRouter {
  readonly beats: Beat[] = [];
  /** Every request, including refused ones. */
  readonly attempts: number[] = [];
  mode: Mode = 'ok';
  private server: Server | null = null;
  private waiters: Array<{ n: number; resolve: () => void }> = [];
  private hanging: ServerResponse[] = [];
  url = '';

  async start(port = 0): Promise<this> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  get port(): number {
    return Number(new URL(this.url).port);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const at = Date.now();
    this.attempts.push(at);
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'POST' || req.url !== '/register-node') return send(404, { error: 'not-found' });
    if (this.mode === 'hang') {
      this.hanging.push(res);
      return;
    }
    if (this.mode === 'fail503') return send(503, { error: 'unavailable' });
    let env: Envelope<NodeDescriptor>;
    try {
      env = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Envelope<NodeDescriptor>;
    } catch {
      return send(400, { error: 'invalid-json' });
    }
    if (!isNpub(env.keyId)) return send(400, { error: 'invalid-key-id' });
    if (env.payload?.keyId !== env.keyId) return send(400, { error: 'key-id-mismatch' });
    if (!verifyEnvelope(env)) return send(401, { error: 'invalid-signature' });
    if (this.mode === 'reject-400') return send(400, { error: 'private-ip-blocked' });
    this.beats.push({ at, envelope: env, answered: 200 });
    send(200, { ok: true });
    this.waiters = this.waiters.filter((w) => {
      if (this.beats.length >= w.n) {
        w.resolve();
        return false;
      }
      return true;
    });
  }

  /** Resolves when at least n valid beats have arrived (rejects after timeoutMs: a liveness bound). */
  waitForBeats(n: number, timeoutMs = 10000): Promise<void> {
    if (this.beats.length >= n) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`only ${this.beats.length} of ${n} beats after ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({ n, resolve: () => (clearTimeout(t), resolve()) });
    });
  }

  async waitForAttempts(n: number, timeoutMs = 10000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.attempts.length < n) {
      if (Date.now() > deadline) throw new Error(`only ${this.attempts.length} of ${n} attempts`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async close(): Promise<void> {
    for (const r of this.hanging) r.destroy();
    this.hanging = [];
    const s = this.server;
    this.server = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
