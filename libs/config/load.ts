import type { z } from 'zod';
import { configError } from './errors.js';
import { readSeedIni } from './files.js';
import { CliEnvSchema, CONFIG_KEYS, PeerEnvSchema, SuperpeerEnvSchema } from './schema.js';

export type Env = Record<string, string | undefined>;

export interface CommonConfig {
  /** AMQP_URL, default `amqp://guest:guest@127.0.0.1:5672`. */
  amqpUrl: string;
  /** P2P_NAMESPACE, default `p2p`: prefix of every exchange and queue, so networks can share a broker. */
  namespace: string;
  /** P2P_QUEUE_TYPE, default `classic`; `quorum` on a RabbitMQ cluster. Every node must use the same. */
  queueType: 'classic' | 'quorum';
  /** LOG_LEVEL, default `info`. */
  logLevel: 'error' | 'warn' | 'info' | 'debug';
  /** LOG_FORMAT, default `auto`: JSON lines when the log stream is not a TTY. */
  logFormat: 'auto' | 'json' | 'pretty';
}

export interface SuperpeerConfig extends CommonConfig {
  /** SUPERPEER_ID, default `sp-<hostname>`. */
  superpeerId: string;
  /** SUPERPEER_PEER_TIMEOUT_MS, default 6000: a peer silent for this long is dropped. */
  peerTimeoutMs: number;
  /** SUPERPEER_SWEEP_INTERVAL_MS, default 1000: how often silent peers are looked for. */
  sweepIntervalMs: number;
  /** SUPERPEER_RPC_PREFETCH, default 64: unacknowledged RPC requests at a time. */
  rpcPrefetch: number;
  /** SUPERPEER_MAX_FILES_PER_PEER, default 100000: a peer announcing more is refused (dead-lettered). */
  maxFilesPerPeer: number;
  /** SUPERPEER_METRICS_PORT, default unset: no metrics server. */
  metricsPort: number | undefined;
  /**
   * SUPERPEER_DECODE_WORKERS, default unset (one less than the cores, 1 to 4): threads that parse, validate
   * and verify peer events off the main thread; 0 decodes each event in its turn on the main thread.
   */
  decodeWorkers: number | undefined;
}

export interface PeerConfig extends CommonConfig {
  /** PEER_SHARE_DIR, default `./share` (relative to the working directory; to the INI file for DIRECTORY). */
  shareDir: string;
  /** PEER_HTTP_HOST, default `0.0.0.0`. */
  httpHost: string;
  /** PEER_HTTP_PORT, default 0 (any free port). */
  httpPort: number;
  /** PEER_PUBLIC_URL, default unset: the service derives it from PEER_ADVERTISE_HOST and the port. */
  publicUrl: string | undefined;
  /** PEER_ADVERTISE_HOST, default unset: this machine's host name (the container's, in compose). */
  advertiseHost: string | undefined;
  /**
   * PEER_NAME (formerly PEER_ID, still read with a warning), default unset: the display name, kept in the
   * share. The peer id itself is derived from the peer's key.
   */
  name: string | undefined;
  /** PEER_HEARTBEAT_INTERVAL_MS, default 2000. */
  heartbeatIntervalMs: number;
  /** PEER_RESCAN_INTERVAL_MS, default 10000; 0 disables periodic rescans. */
  rescanIntervalMs: number;
  /** PEER_MAX_TRANSFERS, default 8: concurrent uploads served. */
  maxTransfers: number;
  /** PEER_MAX_TRANSFERS_PER_CLIENT, default 2: concurrent uploads served to one client address. */
  maxTransfersPerClient: number;
  /**
   * PEER_SLOW_READER_MIN_BYTES, default 65536: an upload whose client accepts fewer bytes than this over
   * `slowReaderWindowMs` while data waits for it is cut, freeing its slot; 0 never cuts one.
   */
  slowReaderMinBytes: number;
  /** PEER_SLOW_READER_WINDOW_MS, default 20000: the window of `slowReaderMinBytes`. */
  slowReaderWindowMs: number;
  /** PEER_HTTP_IDLE_TIMEOUT_MS, default 30000. */
  httpIdleTimeoutMs: number;
  /** PEER_SEARCH_TIMEOUT_MS, default 2000. */
  searchTimeoutMs: number;
  /** PEER_DEMO_FILES, default false: put a few demo files in an empty share. */
  demoFiles: boolean;
  /** PEER_WEB_LOOPBACK_ONLY, default false: the page and /api answer loopback connections only (/files stays public). */
  webLoopbackOnly: boolean;
  /** Things worth a log line that did not stop the peer (ignored INI keys, unknown PEER_* keys…). */
  warnings: string[];
}

