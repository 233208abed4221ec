import { type Command, InvalidArgumentError } from 'commander';
import type { CliConfig } from '../../libs/config/index.js';
import { P2PError } from '../../libs/errors/index.js';
import { createLazyLogger } from '../../libs/logging/index.js';
import type { SearchResult } from '../../libs/protocol/index.js';
import { parseQuery } from '../../libs/search/index.js';
import { Watcher } from '../../libs/watch/index.js';

export interface WatchFlags {
  json?: boolean;
  removed?: boolean;
  timeout?: number;
}

/** One line per change: `+` a file that now matches, `-` one that went away. */
export function formatMatch(event: 'added' | 'removed', file: SearchResult, json: boolean): string {
  if (json) {
    const { name, size, sha256, peerId, url } = file;
    return JSON.stringify({ event, name, size, sha256, peerId, url });
  }
  return `${event === 'added' ? '+' : '-'} ${file.name}  ${file.size} B  ${file.sha256.slice(0, 12)}…  ${file.peerId}  ${file.url}`;
}

/**
 * `p2p watch <words…|sha256>`: a standing search, printing every change until Ctrl-C (or SIGTERM), which
 * cancels the watch and exits 0. `config` gives the CLI's settings for the given flags.
 */
export function registerWatchCommand(program: Command, config: (flags: WatchFlags) => CliConfig): void {
  program
    .command('watch')
    .description('print files that newly match (words or a SHA-256) as peers share them, until Ctrl-C')
    .argument('<query...>', 'words, or a 64-hex SHA-256')
    .option('--json', 'one JSON object per line: {event, name, size, sha256, peerId, url}')
    .option('--removed', 'also print files that stop matching (removed, changed, or their peer left)')
    .option(
      '--timeout <ms>',
      'warn when no superpeer has accepted the watch after this long (P2P_TIMEOUT_MS)',
      (v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1 || n > 600_000)
          throw new InvalidArgumentError('a whole number from 1 to 600000');
        return n;
      },
    )
    .action(async (words: string[], flags: WatchFlags) => runWatch(words.join(' '), flags, config(flags)));
}

async function runWatch(query: string, flags: WatchFlags, config: CliConfig): Promise<void> {
  parseQuery(query); // USAGE before connecting
  const logger = createLazyLogger({
    service: 'cli',
    level: 'error',
    format: config.logFormat,
    stream: process.stderr,
  });
  const watcher = new Watcher({
    amqpUrl: config.amqpUrl,
    namespace: config.namespace,
    logger,
    connectionName: `cli watch ${process.pid}`,
    initialConnectRetries: 0,
  });
  await watcher.start();
  const watch = watcher.watch(query, { includeRemoved: flags.removed === true });
  const timeoutMs = flags.timeout ?? config.timeoutMs;

  await new Promise<void>((resolve, reject) => {
    let accepted = false;
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      clearTimeout(slow);
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    const slow = setTimeout(() => {
      if (!accepted)
        process.stderr.write(
          `no superpeer has accepted the watch within ${timeoutMs} ms; still waiting (it is registered again every few seconds)\n`,
        );
    }, timeoutMs);
    watch.on('accepted', (superpeerId) => {
      if (!accepted)
        process.stderr.write(`watching "${query}" (accepted by superpeer ${superpeerId}); Ctrl-C to stop\n`);
      accepted = true;
    });
    watch.on('refused', (superpeerId, code, message) => {
      if (accepted) {
        process.stderr.write(`superpeer ${superpeerId} refused the watch: ${message}\n`);
        return;
      }
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      clearTimeout(slow);
      reject(
        new P2PError(
          code === 'QUERY_INVALID' ? 'USAGE' : 'RPC_ERROR',
          `superpeer ${superpeerId} refused the watch: ${message}`,
        ),
      );
    });
    watch.on('overflow', (superpeerId, dropped) =>
      process.stderr.write(`superpeer ${superpeerId} dropped ${dropped} matches over the rate limit\n`),
    );
    watch.on('match', (event, file) => {
      process.stdout.write(`${formatMatch(event, file, flags.json === true)}\n`);
    });
  }).finally(() => watcher.close());
}
