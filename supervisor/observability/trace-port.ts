/**
 * Bridges the /infer pipeline's TracePort to OpenTelemetry: one span per request (`node.infer` or
 * `node.inferStream`, upstream's names) with child spans `fedai.verify`, `fedai.payment` and
 * `fedai.runner`. Parents are passed explicitly (no reliance on a global context manager), and the
 * runner receives the W3C traceparent of its `fedai.runner` span. Attributes never carry content:
 * only model ids, token counts, the request id, status and error codes.
 */
import { context, SpanStatusCode, trace, type Span, type Tracer } from '@opentelemetry/api';
import { toFedaiError } from '../errors.js';
import { NO_TRACE, type TracePort } from '../http/infer/ports.js';

export interface TracingLike {
  readonly enabled: boolean;
  readonly tracer: Tracer;
}

function traceparentOf(span: Span): string | undefined {
  const sc = span.spanContext();
  if (!sc || !/^[0-9a-f]{32}$/.test(sc.traceId) || sc.traceId === '0'.repeat(32)) return undefined;
  return `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 1).toString(16).padStart(2, '0')}`;
}

export async function tracePortFor<T>(tracing: TracingLike, route: string, fn: (t: TracePort) => Promise<T>): Promise<T> {
  if (!tracing.enabled) return fn(NO_TRACE);
  const root = tracing.tracer.startSpan(route === '/infer/stream' ? 'node.inferStream' : 'node.infer', {
    attributes: { 'gen_ai.operation.name': 'text_completion', 'http.route': route, component: 'node' },
  });
  const rootCtx = trace.setSpan(context.active(), root);
  let current: Span = root;
  const port: TracePort = {
    async child(name, f) {
      const span = tracing.tracer.startSpan(name, {}, rootCtx);
      const previous = current;
      current = span;
      try {
        return await f();
      } catch (err) {
        span.setStatus({ code: SpanStatusCode.ERROR });
        span.setAttribute('error.type', toFedaiError(err).code);
        throw err;
      } finally {
        current = previous;
        span.end();
      }
    },
    annotate(attrs) {
      root.setAttributes(attrs);
      if (typeof attrs['error.type'] === 'string') root.setStatus({ code: SpanStatusCode.ERROR });
    },
    traceparent: () => traceparentOf(current),
  };
  try {
    return await fn(port);
  } finally {
    root.end();
  }
}
