/**
 * Each backend adapter, run as a real runner child process (runner-host/main.ts via runnerHostCommand)
 * against its fake backend, passes the conformance kit.
 */
import { afterAll, describe, expect, test } from '@jest/globals';
import { join } from 'node:path';
import { CHECK_NAMES, checkRunner, formatCheckResults } from '../../../supervisor/runners/conformance/check-runner.js';
import { runnerHostCommand } from '../../../supervisor/runners/runner-command.js';
import { FAKES, startFake, type FakeBackend } from './helpers.js';

const fakes: FakeBackend[] = [];
afterAll(async () => {
  await Promise.all(fakes.map((f) => f.stop()));
});

async function check(env: Record<string, string>): Promise<void> {
  const results = await checkRunner(runnerHostCommand(), { env, timeoutMs: 15_000 });
  expect(results.map((r) => r.name)).toEqual([...CHECK_NAMES]);
  expect(formatCheckResults(results.filter((r) => !r.ok))).toBe(''); // on failure, the diff names each failed check
  expect(results.find((r) => r.name === 'cancellation')?.detail).toMatch(/partial usage/);
}

/** The adapter attached (FEDAI_BACKEND_URL) to a fake backend started for the test. */
async function checkAttached(adapter: string, script: string, args: string[]): Promise<void> {
  const f = await startFake(script, args);
  fakes.push(f);
  await check({ FEDAI_ADAPTER: adapter, FEDAI_BACKEND_URL: f.url });
}

describe('backend adapters pass the conformance kit as child processes', () => {
  test('llama_cpp, attached', async () => {
    await checkAttached('llama_cpp', 'fake-llama-cpp.mjs', ['--token-delay-ms', '10']);
  }, 60_000);

  test('llama_cpp, managed', async () => {
    await check({
      FEDAI_ADAPTER: 'llama_cpp',
      FEDAI_BACKEND_COMMAND: JSON.stringify([process.execPath, join(FAKES, 'fake-llama-cpp.mjs'), '--port', '{port}', '--token-delay-ms', '10']),
    });
  }, 60_000);

  test('vllm', async () => {
    await checkAttached('vllm', 'fake-vllm.mjs', ['--token-delay-ms', '10']);
  }, 60_000);

  test('http', async () => {
    await checkAttached('http', 'fake-http-backend.mjs', ['--sse', '--token-delay-ms', '20']);
  }, 60_000);
});
