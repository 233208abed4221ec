/**
 * Every error the project raises on purpose carries a stable `code`. Tests assert the code, the CLI maps it
 * to an exit status, and logs carry it as a field. The message is for people and may change.
 */
export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'USAGE'
  | 'BROKER_UNREACHABLE'
  | 'BROKER_CLOSED'
  | 'PUBLISH_FAILED'
  | 'RPC_TIMEOUT'
  | 'RPC_ERROR'
  | 'SUPERPEER_UNAVAILABLE'
  | 'MESSAGE_INVALID'
  | 'LIMIT_EXCEEDED'
  | 'NOT_FOUND'
  | 'AMBIGUOUS'
  | 'NO_SOURCES'
  | 'HASH_MISMATCH'
  | 'DOWNLOAD_FAILED'
  | 'PATH_UNSAFE'
  | 'IO_ERROR';

/**
 * Set on P2PError's prototype, under a registered symbol: the command line is bundled
 * (scripts/bundle-cli.ts) and the services are not, so a process that runs a service through the bundle
 * (it imports them apart) holds two copies of this class, and `instanceof` must know an error made by
 * either. On the prototype and not enumerable: a copy of an error's fields (`{ ...err }`, as the logger
 * makes) is no P2PError, and inspecting one (a pretty log line, a crash) does not print the brand.
 */
const P2P_ERROR = Symbol.for('p2p-rabbit.P2PError');

export class P2PError extends Error {
  static override [Symbol.hasInstance](value: unknown): boolean {
    // A subclass (none yet) inherits this method: it keeps the ordinary check, not any P2PError.
    // biome-ignore lint/complexity/noThisInStatic: `this` is the class asked, P2PError or a subclass
    if (this !== P2PError) return Function.prototype[Symbol.hasInstance].call(this, value);
    return typeof value === 'object' && value !== null && P2P_ERROR in value;
  }

  readonly code: ErrorCode;
  /** Structured facts for logs (key names, peer ids…); never required to understand the message. */
  readonly details: Record<string, unknown>;

  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'P2PError';
    this.code = code;
    this.details = options.details ?? {};
  }
}

Object.defineProperty(P2PError.prototype, P2P_ERROR, { value: true });

export function isP2PError(err: unknown, code?: ErrorCode): err is P2PError {
  return err instanceof P2PError && (code === undefined || err.code === code);
}

/** One line for a log or a terminal, whatever was thrown. */
export function describeError(err: unknown): string {
  if (err instanceof P2PError) return `${err.code}: ${err.message}`;
  if (err instanceof Error) return err.message;
  return String(err);
}

/** Text shown in an error or a log must not leak the password of a URL in it (`//user:***@host`). */
export function redactCredentials(value: string): string {
  return value.replace(/(\/\/[^:/@\s]*:)[^@\s]*@/g, '$1***@');
}
