/**
 * Added latency of node → runner → backend against a direct backend call, with the fake llama.cpp
 * server (tests' recording-replaying fake) on loopback: p50/p99 of whole requests at concurrency 1,
 * and time to first token for streams. Both sides open a fresh connection per request, as the
 * llama_cpp adapter does against this server build (see docs/runners.md, keep-alive stall).
 */
import http from 'node:http';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { signEnvelope } from '../../supervisor/crypto/envelope.js';
import { REPO, startNode } from './node-under-test.js';
import { fmt, summarize, table } from './stats.js';

const PROMPT = 'Once upon a time';
const N_PREDICT = 16;

function request(url: string, body: string, firstByteMarker?: string): Promise<{ totalMs: number; ttftMs: number; status: number }> {
  const u = new URL(url);
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    let ttft = NaN;
    let seen = '';
    const req = http.request(
      { host: u.hostname, port: u.port, path: u.pathname, method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        res.on('data', (d: Buffer) => {
          if (firstByteMarker && Number.isNaN(ttft)) {
            seen += d.toString();
            if (seen.includes(firstByteMarker)) ttft = performance.now() - t0;
          }
        });
        res.on('end', () => resolve({ totalMs: performance.now() - t0, ttftMs: ttft, status: res.statusCode ?? 0 }));
      },
    );
    req.setNoDelay(true);
    req.on('error', reject);
    req.end(body);
  });
}

async function loop(seconds: number, fn: () => Promise<{ totalMs: number; ttftMs: number; status: number }>) {
  const total: number[] = [];
  const ttft: number[] = [];
  const deadline = performance.now() + seconds * 1000;
  const t0 = performance.now();
  while (performance.now() < deadline) {
    const r = await fn();
    if (r.status !== 200) throw new Error(`status ${r.status}`);
    total.push(r.totalMs);
    if (!Number.isNaN(r.ttftMs)) ttft.push(r.ttftMs);
  }
  const el = performance.now() - t0;
  return { total: summarize(total, el), ttft: summarize(ttft, el) };
}

export async function runAdaptersBench(opts: { seconds: number }): Promise<string> {
  const fake = spawn(process.execPath, [path.join(REPO, 'test/fixtures/backends/fake-llama-cpp.mjs'), '--port', '0', '--n-ctx', '2048'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const port = await new Promise<number>((resolve, reject) => {
    let buf = '';
    fake.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const m = /listening (\d+)/.exec(buf);
      if (m) resolve(Number(m[1]));
    });
    fake.once('exit', () => reject(new Error('fake llama.cpp exited')));
  });
  const backend = `http://127.0.0.1:${port}`;
  const node = await startNode({ NODE_RUNNER: 'llama_cpp', NODE_LLAMA_CPP_URL: backend });
  try {
    const directBody = (stream: boolean) => JSON.stringify({ prompt: PROMPT, n_predict: N_PREDICT, temperature: 0, stream });
    const signed = () => JSON.stringify(signEnvelope({ requestId: randomUUID(), modelId: 'auto', prompt: PROMPT, maxTokens: N_PREDICT, temperature: 0 }, node.router));
    await loop(0.5, () => request(`${node.url}/infer`, signed())); // warm-up
    const direct = await loop(opts.seconds, () => request(`${backend}/completion`, directBody(false)));
    const viaNode = await loop(opts.seconds, () => request(`${node.url}/infer`, signed()));
    const directStream = await loop(opts.seconds, () => request(`${backend}/completion`, directBody(true), 'data: '));
    const nodeStream = await loop(opts.seconds, () => request(`${node.url}/infer/stream`, signed(), 'event: chunk'));
    const rows = [
      ['direct POST /completion', fmt(direct.total.p50), fmt(direct.total.p99), '', ''],
      ['node /infer (llama_cpp runner, dev sandbox, egress proxy)', fmt(viaNode.total.p50), fmt(viaNode.total.p99), '', ''],
      ['added by the node', fmt(viaNode.total.p50 - direct.total.p50), fmt(viaNode.total.p99 - direct.total.p99), '', ''],
      ['direct stream', fmt(directStream.total.p50), fmt(directStream.total.p99), fmt(directStream.ttft.p50), fmt(directStream.ttft.p99)],
      ['node /infer/stream', fmt(nodeStream.total.p50), fmt(nodeStream.total.p99), fmt(nodeStream.ttft.p50), fmt(nodeStream.ttft.p99)],
      ['added by the node (stream)', fmt(nodeStream.total.p50 - directStream.total.p50), fmt(nodeStream.total.p99 - directStream.total.p99), fmt(nodeStream.ttft.p50 - directStream.ttft.p50), fmt(nodeStream.ttft.p99 - directStream.ttft.p99)],
    ];
    return `## node → runner → backend vs direct backend (fake llama.cpp, ${N_PREDICT} tokens, c=1, ms)\n\n${table(['path', 'p50', 'p99', 'TTFT p50', 'TTFT p99'], rows)}`;
  } finally {
    await node.stop();
    fake.kill('SIGKILL');
  }
}
