import { afterEach, describe, expect, test } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { SpanStatusCode } from '@opentelemetry/api';
import { configFrom } from '../../supervisor/config/load-config.js';
import { FedaiError } from '../../supervisor/errors.js';
import { attributeAllowed, childSpan, currentTraceparent, inferSpan, startTracing, type Tracing } from '../../supervisor/observability/tracing.js';
import { captureLogger } from '../metering/helpers.js';

const CANARY_PROMPT = 'CANARY-PROMPT-7f3a9 please summarise my secret diary';
const CANARY_OUTPUT = 'CANARY-OUTPUT-91bd';
const started: Tracing[] = [];
afterEach(async () => {
  while (started.length) await started.pop()!.shutdown();
});

async function withExporter(): Promise<{ tracing: Tracing; exporter: InMemorySpanExporter }> {
  const exporter = new InMemorySpanExporter();
  const tracing = await startTracing({ config: configFrom({ NODE_ID: 'node-7' }), logger: captureLogger().logger, exporter });
  started.push(tracing);
  return { tracing, exporter };
}

const byName = (spans: ReadableSpan[], name: string) => spans.find((s) => s.name === name)!;
const parentId = (s: ReadableSpan) => s.parentSpanContext?.spanId;

/** Simulates the HTTP layer's use: request annotations, three child spans, runner traceparent. */
async function fakeRequest(tracing: Tracing, route: string, fail?: FedaiError) {
  const seen: { traceparent?: string; inRunner?: string } = {};
  const request = { requestId: 'req-42', modelId: 'llama-3-8b', prompt: CANARY_PROMPT, maxTokens: 64 };
  await inferSpan(tracing, route, async (t) => {
    t.annotate({ 'fedai.request_id': request.requestId, 'gen_ai.request.model': request.modelId, 'gen_ai.request.max_tokens': request.maxTokens });
    // Attempts to put content on the span are dropped.
    t.annotate({ 'gen_ai.prompt': request.prompt, prompt: request.prompt, 'fedai.output': CANARY_OUTPUT, 'gen_ai.input.messages': request.prompt } as Record<string, string>);
    await t.child('fedai.verify', async () => undefined);
    await t.child('fedai.payment', async () => undefined);
    try {
      await t.child('fedai.runner', async () => {
        seen.inRunner = t.traceparent();
        seen.traceparent = currentTraceparent();
        if (fail) throw fail;
        return CANARY_OUTPUT;
      });
      t.annotate({ 'gen_ai.response.model': 'llama-3-8b', 'gen_ai.usage.input_tokens': 12, 'gen_ai.usage.output_tokens': 5, 'http.response.status_code': 200 });
    } catch (err) {
      t.annotate({ 'error.type': (err as FedaiError).code, 'http.response.status_code': (err as FedaiError).status });
    }
  });
  return seen;
}

