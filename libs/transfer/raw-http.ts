import net from 'node:net';
import type { SourceAnswer } from './download-request.js';
import { bodyFraming, MAX_HEAD_BYTES, parseResponseHead, type ResponseHead } from './http-head.js';
import type { ReadSlabs, SlabReader } from './read-slabs.js';

/** Body bytes received and not yet taken by the consumer above which the socket is paused. */
const MAX_QUEUED_BYTES = 8 * 1024 * 1024;

/** The head asks for what this path does not do (a Transfer-Encoding, an informational status). */
export const FALLBACK = Symbol('fallback');

/**
 * A GET over a plain socket whose reads land in `slabs` (`net` `onread`: no Buffer allocated per read, reads
 * up to a MiB, and a body the hashing thread reads where it landed), for what node:http costs the receiving
 * thread (about 0.6 CPU-s per GiB more, measured). The head is parsed here (`http-head.ts`, at most
 * `MAX_HEAD_BYTES`); the body is framed by Content-Length or, without one, by the end of the connection.
 * Resolves at the head, or with FALLBACK when the answer needs node:http's parser (a Transfer-Encoding, a
 * 1xx). Rejects with the socket's error, the abort reason of `signal`, or an Error saying what was wrong
 * with the head; the body's iteration throws likewise when the connection ends early. Deadlines are the
 * caller's (`signal`).
 */
export function rawGet(
  target: URL,
  headers: Record<string, string>,
  signal: AbortSignal,
  slabs: ReadSlabs,
): Promise<SourceAnswer | typeof FALLBACK> {
  // No `connection: close`: as with node:http, the socket is closed here once the body is in (a server
  // closing first would have a proxy in between drop what it still buffers: the bench's pacing proxy did).
  const lines = [`GET ${target.pathname}${target.search} HTTP/1.1`, `host: ${target.host}`];
  for (const [name, value] of Object.entries(headers)) {
    if (/[\r\n]/.test(name + value)) return Promise.reject(new Error(`bad request header ${name}`));
    lines.push(`${name}: ${value}`);
  }
  return new RawExchange(target, `${lines.join('\r\n')}\r\n\r\n`, signal, slabs.reader()).head;
}

class RawExchange implements AsyncIterator<Buffer>, AsyncIterable<Buffer> {
  readonly head: Promise<SourceAnswer | typeof FALLBACK>;
  private resolveHead!: (answer: SourceAnswer | typeof FALLBACK) => void;
  private rejectHead!: (err: unknown) => void;
  private readonly socket: net.Socket;
  /** Copies of the reads before the head was complete (at most MAX_HEAD_BYTES). */
  private headBytes: Buffer[] = [];
  private headLength = 0;
  private parsed: ResponseHead | undefined;
  /** Body bytes still to come, or Infinity until the connection ends. */
  private remaining = Number.POSITIVE_INFINITY;
  private readonly queue: Buffer[] = [];
  private queuedBytes = 0;
  private paused = false;
  private ended = false;
  private failure: unknown;
  private waiter:
    | { resolve: (result: IteratorResult<Buffer>) => void; reject: (err: unknown) => void }
    | undefined;
  private readonly onAbort = (): void => this.fail(this.signal.reason);

  constructor(
    target: URL,
    request: string,
    private readonly signal: AbortSignal,
    private readonly reader: SlabReader,
  ) {
    this.head = new Promise((resolve, reject) => {
      this.resolveHead = resolve;
      this.rejectHead = reject;
    });
    this.socket = net.connect({
      host: target.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: Number(target.port || 80),
      onread: { buffer: () => reader.next(), callback: (bytes, view) => this.onRead(bytes, view) },
    });
    this.socket.setNoDelay(true);
    this.socket.on('error', (err) => this.fail(err));
    this.socket.on('end', () => this.onEnd());
    this.socket.on('close', () => this.fail(new Error('connection closed')));
    this.socket.write(request);
    if (signal.aborted) this.onAbort();
    else signal.addEventListener('abort', this.onAbort, { once: true });
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    return this;
  }

