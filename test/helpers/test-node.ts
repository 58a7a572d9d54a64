/**
 * Starts a real FedaiNode in-process on 127.0.0.1:0 with a temp data dir and the real mock runner,
 * and gives tests a signer for the dev router key plus small HTTP helpers. Logs are captured in
 * memory (for the canary test) instead of being printed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { randomUUID } from 'node:crypto';
import pino from 'pino';
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import { configFrom } from '../../supervisor/config/load-config.js';
import type { EnvName } from '../../supervisor/config/env-spec.js';
import { FedaiNode } from '../../supervisor/node.js';
import { createLogger } from '../../supervisor/observability/logger.js';
import { signEnvelope, type Envelope } from '../../supervisor/crypto/envelope.js';
import type { Identity } from '../../supervisor/crypto/keys.js';
import type { InferenceRequest } from '../../supervisor/protocol/wire-types.js';

export interface TestNode {
  node: FedaiNode;
  url: string;
  dataDir: string;
  router: Identity;
  logs: string[];
  request(overrides?: Partial<InferenceRequest>): InferenceRequest;
  sign(payload: unknown, opts?: { signer?: Identity; nonce?: string; ts?: number }): Envelope<unknown>;
  post(route: string, body: unknown, headers?: Record<string, string>): Promise<{ status: number; headers: Headers; json: any; text: string }>;
  stop(opts?: { keepData?: boolean }): Promise<void>;
}

export async function startTestNode(
  env: Partial<Record<EnvName, string>> = {},
  opts: { dataDir?: string; runnerEnv?: Record<string, string>; runnerCommand?: string[]; spanExporter?: SpanExporter } = {},
): Promise<TestNode> {
  const dataDir = opts.dataDir ?? mkdtempSync(path.join(os.tmpdir(), 'fedai-node-test-'));
  const config = configFrom({ NODE_PORT: '0', NODE_DATA_DIR: dataDir, NODE_ENV: 'test', LOG_LEVEL: 'debug', NODE_SANDBOX_MODE: process.env.FEDAI_TEST_SANDBOX_MODE ?? 'dev', NODE_RUNNER_HEALTH_INTERVAL_MS: '2000', ...env });
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logs.push(chunk.toString());
      cb();
    },
  });
  const logger = createLogger({ level: 'debug', destination: sink as unknown as pino.DestinationStream });
  const node = await FedaiNode.start({
    config,
    logger,
    waitForRunner: true,
    ...(opts.runnerEnv ? { runnerEnv: opts.runnerEnv } : {}),
    ...(opts.runnerCommand ? { runnerCommand: opts.runnerCommand } : {}),
    ...(opts.spanExporter ? { spanExporter: opts.spanExporter } : {}),
  });
  const url = node.url;
  const router = node.identity.devRouter!;
  return {
    node,
    url,
    dataDir,
    router,
    logs,
    request: (o = {}) => ({ requestId: randomUUID(), modelId: 'mock-model', prompt: 'hello node', maxTokens: 8, ...o }),
    sign: (payload, o = {}) => signEnvelope(payload, o.signer ?? router, { ...(o.nonce ? { nonce: o.nonce } : {}), ...(o.ts !== undefined ? { ts: o.ts } : {}) }),
    async post(route, body, headers = {}) {
      const res = await fetch(url + route, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: typeof body === 'string' || Buffer.isBuffer(body) ? (body as string) : JSON.stringify(body),
      });
      const text = await res.text();
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      return { status: res.status, headers: res.headers, json, text };
    },
    async stop(o = {}) {
      await node.stop();
      if (!o.keepData && !opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Parses an SSE body into frames. */
export function parseSse(text: string): Array<{ event: string; data: any }> {
  return text
    .split('\n\n')
    .filter((b) => b.trim().length > 0)
    .map((block) => {
      let event = 'message';
      let data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data += line.slice(6);
      }
      return { event, data: JSON.parse(data) };
    });
}
