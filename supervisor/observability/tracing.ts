/**
 * OpenTelemetry tracing (upstream defect 15.13: upstream's spans were no-ops and carried a per-HTTP
 * UUID instead of the inference requestId).
 *
 * - Enabled only when OTEL_EXPORTER_OTLP_ENDPOINT is set (OTLP/HTTP, JSON, to `<endpoint>/v1/traces`,
 *   batched) or when an exporter is passed in (tests: InMemorySpanExporter, exported synchronously).
 * - Otherwise disabled cleanly: no SDK is started at all. (NodeSDK with no exporter defaults to OTLP at
 *   127.0.0.1:4318 and its shutdown then stalls ~9 s on ECONNREFUSED — sandbox-on-linux.md §2.3.) The
 *   tracer is a no-op and shutdown() is instant.
 * - No auto-instrumentation: only the spans below exist.
 *
 * Span names: the request span keeps upstream's names, `node.infer` (POST /infer) and
 * `node.inferStream` (POST /infer/stream), so existing dashboards match; its children are
 * `fedai.verify`, `fedai.payment` and `fedai.runner`. Attributes never carry content (no prompt, no
 * output, no receipt): `gen_ai.operation.name`='text_completion', `gen_ai.request.model`,
 * `gen_ai.response.model`, `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`,
 * `gen_ai.request.max_tokens`, `fedai.request_id` (the inference requestId), `http.response.status_code`,
 * `error.type` (the kebab error code), plus upstream's `component`='node' and `node.id`.
 * annotate() only accepts keys under those namespaces, and drops any key that names content.
 *
 * The W3C traceparent of the active span is handed to runners (InferParams.traceparent).
 */
import {
  INVALID_SPAN_CONTEXT,
  ProxyTracerProvider,
  SpanKind,
  SpanStatusCode,
  context,
  diag,
  DiagLogLevel,
  isSpanContextValid,
  trace,
  type Attributes,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, SimpleSpanProcessor, type SpanExporter, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { Config } from '../config/load-config.js';
import { toFedaiError } from '../errors.js';
import { REDACTED_KEYS, type Logger } from './logger.js';

export const TRACER_NAME = 'fedai-node';
export const SPAN = {
  infer: 'node.infer',
  inferStream: 'node.inferStream',
  verify: 'fedai.verify',
  payment: 'fedai.payment',
  runner: 'fedai.runner',
} as const;

export interface Tracing {
  readonly enabled: boolean;
  readonly tracer: Tracer;
  /** NODE_ID, recorded as `node.id` on request spans. */
  readonly nodeId?: string;
  shutdown(): Promise<void>;
}

export interface StartTracingOptions {
  config: Pick<Config, 'OTEL_EXPORTER_OTLP_ENDPOINT' | 'OTEL_SERVICE_NAME' | 'NODE_ID'>;
  logger: Logger;
  /** Tests: an InMemorySpanExporter (spans are exported synchronously, SimpleSpanProcessor). */
  exporter?: SpanExporter;
  /** Upper bound on shutdown's flush (default 5000 ms). */
  shutdownTimeoutMs?: number;
}

const NOOP_TRACER: Tracer = new ProxyTracerProvider().getTracer(TRACER_NAME);

/** A disabled Tracing: no SDK, no exporter, no network; everything is a no-op. */
export function disabledTracing(nodeId?: string): Tracing {
  return { enabled: false, tracer: NOOP_TRACER, ...(nodeId !== undefined ? { nodeId } : {}), shutdown: async () => {} };
}

export async function startTracing(opts: StartTracingOptions): Promise<Tracing> {
  const { config, logger } = opts;
  const endpoint = config.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (!opts.exporter && endpoint === undefined) {
    logger.debug('tracing disabled (OTEL_EXPORTER_OTLP_ENDPOINT is unset)');
    return disabledTracing(config.NODE_ID);
  }
  let processor: SpanProcessor;
  if (opts.exporter) processor = new SimpleSpanProcessor(opts.exporter);
  else {
    const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
    processor = new BatchSpanProcessor(new OTLPTraceExporter({ url: `${endpoint!.replace(/\/+$/, '')}/v1/traces`, timeoutMillis: 5000 }));
  }
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': config.OTEL_SERVICE_NAME, 'service.namespace': 'fed_ai', 'fedai.node.id': config.NODE_ID }),
    spanProcessors: [processor],
  });
  // Async context, so child spans find their parent across awaits. Registered only if nobody else did.
  const cm = new AsyncLocalStorageContextManager().enable();
  const ownContext = context.setGlobalContextManager(cm);
  if (!ownContext) cm.disable();
  const ownProvider = trace.setGlobalTracerProvider(provider);
  diag.setLogger(
    {
      error: (msg) => logger.warn({ otel: String(msg).slice(0, 300) }, 'opentelemetry error'),
      warn: (msg) => logger.warn({ otel: String(msg).slice(0, 300) }, 'opentelemetry warning'),
      info: () => {},
      debug: () => {},
      verbose: () => {},
    },
    { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true },
  );
  logger.info({ endpoint: endpoint ?? '(in-process exporter)', serviceName: config.OTEL_SERVICE_NAME }, 'tracing enabled');
  const tracer = provider.getTracer(TRACER_NAME);
  let down: Promise<void> | null = null;
  return {
    enabled: true,
    tracer,
    nodeId: config.NODE_ID,
    shutdown(): Promise<void> {
      down ??= (async () => {
        const limit = opts.shutdownTimeoutMs ?? 5000;
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), limit)));
        try {
          const r = await Promise.race([provider.shutdown().then(() => 'ok' as const), timedOut]);
          if (r === 'timeout') logger.warn({ limitMs: limit }, 'tracing: shutdown flush timed out; spans may be lost');
        } catch (err) {
          logger.warn({ err }, 'tracing: shutdown failed');
        } finally {
          clearTimeout(timer);
          if (ownProvider) trace.disable();
          if (ownContext) {
            context.disable();
          }
          diag.disable();
        }
      })();
      return down;
    },
  };
}