describe('tracing', () => {
  test('span tree: node.infer with fedai.verify/payment/runner children, gen_ai attributes, traceparent of the runner span', async () => {
    const { tracing, exporter } = await withExporter();
    expect(tracing.enabled).toBe(true);
    const seen = await fakeRequest(tracing, '/infer');
    const spans = exporter.getFinishedSpans();
    expect(spans.map((s) => s.name).sort()).toEqual(['fedai.payment', 'fedai.runner', 'fedai.verify', 'node.infer']);
    const root = byName(spans, 'node.infer');
    expect(parentId(root)).toBeUndefined();
    for (const n of ['fedai.verify', 'fedai.payment', 'fedai.runner']) {
      expect(parentId(byName(spans, n))).toBe(root.spanContext().spanId);
      expect(byName(spans, n).spanContext().traceId).toBe(root.spanContext().traceId);
    }
    expect(root.attributes).toEqual({
      component: 'node',
      'node.id': 'node-7',
      'gen_ai.operation.name': 'text_completion',
      'http.request.method': 'POST',
      'http.route': '/infer',
      'fedai.request_id': 'req-42',
      'gen_ai.request.model': 'llama-3-8b',
      'gen_ai.request.max_tokens': 64,
      'gen_ai.response.model': 'llama-3-8b',
      'gen_ai.usage.input_tokens': 12,
      'gen_ai.usage.output_tokens': 5,
      'http.response.status_code': 200,
    });
    expect(root.status.code).toBe(SpanStatusCode.UNSET);
    const runner = byName(spans, 'fedai.runner');
    const expected = `00-${runner.spanContext().traceId}-${runner.spanContext().spanId}-01`;
    expect(seen.traceparent).toBe(expected);
    expect(seen.inRunner).toBe(expected);
    expect(currentTraceparent()).toBeUndefined(); // outside any span
  });

  test('no attribute, name or event of any span contains the prompt or the output', async () => {
    const { tracing, exporter } = await withExporter();
    await fakeRequest(tracing, '/infer/stream');
    await fakeRequest(tracing, '/infer', new FedaiError('runner-crashed'));
    const spans = exporter.getFinishedSpans();
    expect(spans.length).toBe(8);
    const dump = JSON.stringify(spans.map((s) => ({ n: s.name, a: s.attributes, e: s.events, r: s.resource.attributes, st: s.status })));
    expect(dump).not.toContain('CANARY');
    expect(dump).not.toContain('diary');
    expect(byName(spans, 'node.inferStream').attributes['http.route']).toBe('/infer/stream');
  });

  test('errors: error.type is the kebab code; 5xx marks the span as an error; a thrown error sets the status too', async () => {
    const { tracing, exporter } = await withExporter();
    await fakeRequest(tracing, '/infer', new FedaiError('runner-timeout'));
    let spans = exporter.getFinishedSpans();
    const root = byName(spans, 'node.infer');
    expect(root.attributes['error.type']).toBe('runner-timeout');
    expect(root.attributes['http.response.status_code']).toBe(504);
    expect(root.status.code).toBe(SpanStatusCode.ERROR);
    expect(byName(spans, 'fedai.runner').attributes['error.type']).toBe('runner-timeout');
    exporter.reset();
    await expect(inferSpan(tracing, '/infer', async () => { throw new FedaiError('payment-required'); })).rejects.toMatchObject({ code: 'payment-required' });
    spans = exporter.getFinishedSpans();
    expect(spans[0].attributes).toMatchObject({ 'error.type': 'payment-required', 'http.response.status_code': 402 });
    expect(spans[0].status.code).toBe(SpanStatusCode.UNSET); // a 4xx is the client's, not the server's error
    exporter.reset();
    await expect(inferSpan(tracing, '/infer', async () => { throw new Error(CANARY_PROMPT); })).rejects.toThrow();
    spans = exporter.getFinishedSpans();
    expect(spans[0].attributes['error.type']).toBe('internal-error');
    expect(JSON.stringify({ a: spans[0].attributes, e: spans[0].events, s: spans[0].status })).not.toContain('CANARY');
  });

  test('childSpan() nests under the active span across awaits', async () => {
    const { tracing, exporter } = await withExporter();
    await inferSpan(tracing, '/infer', async () => {
      await childSpan('fedai.verify', async () => {
        await new Promise((r) => setTimeout(r, 5));
        await childSpan('inner', async () => undefined, tracing);
      }, tracing);
    });
    const spans = exporter.getFinishedSpans();
    expect(parentId(byName(spans, 'inner'))).toBe(byName(spans, 'fedai.verify').spanContext().spanId);
    expect(parentId(byName(spans, 'fedai.verify'))).toBe(byName(spans, 'node.infer').spanContext().spanId);
  });

  test('attributeAllowed: known namespaces only, nothing that names content', () => {
    for (const k of ['gen_ai.request.model', 'gen_ai.usage.output_tokens', 'fedai.request_id', 'http.response.status_code', 'error.type']) expect([k, attributeAllowed(k)]).toEqual([k, true]);
    for (const k of ['prompt', 'gen_ai.prompt', 'gen_ai.input.messages', 'gen_ai.output.messages', 'fedai.output', 'fedai.prompt_text', 'http.request.body', 'gen_ai.response.text', 'random.key']) expect([k, attributeAllowed(k)]).toEqual([k, false]);
  });

  test('disabled (no endpoint, no exporter): no SDK, no connection to 127.0.0.1:4318, no-op spans, shutdown under 1 s', async () => {
    // A listener on the OTLP default port would see NodeSDK's default exporter if it were started.
    let connections = 0;
    let listener: Server | null = createServer((_req, res) => {
      connections++;
      res.end();
    });
    listener.on('connection', () => connections++);
    await new Promise<void>((resolve) => {
      listener!.once('error', () => {
        listener = null; // port busy: skip that part of the check
        resolve();
      });
      listener!.listen(4318, '127.0.0.1', () => resolve());
    });
    try {
      const cap = captureLogger();
      const tracing = await startTracing({ config: configFrom({}), logger: cap.logger });
      expect(tracing.enabled).toBe(false);
      const seen = await fakeRequest(tracing, '/infer');
      expect(seen.traceparent).toBeUndefined();
      const t0 = performance.now();
      await tracing.shutdown();
      expect(performance.now() - t0).toBeLessThan(1000);
      await new Promise((r) => setTimeout(r, 100));
      expect(connections).toBe(0);
    } finally {
      if (listener) {
        (listener as Server).closeAllConnections();
        await new Promise<void>((r) => (listener as Server).close(() => r()));
      }
    }
  });

  test('OTEL_EXPORTER_OTLP_ENDPOINT set: spans reach a real OTLP/HTTP receiver on loopback, without content', async () => {
    const bodies: string[] = [];
    const paths: string[] = [];
    const receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        paths.push(req.url ?? '');
        bodies.push(Buffer.concat(chunks).toString('utf8'));
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{}');
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    try {
      const port = (receiver.address() as AddressInfo).port;
      const tracing = await startTracing({
        config: configFrom({ OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, OTEL_SERVICE_NAME: 'fedai-node-test' }),
        logger: captureLogger().logger,
      });
      expect(tracing.enabled).toBe(true);
      await fakeRequest(tracing, '/infer');
      await tracing.shutdown(); // flushes the batch
      expect(paths).toContain('/v1/traces');
      const all = bodies.join('\n');
      expect(all).toContain('node.infer');
      expect(all).toContain('fedai.runner');
      expect(all).toContain('fedai-node-test');
      expect(all).toContain('req-42');
      expect(all).not.toContain('CANARY');
    } finally {
      receiver.closeAllConnections();
      await new Promise<void>((r) => receiver.close(() => r()));
    }
  });
});
