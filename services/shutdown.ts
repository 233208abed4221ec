import type { Log } from '../libs/logging/index.js';

/**
 * The one place where a service's process ends. On SIGINT/SIGTERM it runs `close` once, then exits 0; a
 * second signal, or a close slower than `graceMs`, exits at once with status 1. An unhandled rejection or an
 * uncaught exception is logged with its stack and ends the process the same way, with status 1: the state
 * after a bug is unknown, so the service leaves (peers announce their leave) rather than limp on.
 */
export function installShutdown(logger: Log, close: () => Promise<void>, graceMs = 8000): void {
  let closing = false;
  const shutdown = (exitCode: 0 | 1, why: Record<string, unknown>) => {
    if (closing) {
      logger.warn('second shutdown request: exiting now', why);
      process.exit(1);
    }
    closing = true;
    logger.info('shutting down', why);
    const timer = setTimeout(() => {
      logger.error('shutdown took too long; exiting', { graceMs });
      process.exit(1);
    }, graceMs);
    timer.unref();
    close().then(
      () => process.exit(exitCode),
      (err: unknown) => {
        logger.error('error while shutting down', {
          reason: err instanceof Error ? err.message : String(err),
        });
        process.exit(1);
      },
    );
  };
  const onFatal = (kind: string) => (err: unknown) => {
    logger.error(`fatal: ${kind}`, {
      reason: err instanceof Error ? err.message : String(err),
      ...(err instanceof Error && err.stack ? { stack: err.stack } : {}),
    });
    shutdown(1, { reason: kind });
  };
  process.on('SIGINT', (signal) => shutdown(0, { signal }));
  process.on('SIGTERM', (signal) => shutdown(0, { signal }));
  process.on('unhandledRejection', onFatal('unhandled rejection'));
  process.on('uncaughtException', onFatal('uncaught exception'));
}
