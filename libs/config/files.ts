import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseDotenv } from 'dotenv';
import { parse as parseIni } from 'ini';
import { configError } from './errors.js';
import { peerShape } from './schema.js';

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw configError(path, `cannot read the ${what} (${reason})`, undefined, { file: path });
  }
}

/** Reads a dotenv file into a new object; process.env is left alone, the caller decides what wins. */
export function readEnvFile(path: string): Record<string, string> {
  return parseDotenv(readText(path, 'env file'));
}

/** Keys of the seed system's peer config; anything else is reported as unknown. */
const SEED_KEYS = ['IP', 'PORT', 'DIRECTORY', 'SUPERPEER'] as const;
type SeedKey = (typeof SEED_KEYS)[number];

function isSeedKey(key: string): key is SeedKey {
  return (SEED_KEYS as readonly string[]).includes(key);
}

/** `[::1]` in a URL, `localhost` as is. */
function urlHost(ip: string): string {
  return ip.includes(':') && !ip.startsWith('[') ? `[${ip}]` : ip;
}

function httpOrigin(ip: string, port: string): string | undefined {
  try {
    const url = new URL(`http://${urlHost(ip)}:${port}`);
    if (url.hostname === '' || url.pathname !== '/' || url.search !== '' || url.username !== '')
      return undefined;
    return url.origin;
  } catch {
    return undefined;
  }
}

/**
 * Parses the seed system's INI peer config (`p2p peer --config peer1.config`) into env-style keys:
 * `DIRECTORY` → PEER_SHARE_DIR (resolved against the INI file's directory), `PORT` → PEER_HTTP_PORT,
 * `IP` + `PORT` → PEER_PUBLIC_URL `http://IP:PORT`. Keys may sit in `[DEFAULT]` or at top level, in any case.
 * `SUPERPEER` and unknown keys or sections become warnings: an old config file must still start a peer.
 */
export function readSeedIni(path: string): { env: Record<string, string>; warnings: string[] } {
  const parsed = parseIni(readText(path, 'peer config file'));
  const warnings: string[] = [];
  const values: Partial<Record<SeedKey, string>> = {};

  const take = (entries: Record<string, unknown>) => {
    for (const [rawKey, value] of Object.entries(entries)) {
      const key = rawKey.toUpperCase();
      if (isSeedKey(key)) values[key] = String(value).trim();
      else warnings.push(`${path}: unknown key ${rawKey} is ignored`);
    }
  };
  const topLevel: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(parsed)) {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) topLevel[name] = value;
    else if (name.toUpperCase() !== 'DEFAULT') warnings.push(`${path}: section [${name}] is ignored`);
  }
  take(topLevel);
  // [DEFAULT] is read after the top level so that it wins when both give a key.
  for (const [name, value] of Object.entries(parsed)) {
    if (
      name.toUpperCase() === 'DEFAULT' &&
      value !== null &&
      typeof value === 'object' &&
      !Array.isArray(value)
    ) {
      take(value as Record<string, unknown>);
    }
  }

  const bad = (key: SeedKey, problem: string) =>
    configError(`${key} in ${path}`, problem, values[key], { key, file: path });
  const env: Record<string, string> = {};

  if (values.DIRECTORY !== undefined) {
    if (values.DIRECTORY === '') throw bad('DIRECTORY', 'must be a directory path');
    env.PEER_SHARE_DIR = resolve(dirname(path), values.DIRECTORY);
  }
  if (values.PORT !== undefined) {
    const port = peerShape.PEER_HTTP_PORT.safeParse(values.PORT);
    if (!port.success) throw bad('PORT', `must be ${peerShape.PEER_HTTP_PORT.description}`);
    env.PEER_HTTP_PORT = values.PORT;
  }
  if (values.IP !== undefined) {
    if (values.PORT === undefined) {
      warnings.push(`${path}: IP is ignored without PORT; the peer derives its public URL`);
    } else if (values.PORT === '0') {
      warnings.push(`${path}: IP is ignored with PORT = 0 (any free port); the peer derives its public URL`);
    } else {
      const origin = httpOrigin(values.IP, values.PORT);
      if (origin === undefined) throw bad('IP', 'must be a host name or IP address');
      env.PEER_PUBLIC_URL = origin;
    }
  }
  if (values.SUPERPEER !== undefined) {
    warnings.push(
      `${path}: SUPERPEER = ${values.SUPERPEER} is ignored: peers reach the superpeer through RabbitMQ ` +
        '(AMQP_URL), not by its address',
    );
  }
  return { env, warnings };
}
