/** The slice of a winston logger this lib uses; `meta` carries structured fields. */
export interface ShareLogger {
  warn(msg: string, meta?: object): void;
  info(msg: string, meta?: object): void;
  debug(msg: string, meta?: object): void;
}

export const silentLogger: ShareLogger = {
  warn() {},
  info() {},
  debug() {},
};
