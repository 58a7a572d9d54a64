/**
 * The canary: a marker string is sent as the prompt through every path that touches a prompt —
 * success, streaming, schema and limit failures, a runner error, a runner crash, a runner that writes
 * the prompt to stderr and into log notifications — and must appear in no log line, no metering
 * spool file and no span attribute.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { startTestNode, type TestNode } from '../helpers/test-node.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const CANARY = 'CANARY-7f3a9c-do-not-log';

function spoolText(dataDir: string): string {
  const dir = path.join(dataDir, 'metering');
  return readdirSync(dir).map((f) => readFileSync(path.join(dir, f), 'utf8')).join('');
}

describe.each([
  ['mock runner', undefined],
  ['leaky runner', [process.execPath, path.join(here, '../fixtures/canary/leaky-runner.mjs')]],
])('canary prompt through the %s', (_name, runnerCommand) => {
  let t: TestNode;
  const spans = new InMemorySpanExporter();
  beforeAll(async () => {
    t = await startTestNode(
      { NODE_MAX_PROMPT_BYTES: '200', NODE_RUNNER_RESTART_BASE_MS: '50', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9' },
      { spanExporter: spans, ...(runnerCommand ? { runnerCommand } : {}) },
    );
  });
  afterAll(async () => t?.stop());

  it('never reaches logs, spool or spans', async () => {
    const send = (prompt: string, extra: Record<string, unknown> = {}) => t.post('/infer', t.sign(t.request({ prompt, ...extra })));
    expect((await send(`hello ${CANARY}`)).status).toBe(200);
    expect((await t.post('/infer/stream', t.sign(t.request({ prompt: `stream ${CANARY}` })))).status).toBe(200);
    expect((await send(`${CANARY}`, { maxTokens: -1 })).status).toBe(400);
    expect((await send(`${CANARY}`.repeat(20))).status).toBe(413);
    expect((await send(`${CANARY}`, { modelId: 'nope' })).status).toBe(404);
    expect((await t.post('/infer', { ...t.sign(t.request({ prompt: CANARY })), sig: 'A'.repeat(86) + '==' })).status).toBe(401);
    if (runnerCommand) {
      const e = await send(`error: ${CANARY}`);
      expect(e.status).toBe(502);
      expect(e.text).not.toContain(CANARY);
      const c = await send(`crash: ${CANARY}`);
      expect(c.status).toBe(502);
      expect(c.json.error).toBe('runner-crashed');
      // wait for the restart so the crash path (stderr tail on the crash event) has been logged
      for (let i = 0; i < 100 && !t.node.runner.ready; i++) await new Promise((r) => setTimeout(r, 50));
      expect(t.node.runner.ready).toBe(true);
    }
    await new Promise((r) => setTimeout(r, 200));
    const logs = t.logs.join('');
    expect(logs.length).toBeGreaterThan(0);
    expect(logs).not.toContain(CANARY);
    expect(spoolText(t.dataDir)).not.toContain(CANARY);
    const finished = spans.getFinishedSpans();
    expect(finished.length).toBeGreaterThan(0);
    expect(JSON.stringify(finished.map((s) => ({ name: s.name, attributes: s.attributes, events: s.events })))).not.toContain(CANARY);
  });
});
