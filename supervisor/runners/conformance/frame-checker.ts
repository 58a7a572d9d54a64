/**
 * Verifies that a byte stream (a runner's stdout) holds nothing but well-formed runner-protocol frames:
 * `Content-Length: N\r\n` [`Content-Type: ...\r\n`] `\r\n` then N bytes of UTF-8 JSON with
 * "jsonrpc":"2.0". Anything else — a banner, a stray print, a bad header, a frame over the cap — is
 * recorded as an issue; after noise the checker resynchronises at the next `Content-Length:` so one
 * stray line does not hide later problems.
 */

export const MAX_FRAME_BYTES = 8 * 1024 * 1024;
const MAX_HEADER_BYTES = 8 * 1024;
const HEADER_END = Buffer.from('\r\n\r\n', 'latin1');
const CONTENT_PREFIX = 'content-';
const RESYNC = Buffer.from('Content-Length:', 'latin1');

export type FrameIssueKind = 'noise' | 'bad-header' | 'oversize' | 'bad-utf8' | 'bad-json' | 'not-jsonrpc' | 'truncated';

export interface FrameIssue {
  kind: FrameIssueKind;
  /** Byte offset in the stream where the problem starts. */
  offset: number;
  detail: string;
}

/** At most `n` characters of `bytes`, JSON-escaped, for a diagnostic. */
function preview(bytes: Buffer, n = 40): string {
  const s = bytes.subarray(0, n * 4).toString('utf8').slice(0, n);
  return JSON.stringify(s) + (bytes.length > n ? '…' : '');
}

