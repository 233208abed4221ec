import { inspect } from 'node:util';
import winston from 'winston';
import { P2PError } from '../errors/index.js';

export type Logger = winston.Logger;

export type LogFormat = 'auto' | 'json' | 'pretty';

export interface LoggerOptions {
  /** Written into every line as `service`. */
  service: 'superpeer' | 'peer' | 'cli' | (string & {});
  /** One of winston's npm levels (error, warn, info, http, verbose, debug, silly). */
  level: string;
  /** `auto`: JSON lines unless the stream is a TTY, where lines are colorized and human-readable. */
  format: LogFormat;
  /** Whether the stream is a terminal, for `auto`; default: the stream's own `isTTY`. */
  isTty?: boolean;
  /** Written into every line, e.g. `{ peerId }` or `{ superpeerId }`. */
  defaultMeta?: Record<string, unknown>;
  /** Where lines go; default process.stderr for `cli` (its stdout is for results), process.stdout otherwise. */
  stream?: NodeJS.WritableStream;
}

/** Fields the pretty format prints in fixed places rather than in the trailing meta. */
const PRETTY_FIXED_FIELDS = new Set([
  'level',
  'message',
  'timestamp',
  'service',
  'peerId',
  'superpeerId',
  'module',
  'stack',
]);

/** Deep enough for a wrapped error chain, shallow enough that a cyclic cause cannot loop. */
const MAX_CAUSE_DEPTH = 4;

/** JSON.stringify drops an Error's message and stack (not enumerable); logs need them. */
function plainError(err: Error, depth: number, withStack: boolean): Record<string, unknown> {
  // Own enumerable fields carry `code` and `details` (P2PError, Node system errors).
  const plain: Record<string, unknown> = { ...err, name: err.name, message: err.message };
  if (withStack && err.stack !== undefined) plain.stack = err.stack;
  if (err.cause !== undefined) {
    plain.cause =
      err.cause instanceof Error && depth < MAX_CAUSE_DEPTH
        ? plainError(err.cause, depth + 1, withStack)
        : String(err.cause);
  }
  return plain;
}

/** Winston's `errors` format only handles an Error passed as the message; this covers `{ err }` style meta. */
function errorsInMeta(withStack: boolean) {
  return winston.format((info) => {
    for (const [key, value] of Object.entries(info)) {
      if (value instanceof Error) info[key] = plainError(value, 0, withStack);
    }
    return info;
  })();
}

function prettyLine(showStack: boolean, colors: boolean) {
  return winston.format.printf((info) => {
    const who = [info.service, info.peerId ?? info.superpeerId]
      .filter((part) => part !== undefined)
      .join(' ');
    const meta: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(info)) {
      if (!PRETTY_FIXED_FIELDS.has(key)) meta[key] = value;
    }
    const metaText =
      Object.keys(meta).length === 0 ? '' : ` ${inspect(meta, { breakLength: Infinity, depth: 4, colors })}`;
    const stack = showStack && typeof info.stack === 'string' ? `\n${info.stack}` : '';
    const module = typeof info.module === 'string' ? `${info.module}: ` : '';
    return `${info.timestamp} ${info.level} [${who}] ${module}${String(info.message)}${metaText}${stack}`;
  });
}

/**
 * A winston logger writing one line per entry: JSON lines for machines (not a TTY, or `format: 'json'`),
 * `time level [service peerId] module: message {meta}` for people. `logger.child({ correlationId })` adds fields to
 * every line of the child.
 */
export function createLogger(options: LoggerOptions): Logger {
  const levels = winston.config.npm.levels;
  if (!Object.hasOwn(levels, options.level)) {
    throw new P2PError(
      'CONFIG_INVALID',
      `log level must be one of ${Object.keys(levels).join(', ')} (got "${options.level}")`,
      { details: { key: 'level' } },
    );
  }
  const stream = options.stream ?? (options.service === 'cli' ? process.stderr : process.stdout);
  const isTty = options.isTty ?? (stream as { isTTY?: boolean }).isTTY === true;
  const pretty = options.format === 'pretty' || (options.format === 'auto' && isTty);
  // A stack on every warning buries a terminal; it is there when someone asks for debug.
  const prettyStacks = options.level === 'debug' || options.level === 'silly';
  const { combine, errors, splat, timestamp, json, colorize } = winston.format;

  const format = pretty
    ? combine(
        errors({ stack: true }),
        splat(),
        errorsInMeta(prettyStacks),
        timestamp({ format: 'HH:mm:ss.SSS' }),
        ...(isTty ? [colorize({ level: true })] : []),
        prettyLine(prettyStacks, isTty),
      )
    : combine(errors({ stack: true }), splat(), errorsInMeta(true), timestamp(), json());

  return winston.createLogger({
    level: options.level,
    levels,
    defaultMeta: { ...options.defaultMeta, service: options.service },
    format,
    transports: [new winston.transports.Stream({ stream })],
  });
}
