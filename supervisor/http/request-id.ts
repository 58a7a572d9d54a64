/** x-request-id: echoed when the caller sent a sane one, generated otherwise, on every response. */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

const SAFE = /^[A-Za-z0-9._:\-]{1,128}$/;

export function requestIdMiddleware(req: IncomingMessage, res: ServerResponse, next: () => void): void {
  const given = req.headers['x-request-id'];
  const id = typeof given === 'string' && SAFE.test(given) ? given : randomUUID();
  (req as IncomingMessage & { requestId?: string }).requestId = id;
  res.setHeader('x-request-id', id);
  next();
}
