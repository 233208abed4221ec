import path from 'node:path';
import Table from 'cli-table3';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import prettyBytes from 'pretty-bytes';
import { type CliConfig, loadCliConfig, readEnvFile } from '../../libs/config/index.js';
import { describeError, type ErrorCode, isP2PError, P2PError } from '../../libs/errors/index.js';
import { createLazyLogger } from '../../libs/logging/index.js';
import { displayText, MAX_SEARCH_LIMIT, type SearchResult, Sha256Schema } from '../../libs/protocol/index.js';
import {
  connectAmqpClient,
  type NetworkClient,
  peerHttpClient,
  type SearchOutcome,
  setupNetwork,
} from './client.js';
import { prepareOutDir, runDownload } from './get.js';
import { registerWatchCommand } from './watch.js';

/** Exit statuses are part of the CLI's contract (README). */
export const EXIT = {
  ok: 0,
  notFound: 1,
  usage: 2,
  unreachable: 3,
  downloadFailed: 4,
  interrupted: 130,
} as const;

const EXIT_BY_CODE: Partial<Record<ErrorCode, number>> = {
  USAGE: EXIT.usage,
  CONFIG_INVALID: EXIT.usage,
  AMBIGUOUS: EXIT.usage,
  NOT_FOUND: EXIT.notFound,
  BROKER_UNREACHABLE: EXIT.unreachable,
  BROKER_CLOSED: EXIT.unreachable,
  RPC_TIMEOUT: EXIT.unreachable,
  SUPERPEER_UNAVAILABLE: EXIT.unreachable,
  PUBLISH_FAILED: EXIT.unreachable,
  RPC_ERROR: EXIT.unreachable,
  NO_SOURCES: EXIT.downloadFailed,
  DOWNLOAD_FAILED: EXIT.downloadFailed,
  HASH_MISMATCH: EXIT.downloadFailed,
  IO_ERROR: EXIT.downloadFailed,
};

function positiveInt(max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > max)
      throw new InvalidArgumentError(`a whole number from 1 to ${max}`);
    return n;
  };
}

function httpUrl(value: string): string {
  try {
    const url = new URL(value);
    if (url.protocol === 'http:' || url.protocol === 'https:') return value;
  } catch {}
  throw new InvalidArgumentError('an http(s) URL');
}

interface NetworkFlags {
  timeout?: number;
  peer?: string;
}

/** Environment as the services see it: a dotenv file named by --env-file, overridden by the real environment. */
function environment(envFile: string | undefined): Record<string, string | undefined> {
  return envFile ? { ...readEnvFile(envFile), ...process.env } : { ...process.env };
}

function cliConfig(program: Command, flags: NetworkFlags): CliConfig {
  const config = loadCliConfig(environment(program.opts<{ envFile?: string }>().envFile));
  return {
    ...config,
    timeoutMs: flags.timeout ?? config.timeoutMs,
    peerUrl: flags.peer ?? config.peerUrl,
  };
}

async function withClient<T>(config: CliConfig, work: (client: NetworkClient) => Promise<T>): Promise<T> {
  // Library logs go to stderr and only when they matter, so stdout stays clean for tables and --json.
  const logger = createLazyLogger({
    service: 'cli',
    level: 'error',
    format: config.logFormat,
    stream: process.stderr,
  });
  const client = config.peerUrl
    ? peerHttpClient(config.peerUrl, config.timeoutMs)
    : await connectAmqpClient({
        amqpUrl: config.amqpUrl,
        namespace: config.namespace,
        queueType: config.queueType,
        timeoutMs: config.timeoutMs,
        logger,
      });
  try {
    return await work(client);
  } finally {
    await client.close();
  }
}

function staleNotice(outcome: SearchOutcome): void {
  if (outcome.source === 'network-view') {
    process.stderr.write(
      `superpeer unavailable (${outcome.superpeerError ?? 'no answer'}): results come from the peer's own view and may be stale\n`,
    );
  }
}

/** Sizes as people read them, in binary units (1.5 KiB, 2.4 MiB). */
function formatBytes(bytes: number): string {
  return prettyBytes(bytes, { binary: true });
}

/** A peer as a person reads it: its chosen name (not unique) and the start of its id (unique). */
function peerLabel(peerId: string, name: string | undefined): string {
  return name === undefined ? peerId.slice(0, 12) : `${name} (${peerId.slice(0, 8)})`;
}

/** Colours only on a terminal: piped output stays plain text. */
function table(head: string[]): Table.Table {
  const tty = process.stdout.isTTY === true;
  return new Table({ head, style: tty ? {} : { head: [], border: [] } });
}

