/** Why one source did not (fully) serve the file; stable, for logs and tests. */
export type DownloadFailureCode =
  /** No response: refused, unreachable, reset before the headers, redirect. */
  | 'CONNECT_FAILED'
  /** No response headers within `connectTimeoutMs`. */
  | 'CONNECT_TIMEOUT'
  /** No body bytes for `idleTimeoutMs`. */
  | 'IDLE_TIMEOUT'
  /**
   * Too slow to keep: fewer than `minRateBytesPerSecond` over an `idleTimeoutMs` window, or, in a parallel
   * download, far slower than the source that took its range over.
   */
  | 'TOO_SLOW'
  /** The body broke off (connection reset or closed early). */
  | 'CONNECTION_LOST'
  /** 503: the peer is serving as many transfers as it allows. */
  | 'BUSY'
  /** Any other status than 200/206/503. */
  | 'HTTP_STATUS'
  /** The source's ETag names other content than the expected SHA-256. */
  | 'ETAG_MISMATCH'
  /** Content-Length or Content-Range total is not the expected size, or the body ran past it. */
  | 'SIZE_MISMATCH'
  /**
   * A 206 for other bytes than those asked for (or answering a request without Range), or the whole file
   * (200) answering a request for one segment of a parallel download.
   */
  | 'BAD_RANGE'
  /** The source served bytes of an attempt whose result did not hash to the expected SHA-256. */
  | 'HASH_MISMATCH';

export interface DownloadFailure {
  peerId: string;
  url: string;
  code: DownloadFailureCode;
  message: string;
}

/** One source's failure; `retryAfterMs` is set for BUSY. */
export class SourceFailure extends Error {
  constructor(
    readonly code: DownloadFailureCode,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'SourceFailure';
  }
}

/**
 * The reason a request is cancelled when another source already delivered its bytes (the loser of an end
 * game race): not a failure of anyone.
 */
export class TakenOver extends Error {
  constructor() {
    super('another source delivered these bytes first');
    this.name = 'TakenOver';
  }
}
