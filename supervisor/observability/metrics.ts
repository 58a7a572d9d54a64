/**
 * Prometheus metrics on the node's own prom-client Registry (never the global one, so two nodes in one
 * process — tests — do not collide). Names keep upstream's where upstream has them (§11):
 * node_inference_requests_total{status}, node_inference_duration_seconds,
 * node_payment_receipt_failures_total. Differences: the duration histogram has LLM buckets up to 10
 * minutes (upstream defect 15.12 capped them at 1 s); the request counter and payment failures carry one
 * more label (route, reason). No label ever carries content; model ids, runner names and reasons only.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Seconds; an LLM request spans milliseconds (cache hits, errors) to minutes (long generations). */
export const LLM_DURATION_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
/** Time to first token: shorter tail. */
export const TTFT_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];


export interface NodeMetricsOptions {
  /** prom-client process metrics (CPU, memory, event loop lag, GC). Default: on unless NODE_ENV=test. */
  defaultMetrics?: boolean;
  /** Prefix for the default metrics only (the node_* names are fixed). */
  defaultMetricsPrefix?: string;
}

export class NodeMetrics {
  readonly registry: Registry;
  private readonly requests: Counter<'status' | 'route'>;
  private readonly paymentFailures: Counter<'reason'>;
  private readonly duration: Histogram<'route'>;
  private readonly ttftHist: Histogram;
  private readonly tokensIn: Counter<'model'>;
  private readonly tokensOut: Counter<'model'>;
  private readonly inflight: Gauge;
  private readonly queue: Gauge;
  private readonly runnerStateGauge: Gauge<'runner' | 'state'>;
  private readonly restarts: Counter<'runner' | 'reason'>;
  private readonly kills: Counter<'runner' | 'reason'>;
  private readonly heartbeats: Counter<'result'>;
  private readonly egress: Counter<'reason'>;
  private readonly meteringRecords: Counter<'outcome'>;
  /** Every state a runner has been seen in, so the previous one can be set back to 0. */
  private readonly seenStates = new Map<string, Set<string>>();

  constructor(opts: NodeMetricsOptions = {}) {
    this.registry = new Registry();
    const registers = [this.registry];
    this.requests = new Counter({
      name: 'node_inference_requests_total',
      help: 'Inference requests answered, by HTTP status and route (/infer, /infer/stream)',
      labelNames: ['status', 'route'],
      registers,
    });
    this.paymentFailures = new Counter({
      name: 'node_payment_receipt_failures_total',
      help: 'Payment receipts refused, by error code',
      labelNames: ['reason'],
      registers,
    });
    this.duration = new Histogram({
      name: 'node_inference_duration_seconds',
      help: 'Wall time of inference requests, from request to last byte',
      labelNames: ['route'],
      buckets: LLM_DURATION_BUCKETS,
      registers,
    });
    this.ttftHist = new Histogram({
      name: 'node_time_to_first_token_seconds',
      help: 'Time from request start to the first generated token',
      buckets: TTFT_BUCKETS,
      registers,
    });
    this.tokensIn = new Counter({ name: 'node_tokens_input_total', help: 'Input (prompt) tokens processed', labelNames: ['model'], registers });
    this.tokensOut = new Counter({ name: 'node_tokens_output_total', help: 'Output tokens generated', labelNames: ['model'], registers });
    this.inflight = new Gauge({ name: 'node_inflight_requests', help: 'Inference requests currently admitted', registers });
    this.queue = new Gauge({ name: 'node_queue_depth', help: 'Requests waiting for a runner slot', registers });
    this.runnerStateGauge = new Gauge({
      name: 'node_runner_state',
      help: 'Runner state: 1 for the current state, 0 for states seen before',
      labelNames: ['runner', 'state'],
      registers,
    });
    this.restarts = new Counter({ name: 'node_runner_restarts_total', help: 'Runner restarts, by reason', labelNames: ['runner', 'reason'], registers });
    this.kills = new Counter({ name: 'node_runner_kills_total', help: 'Runners killed by the supervisor, by reason', labelNames: ['runner', 'reason'], registers });
    this.heartbeats = new Counter({ name: 'node_heartbeat_total', help: 'Heartbeats sent to the router, by result', labelNames: ['result'], registers });
    this.egress = new Counter({ name: 'node_egress_refusals_total', help: 'Runner egress attempts refused, by reason', labelNames: ['reason'], registers });
    this.meteringRecords = new Counter({
      name: 'node_metering_records_total',
      help: 'Metering records made durable, by outcome',
      labelNames: ['outcome'],
      registers,
    });
    // Pre-create the common series so dashboards see zeros rather than gaps.
    this.heartbeats.inc({ result: 'ok' }, 0);
    this.heartbeats.inc({ result: 'error' }, 0);
    this.inflight.set(0);
    this.queue.set(0);
    const defaults = opts.defaultMetrics ?? process.env.NODE_ENV !== 'test';
    if (defaults) collectDefaultMetrics({ register: this.registry, ...(opts.defaultMetricsPrefix ? { prefix: opts.defaultMetricsPrefix } : {}) });
  }

  /** One answered /infer or /infer/stream request. */
  request(route: string, status: number, seconds: number): void {
    this.requests.inc({ route, status: String(status) });
    if (Number.isFinite(seconds) && seconds >= 0) this.duration.observe({ route }, seconds);
  }

  ttft(seconds: number): void {
    if (Number.isFinite(seconds) && seconds >= 0) this.ttftHist.observe(seconds);
  }

  tokens(model: string, inputTokens: number, outputTokens: number): void {
    if (Number.isFinite(inputTokens) && inputTokens > 0) this.tokensIn.inc({ model }, inputTokens);
    if (Number.isFinite(outputTokens) && outputTokens > 0) this.tokensOut.inc({ model }, outputTokens);
  }

  paymentFailure(reason: string): void {
    this.paymentFailures.inc({ reason });
  }

  /** Sets `state` to 1 and every other state seen for this runner to 0. */
  runnerState(runner: string, state: string): void {
    let seen = this.seenStates.get(runner);
    if (!seen) this.seenStates.set(runner, (seen = new Set()));
    seen.add(state);
    for (const s of seen) this.runnerStateGauge.set({ runner, state: s }, s === state ? 1 : 0);
  }

  runnerRestart(runner: string, reason: string): void {
    this.restarts.inc({ runner, reason });
  }

  runnerKill(runner: string, reason: string): void {
    this.kills.inc({ runner, reason });
  }

  heartbeat(ok: boolean): void {
    this.heartbeats.inc({ result: ok ? 'ok' : 'error' });
  }

  egressRefusal(reason: string): void {
    this.egress.inc({ reason });
  }

  /** outcome: ok | error | cancelled | timeout (the MeteringRecord outcome). */
  metering(outcome: string): void {
    this.meteringRecords.inc({ outcome });
  }

  setInflight(n: number): void {
    this.inflight.set(n);
  }

  setQueue(n: number): void {
    this.queue.set(n);
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
