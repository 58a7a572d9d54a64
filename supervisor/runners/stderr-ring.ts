/**
 * A bounded ring for a runner's stderr. stderr is always drained (a full 64 KiB pipe nobody reads
 * blocks the child, typescript-sdk#2776) and only its tail is kept.
 *
 * Redaction decision: stderr may hold prompts or outputs (a backend's debug print), so it is never
 * written to logs or events. Crash reports carry only `redacted()`: the byte counts and the sha256 of the
 * kept tail, which lets an operator match a report against a local copy without the node ever emitting
 * the text. The raw tail is available in-process through `tail()` for a local diagnostic command.
 */
import { createHash } from 'node:crypto';

export const STDERR_RING_BYTES = 64 * 1024;

export interface RedactedStderr {
  /** Total bytes the runner wrote to stderr since spawn. */
  stderrBytes: number;
  /** Bytes kept in the ring (≤ 64 KiB). */
  stderrTailBytes: number;
  /** sha256 (hex) of the kept tail; empty string when nothing was written. */
  stderrTailSha256: string;
}

export class StderrRing {
  private chunks: Buffer[] = [];
  private held = 0;
  private total = 0;

  constructor(private readonly capacity = STDERR_RING_BYTES) {}

  push(chunk: Buffer): void {
    this.total += chunk.length;
    if (chunk.length >= this.capacity) {
      this.chunks = [Buffer.from(chunk.subarray(chunk.length - this.capacity))];
      this.held = this.capacity;
      return;
    }
    this.chunks.push(chunk);
    this.held += chunk.length;
    while (this.held - this.chunks[0].length >= this.capacity) {
      this.held -= this.chunks.shift()!.length;
    }
  }

  /** The last ≤ capacity bytes. In-process use only: never log it. */
  tail(): Buffer {
    const all = Buffer.concat(this.chunks);
    return all.length > this.capacity ? all.subarray(all.length - this.capacity) : all;
  }

  get totalBytes(): number {
    return this.total;
  }

  redacted(): RedactedStderr {
    const t = this.tail();
    return {
      stderrBytes: this.total,
      stderrTailBytes: t.length,
      stderrTailSha256: t.length === 0 ? '' : createHash('sha256').update(t).digest('hex'),
    };
  }
}
