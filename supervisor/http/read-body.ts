/**
 * Reads a request body into memory under a hard byte limit, before any parsing. A declared
 * Content-Length over the limit is refused without reading a byte; a chunked body is cut off as soon
 * as it crosses the limit (upstream defect 6 buffered unbounded bodies).
 */
import type { IncomingMessage } from 'node:http';
import { FedaiError } from '../errors.js';

export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) {
    return Promise.reject(new FedaiError('payload-too-large', { details: [`limit ${limit} bytes`] }));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (err: Error | null, buf?: Buffer) => {
      if (done) return;
      done = true;
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      if (err) reject(err);
      else resolve(buf!);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.pause();
        finish(new FedaiError('payload-too-large', { details: [`limit ${limit} bytes`] }));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      if (size === 0) finish(new FedaiError('empty-body'));
      else finish(null, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    const onError = (err: Error) => finish(new FedaiError('invalid-json', { cause: err, details: ['request body could not be read'] }));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

export function parseJsonBody(buf: Buffer): unknown {
  try {
    return JSON.parse(buf.toString('utf8'));
  } catch (err) {
    throw new FedaiError('invalid-json', { details: [(err as Error).message.slice(0, 200)] });
  }
}
