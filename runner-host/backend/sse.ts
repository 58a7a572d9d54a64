/**
 * Incremental parser for the event streams the runner backends send:
 *   - standard SSE `data: <payload>` lines, events separated by a blank line, multi-line data joined
 *     with "\n"; `data: [DONE]` (OpenAI-style end marker, /v1/* endpoints);
 *   - llama.cpp's in-band error line `error: {json}` (no `data:` prefix, no {"error":…} wrapper), sent
 *     inside an HTTP 200 stream when a request fails after the headers went out;
 *   - comments (`: …`), `event:`, `id:` and `retry:` fields are accepted and ignored.
 * Line endings may be CRLF, LF or CR; events, lines and UTF-8 sequences may be split across chunks.
 */

export type SseEvent =
  | { readonly kind: 'data'; readonly data: string }
  | { readonly kind: 'done' }
  | { readonly kind: 'error'; readonly data: string };

export class SseLimitError extends Error {
  override readonly name = 'SseLimitError';
}

export class SseParser {
  private readonly decoder = new TextDecoder('utf-8');
  private buf = '';
  private dataLines: string[] = [];
  /** True when the previous chunk ended in "\r" (the "\n" of a CRLF may follow in the next chunk). */
  private pendingCr = false;
  private ended = false;

  /** maxBuffered: longest unterminated line or event kept (default 16 MiB); beyond it push() throws. */
  constructor(private readonly maxBuffered = 16 * 1024 * 1024) {}

  /** Feeds a chunk; returns the events completed by it, in order. */
  push(chunk: Uint8Array | string): SseEvent[] {
    if (this.ended) throw new Error('SseParser: push after end');
    let text = typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    if (this.pendingCr && text.startsWith('\n')) text = text.slice(1);
    this.pendingCr = false;
    this.buf += text;
    const out: SseEvent[] = [];
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buf);
      if (!m) break;
      // A lone trailing "\r" may be the first half of a CRLF split across chunks.
      if (m[0] === '\r' && m.index === this.buf.length - 1) {
        this.pendingCr = true;
      }
      const line = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      this.line(line, out);
    }
    if (this.buf.length > this.maxBuffered) throw new SseLimitError(`SSE line longer than ${this.maxBuffered} characters`);
    return out;
  }

  /** Flushes at end of stream: an unterminated last line or event is still delivered. */
  end(): SseEvent[] {
    if (this.ended) return [];
    this.ended = true;
    const out: SseEvent[] = [];
    const rest = this.buf + this.decoder.decode();
    this.buf = '';
    if (rest.length > 0) this.line(rest, out);
    this.dispatch(out);
    return out;
  }

  private line(line: string, out: SseEvent[]): void {
    if (line === '') {
      this.dispatch(out);
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') {
      this.dataLines.push(value);
    } else if (field === 'error') {
      this.dispatch(out);
      out.push({ kind: 'error', data: value });
    }
    // event / id / retry / unknown fields: ignored
  }

  private dispatch(out: SseEvent[]): void {
    if (this.dataLines.length === 0) return;
    const data = this.dataLines.join('\n');
    this.dataLines = [];
    out.push(data === '[DONE]' ? { kind: 'done' } : { kind: 'data', data });
  }
}

/** Async iteration over a byte stream's SSE events. */
export async function* sseEvents(body: AsyncIterable<Uint8Array | string>): AsyncGenerator<SseEvent> {
  const p = new SseParser();
  for await (const chunk of body) {
    for (const ev of p.push(chunk)) yield ev;
  }
  for (const ev of p.end()) yield ev;
}