export class FrameChecker {
  readonly issues: FrameIssue[] = [];
  frames = 0;
  /** Total bytes seen. */
  bytes = 0;
  private buf: Buffer = Buffer.alloc(0);
  /** Offset in the stream of buf[0]. */
  private base = 0;
  private pendingLength: number | undefined;
  private headerBytes: Buffer = Buffer.alloc(0);
  /** The pending body belongs to a frame with a bad header: skip it. */
  private discard = false;
  private dead = false;
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });

  private noiseRun: { issue: FrameIssue; end: number; bytes: number; preview: string } | undefined;

  /**
   * @param onFrame receives the exact bytes (headers and body) of every well-formed frame, so a client
   *   can keep speaking the protocol past noise while the noise is still reported.
   */
  constructor(
    private readonly maxFrameBytes: number = MAX_FRAME_BYTES,
    private readonly onFrame?: (frame: Buffer) => void,
  ) {}

  get ok(): boolean {
    return this.issues.length === 0;
  }

  push(chunk: Buffer | Uint8Array | string): void {
    const b = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk);
    this.bytes += b.length;
    if (this.dead) return;
    this.buf = this.buf.length === 0 ? b : Buffer.concat([this.buf, b]);
    this.parse();
  }

  /** The stream ended: leftover bytes are a truncated frame or noise. */
  end(): void {
    if (this.dead || this.buf.length === 0) return;
    this.issue(this.pendingLength !== undefined ? 'truncated' : 'noise', this.base, `stream ended inside a frame or with stray bytes ${preview(this.buf)}`);
    this.drop(this.buf.length);
  }

  private issue(kind: FrameIssueKind, offset: number, detail: string): void {
    if (this.issues.length < 100) this.issues.push({ kind, offset, detail });
  }

  private drop(n: number): void {
    this.buf = this.buf.subarray(n);
    this.base += n;
  }

  /** Drops bytes up to the next "Content-Length:" (or all but a possible partial match) as noise. */
  private resync(): boolean {
    const at = this.buf.indexOf(RESYNC, 1);
    const cut = at > 0 ? at : Math.max(0, this.buf.length - (RESYNC.length - 1));
    if (cut === 0) return false;
    const run = this.noiseRun;
    if (run && run.end === this.base) {
      // Consecutive noise (a banner that arrives in pieces) is one issue.
      run.bytes += cut;
      run.end += cut;
      run.issue.detail = `stdout holds ${run.bytes} byte(s) that are not a frame: ${run.preview}`;
    } else {
      const pv = preview(this.buf.subarray(0, Math.max(cut, Math.min(this.buf.length, 40))));
      const issue: FrameIssue = { kind: 'noise', offset: this.base, detail: `stdout holds ${cut} byte(s) that are not a frame: ${pv}` };
      if (this.issues.length < 100) this.issues.push(issue);
      this.noiseRun = { issue, end: this.base + cut, bytes: cut, preview: pv };
    }
    this.drop(cut);
    return true;
  }

  private parse(): void {
    for (;;) {
      if (this.pendingLength === undefined) {
        if (this.buf.length === 0) return;
        // A frame starts with a "Content-" header; anything else is noise.
        const probe = this.buf.subarray(0, CONTENT_PREFIX.length).toString('latin1').toLowerCase();
        if (!CONTENT_PREFIX.startsWith(probe)) {
          if (!this.resync()) return;
          continue;
        }
        if (probe.length < CONTENT_PREFIX.length) return;
        const end = this.buf.indexOf(HEADER_END);
        if (end < 0) {
          if (this.buf.length > MAX_HEADER_BYTES) {
            this.issue('bad-header', this.base, 'header block longer than 8 KiB');
            if (!this.resync()) return;
            continue;
          }
          return;
        }
        const lines = this.buf.subarray(0, end).toString('latin1').split('\r\n');
        let length: number | undefined;
        let bad: string | undefined;
        for (const line of lines) {
          const m = /^([A-Za-z][A-Za-z0-9-]*): *(.*)$/.exec(line);
          if (!m) {
            bad = `malformed header line ${JSON.stringify(line.slice(0, 40))}`;
            break;
          }
          const name = m[1].toLowerCase();
          if (name === 'content-length') {
            if (!/^\d+$/.test(m[2].trim())) {
              bad = 'Content-Length is not a decimal integer';
              break;
            }
            length = Number(m[2].trim());
          } else if (name === 'content-type') {
            if (!/charset=("?)utf-?8\1/i.test(m[2]) && !/^application\/vscode-jsonrpc\s*$/i.test(m[2].trim())) {
              bad = `unsupported Content-Type ${JSON.stringify(m[2].slice(0, 60))}`;
              break;
            }
          } else {
            bad = `unknown header ${JSON.stringify(m[1].slice(0, 40))}`;
            break;
          }
        }
        if (bad === undefined && length === undefined) bad = 'frame has no Content-Length header';
        if (bad !== undefined) {
          // Drop the header block, and the body too when its length is known.
          this.issue('bad-header', this.base, bad);
          this.drop(end + HEADER_END.length);
          if (length !== undefined && length <= this.maxFrameBytes) {
            this.pendingLength = length;
            this.discard = true;
          }
          continue;
        }
        if (length! > this.maxFrameBytes) {
          this.issue('oversize', this.base, `frame of ${length} bytes exceeds the ${this.maxFrameBytes}-byte cap`);
          this.dead = true; // a supervisor kills the runner here; nothing after it can be trusted
          return;
        }
        this.headerBytes = this.buf.subarray(0, end + HEADER_END.length);
        this.drop(end + HEADER_END.length);
        this.pendingLength = length!;
      }
      const n = this.pendingLength;
      if (this.buf.length < n) return;
      const body = this.buf.subarray(0, n);
      const at = this.base;
      this.drop(n);
      this.pendingLength = undefined;
      if (this.discard) {
        this.discard = false;
        continue;
      }
      let text: string;
      try {
        text = this.decoder.decode(body);
      } catch {
        this.issue('bad-utf8', at, 'frame body is not valid UTF-8');
        continue;
      }
      let msg: unknown;
      try {
        msg = JSON.parse(text);
      } catch {
        this.issue('bad-json', at, 'frame body is not JSON (or Content-Length does not match the body)');
        continue;
      }
      if (!msg || typeof msg !== 'object' || Array.isArray(msg) || (msg as { jsonrpc?: unknown }).jsonrpc !== '2.0') {
        this.issue('not-jsonrpc', at, 'frame body is not a JSON-RPC 2.0 message object');
        continue;
      }
      this.frames++;
      this.onFrame?.(Buffer.concat([this.headerBytes, body]));
    }
  }
}
