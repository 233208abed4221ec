import { closeSync, openSync, readSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';

/**
 * A service's output written to a file instead of a pipe, read back here by polling. A pipe to a busy
 * process (a benchmark publishing as fast as it can) fills, and a log line the service writes then blocks
 * its event loop until the benchmark reads, so the service would be measured partly waiting on the
 * harness (a profile of the superpeer in bench:swarm showed 0.2 s of its join in such writes; the join's
 * time measured the same either way, two runs each). A file never blocks the writer.
 */
export class LogTail {
  private readonly fd: number;
  private offset = 0;
  private partial = '';
  private readonly timer: NodeJS.Timeout;
  private readonly buffer = Buffer.alloc(1 << 16);
  /** A character split between two reads is held until its last byte comes. */
  private readonly decoder = new StringDecoder('utf8');

  /** `path` must exist (the file the service's stdout is opened on); `onLine` gets each whole line. */
  constructor(
    path: string,
    private readonly onLine: (line: string) => void,
    intervalMs = 50,
  ) {
    this.fd = openSync(path, 'r');
    this.timer = setInterval(() => this.poll(), intervalMs);
  }

  /** Reads what was written since the last poll. */
  poll(): void {
    for (;;) {
      const bytes = readSync(this.fd, this.buffer, 0, this.buffer.length, this.offset);
      if (bytes === 0) return;
      this.offset += bytes;
      const lines = (this.partial + this.decoder.write(this.buffer.subarray(0, bytes))).split('\n');
      this.partial = lines.pop() ?? '';
      for (const line of lines) this.onLine(line);
    }
  }

  close(): void {
    clearInterval(this.timer);
    this.poll();
    closeSync(this.fd);
  }
}