export interface CliConfig extends CommonConfig {
  /** P2P_TIMEOUT_MS, default 3000. */
  timeoutMs: number;
  /** P2P_PEER_URL, default unset: a peer whose HTTP API the CLI may ask. */
  peerUrl: string | undefined;
}

/** The keys a schema reads, trimmed, with empty values dropped: empty means unset. */
function setValues(env: Env, keys: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of keys) {
    const value = env[key]?.trim();
    if (value !== undefined && value !== '') out[key] = value;
  }
  return out;
}

function parseEnv<S extends z.ZodObject>(schema: S, input: Record<string, string>): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  // Fields are checked in shape order, so the first issue is the first bad key.
  const issue = result.error.issues[0]!;
  const key = String(issue.path[0]);
  const description = (schema.shape as Record<string, z.ZodType | undefined>)[key]?.description;
  throw configError(key, description === undefined ? issue.message : `must be ${description}`, input[key], {
    key,
  });
}

type SuperpeerEnv = z.output<typeof SuperpeerEnvSchema>;
type PeerEnv = z.output<typeof PeerEnvSchema>;
type CliEnv = z.output<typeof CliEnvSchema>;

/** Which environment key each config field is read from, per service; `common` for all three. */
const FIELD_KEYS = {
  common: {
    amqpUrl: 'AMQP_URL',
    namespace: 'P2P_NAMESPACE',
    queueType: 'P2P_QUEUE_TYPE',
    logLevel: 'LOG_LEVEL',
    logFormat: 'LOG_FORMAT',
  },
  superpeer: {
    superpeerId: 'SUPERPEER_ID',
    peerTimeoutMs: 'SUPERPEER_PEER_TIMEOUT_MS',
    sweepIntervalMs: 'SUPERPEER_SWEEP_INTERVAL_MS',
    rpcPrefetch: 'SUPERPEER_RPC_PREFETCH',
    maxFilesPerPeer: 'SUPERPEER_MAX_FILES_PER_PEER',
    metricsPort: 'SUPERPEER_METRICS_PORT',
    decodeWorkers: 'SUPERPEER_DECODE_WORKERS',
  },
  peer: {
    shareDir: 'PEER_SHARE_DIR',
    httpHost: 'PEER_HTTP_HOST',
    httpPort: 'PEER_HTTP_PORT',
    publicUrl: 'PEER_PUBLIC_URL',
    advertiseHost: 'PEER_ADVERTISE_HOST',
    name: 'PEER_NAME',
    heartbeatIntervalMs: 'PEER_HEARTBEAT_INTERVAL_MS',
    rescanIntervalMs: 'PEER_RESCAN_INTERVAL_MS',
    maxTransfers: 'PEER_MAX_TRANSFERS',
    maxTransfersPerClient: 'PEER_MAX_TRANSFERS_PER_CLIENT',
    slowReaderMinBytes: 'PEER_SLOW_READER_MIN_BYTES',
    slowReaderWindowMs: 'PEER_SLOW_READER_WINDOW_MS',
    httpIdleTimeoutMs: 'PEER_HTTP_IDLE_TIMEOUT_MS',
    searchTimeoutMs: 'PEER_SEARCH_TIMEOUT_MS',
    demoFiles: 'PEER_DEMO_FILES',
    webLoopbackOnly: 'PEER_WEB_LOOPBACK_ONLY',
  },
  cli: { timeoutMs: 'P2P_TIMEOUT_MS', peerUrl: 'P2P_PEER_URL' },
} as const satisfies {
  common: Record<keyof CommonConfig, keyof SuperpeerEnv & keyof PeerEnv & keyof CliEnv>;
  superpeer: Record<Exclude<keyof SuperpeerConfig, keyof CommonConfig>, keyof SuperpeerEnv>;
  peer: Record<Exclude<keyof PeerConfig, keyof CommonConfig | 'warnings'>, keyof PeerEnv>;
  cli: Record<Exclude<keyof CliConfig, keyof CommonConfig>, keyof CliEnv>;
};

