import { createRequire } from 'node:module';
import { inspect } from 'node:util';
import type winston from 'winston';
import { P2PError } from '../errors/index.js';
import type { Log } from './log.js';

/**
 * winston and its formats are loaded when the first logger is made, and the CLI makes its logger only
 * when a line is logged (`createLazyLogger`): loading them was about 40 ms of every `p2p` command's start
 * (`p2p --help` 0.27-0.30 s without, 0.30-0.36 s with).
 */
const requireHere = createRequire(import.meta.url);
let winstonLib: typeof winston | undefined;
function loadWinston(): typeof winston {
  winstonLib ??= requireHere('winston') as typeof winston;
  return winstonLib;
}

/** winston's npm levels (`winston.config.npm.levels`, checked by a test), known without loading it. */
export const NPM_LEVELS: Readonly<Record<string, number>> = {
  error: 0,
  warn: 1,
  info: 2,
  http: 3,
  verbose: 4,
  debug: 5,
  silly: 6,
};

function checkLevel(level: string): void {
  if (!Object.hasOwn(NPM_LEVELS, level)) {
    throw new P2PError(
      'CONFIG_INVALID',
      `log level must be one of ${Object.keys(NPM_LEVELS).join(', ')} (got "${level}")`,
      { details: { key: 'level' } },
    );
  }
}

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
  return loadWinston().format((info) => {
    for (const [key, value] of Object.entries(info)) {
      if (value instanceof Error) info[key] = plainError(value, 0, withStack);
    }
    return info;
  })();
}

function prettyLine(showStack: boolean, colors: boolean) {
  return loadWinston().format.printf((info) => {
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
  checkLevel(options.level);
  const winston = loadWinston();
  const levels = winston.config.npm.levels;
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

/** A `Log` that can make children, as a winston logger does (see `childLog`). */
export interface LazyLog extends Log {
  child(meta: Record<string, unknown>): LazyLog;
}

/**
 * `createLogger(options)`, made when the first line at `options.level` or above is logged: a command that
 * logs nothing never loads winston. The level is checked at once.
 */
export function createLazyLogger(options: LoggerOptions): LazyLog {
  checkLevel(options.level);
  const threshold = NPM_LEVELS[options.level]!;
  let root: Logger | undefined;
  const make = (meta: Record<string, unknown> | undefined): LazyLog => {
    let made: Logger | undefined;
    const target = (): Logger => {
      root ??= createLogger(options);
      made ??= meta === undefined ? root : root.child(meta);
      return made;
    };
    const at =
      (level: 'error' | 'warn' | 'info' | 'debug') =>
      (message: string, extra?: object): void => {
        if (NPM_LEVELS[level]! > threshold) return;
        // Passed on as it came: winston formats a message given a second argument (even undefined) as
        // util.format would (splat), a `%d` in it then NaN.
        if (extra === undefined) target()[level](message);
        else target()[level](message, extra);
      };
    return {
      error: at('error'),
      warn: at('warn'),
      info: at('info'),
      debug: at('debug'),
      child: (more) => make({ ...meta, ...more }),
    };
  };
  return make(undefined);
}
