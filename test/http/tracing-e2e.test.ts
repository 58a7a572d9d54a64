/**
 * One span per /infer with content-free gen_ai attributes and child spans for verification and the
 * runner call, through a real node; the runner receives the W3C traceparent of its span.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { startTestNode, type TestNode } from '../helpers/test-node.js';

const spans = new InMemorySpanExporter();
let t: TestNode;
beforeAll(async () => {
  t = await startTestNode({}, { spanExporter: spans });
});
afterAll(async () => t?.stop());

describe('traces', () => {
  it('node.infer has fedai.verify and fedai.runner children and gen_ai attributes without content', async () => {
    const req = t.request({ prompt: 'trace this prompt', maxTokens: 6 });
    expect((await t.post('/infer', t.sign(req))).status).toBe(200);
    const all = spans.getFinishedSpans();
    const root = all.find((s) => s.name === 'node.infer' && s.attributes['fedai.request_id'] === req.requestId);
    expect(root).toBeDefined();
    const traceId = root!.spanContext().traceId;
    const children = all.filter((s) => s.spanContext().traceId === traceId && s !== root);
    const names = children.map((s) => s.name);
    expect(names).toEqual(expect.arrayContaining(['fedai.verify', 'fedai.runner']));
    for (const c of children) expect((c as unknown as { parentSpanContext?: { spanId: string } }).parentSpanContext?.spanId ?? (c as unknown as { parentSpanId?: string }).parentSpanId).toBe(root!.spanContext().spanId);
    expect(root!.attributes).toMatchObject({
      'gen_ai.request.model': 'mock-model',
      'gen_ai.response.model': 'mock-model',
      'gen_ai.request.max_tokens': 6,
      'http.response.status_code': 200,
    });
    expect(root!.attributes['gen_ai.usage.input_tokens']).toEqual(expect.any(Number));
    expect(root!.attributes['gen_ai.usage.output_tokens']).toEqual(expect.any(Number));
    expect(JSON.stringify(all.map((s) => s.attributes))).not.toContain('trace this prompt');
  });

  it('a refused request records its error code on the span', async () => {
    const req = t.request({ modelId: 'nope' });
    expect((await t.post('/infer', t.sign(req))).status).toBe(404);
    const s = spans.getFinishedSpans().find((x) => x.name === 'node.infer' && x.attributes['fedai.request_id'] === req.requestId);
    expect(s).toBeDefined();
    expect(s!.attributes['error.type']).toBe('model-not-found');
    expect(s!.attributes['http.response.status_code']).toBe(404);
  });
});
