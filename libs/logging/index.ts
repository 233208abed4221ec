export type { Log } from './log.js';
export { childLog, silentLog } from './log.js';
export type { LogFormat, Logger, LoggerOptions } from './logger.js';
export { createLogger } from './logger.js';
