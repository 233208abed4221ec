import type { Log } from '../libs/logging/index.js';

/**
 * Runs `close` once on SIGINT/SIGTERM, then exits 0; a second signal, or a close slower than
 * `graceMs`, exits at once with status 1.
 */
export function installShutdown(logger: Log, close: () => Promise<void>, graceMs = 8000): void {
  let closing = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (closing) {
      logger.warn('second signal: exiting now', { signal });
      process.exit(1);
    }
    closing = true;
    logger.info('shutting down', { signal });
    const timer = setTimeout(() => {
      logger.error('shutdown took too long; exiting', { graceMs });
      process.exit(1);
    }, graceMs);
    timer.unref();
    close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error('error while shutting down', {
          reason: err instanceof Error ? err.message : String(err),
        });
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}
