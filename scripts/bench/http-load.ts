/**
 * Closed-loop HTTP load over keep-alive connections: `concurrency` workers each send pre-built bodies
 * back to back until the bodies or the time budget run out. Loopback only.
 */
import http from 'node:http';
import { summarize, type Summary } from './stats.js';

export interface LoadResult extends Summary {
  concurrency: number;
  errors: number;
  statuses: Record<number, number>;
}

export async function httpLoad(opts: { url: string; bodies: string[]; concurrency: number; seconds: number }): Promise<LoadResult> {
  const u = new URL(opts.url);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname)) throw new Error('benchmarks target loopback only');
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.concurrency });
  const latencies: number[] = [];
  const statuses: Record<number, number> = {};
  let errors = 0;
  let next = 0;
  const deadline = performance.now() + opts.seconds * 1000;
  const started = performance.now();
  const one = (body: string) =>
    new Promise<number>((resolve) => {
      const req = http.request(
        { host: u.hostname, port: u.port, path: u.pathname, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', () => resolve(0));
      req.end(body);
    });
  const worker = async () => {
    while (next < opts.bodies.length && performance.now() < deadline) {
      const body = opts.bodies[next++]!;
      const t0 = performance.now();
      const status = await one(body);
      const dt = performance.now() - t0;
      statuses[status] = (statuses[status] ?? 0) + 1;
      if (status === 200) latencies.push(dt);
      else errors++;
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  const elapsed = performance.now() - started;
  agent.destroy();
  return { ...summarize(latencies, elapsed), concurrency: opts.concurrency, errors, statuses };
}
