/**
 * A host where the native libsecp256k1 build is missing (here: a real node process in which the
 * optional dependency bcrypto cannot be resolved, test/fixtures/crypto/hide-bcrypto.cjs):
 * NODE_SCHNORR_BACKEND=native refuses to start and says how to fix it; the default (auto) starts on
 * the WebAssembly build, says so, and answers signed requests that verify.
 */
import { afterAll, expect, test } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkEnvelopeSignature, signEnvelope } from '../../supervisor/crypto/envelope.js';
import { parseIdentity } from '../../supervisor/crypto/keys.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const dirs: string[] = [];
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function serve(env: Record<string, string>): { child: ChildProcess; output: () => string; dataDir: string } {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'fedai-schnorr-fallback-'));
  dirs.push(dataDir);
  const child = spawn(
    process.execPath,
    ['--require', './test/fixtures/crypto/hide-bcrypto.cjs', '--import', './scripts/register-ts.mjs', 'supervisor/cli/fedai-node.ts', 'serve'],
    { cwd: REPO, env: { PATH: process.env.PATH, NODE_PORT: '0', NODE_DATA_DIR: dataDir, LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.push(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  return { child, output: () => out, dataDir };
}

test('NODE_SCHNORR_BACKEND=native without the build: start-up fails with the reason and the fix', async () => {
  const n = serve({ NODE_SCHNORR_BACKEND: 'native' });
  const code = await new Promise<number | null>((r) => n.child.once('exit', (c) => r(c)));
  expect(code).toBe(1);
  expect(n.output()).toMatch(/native libsecp256k1 build \(optional dependency bcrypto\) is not available/);
  expect(n.output()).toContain('apt-get install -y g++ make python3');
  expect(n.output()).not.toMatch(/listening on/);
}, 60_000);

test('auto without the build: WebAssembly, a warning, and signed answers that verify', async () => {
  const n = serve({});
  const started = Date.now();
  while (!/listening on (http:\/\/\S+)/.test(n.output())) {
    if (n.child.exitCode !== null) throw new Error(n.output());
    if (Date.now() - started > 45_000) throw new Error(`no start: ${n.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const url = /listening on (http:\/\/\S+)/.exec(n.output())![1]!;
  expect(n.output()).toMatch(/"msg":"signatures use the WebAssembly libsecp256k1/);
  let status: any;
  for (;;) {
    status = await (await fetch(`${url}/status`)).json();
    if (status.ready) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  expect(status.crypto).toEqual({ schnorr: 'wasm', workers: 2 });
  const router = parseIdentity(readFileSync(path.join(n.dataDir, 'dev', 'router.nsec'), 'utf8'));
  const env = signEnvelope({ requestId: randomUUID(), modelId: 'mock-model', prompt: 'fallback', maxTokens: 8 }, router);
  const r = await fetch(`${url}/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(env) });
  expect(r.status).toBe(200);
  const body = (await r.json()) as any;
  expect(checkEnvelopeSignature(body.response)).toBeNull();
  expect(checkEnvelopeSignature(body.metering)).toBeNull();
  n.child.kill('SIGTERM');
  await new Promise((res) => n.child.once('exit', res));
}, 60_000);
