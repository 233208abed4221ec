import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';

export interface HttpServerOptions {
  /** Interface to bind. Default '0.0.0.0'. */
  host?: string;
  /** TCP port; 0 picks any free one (read it back from `RunningHttpServer.port`). */
  port: number;
  /**
   * A socket with no traffic either way for this long is destroyed; also the upper bound of the headers and
   * keep-alive timeouts. Default 30_000.
   */
  idleTimeoutMs?: number;
  /** Whole-request deadline. Default 0 = none: a large download on a slow link must not be cut. */
  requestTimeoutMs?: number;
  /** How long `close()` lets in-flight responses finish before destroying their sockets. Default 5_000. */
  closeGraceMs?: number;
}

export interface RunningHttpServer {
  /** The port actually bound (useful with port 0). */
  readonly port: number;
  readonly server: http.Server;
  /**
   * Stops accepting, closes idle keep-alive sockets, lets in-flight responses finish for up to
   * `closeGraceMs`, then destroys what is left. Resolves once every socket is gone; safe to call twice.
   */
  close(): Promise<void>;
}

const DEFAULT_HOST = '0.0.0.0';
const DEFAULT_IDLE_TIMEOUT_MS = 30_000;
const DEFAULT_CLOSE_GRACE_MS = 5_000;
/** Node's own defaults, kept unless the idle timeout is shorter. */
const NODE_HEADERS_TIMEOUT_MS = 60_000;
const NODE_KEEP_ALIVE_TIMEOUT_MS = 5_000;

/** Starts an HTTP server for `app`; rejects if the address cannot be bound (e.g. EADDRINUSE). */
export function startHttpServer(app: Express, options: HttpServerOptions): Promise<RunningHttpServer> {
  const host = options.host ?? DEFAULT_HOST;
  const idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const requestTimeoutMs = options.requestTimeoutMs ?? 0;
  const closeGraceMs = options.closeGraceMs ?? DEFAULT_CLOSE_GRACE_MS;
  let headersTimeoutMs = Math.min(NODE_HEADERS_TIMEOUT_MS, idleTimeoutMs);
  // Node refuses a headers timeout longer than a (non-zero) request timeout.
  if (requestTimeoutMs > 0) headersTimeoutMs = Math.min(headersTimeoutMs, requestTimeoutMs);

  const server = http.createServer(
    {
      requestTimeout: requestTimeoutMs,
      headersTimeout: headersTimeoutMs,
      keepAliveTimeout: Math.min(NODE_KEEP_ALIVE_TIMEOUT_MS, idleTimeoutMs),
    },
    app,
  );
  server.setTimeout(idleTimeoutMs);

  let closing: Promise<void> | undefined;
  server.prependListener('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
    // While closing, a keep-alive socket must not wait for a next request once its response is done.
    if (closing !== undefined && !res.headersSent) res.setHeader('Connection', 'close');
    res.once('finish', () => {
      if (closing !== undefined) setImmediate(() => server.closeIdleConnections());
    });
  });

  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      server.removeListener('listening', onListening);
      reject(err);
    };
    const onListening = (): void => {
      server.removeListener('error', onError);
      const port = (server.address() as AddressInfo).port;
      resolve({
        port,
        server,
        close(): Promise<void> {
          closing ??= new Promise<void>((done) => {
            const force = setTimeout(() => server.closeAllConnections(), closeGraceMs);
            force.unref();
            server.close(() => {
              clearTimeout(force);
              done();
            });
            server.closeIdleConnections();
          });
          return closing;
        },
      });
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(options.port, host);
  });
}
