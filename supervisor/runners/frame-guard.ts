/**
 * A Transform between a runner's stdout and vscode-jsonrpc's StreamMessageReader. vscode-jsonrpc puts no
 * cap on Content-Length and tolerates odd headers; this guard parses the framing itself and passes the
 * bytes through unchanged only while they are well-formed:
 *
 *   header  = 1*(field CRLF) CRLF, field = "Content-Length: <digits>" | "Content-Type: <value>"
 *   body    = exactly Content-Length bytes
 *
 * Any other byte where a header is expected (a stray print, a banner, garbage), a missing, duplicated or
 * non-numeric length, or a header block over 1 KiB is 'protocol-garbage'; a length over `maxFrameBytes`
 * is 'frame-too-large', decided from the header before any body byte is buffered. After a violation the
 * guard forwards nothing more and calls `onViolation` once.
 */
import { Transform, type TransformCallback } from 'node:stream';

export type FrameViolation = 'protocol-garbage' | 'frame-too-large';

const MAX_HEADER_BYTES = 1024;
const CRLFCRLF = Buffer.from('\r\n\r\n');

export class FrameGuard extends Transform {
  private header = Buffer.alloc(0);
  /** Body bytes still to pass through for the current frame; -1 while reading a header. */
  private bodyLeft = -1;
  private violated = false;
  private frames = 0;

  constructor(
    private readonly maxFrameBytes: number,
    private readonly onViolation: (reason: FrameViolation, detail: string) => void,
  ) {
    super();
  }

  get frameCount(): number {
    return this.frames;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.violated) return cb();
    let buf = chunk;
    while (buf.length > 0 && !this.violated) {
      if (this.bodyLeft >= 0) {
        const n = Math.min(this.bodyLeft, buf.length);
        this.push(buf.subarray(0, n));
        this.bodyLeft -= n;
        buf = buf.subarray(n);
        if (this.bodyLeft === 0) {
          this.bodyLeft = -1;
          this.frames++;
        }
        continue;
      }
      // reading a header: look for CRLFCRLF across what we hold plus this chunk
      const joined = this.header.length > 0 ? Buffer.concat([this.header, buf]) : buf;
      const end = joined.indexOf(CRLFCRLF);
      if (end < 0) {
        const err = this.checkPartialHeader(joined);
        if (err) return this.fail('protocol-garbage', err, cb);
        if (joined.length > MAX_HEADER_BYTES) return this.fail('protocol-garbage', 'header block too long', cb);
        this.header = Buffer.from(joined);
        buf = Buffer.alloc(0);
        break;
      }
      const headerBytes = joined.subarray(0, end + 4);
      const parsed = this.parseHeader(joined.subarray(0, end).toString('latin1'));
      if (typeof parsed === 'string') return this.fail('protocol-garbage', parsed, cb);
      if (parsed > this.maxFrameBytes) {
        return this.fail('frame-too-large', `Content-Length ${parsed} > ${this.maxFrameBytes}`, cb);
      }
      this.push(Buffer.from(headerBytes));
      this.header = Buffer.alloc(0);
      this.bodyLeft = parsed;
      buf = joined.subarray(end + 4);
      if (this.bodyLeft === 0) {
        this.bodyLeft = -1;
        this.frames++;
      }
    }
    cb();
  }

  /** Fails fast on a partial header that can already be seen to be wrong (no need to wait for CRLFCRLF). */
  private checkPartialHeader(partial: Buffer): string | undefined {
    const text = partial.toString('latin1');
    const lines = text.split('\r\n');
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      const complete = i < lines.length - 1;
      if (complete) {
        if (line === '' || !FIELD.test(line)) return 'non-header bytes on stdout';
      } else if (!isFieldPrefix(line.endsWith('\r') ? line.slice(0, -1) : line)) {
        return 'non-header bytes on stdout';
      }
    }
    return undefined;
  }

  private parseHeader(text: string): number | string {
    let length: number | undefined;
    for (const line of text.split('\r\n')) {
      const m = FIELD.exec(line);
      if (!m) return 'non-header bytes on stdout';
      if (m[1].toLowerCase() === 'content-length') {
        if (length !== undefined) return 'duplicate Content-Length';
        if (!/^\d{1,15}$/.test(m[2])) return 'invalid Content-Length';
        length = Number(m[2]);
      }
    }
    if (length === undefined) return 'missing Content-Length';
    return length;
  }

  private fail(reason: FrameViolation, detail: string, cb: TransformCallback): void {
    this.violated = true;
    this.header = Buffer.alloc(0);
    cb();
    this.onViolation(reason, detail);
  }
}

const FIELD = /^(Content-Length|Content-Type): ?([\x20-\x7e]*)$/i;
const NAMES = ['content-length: ', 'content-type: '];

function isFieldPrefix(partial: string): boolean {
  if (partial.length === 0) return true;
  const lower = partial.toLowerCase();
  for (const name of NAMES) {
    if (name.startsWith(lower) || name.slice(0, -1).startsWith(lower)) return true;
    if (lower.startsWith(name.slice(0, -1))) {
      // name seen; the rest must be printable ASCII (a value still arriving)
      return /^[\x20-\x7e]*$/.test(partial.slice(name.length - 1));
    }
  }
  return false;
}
