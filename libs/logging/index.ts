export type { Log } from './log.js';
export { silentLog } from './log.js';
export type { LogFormat, Logger, LoggerOptions } from './logger.js';
export { createLogger } from './logger.js';
