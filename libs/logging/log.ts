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

/** A logger that makes children carrying extra fields on every line, as winston's does. */
interface ParentLog extends Log {
  child(meta: Record<string, unknown>): Log;
}

function hasChild(log: Log): log is ParentLog {
  return typeof (log as Partial<ParentLog>).child === 'function';
}

/**
 * The logger of one module: every line it writes carries `module: name` (a namespace per module, as rascal's
 * `debug('rascal:Vhost')`), so messages need no hand-typed prefix. Uses the logger's own `child` where it
 * has one (winston); otherwise adds the field to each line's meta.
 */
export function childLog(log: Log, module: string): Log {
  if (log === silentLog) return silentLog;
  if (hasChild(log)) return log.child({ module });
  const meta = (extra: object | undefined) => ({ module, ...extra });
  return {
    error: (message, extra) => log.error(message, meta(extra)),
    warn: (message, extra) => log.warn(message, meta(extra)),
    info: (message, extra) => log.info(message, meta(extra)),
    debug: (message, extra) => log.debug(message, meta(extra)),
  };
}
