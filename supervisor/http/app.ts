/**
 * The node's HTTP surface (express 5). Routes:
 *   GET  /health        liveness: 200 {"ok":true} while the process serves
 *   GET  /ready         readiness: 200 when a runner is ready, else 503 runner-unavailable
 *   GET  /status        node id, npub, uptime, runner states, in-flight, capacity, payments, sandbox
 *   GET  /metrics       Prometheus text
 *   POST /infer         router-only; {response, metering} node-signed envelopes
 *   POST /infer/stream  router-only; SSE chunk… then final | error
 * Anything else: 404 {"error":"not-found"}; a known path with the wrong method: 405.
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import { FedaiError, toFedaiError } from '../errors.js';
import type { Config } from '../config/load-config.js';
import { readBody } from './read-body.js';
import { requestIdMiddleware } from './request-id.js';
import { sendError, sendJson, sseFrame } from './respond.js';
import type { AdmittedRequest, InferService } from './infer/infer-service.js';
import { NO_TRACE, type TracePort } from './infer/ports.js';

export interface HttpMetricsPort {
  request(route: string, status: number, seconds: number): void;
  render(): Promise<{ contentType: string; body: string }>;
}

export interface AppDeps {
  config: Config;
  logger: Logger;
  service: InferService;
  metrics: HttpMetricsPort;
  status(): Record<string, unknown>;
  ready(): boolean;
  /** False while draining: new /infer requests get 503 node-draining. */
  accepting(): boolean;
  /** Runs one /infer request inside a trace span; defaults to no tracing. */
  traced?<T>(route: string, fn: (trace: TracePort) => Promise<T>): Promise<T>;
}

export function createApp(deps: AppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.set('query parser', false);
  app.use(requestIdMiddleware);

  const traced = <T>(route: string, fn: (trace: TracePort) => Promise<T>): Promise<T> =>
    deps.traced ? deps.traced(route, fn) : fn(NO_TRACE);

  /**
   * Shared by both inference routes: span, metrics and the error reply around one request. `serve`
   * gets the admitted request and an AbortSignal that fires when the client goes away; it returns
   * the HTTP status it answered with.
   */
  const inferRoute =
    (route: '/infer' | '/infer/stream', serve: (admitted: AdmittedRequest, res: Response, signal: AbortSignal, trace: TracePort) => Promise<number>) =>
    (req: Request, res: Response) =>
      traced(route, async (trace) => {
        const t0 = process.hrtime.bigint();
        let status = 200;
        try {
          if (!deps.accepting()) throw new FedaiError('node-draining', { retryAfterS: 5 });
          const raw = await readBody(req, deps.config.NODE_MAX_REQUEST_BYTES);
          const admitted = await deps.service.admit(raw, trace);
          const ac = new AbortController();
          res.on('close', () => {
            if (!res.writableFinished) ac.abort();
          });
          status = await serve(admitted, res, ac.signal, trace);
        } catch (err) {
          status = sendError(res, err, deps.logger).status;
          trace.annotate({ 'error.type': toFedaiError(err).code });
        } finally {
          trace.annotate({ 'http.response.status_code': status });
          deps.metrics.request(route, status, Number(process.hrtime.bigint() - t0) / 1e9);
        }
      });

  app.post(
    '/infer',
    inferRoute('/infer', async (admitted, res, signal, trace) => {
      sendJson(res, 200, await deps.service.execute(admitted, { signal, trace }));
      return 200;
    }),
  );

  app.post(
    '/infer/stream',
    inferRoute('/infer/stream', async (admitted, res, signal, trace) => {
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      res.flushHeaders();
      try {
        const out = await deps.service.execute(admitted, {
          stream: true,
          signal,
          trace,
          onChunk: (c) => {
            if (!res.destroyed) res.write(sseFrame('chunk', c));
          },
        });
        if (!res.destroyed) res.end(sseFrame('final', out));
        return 200;
      } catch (err) {
        // Headers are sent: the failure travels as one `error` frame (the status is recorded, not sent).
        const e = toFedaiError(err);
        if (e.code === 'internal-error') deps.logger.error({ err }, 'stream failed');
        trace.annotate({ 'error.type': e.code });
        if (!res.destroyed) res.end(sseFrame('error', e.toBody()));
        return e.status;
      }
    }),
  );

  // The GET routes come after the inference routes: express tries routes in order, and /infer is the hot path.
  app.get('/health', (_req, res) => sendJson(res, 200, { ok: true }));
  app.get('/ready', (_req, res) => {
    if (deps.ready() && deps.accepting()) sendJson(res, 200, { ready: true });
    else sendError(res, new FedaiError(deps.accepting() ? 'runner-unavailable' : 'node-draining', { retryAfterS: 5 }), deps.logger);
  });
  app.get('/status', (_req, res) => sendJson(res, 200, deps.status()));
  app.get('/metrics', async (_req, res) => {
    const m = await deps.metrics.render();
    res.writeHead(200, { 'content-type': m.contentType, 'content-length': Buffer.byteLength(m.body) });
    res.end(m.body);
  });

  const KNOWN = new Set(['/health', '/ready', '/status', '/metrics', '/infer', '/infer/stream']);
  app.use((req, res) => {
    const path = req.path;
    sendError(res, new FedaiError(KNOWN.has(path) ? 'method-not-allowed' : 'not-found'), deps.logger);
  });
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    sendError(res, err, deps.logger);
  });
  return app;
}
