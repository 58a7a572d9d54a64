/**
 * A JSON-RPC message writer for the runner protocol's Content-Length framing that writes each frame
 * (header and body) with ONE write. vscode-jsonrpc's stock stream writer writes the header, waits for
 * its write callback, then writes the body: two syscalls and an event-loop round trip per message,
 * on both ends of every runner call. The bytes on the wire are identical. Frames written in one
 * event-loop iteration are corked together, so a burst of requests costs one write (and one wake-up
 * of the peer).
 */
import { AbstractMessageWriter, type Message, type MessageWriter } from 'vscode-jsonrpc/node';

export class FramedMessageWriter extends AbstractMessageWriter implements MessageWriter {
  private errorCount = 0;
  private corked = false;

  constructor(private readonly stream: NodeJS.WritableStream) {
    super();
    stream.on('error', (err: Error) => this.fireError(err));
    stream.on('close', () => this.fireClose());
  }

  write(msg: Message): Promise<void> {
    let body: string;
    try {
      body = JSON.stringify(msg);
    } catch (err) {
      this.fireError(err, msg, ++this.errorCount);
      return Promise.reject(err);
    }
    const length = Buffer.byteLength(body, 'utf8');
    const header = `Content-Length: ${length}\r\n\r\n`;
    const frame = Buffer.allocUnsafe(header.length + length);
    frame.write(header, 0, 'ascii');
    frame.write(body, header.length, 'utf8');
    // Frames written during one event-loop iteration (e.g. requests that arrived on several sockets in
    // one poll) leave in one writev after the poll phase: one wake-up of the reader for all of them.
    const w = this.stream as NodeJS.WritableStream & { cork?: () => void; uncork?: () => void };
    if (!this.corked && typeof w.cork === 'function') {
      this.corked = true;
      w.cork();
      setImmediate(() => {
        this.corked = false;
        w.uncork!();
      });
    }
    return new Promise((resolve, reject) => {
      this.stream.write(frame, (err?: Error | null) => {
        if (err) {
          this.fireError(err, msg, ++this.errorCount);
          reject(err);
        } else resolve();
      });
    });
  }

  end(): void {
    this.stream.end();
  }
}