  next(): Promise<IteratorResult<Buffer>> {
    const chunk = this.queue.shift();
    if (chunk !== undefined) {
      this.queuedBytes -= chunk.byteLength;
      if (this.paused && this.queuedBytes <= MAX_QUEUED_BYTES / 2) {
        this.paused = false;
        this.socket.resume();
      }
      return Promise.resolve({ value: chunk, done: false });
    }
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  async return(): Promise<IteratorResult<Buffer>> {
    this.cancel();
    return { value: undefined, done: true };
  }

  private cancel(): void {
    this.finish();
    this.socket.destroy();
  }

  private onRead(bytes: number, view: Uint8Array): boolean {
    if (this.ended || this.failure !== undefined) {
      this.reader.commit(bytes, 0);
      return false;
    }
    let bodyFrom = 0;
    if (this.parsed === undefined) {
      bodyFrom = this.takeHead(view, bytes);
      if (bodyFrom < 0) {
        this.reader.commit(bytes, 0);
        return !this.ended && this.failure === undefined;
      }
    }
    const body = Math.min(bytes - bodyFrom, this.remaining);
    this.reader.commit(bytes, body);
    if (body > 0) {
      this.remaining -= body;
      this.push(Buffer.from(view.buffer, view.byteOffset + bodyFrom, body));
    }
    if (this.remaining === 0) {
      // Bytes after the announced length are not this body's.
      this.cancel();
      return false;
    }
    if (this.queuedBytes > MAX_QUEUED_BYTES) {
      this.paused = true;
      return false;
    }
    return true;
  }

  /** Adds a read to the head; where the body starts in it once the head is complete, else -1. */
  private takeHead(view: Uint8Array, bytes: number): number {
    const room = MAX_HEAD_BYTES - this.headLength;
    this.headBytes.push(Buffer.from(view.subarray(0, Math.min(bytes, room))));
    const before = this.headLength;
    this.headLength += Math.min(bytes, room);
    const text = this.headBytes.length === 1 ? (this.headBytes[0] as Buffer) : Buffer.concat(this.headBytes);
    this.headBytes = [text];
    const result = parseResponseHead(text, this.headLength);
    if (result.kind === 'incomplete') return -1;
    if (result.kind === 'bad') {
      this.fail(new Error(result.reason));
      return -1;
    }
    const head = result.head;
    this.headBytes = [];
    const framing = head.status >= 200 && head.status < 300 ? bodyFraming(head) : 0;
    if (typeof framing === 'object') {
      this.fail(new Error(framing.bad));
      return -1;
    }
    if (framing === 'unsupported' || head.status < 200) {
      this.resolveHead(FALLBACK);
      this.cancel();
      return -1;
    }
    this.parsed = head;
    if (typeof framing === 'number') this.remaining = framing;
    const length = typeof framing === 'number' ? String(framing) : undefined;
    this.resolveHead({
      status: head.status,
      // Repeated equal lengths are one length (RFC 9110 §8.6; node:http keeps one too), not "5, 5".
      header: (name) => (name === 'content-length' ? length : undefined) ?? head.headers.get(name) ?? null,
      body: this,
      cancel: () => this.cancel(),
    });
    return head.headBytes - before;
  }

  private push(chunk: Buffer): void {
    if (this.waiter !== undefined) {
      const { resolve } = this.waiter;
      this.waiter = undefined;
      resolve({ value: chunk, done: false });
      return;
    }
    this.queue.push(chunk);
    this.queuedBytes += chunk.byteLength;
  }

  private onEnd(): void {
    if (this.parsed === undefined)
      this.fail(new Error('connection closed before the end of the response head'));
    else if (this.remaining !== Number.POSITIVE_INFINITY && this.remaining > 0)
      this.fail(new Error(`connection closed with ${this.remaining} bytes of the body missing`));
    else this.finish();
  }

  /** The body is complete (or no longer wanted): the iteration ends once the queue is taken. */
  private finish(): void {
    if (this.ended || this.failure !== undefined) return;
    this.ended = true;
    this.stop();
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.resolve({ value: undefined, done: true });
  }

  private fail(err: unknown): void {
    if (this.ended || this.failure !== undefined) return;
    this.failure = err;
    // A no-op once the head was taken.
    this.rejectHead(err);
    this.stop();
    this.socket.destroy();
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.reject(err);
  }

  private stop(): void {
    this.signal.removeEventListener('abort', this.onAbort);
    this.reader.close();
  }
}
