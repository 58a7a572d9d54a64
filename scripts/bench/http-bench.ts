/**
 * The /infer benchmark: pre-signed distinct router envelopes over keep-alive HTTP at concurrency
 * 1, 8 and 64 against a node running the mock runner, next to the same request sent straight to the
 * runner over stdio; plus the supervisor's RSS idle and under load.
 */
import { randomUUID } from 'node:crypto';
import { signEnvelope } from '../../supervisor/crypto/envelope.js';
import type { InferenceRequest } from '../../supervisor/protocol/wire-types.js';
import { cpuPerRequest, cpuSnapshot } from './cpu-split.js';
import { directRunnerBench } from './direct-runner.js';
import { httpLoad } from './http-load.js';
import { rssBytes, startNode } from './node-under-test.js';
import { fmt, table } from './stats.js';

const PROMPT = 'Summarise the fed_AI wire protocol in one sentence.';
const MAX_TOKENS = 16;

export async function runHttpBench(opts: { seconds: number; concurrencies?: number[]; env?: Record<string, string> }): Promise<string> {
  const concurrencies = opts.concurrencies ?? [1, 8, 64];
  const node = await startNode({ NODE_CAPACITY_MAX: '256', NODE_QUEUE_MAX: '512', FEDAI_BENCH: '1', ...(opts.env ?? {}) });
  const lines: string[] = [];
  try {
    const sign = (n: number) => {
      const out: string[] = [];
      for (let i = 0; i < n; i++) {
        const payload: InferenceRequest = { requestId: randomUUID(), modelId: 'mock-model', prompt: PROMPT, maxTokens: MAX_TOKENS };
        out.push(JSON.stringify(signEnvelope(payload, node.router)));
      }
      return out;
    };
    await httpLoad({ url: `${node.url}/infer`, bodies: sign(300), concurrency: 8, seconds: 5 }); // warm-up (JIT, connections)
    const idleRss = rssBytes(node.pid);
    const rows: (string | number)[][] = [];
    let peakRss = idleRss;
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, rssBytes(node.pid))), 100);
    const direct: Record<number, Awaited<ReturnType<typeof directRunnerBench>>> = {};
    const cpuRows: (string | number)[][] = [];
    for (const c of concurrencies) {
      const bodies = sign(Math.ceil(Math.max(400, 2600 * opts.seconds) * (c === 1 ? 0.35 : 1)));
      const before = cpuSnapshot(node.pid);
      const r = await httpLoad({ url: `${node.url}/infer`, bodies, concurrency: c, seconds: opts.seconds });
      const cpu = cpuPerRequest(before, cpuSnapshot(node.pid), r.n + r.errors);
      cpuRows.push([c, fmt(cpu.eventLoop, 3), fmt(cpu.otherThreads, 3), fmt(cpu.children, 3), fmt(cpu.self, 3), fmt(cpu.total, 3)]);
      const d = await directRunnerBench({ concurrency: c, seconds: Math.min(opts.seconds, 3), prompt: PROMPT, maxTokens: MAX_TOKENS });
      direct[c] = d;
      rows.push([
        c,
        fmt(r.reqPerSec, 0),
        fmt(r.p50),
        fmt(r.p90),
        fmt(r.p99),
        r.errors ? `${r.errors} (${Object.entries(r.statuses).filter(([s]) => s !== '200').map(([s, n]) => `${s}×${n}`).join(' ')})` : 0,
        fmt(d.reqPerSec, 0),
        fmt(d.p50, 3),
        fmt(d.p99, 3),
        fmt(r.p50 - d.p50, 3),
        `${fmt(r.p50 / d.p50, 1)}×`,
      ]);
    }
    clearInterval(sampler);
    lines.push('## /infer (signed, mock runner, keep-alive) vs direct stdio runner calls', '');
    lines.push(
      table(['c', 'node req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'errors', 'direct req/s', 'direct p50', 'direct p99', 'added p50 ms', 'p50 node/direct'], rows),
    );
    lines.push('', 'CPU per request, ms (/proc; two vCPUs give 2,000 ms of CPU per second):', '');
    lines.push(table(['c', 'node event loop', 'node other threads', 'runner (+ sandbox)', 'load generator', 'total'], cpuRows));
    lines.push('', `supervisor RSS: idle ${fmt(idleRss / 2 ** 20, 1)} MiB, peak under load ${fmt(peakRss / 2 ** 20, 1)} MiB`);
    lines.push(`runner spawn-to-ready (direct, unsandboxed, mock via tsx): ${fmt(direct[concurrencies[0]!]!.spawnToReadyMs, 0)} ms`);
  } finally {
    await node.stop();
  }
  return lines.join('\n');
}

/**
 * What a receipt check adds to /infer: the same signed load with NODE_REQUIRE_PAYMENT=true, each
 * request carrying a fresh client-signed receipt (1 sat, the router minimum at zero rates), against
 * the same node configuration without payments.
 */
export async function runPaidHttpBench(opts: { seconds: number; concurrencies?: number[] }): Promise<string> {
  const { generateIdentity } = await import('../../supervisor/crypto/keys.js');
  const client = generateIdentity();
  const rows: (string | number)[][] = [];
  for (const paid of [false, true]) {
    const node = await startNode({ NODE_CAPACITY_MAX: '256', NODE_QUEUE_MAX: '512', NODE_REQUIRE_PAYMENT: String(paid) });
    try {
      const sign = (n: number) =>
        Array.from({ length: n }, () => {
          const requestId = randomUUID();
          const payload: InferenceRequest = { requestId, modelId: 'mock-model', prompt: PROMPT, maxTokens: MAX_TOKENS };
          if (paid) {
            payload.paymentReceipts = [
              signEnvelope({ requestId, payeeType: 'node' as const, payeeId: 'node-1', amountSats: 1, paidAtMs: Date.now() }, client),
            ];
          }
          return JSON.stringify(signEnvelope(payload, node.router));
        });
      await httpLoad({ url: `${node.url}/infer`, bodies: sign(200), concurrency: 8, seconds: 3 });
      for (const c of opts.concurrencies ?? [1, 8]) {
        const r = await httpLoad({ url: `${node.url}/infer`, bodies: sign(Math.ceil(900 * opts.seconds)), concurrency: c, seconds: opts.seconds });
        rows.push([paid ? 'with receipt' : 'no payment', c, fmt(r.reqPerSec, 0), fmt(r.p50), fmt(r.p99), r.errors]);
      }
    } finally {
      await node.stop();
    }
  }
  return `## what a receipt check adds to /infer (mock runner)\n\n${table(['mode', 'c', 'req/s', 'p50 ms', 'p99 ms', 'errors'], rows)}`;
}
