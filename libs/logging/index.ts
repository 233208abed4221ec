export type { LogFormat, Logger, LoggerOptions } from './logger.js';
export { createLogger } from './logger.js';
