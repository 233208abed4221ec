export { BurstLog, type BurstLogOptions } from './burst.js';
export type { Log } from './log.js';
export { childLog, silentLog } from './log.js';
export type { LazyLog, LogFormat, Logger, LoggerOptions } from './logger.js';
export { createLazyLogger, createLogger, NPM_LEVELS } from './logger.js';
