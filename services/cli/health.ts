import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { loadPeerConfig, loadSuperpeerConfig } from '../../libs/config/index.js';
import { describeError, P2PError } from '../../libs/errors/index.js';
import { createLazyLogger, type Log } from '../../libs/logging/index.js';
import {
  ErrorReplySchema,
  PROTOCOL_VERSION,
  SearchReplySchema,
  type SharedQueueType,
} from '../../libs/protocol/index.js';
import { openCliBroker } from './client.js';

/**
 * `p2p health`: the container healthcheck of each service (the image has no curl). It runs inside the
 * service's own container, with the service's environment, and exits 0 when the service does its job.
 */

const ReplySchema = z.union([SearchReplySchema, ErrorReplySchema]);

/** Requests sent before concluding that this superpeer does not answer while others do. */
const MAX_SUPERPEER_PROBES = 8;

/**
 * A superpeer is healthy when it serves searches: a search RPC through the shared queue is answered by
 * THIS superpeer (its id is in every reply). Superpeers are competing consumers that RabbitMQ serves in
 * turn, so a few sequential requests reach each of them; replies only from others mean this one is not
 * serving. The query is a random SHA-256: it matches nothing and costs the index one lookup.
 */
export async function superpeerHealth(options: {
  amqpUrl: string;
  namespace: string;
  queueType: SharedQueueType;
  superpeerId: string;
  timeoutMs: number;
  logger: Log;
}): Promise<string> {
  const { broker, rpc } = await openCliBroker({
    ...options,
    connectionName: `health ${options.superpeerId}`,
    topology: { queueType: options.queueType },
  });
  try {
    const others = new Set<string>();
    const deadline = Date.now() + options.timeoutMs;
    for (let probe = 0; probe < MAX_SUPERPEER_PROBES; probe++) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      const started = Date.now();
      const query = randomBytes(32).toString('hex');
      const reply = await rpc
        .call({ v: PROTOCOL_VERSION, type: 'rpc.search', query, limit: 1 }, ReplySchema, { timeoutMs: left })
        .catch((err: unknown) => {
          if (err instanceof P2PError && err.code === 'RPC_TIMEOUT') return undefined;
          throw err;
        });
      if (reply === undefined) break;
      if (reply.superpeerId === options.superpeerId) {
        if (!reply.ok)
          throw new P2PError('RPC_ERROR', `superpeer ${options.superpeerId}: ${reply.error.message}`);
        return `superpeer ${options.superpeerId} serves searches (answered in ${Date.now() - started} ms)`;
      }
      if (reply.superpeerId) others.add(reply.superpeerId);
    }
    throw new P2PError(
      'SUPERPEER_UNAVAILABLE',
      others.size > 0
        ? `superpeer ${options.superpeerId} did not answer searches (${[...others].join(', ')} did)`
        : `superpeer ${options.superpeerId} did not answer a search within ${options.timeoutMs} ms`,
    );
  } finally {
    rpc.close();
    await broker.close();
  }
}

const HealthzSchema = z.object({ ok: z.boolean() });

/** A peer is healthy when its HTTP server answers and it is connected to the broker (`GET /healthz`). */
export async function peerHealth(options: { url: string; timeoutMs: number }): Promise<string> {
  const base = options.url.endsWith('/') ? options.url.slice(0, -1) : options.url;
  let response: Response;
  try {
    response = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(options.timeoutMs) });
  } catch (err) {
    throw new P2PError('SUPERPEER_UNAVAILABLE', `peer at ${base} did not answer: ${describeError(err)}`);
  }
  const body = HealthzSchema.safeParse(await response.json().catch(() => undefined));
  if (response.status === 200 && body.success && body.data.ok) {
    return `peer at ${base} serves HTTP and is connected to the broker`;
  }
  throw new P2PError(
    'BROKER_CLOSED',
    `peer at ${base} answers HTTP ${response.status} but is not connected to the broker`,
  );
}

/** The check `p2p health <service>` runs, with the settings that service reads from `env`. */
export async function checkHealth(
  service: string,
  env: Record<string, string | undefined>,
  flags: { timeoutMs: number; url?: string },
): Promise<string> {
  if (service === 'superpeer') {
    const config = loadSuperpeerConfig(env);
    return superpeerHealth({
      amqpUrl: config.amqpUrl,
      namespace: config.namespace,
      queueType: config.queueType,
      superpeerId: config.superpeerId,
      timeoutMs: flags.timeoutMs,
      logger: createLazyLogger({
        service: 'health',
        level: 'error',
        format: config.logFormat,
        stream: process.stderr,
      }),
    });
  }
  if (service === 'peer') {
    let url = flags.url;
    if (url === undefined) {
      const config = loadPeerConfig(env);
      if (config.httpPort === 0) {
        throw new P2PError('USAGE', 'PEER_HTTP_PORT is 0 (any free port): name the peer with --url');
      }
      url = `http://127.0.0.1:${config.httpPort}`;
    }
    return peerHealth({ url, timeoutMs: flags.timeoutMs });
  }
  throw new P2PError('USAGE', `health: "${service}" is not a service (superpeer or peer)`);
}