const ALLOWED_PREFIXES = ['gen_ai.request.', 'gen_ai.response.', 'gen_ai.usage.', 'fedai.', 'http.', 'node.', 'runner.'];
const ALLOWED_KEYS = new Set(['gen_ai.operation.name', 'gen_ai.system', 'gen_ai.provider.name', 'error.type', 'component']);
const CONTENT_WORDS = /prompt|message|instruction|completion|content|choice|delta|receipt|invoice|preimage|secret|text$/i;

/** True when an attribute key may be set on a span: a known namespace and nothing that names content. */
export function attributeAllowed(key: string): boolean {
  if (!ALLOWED_KEYS.has(key) && !ALLOWED_PREFIXES.some((p) => key.startsWith(p))) return false;
  const last = key.slice(key.lastIndexOf('.') + 1);
  if (REDACTED_KEYS.has(last) || last === 'output' || last === 'input') return false;
  return !CONTENT_WORDS.test(key);
}

function cleanAttributes(attrs: Record<string, unknown>): Attributes {
  const out: Attributes = {};
  for (const [k, v] of Object.entries(attrs)) {
    if (!attributeAllowed(k)) continue;
    if (typeof v === 'number' ? Number.isFinite(v) : typeof v === 'boolean') out[k] = v as number | boolean;
    else if (typeof v === 'string') out[k] = v.length > 256 ? v.slice(0, 256) : v;
  }
  return out;
}

function formatTraceparent(span: Span | undefined): string | undefined {
  if (!span) return undefined;
  const sc = span.spanContext();
  if (!isSpanContextValid(sc)) return undefined;
  return `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
}

/** W3C traceparent of the active span, or undefined when there is none (or tracing is disabled). */
export function currentTraceparent(): string | undefined {
  return formatTraceparent(trace.getActiveSpan());
}

async function runInSpan<T>(tracer: Tracer, name: string, parent: Span | undefined, fn: (span: Span) => Promise<T>): Promise<T> {
  const ctx = parent ? trace.setSpan(context.active(), parent) : context.active();
  return tracer.startActiveSpan(name, { kind: SpanKind.INTERNAL }, ctx, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      span.setAttribute('error.type', toFedaiError(err).code);
      span.setStatus({ code: SpanStatusCode.ERROR });
      throw err;
    } finally {
      span.end();
    }
  });
}

/** A child span of the active span (e.g. fedai.verify). Errors set `error.type` and rethrow. */
export function childSpan<T>(name: string, fn: () => Promise<T>, tracing?: Tracing): Promise<T> {
  return runInSpan(tracing?.tracer ?? trace.getTracer(TRACER_NAME), name, undefined, () => fn());
}

/** What the HTTP layer gets inside a request span (structurally the http/infer TracePort). */
export interface InferTrace {
  /** Runs fn inside a child span of the request span. */
  child<T>(name: string, fn: () => Promise<T>): Promise<T>;
  /** Sets attributes on the request span; keys outside the allowed namespaces or naming content are dropped. */
  annotate(attrs: Record<string, string | number | boolean>): void;
  /** W3C traceparent of the innermost active span of this request (for the runner). */
  traceparent(): string | undefined;
  /** The underlying span (no-op when tracing is disabled). */
  readonly span: Span;
}

/**
 * Runs one /infer or /infer/stream request inside its span (`node.infer` / `node.inferStream`).
 * A 5xx `http.response.status_code` or a thrown error marks the span as an error; a thrown error also
 * records `error.type` (its kebab code) and, if no status was annotated, its HTTP status.
 */
const NOOP_TRACE: InferTrace = {
  span: trace.wrapSpanContext(INVALID_SPAN_CONTEXT),
  child: (_name, f) => f(),
  annotate: () => {},
  traceparent: () => undefined,
};

export async function inferSpan<T>(tracing: Tracing, route: string, fn: (trace: InferTrace) => Promise<T>): Promise<T> {
  // Disabled tracing costs nothing on the hot path: no span objects, no context switches.
  if (!tracing.enabled) return fn(NOOP_TRACE);
  const name = route === '/infer/stream' ? SPAN.inferStream : SPAN.infer;
  const attributes: Attributes = { component: 'node', 'gen_ai.operation.name': 'text_completion', 'http.request.method': 'POST', 'http.route': route };
  if (tracing.nodeId !== undefined) attributes['node.id'] = tracing.nodeId;
  return tracing.tracer.startActiveSpan(name, { kind: SpanKind.SERVER, attributes }, async (span) => {
    let status: number | undefined;
    const handle: InferTrace = {
      span,
      child: (childName, f) => runInSpan(tracing.tracer, childName, span, () => f()),
      annotate: (attrs) => {
        const clean = cleanAttributes(attrs);
        const s = clean['http.response.status_code'];
        if (typeof s === 'number') status = s;
        span.setAttributes(clean);
      },
      traceparent: () => {
        const active = trace.getActiveSpan();
        return formatTraceparent(active && active.spanContext().traceId === span.spanContext().traceId ? active : span);
      },
    };
    try {
      return await fn(handle);
    } catch (err) {
      const fe = toFedaiError(err);
      span.setAttribute('error.type', fe.code);
      if (status === undefined) {
        status = fe.status;
        span.setAttribute('http.response.status_code', status);
      }
      throw err;
    } finally {
      if (status !== undefined && status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    }
  });
}
