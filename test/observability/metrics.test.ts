import { describe, expect, test } from '@jest/globals';
import { NodeMetrics, LLM_DURATION_BUCKETS } from '../../supervisor/observability/metrics.js';

function sample(body: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of body.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got: Record<string, string> = {};
    for (const kv of (m[3] ?? '').matchAll(/(\w+)="([^"]*)"/g)) got[kv[1]] = kv[2];
    const want = Object.entries(labels);
    if (want.length === Object.keys(got).length && want.every(([k, v]) => got[k] === v)) return Number(m[4]);
  }
  return undefined;
}

describe('NodeMetrics', () => {
  test('renders every node_* family in Prometheus text format from its own registry', async () => {
    const m = new NodeMetrics({ defaultMetrics: false });
    m.request('/infer', 200, 0.7);
    m.request('/infer', 200, 42);
    m.request('/infer/stream', 402, 0.01);
    m.ttft(0.3);
    m.tokens('llama-3', 12, 34);
    m.tokens('llama-3', 1, 0);
    m.paymentFailure('payment-insufficient');
    m.runnerRestart('llama_cpp', 'crash');
    m.runnerKill('llama_cpp', 'timeout');
    m.heartbeat(true);
    m.heartbeat(false);
    m.heartbeat(true);
    m.egressRefusal('egress-not-allowed');
    m.metering('ok');
    m.metering('timeout');
    m.setInflight(3);
    m.setQueue(5);
    const { contentType, body } = await m.render();
    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(sample(body, 'node_inference_requests_total', { status: '200', route: '/infer' })).toBe(2);
    expect(sample(body, 'node_inference_requests_total', { status: '402', route: '/infer/stream' })).toBe(1);
    expect(sample(body, 'node_inference_duration_seconds_count', { route: '/infer' })).toBe(2);
    expect(sample(body, 'node_inference_duration_seconds_bucket', { route: '/infer', le: '1' })).toBe(1);
    expect(sample(body, 'node_inference_duration_seconds_bucket', { route: '/infer', le: '60' })).toBe(2);
    expect(sample(body, 'node_inference_duration_seconds_bucket', { route: '/infer', le: '600' })).toBe(2);
    expect(sample(body, 'node_time_to_first_token_seconds_count')).toBe(1);
    expect(sample(body, 'node_tokens_input_total', { model: 'llama-3' })).toBe(13);
    expect(sample(body, 'node_tokens_output_total', { model: 'llama-3' })).toBe(34);
    expect(sample(body, 'node_payment_receipt_failures_total', { reason: 'payment-insufficient' })).toBe(1);
    expect(sample(body, 'node_runner_restarts_total', { runner: 'llama_cpp', reason: 'crash' })).toBe(1);
    expect(sample(body, 'node_runner_kills_total', { runner: 'llama_cpp', reason: 'timeout' })).toBe(1);
    expect(sample(body, 'node_heartbeat_total', { result: 'ok' })).toBe(2);
    expect(sample(body, 'node_heartbeat_total', { result: 'error' })).toBe(1);
    expect(sample(body, 'node_egress_refusals_total', { reason: 'egress-not-allowed' })).toBe(1);
    expect(sample(body, 'node_metering_records_total', { outcome: 'ok' })).toBe(1);
    expect(sample(body, 'node_metering_records_total', { outcome: 'timeout' })).toBe(1);
    expect(sample(body, 'node_inflight_requests')).toBe(3);
    expect(sample(body, 'node_queue_depth')).toBe(5);
    expect(body).toContain('# TYPE node_inference_duration_seconds histogram');
    for (const b of LLM_DURATION_BUCKETS) expect(body).toContain(`le="${b}"`);
    // No default process metrics when disabled.
    expect(body).not.toContain('process_cpu_user_seconds_total');
  });

  test('runner state: 1 for the current state, 0 for the previous ones', async () => {
    const m = new NodeMetrics({ defaultMetrics: false });
    m.runnerState('mock', 'starting');
    m.runnerState('mock', 'ready');
    m.runnerState('other', 'crashed');
    const { body } = await m.render();
    expect(sample(body, 'node_runner_state', { runner: 'mock', state: 'ready' })).toBe(1);
    expect(sample(body, 'node_runner_state', { runner: 'mock', state: 'starting' })).toBe(0);
    expect(sample(body, 'node_runner_state', { runner: 'other', state: 'crashed' })).toBe(1);
    m.runnerState('mock', 'starting');
    const again = (await m.render()).body;
    expect(sample(again, 'node_runner_state', { runner: 'mock', state: 'ready' })).toBe(0);
    expect(sample(again, 'node_runner_state', { runner: 'mock', state: 'starting' })).toBe(1);
  });

  test('default process metrics when asked; two instances do not share a registry', async () => {
    const a = new NodeMetrics({ defaultMetrics: true });
    const b = new NodeMetrics({ defaultMetrics: false });
    a.request('/infer', 500, 1);
    const ra = (await a.render()).body;
    const rb = (await b.render()).body;
    expect(ra).toContain('process_cpu_user_seconds_total');
    expect(sample(ra, 'node_inference_requests_total', { status: '500', route: '/infer' })).toBe(1);
    expect(sample(rb, 'node_inference_requests_total', { status: '500', route: '/infer' })).toBeUndefined();
    expect(sample(rb, 'node_heartbeat_total', { result: 'ok' })).toBe(0);
  });

  test('the default follows NODE_ENV (jest sets test: off)', async () => {
    expect(process.env.NODE_ENV).toBe('test');
    expect((await new NodeMetrics().render()).body).not.toContain('process_cpu_user_seconds_total');
  });
});
