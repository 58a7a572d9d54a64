/** Small, allocation-light response helpers shared by every route. */
import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { toFedaiError, type FedaiError } from '../errors.js';

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

/** Answers a catalogued error; unknown errors become 500 internal-error and are logged (scrubbed). */
export function sendError(res: ServerResponse, err: unknown, logger: Logger): FedaiError {
  const e = toFedaiError(err);
  if (e.code === 'internal-error') logger.error({ err: e.cause ?? err }, 'unhandled error');
  if (res.headersSent) {
    res.destroy();
    return e;
  }
  const headers: Record<string, string> = {};
  if (e.retryAfterS !== undefined) headers['retry-after'] = String(e.retryAfterS);
  // Part of the body may still be unread: do not keep the connection for the next request.
  if (e.code === 'payload-too-large') headers.connection = 'close';
  sendJson(res, e.status, e.toBody(), headers);
  return e;
}

/** One Server-Sent Events frame: `event: <name>\ndata: <one-line JSON>\n\n`. */
export function sseFrame(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}