function printResults(results: SearchResult[], truncated: boolean): void {
  const rows = table(['name', 'size', 'sha256', 'peer', 'url']);
  for (const result of results) {
    rows.push([
      displayText(result.name),
      formatBytes(result.size),
      `${result.sha256.slice(0, 12)}…`,
      peerLabel(result.peerId, result.peerName),
      result.url,
    ]);
  }
  process.stdout.write(`${rows.toString()}\n`);
  process.stdout.write(
    `${results.length} result${results.length === 1 ? '' : 's'}${truncated ? ' (more matched: raise --limit)' : ''}\n`,
  );
}

/**
 * Picks the file `p2p get` means: a SHA-256, or a name (exact path, then exact base name, then the search
 * words). Several different contents under that name are ambiguous: the user picks by hash.
 */
export function chooseTarget(target: string, results: SearchResult[]): { sha256: string; name: string } {
  const isSha = Sha256Schema.safeParse(target.toLowerCase()).success;
  const lower = target.toLowerCase();
  const basename = (name: string) => name.slice(name.lastIndexOf('/') + 1);
  const candidates = isSha
    ? results.filter((result) => result.sha256 === lower)
    : ([
        results.filter((result) => result.name === target),
        results.filter((result) => basename(result.name) === target),
        results.filter(
          (result) => result.name.toLowerCase() === lower || basename(result.name).toLowerCase() === lower,
        ),
        results,
      ].find((list) => list.length > 0) ?? []);
  const first = candidates[0];
  if (!first) throw new P2PError('NOT_FOUND', `nothing on the network matches "${target}"`);
  const distinct = new Map(candidates.map((result) => [result.sha256, result]));
  if (distinct.size > 1) {
    const lines = [...distinct.values()].map(
      (result) => `  ${result.sha256}  ${displayText(result.name)} (${formatBytes(result.size)})`,
    );
    throw new P2PError(
      'AMBIGUOUS',
      `"${displayText(target)}" matches ${distinct.size} different files; name one by its sha256:\n${lines.join('\n')}`,
    );
  }
  return { sha256: first.sha256, name: basename(first.name) };
}