/** The config fields `fields` names, each with the parsed value of its environment key. */
function pickFields<E, const F extends Record<string, keyof E>>(
  env: E,
  fields: F,
): { [K in keyof F]: E[F[K]] } {
  return Object.fromEntries(Object.entries(fields).map(([field, key]) => [field, env[key]])) as {
    [K in keyof F]: E[F[K]];
  };
}

/** Throws P2PError CONFIG_INVALID naming the first bad key. */
export function loadSuperpeerConfig(env: Env): SuperpeerConfig {
  const parsed = parseEnv(
    SuperpeerEnvSchema,
    setValues(env, [...CONFIG_KEYS.common, ...CONFIG_KEYS.superpeer]),
  );
  return { ...pickFields(parsed, FIELD_KEYS.common), ...pickFields(parsed, FIELD_KEYS.superpeer) };
}

/**
 * Throws P2PError CONFIG_INVALID naming the first bad key. With `iniFile` (the seed system's peer config),
 * the INI gives values for keys the environment leaves unset: a real env value always wins, key by key. If
 * the environment moves PEER_HTTP_PORT, the INI's public URL follows it so the peer never advertises a port
 * it does not listen on.
 */
export function loadPeerConfig(env: Env, options: { iniFile?: string } = {}): PeerConfig {
  const keys: readonly string[] = [...CONFIG_KEYS.common, ...CONFIG_KEYS.peer];
  const fromEnv = setValues(env, keys);
  const warnings: string[] = [];
  let input = fromEnv;

  if (options.iniFile !== undefined) {
    const ini = readSeedIni(options.iniFile);
    warnings.push(...ini.warnings);
    input = { ...ini.env, ...fromEnv };
    const iniUrl = ini.env.PEER_PUBLIC_URL;
    const envPort = fromEnv.PEER_HTTP_PORT;
    if (iniUrl !== undefined && fromEnv.PEER_PUBLIC_URL === undefined && envPort !== undefined) {
      if (envPort === '0') {
        delete input.PEER_PUBLIC_URL;
        warnings.push(
          `${options.iniFile}: IP is ignored because PEER_HTTP_PORT=0 (any free port); the peer derives its public URL`,
        );
      } else if (/^[0-9]+$/.test(envPort) && envPort !== ini.env.PEER_HTTP_PORT) {
        const url = new URL(iniUrl);
        url.port = envPort;
        input.PEER_PUBLIC_URL = url.origin;
      }
    }
  }

  for (const key of Object.keys(env)) {
    if (key.startsWith('PEER_') && !keys.includes(key) && key !== 'PEER_ID')
      warnings.push(`unknown setting ${key} is ignored`);
  }
  const legacyId = env.PEER_ID?.trim();
  if (legacyId) {
    // Ids are derived from keys now: what PEER_ID used to set is the display name.
    if (input.PEER_NAME === undefined) input.PEER_NAME = legacyId;
    warnings.push('PEER_ID is read as PEER_NAME (a display name): the peer id is derived from its key');
  }

  const parsed = parseEnv(PeerEnvSchema, input);
  return { ...pickFields(parsed, FIELD_KEYS.common), ...pickFields(parsed, FIELD_KEYS.peer), warnings };
}

/** Throws P2PError CONFIG_INVALID naming the first bad key. */
export function loadCliConfig(env: Env): CliConfig {
  const parsed = parseEnv(CliEnvSchema, setValues(env, [...CONFIG_KEYS.common, ...CONFIG_KEYS.cli]));
  return { ...pickFields(parsed, FIELD_KEYS.common), ...pickFields(parsed, FIELD_KEYS.cli) };
}
