/**
 * A real runner child (llama_cpp adapter, managed fake backend with an API key): prompts, outputs, the
 * key and the backend's own log lines never reach the runner's stderr or its log notifications, and
 * errors carry no backend message.
 */
import { afterEach, expect, test } from '@jest/globals';
import { join } from 'node:path';
import { ResponseError } from 'vscode-jsonrpc/node';
import { RunnerClient } from '../../../supervisor/runners/conformance/runner-client.js';
import { runnerHostCommand } from '../../../supervisor/runners/runner-command.js';
import { RUNNER_PROTOCOL_VERSION, type InferResult } from '../../../supervisor/protocol/runner-protocol.js';
import { FAKES } from './helpers.js';

const KEY = 'CANARY-KEY-7f3a9';
const PROMPT = 'CANARY-PROMPT-91b2 tell me';
let client: RunnerClient | undefined;
afterEach(async () => {
  await client?.kill();
});

test('no prompt, output, key or backend log line leaks from a runner', async () => {
  client = new RunnerClient(runnerHostCommand(), {
    env: {
      FEDAI_ADAPTER: 'llama_cpp',
      FEDAI_BACKEND_API_KEY: KEY,
      FEDAI_RUNNER_DEBUG: '1',
      FEDAI_BACKEND_COMMAND: JSON.stringify([process.execPath, join(FAKES, 'fake-llama-cpp.mjs'), '--port', '{port}', '--api-key', KEY, '--no-context-shift']),
    },
  });
  const init = await client.request<{ models: Array<{ id: string }> }>('initialize', { protocolVersion: RUNNER_PROTOCOL_VERSION, supervisor: { name: 'test', version: '0' }, runnerId: 'canary-1' }, 20_000);
  const modelId = init.models[0].id;
  const r = await client.request<InferResult>('infer', { request: { requestId: 'c-1', modelId, prompt: PROMPT, maxTokens: 8 } }, 10_000);
  expect(r.output.length).toBeGreaterThan(0);
  await client.request<InferResult>('infer', { request: { requestId: 'c-2', modelId, prompt: PROMPT, maxTokens: 8 }, stream: true, streamId: 's-1' }, 10_000);
  const long = Array(150).fill('CANARY-PROMPT-91b2').join(' ');
  let err: ResponseError<unknown> | undefined;
  try {
    await client.request('infer', { request: { requestId: 'c-3', modelId, prompt: long, maxTokens: 4 }, stream: true, streamId: 's-2' }, 10_000);
  } catch (e) {
    err = e as ResponseError<unknown>;
  }
  expect((err?.data as { code?: string })?.code).toBe('context-window-exceeded');
  await client.request('shutdown', undefined, 10_000);
  await client.conn.sendNotification('exit');
  await client.waitExit(10_000);

  const everything = [client.stderr, JSON.stringify(client.logs), JSON.stringify(err?.data), err?.message ?? ''].join('\n');
  expect(client.stderr).toContain('managed backend ready'); // the capture works
  for (const secret of [KEY, 'CANARY-PROMPT', r.output, 'disposition', 'starting the main loop', 'exceeds the available context']) {
    expect(everything).not.toContain(secret);
  }
}, 60_000);
