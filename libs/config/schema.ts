import { hostname } from 'node:os';
import { z } from 'zod';
import { HttpUrlSchema, NamespaceSchemaPattern, NodeNameSchema } from '../protocol/index.js';

/**
 * One zod schema per service over the raw environment. Every field carries a description that completes
 * "<KEY>: must be …", so an error names the key and the rule in one line. Inputs are strings; an empty
 * value has already been dropped (empty = unset) before these run.
 */

/** setTimeout fires at once for a larger delay, so no duration may exceed it. */
const MAX_TIMER_MS = 2_147_483_647;

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
const QUEUE_TYPES = ['classic', 'quorum'] as const;

/** Decimal digits only: `Number()` alone would also take "0x10", "1e3" and " ". */
function integer(min: number, max: number) {
  return z
    .string()
    .regex(/^[0-9]+$/)
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));
}

function durationMs(min: number) {
  return integer(min, MAX_TIMER_MS);
}

const port = () => integer(0, 65535);

/** One of `values`, in any letter case; described as the list unless the caller describes it better. */
function oneOf<const T extends readonly [string, ...string[]]>(values: T, fallback: T[number]) {
  return z
    .string()
    .toLowerCase()
    .pipe(z.enum(values))
    .default(fallback)
    .describe(`one of ${values.join(', ')}`);
}

const booleanWord = () => z.stringbool({ truthy: ['true', '1', 'yes'], falsy: ['false', '0', 'no'] });

function isAmqpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'amqp:' || url.protocol === 'amqps:') && url.hostname !== '';
  } catch {
    return false;
  }
}

/** `sp-` + the host name, cut down to the peer-id charset so that it is a valid id on the wire. */
export function defaultSuperpeerId(host: string = hostname()): string {
  return `sp-${host.replace(/[^A-Za-z0-9._-]/g, '-')}`.slice(0, 64);
}

const commonShape = {
  AMQP_URL: z
    .string()
    .refine(isAmqpUrl)
    .default('amqp://guest:guest@127.0.0.1:5672')
    .describe('an amqp:// or amqps:// URL with a host'),
  P2P_NAMESPACE: z
    .string()
    .regex(NamespaceSchemaPattern)
    .default('p2p')
    .describe('1-64 of A-Z a-z 0-9 _ . -, starting with a letter or digit'),
  P2P_QUEUE_TYPE: oneOf(QUEUE_TYPES, 'classic').describe('classic (one broker) or quorum (a cluster)'),
  LOG_LEVEL: oneOf(LOG_LEVELS, 'info'),
  LOG_FORMAT: oneOf(LOG_FORMATS, 'auto'),
};

const superpeerShape = {
  SUPERPEER_ID: NodeNameSchema.default(() => defaultSuperpeerId()).describe(
    '1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit',
  ),
  SUPERPEER_PEER_TIMEOUT_MS: durationMs(1).default(6000).describe(`an integer from 1 to ${MAX_TIMER_MS}`),
  SUPERPEER_SWEEP_INTERVAL_MS: durationMs(1).default(1000).describe(`an integer from 1 to ${MAX_TIMER_MS}`),
  SUPERPEER_RPC_PREFETCH: integer(1, 1000).default(64).describe('an integer from 1 to 1000'),
  SUPERPEER_METRICS_PORT: port().optional().describe('an integer from 0 to 65535'),
  SUPERPEER_MAX_FILES_PER_PEER: integer(1, 10_000_000)
    .default(100_000)
    .describe('an integer from 1 to 10000000'),
  SUPERPEER_DECODE_WORKERS: integer(0, 16).optional().describe('an integer from 0 to 16'),
};

export const peerShape = {
  PEER_SHARE_DIR: z.string().min(1).default('./share').describe('a directory path'),
  PEER_HTTP_HOST: z
    .string()
    .regex(/^[^\s/]+$/)
    .default('0.0.0.0')
    .describe('a host name or IP address to listen on'),
  PEER_HTTP_PORT: port().default(0).describe('an integer from 0 (any free port) to 65535'),
  PEER_PUBLIC_URL: HttpUrlSchema.optional().describe('an http:// or https:// URL without credentials'),
  PEER_ADVERTISE_HOST: z
    .string()
    .regex(/^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$|^\[[0-9A-Fa-f:.]+\]$/)
    .optional()
    .describe('a host name, IPv4 address or [IPv6] address'),
  PEER_NAME: NodeNameSchema.optional().describe('1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit'),
  // Must be > 0: the superpeer drops a peer that stops sending heartbeats.
  PEER_HEARTBEAT_INTERVAL_MS: durationMs(1).default(2000).describe(`an integer from 1 to ${MAX_TIMER_MS}`),
  PEER_RESCAN_INTERVAL_MS: durationMs(0)
    .default(10_000)
    .describe(`an integer from 0 (no rescans) to ${MAX_TIMER_MS}`),
  PEER_MAX_TRANSFERS: integer(1, 1000).default(8).describe('an integer from 1 to 1000'),
  PEER_MAX_TRANSFERS_PER_CLIENT: integer(1, 1000).default(2).describe('an integer from 1 to 1000'),
  PEER_SLOW_READER_MIN_BYTES: integer(0, 1_073_741_824)
    .default(65_536)
    .describe('an integer from 0 (never cut a slow reader) to 1073741824'),
  PEER_SLOW_READER_WINDOW_MS: durationMs(1).default(20_000).describe(`an integer from 1 to ${MAX_TIMER_MS}`),
  PEER_HTTP_IDLE_TIMEOUT_MS: durationMs(1).default(30_000).describe(`an integer from 1 to ${MAX_TIMER_MS}`),
  PEER_SEARCH_TIMEOUT_MS: durationMs(1).default(2000).describe(`an integer from 1 to ${MAX_TIMER_MS}`),
  PEER_DEMO_FILES: booleanWord().default(false).describe('one of true, false, 1, 0, yes, no'),
  PEER_WEB_LOOPBACK_ONLY: booleanWord().default(false).describe('one of true, false, 1, 0, yes, no'),
};

const cliShape = {
  P2P_TIMEOUT_MS: durationMs(1).default(3000).describe(`an integer from 1 to ${MAX_TIMER_MS}`),
  P2P_PEER_URL: HttpUrlSchema.optional().describe('an http:// or https:// URL without credentials'),
};

export const SuperpeerEnvSchema = z.object({ ...commonShape, ...superpeerShape });
export const PeerEnvSchema = z.object({ ...commonShape, ...peerShape });
export const CliEnvSchema = z.object({ ...commonShape, ...cliShape });

function keysOf<T extends object>(shape: T): readonly (keyof T & string)[] {
  return Object.freeze(Object.keys(shape) as (keyof T & string)[]);
}

/**
 * Every environment key each service reads; `common` keys are read by all three. env/*.env and the docs must
 * list exactly these (a unit test checks).
 */
export const CONFIG_KEYS = Object.freeze({
  common: keysOf(commonShape),
  superpeer: keysOf(superpeerShape),
  peer: keysOf(peerShape),
  cli: keysOf(cliShape),
});
