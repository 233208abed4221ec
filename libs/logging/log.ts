/**
 * The slice of a logger that libs use; a winston logger fits, and so does anything with these methods.
 * Libs take one of these in their options instead of building their own.
 */
export interface Log {
  error(message: string, meta?: object): unknown;
  warn(message: string, meta?: object): unknown;
  info(message: string, meta?: object): unknown;
  debug(message: string, meta?: object): unknown;
}

/** Says nothing: the default where a lib's caller gives no logger. */
export const silentLog: Log = {
  error() {},
  warn() {},
  info() {},
  debug() {},
};