/** Set by the commands that start a service: the process then lives on after `main` resolves. */
let runsService = false;

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('p2p')
    .description('Peer-to-peer file sharing over RabbitMQ: run a superpeer or a peer, search, download.')
    .option('--env-file <path>', 'read settings from this dotenv file (the real environment wins)')
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeErr: (text) => process.stderr.write(text) });

  program
    .command('superpeer')
    .description('run a superpeer: keeps the index, rebroadcasts changes, answers searches')
    .action(async () => {
      runsService = true;
      const { runSuperpeer } = await import('../superpeer/main.js');
      await runSuperpeer(environment(program.opts<{ envFile?: string }>().envFile));
    });

  program
    .command('peer')
    .description('run a peer: shares PEER_SHARE_DIR over HTTP and announces it to the network')
    .option('--config <file>', "the seed system's INI peer config (IP, PORT, DIRECTORY, SUPERPEER)")
    .action(async (flags: { config?: string }) => {
      runsService = true;
      const { runPeer } = await import('../peer/main.js');
      await runPeer(
        environment(program.opts<{ envFile?: string }>().envFile),
        flags.config ? { iniFile: flags.config } : {},
      );
    });

  program
    .command('setup')
    .description("declare the network's shared exchanges and queues (a superpeer does it too), then exit")
    .action(async () => {
      const config = loadCliConfig(environment(program.opts<{ envFile?: string }>().envFile));
      const logger = createLazyLogger({
        service: 'cli',
        level: 'error',
        format: config.logFormat,
        stream: process.stderr,
      });
      await setupNetwork({
        amqpUrl: config.amqpUrl,
        namespace: config.namespace,
        queueType: config.queueType,
        logger,
      });
      process.stdout.write(`network ${config.namespace} is set up\n`);
    });

  const networkOptions = (command: Command) =>
    command
      .addOption(
        new Option('--timeout <ms>', 'how long to wait for an answer (P2P_TIMEOUT_MS)').argParser(
          positiveInt(600_000),
        ),
      )
      .addOption(
        new Option(
          '--peer <url>',
          "ask this peer's HTTP API instead of the superpeers (P2P_PEER_URL)",
        ).argParser(httpUrl),
      );

  networkOptions(
    program
      .command('search')
      .description('search the network: words that start words of file names, or a SHA-256')
      .argument('<query...>', 'words, or a 64-hex SHA-256')
      .option('--json', 'print a JSON array of {name, size, sha256, peerId, peerName, url}')
      .addOption(
        new Option('--limit <n>', 'most results').argParser(positiveInt(MAX_SEARCH_LIMIT)).default(50),
      ),
  ).action(async (words: string[], flags: NetworkFlags & { json?: boolean; limit: number }) => {
    const config = cliConfig(program, flags);
    const outcome = await withClient(config, (client) => client.search(words.join(' '), flags.limit));
    staleNotice(outcome);
    if (flags.json) {
      const plain = outcome.results.map(({ name, size, sha256, peerId, peerName, url }) => ({
        name,
        size,
        sha256,
        peerId,
        ...(peerName !== undefined ? { peerName } : {}),
        url,
      }));
      process.stdout.write(`${JSON.stringify(plain, null, 2)}\n`);
    } else if (outcome.results.length > 0) {
      printResults(outcome.results, outcome.truncated);
    }
    if (outcome.results.length === 0) {
      if (!flags.json) process.stderr.write(`nothing found for "${words.join(' ')}"\n`);
      process.exitCode = EXIT.notFound;
    }
  });

  networkOptions(
    program
      .command('get')
      .description('download a file by name or SHA-256 from the peers that have it, verified by SHA-256')
      .argument('<target>', 'file name (or path) or 64-hex SHA-256')
      .option('--out <dir>', 'directory to write into (default: the current directory)', '.')
      .addOption(
        new Option('--busy-wait <ms>', 'how long in all to wait for busy peers to free a slot')
          .argParser(positiveInt(3_600_000))
          .default(60_000),
      ),
  ).action(async (target: string, flags: NetworkFlags & { out: string; busyWait: number }) => {
    const config = cliConfig(program, flags);
    // Before the network is asked anything: a wrong --out is the command line's fault (exit 2).
    const outDir = prepareOutDir(flags.out);
    await withClient(config, async (client) => {
      const found = await client.search(target, MAX_SEARCH_LIMIT);
      staleNotice(found);
      const chosen = chooseTarget(target, found.results);
      // Every holder of that content is a source: ask by hash to see all of them. Each claims a size, which
      // may be a lie: runDownload tries each size claimed (downloadFromHolders).
      const holders = await client.search(chosen.sha256, MAX_SEARCH_LIMIT);
      const ended = await runDownload({
        holders: holders.results
          .filter((result) => result.sha256 === chosen.sha256)
          .map(({ url, peerId, size }) => ({ url, peerId, size })),
        sha256: chosen.sha256,
        destPath: path.join(outDir, chosen.name),
        busyWaitMs: flags.busyWait,
        formatBytes,
      });
      if (ended === 'interrupted') process.exitCode = EXIT.interrupted;
    });
  });

  networkOptions(
    program.command('peers').description('list the peers in the network').option('--json', 'print JSON'),
  ).action(async (flags: NetworkFlags & { json?: boolean }) => {
    const config = cliConfig(program, flags);
    const peers = await withClient(config, (client) => client.peers());
    if (flags.json) {
      process.stdout.write(`${JSON.stringify(peers, null, 2)}\n`);
      return;
    }
    const rows = table(['name', 'peer id', 'url', 'files', 'size', 'last seen']);
    for (const peer of peers) {
      rows.push([
        peer.name ?? '',
        peer.peerId,
        peer.url,
        String(peer.fileCount),
        formatBytes(peer.totalBytes),
        peer.lastSeenAgoMs === undefined ? 'unknown' : `${(peer.lastSeenAgoMs / 1000).toFixed(1)} s ago`,
      ]);
    }
    process.stdout.write(`${rows.toString()}\n${peers.length} peer${peers.length === 1 ? '' : 's'}\n`);
    if (peers.length === 0) process.exitCode = EXIT.notFound;
  });

  program
    .command('health')
    .description("exit 0 when the service configured here works (the containers' healthcheck)")
    .argument('<service>', 'superpeer (serves searches) or peer (HTTP up and connected to the broker)')
    .addOption(new Option('--timeout <ms>', 'how long to wait').argParser(positiveInt(600_000)).default(5000))
    .addOption(
      new Option('--url <url>', 'the peer (default http://127.0.0.1:PEER_HTTP_PORT)').argParser(httpUrl),
    )
    .action(async (service: string, flags: { timeout: number; url?: string }) => {
      const { checkHealth } = await import('./health.js');
      const env = environment(program.opts<{ envFile?: string }>().envFile);
      const line = await checkHealth(service, env, { timeoutMs: flags.timeout, url: flags.url });
      process.stdout.write(`healthy: ${line}\n`);
    });
  // Standing searches (watch.ts).
  registerWatchCommand(program, (flags) => cliConfig(program, flags));

  return program;
}

/** Runs the CLI; resolves with the exit status, or undefined once a long-running service has started. */
export async function main(argv: string[]): Promise<number | undefined> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return runsService ? undefined : Number(process.exitCode ?? EXIT.ok);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are not errors; everything else commander refuses is bad usage.
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    // One line a person can act on; the stable code is for scripts, through the exit status.
    process.stderr.write(`p2p: ${err instanceof Error ? err.message : describeError(err)}\n`);
    return isP2PError(err) ? (EXIT_BY_CODE[err.code] ?? 1) : 1;
  }
}
