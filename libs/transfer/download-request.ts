import http from 'node:http';
import https from 'node:https';
import { P2PError } from '../errors/index.js';
import type { AnswerHead } from './download-checks.js';
import { type DownloadFailureCode, SourceFailure, TakenOver } from './download-failure.js';
import { FALLBACK, rawGet } from './raw-http.js';
import { ReadSlabs } from './read-slabs.js';

export interface RequestLimits {
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  /** Fewer body bytes than this per second, averaged over an `idleTimeoutMs` window, is TOO_SLOW. */
  minRateBytesPerSecond: number;
}

/** A source's answer: status and headers for the checks, and its body (a stream of Buffers, no copy). */
export interface SourceAnswer extends AnswerHead {
  body: AsyncIterable<Buffer>;
  /** Drops the body unread. */
  cancel(): void;
}

/**
 * One HTTP request to a source, as both download paths make it: over a plain socket reading into `slabs`
 * (`rawGet`) for http: URLs, through node:http for https: and for the answers that path leaves to it (a
 * Transfer-Encoding). A deadline for the response headers, then
 * a window of `idleTimeoutMs` in which the body must bring at least a minimum number of bytes (none at all
 * is IDLE_TIMEOUT, a trickle is TOO_SLOW), every error classified as the failure the caller should record.
 */
export class SourceRequest {
  private readonly controller = new AbortController();
  private readonly signal: AbortSignal;
  private failed: SourceFailure | undefined;
  private timer: NodeJS.Timeout | undefined;
  private windowBytes = 0;

  constructor(
    /** The whole download's (or phase's, or segment's) signal: its abort wins over any source failure. */
    private readonly parent: AbortSignal | undefined,
    private readonly limits: RequestLimits,
    /** Where the body is read into (`HashWorker.slabs`, so that the hashing thread reads it in place). */
    private readonly slabs: ReadSlabs = new ReadSlabs(),
  ) {
    this.signal = parent ? AbortSignal.any([parent, this.controller.signal]) : this.controller.signal;
  }

  /**
   * Sends the request; resolves at the response headers. A redirect is refused (CONNECT_FAILED): a peer URL
   * is direct, and following one would let a peer point this client at any other address.
   */
  async open(url: string, headers: Record<string, string>): Promise<SourceAnswer> {
    const { connectTimeoutMs } = this.limits;
    this.timer = setTimeout(
      () => this.fail(new SourceFailure('CONNECT_TIMEOUT', `no response within ${connectTimeoutMs} ms`)),
      connectTimeoutMs,
    );
    try {
      const target = new URL(url);
      const client = target.protocol === 'http:' ? http : target.protocol === 'https:' ? https : undefined;
      if (client === undefined)
        throw new SourceFailure('CONNECT_FAILED', `not an http(s) URL: ${target.protocol}`);
      const raw = client === http ? await rawGet(target, headers, this.signal, this.slabs) : FALLBACK;
      if (raw !== FALLBACK) {
        refuseRedirect(raw.status, raw.cancel);
        return raw;
      }
      const response = await new Promise<http.IncomingMessage>((resolve, reject) => {
        const request = client.request(target, { headers, signal: this.signal }, resolve);
        request.once('error', reject);
        // node:http closes a request without an error on an answer it drops (a 101 nobody upgrades): a
        // promise waiting for 'response' or 'error' alone waited for ever, past every deadline (an abort of
        // a closed request is a no-op). After a response or an error, this is a no-op.
        request.once('close', () => reject(new Error('connection closed before a response')));
        request.end();
      });
      const status = response.statusCode ?? 0;
      refuseRedirect(status, () => response.destroy());
      // Errors surface through the body's iteration; this keeps one that arrives before it from going unhandled.
      response.on('error', () => {});
      return {
        status,
        header: (name) => {
          const value = response.headers[name];
          return value === undefined ? null : Array.isArray(value) ? value.join(', ') : value;
        },
        body: response,
        cancel: () => response.destroy(),
      };
    } catch (err) {
      throw this.classify(err, 'CONNECT_FAILED');
    } finally {
      clearTimeout(this.timer);
    }
  }

  /** The body's chunks, watched by the rate window. */
  async *chunks(body: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    const { idleTimeoutMs, minRateBytesPerSecond } = this.limits;
    const minWindowBytes = Math.ceil((minRateBytesPerSecond * idleTimeoutMs) / 1000);
    clearTimeout(this.timer);
    this.timer = setInterval(() => {
      const got = this.windowBytes;
      this.windowBytes = 0;
      if (got === 0) this.fail(new SourceFailure('IDLE_TIMEOUT', `no data for ${idleTimeoutMs} ms`));
      else if (got < minWindowBytes)
        this.fail(
          new SourceFailure(
            'TOO_SLOW',
            `${got} bytes in ${idleTimeoutMs} ms, below ${minRateBytesPerSecond} bytes/s`,
          ),
        );
    }, idleTimeoutMs);
    for await (const chunk of body) {
      this.windowBytes += chunk.byteLength;
      yield chunk;
    }
  }

  /** Whatever went wrong, as the error this source's caller should see. */
  classify(err: unknown, fallback: DownloadFailureCode): unknown {
    if (this.parent?.aborted) return this.parent.reason;
    if (err instanceof SourceFailure || err instanceof P2PError || err instanceof TakenOver) return err;
    if (this.failed) return this.failed;
    return new SourceFailure(fallback, describeFetchError(err));
  }

  /** Frees the connection whatever state the body is in; a no-op once it was read to the end. */
  close(): void {
    clearTimeout(this.timer);
    clearInterval(this.timer);
    this.controller.abort();
  }

  private fail(failure: SourceFailure): void {
    clearTimeout(this.timer);
    clearInterval(this.timer);
    this.failed = failure;
    this.controller.abort(failure);
  }
}

/** A peer URL is direct: following a redirect would let a peer point this client at any other address. */
function refuseRedirect(status: number, cancel: () => void): void {
  if (status < 300 || status >= 400) return;
  cancel();
  throw new SourceFailure('CONNECT_FAILED', `redirect refused (HTTP ${status})`);
}

/** Some errors carry the useful part (ECONNREFUSED, ECONNRESET…) in `cause`. */
function describeFetchError(err: unknown): string {
  if (err instanceof Error) {
    const cause = err.cause;
    if (cause instanceof Error) return `${err.message}: ${cause.message}`;
    return err.message;
  }
  return String(err);
}
