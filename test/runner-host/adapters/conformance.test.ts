/**
 * Each backend adapter, run as a real runner child process (runner-host/main.ts via runnerHostCommand)
 * against its fake backend, passes the conformance kit.
 */
import { afterAll, describe, expect, test } from '@jest/globals';
import { join } from 'node:path';
import { checkRunner, formatCheckResults } from '../../../supervisor/runners/conformance/check-runner.js';
import { runnerHostCommand } from '../../../supervisor/runners/runner-command.js';
import { FAKES, startFake, type FakeBackend } from './helpers.js';

const fakes: FakeBackend[] = [];
afterAll(async () => {
  await Promise.all(fakes.map((f) => f.stop()));
});

async function check(env: Record<string, string>): Promise<void> {
  const results = await checkRunner(runnerHostCommand(), { env, timeoutMs: 15_000 });
  const failed = results.filter((r) => !r.ok);
  if (failed.length > 0) throw new Error(formatCheckResults(results));
  expect(results.find((r) => r.name === 'cancellation')?.detail).toMatch(/partial usage/);
}

describe('backend adapters pass the conformance kit as child processes', () => {
  test('llama_cpp, attached', async () => {
    const f = await startFake('fake-llama-cpp.mjs', ['--token-delay-ms', '10']);
    fakes.push(f);
    await check({ FEDAI_ADAPTER: 'llama_cpp', FEDAI_BACKEND_URL: f.url });
  }, 60_000);

  test('llama_cpp, managed', async () => {
    await check({
      FEDAI_ADAPTER: 'llama_cpp',
      FEDAI_BACKEND_COMMAND: JSON.stringify([process.execPath, join(FAKES, 'fake-llama-cpp.mjs'), '--port', '{port}', '--token-delay-ms', '10']),
    });
  }, 60_000);

  test('vllm', async () => {
    const f = await startFake('fake-vllm.mjs', ['--token-delay-ms', '10']);
    fakes.push(f);
    await check({ FEDAI_ADAPTER: 'vllm', FEDAI_BACKEND_URL: f.url });
  }, 60_000);

  test('http', async () => {
    const f = await startFake('fake-http-backend.mjs', ['--sse', '--token-delay-ms', '20']);
    fakes.push(f);
    await check({ FEDAI_ADAPTER: 'http', FEDAI_BACKEND_URL: f.url });
  }, 60_000);
});
