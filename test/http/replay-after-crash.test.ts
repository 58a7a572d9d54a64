/**
 * Replay protection survives a crash: a real node process answers a burst of signed requests and is
 * SIGKILLed the moment the last answer arrives; restarted on the same data directory, it refuses every
 * one of those envelopes, and its metering spool holds exactly one record per answered request.
 * (The node waits for a request's nonce to be on disk before it meters or answers it.)
 */
import { afterAll, expect, test } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { signEnvelope } from '../../supervisor/crypto/envelope.js';
import { parseIdentity } from '../../supervisor/crypto/keys.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'fedai-replay-crash-'));
const children: ChildProcess[] = [];

afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
});

async function startNode(): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ['--import', './scripts/register-ts.mjs', 'supervisor/cli/fedai-node.ts', 'serve'], {
    cwd: REPO,
    env: { PATH: process.env.PATH, NODE_PORT: '0', NODE_DATA_DIR: dataDir, LOG_LEVEL: 'warn', NODE_CAPACITY_MAX: '32' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const started = Date.now();
  while (!/listening on (http:\/\/\S+)/.test(out)) {
    if (child.exitCode !== null) throw new Error(`node exited: ${out}`);
    if (Date.now() - started > 45_000) throw new Error(`node did not start: ${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const url = /listening on (http:\/\/\S+)/.exec(out)![1]!;
  while (!((await (await fetch(`${url}/status`)).json()) as { ready: boolean }).ready) await new Promise((r) => setTimeout(r, 50));
  return { child, url };
}

const post = (url: string, body: string) =>
  fetch(`${url}/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body }).then(async (r) => ({ status: r.status, json: (await r.json()) as any }));

test('envelopes answered just before a SIGKILL are refused after the restart; one metering record each', async () => {
  const first = await startNode();
  const router = parseIdentity(readFileSync(path.join(dataDir, 'dev', 'router.nsec'), 'utf8'));
  const bodies = Array.from({ length: 24 }, () =>
    JSON.stringify(signEnvelope({ requestId: randomUUID(), modelId: 'mock-model', prompt: 'crash test', maxTokens: 8 }, router)),
  );
  const answers = await Promise.all(bodies.map((b) => post(first.url, b)));
  first.child.kill('SIGKILL'); // the instant the last answer is in
  await new Promise((r) => first.child.once('exit', r));
  expect(answers.map((a) => a.status)).toEqual(bodies.map(() => 200));

  const second = await startNode();
  try {
    const replays = await Promise.all(bodies.map((b) => post(second.url, b)));
    expect(replays.map((r) => [r.status, r.json.error])).toEqual(bodies.map(() => [400, 'nonce-reused']));
    const dir = path.join(dataDir, 'metering');
    const lines = readdirSync(dir)
      .flatMap((f) => readFileSync(path.join(dir, f), 'utf8').split('\n'))
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { payload: { requestId: string } });
    expect(lines.map((l) => l.payload.requestId).sort()).toEqual(answers.map((a) => a.json.response.payload.requestId).sort());
  } finally {
    second.child.kill('SIGTERM');
    await new Promise((r) => second.child.once('exit', r));
  }
}, 90_000);
