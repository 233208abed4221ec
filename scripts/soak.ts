/**
 * Soak: searches and downloads at a steady rate for minutes across one broker restart and one superpeer
 * kill + restart, against real processes and the local RabbitMQ (needs `rabbitmqctl`, so run it as a user
 * allowed to stop the broker's app). Not part of `npm test`.
 *
 *   npm run soak -- --minutes 3
 *
 * Prints counts of requests, failures inside and after the recovery windows, and corrupted files, plus the
 * measured recovery times. Exit status 1 when a failure happened after a recovery window or a file was corrupt.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { createLogger } from '../libs/logging/index.js';
import { downloadFile } from '../libs/transfer/index.js';
import { connectAmqpClient } from '../services/cli/client.js';
import { AMQP_URL, makeTempDir, startNetwork, waitUntil } from './support/network.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '3' },
    'search-interval-ms': { type: 'string', default: '100' },
    'download-interval-ms': { type: 'string', default: '500' },
  },
});
const durationMs = Number(values.minutes) * 60_000;
const searchIntervalMs = Number(values['search-interval-ms']);
const downloadIntervalMs = Number(values['download-interval-ms']);
if (!(durationMs >= 30_000) || !(searchIntervalMs > 0) || !(downloadIntervalMs > 0)) {
  process.stderr.write('--minutes ≥ 0.5, intervals > 0\n');
  process.exit(2);
}

/** Failures inside these windows after a fault are expected; any later one counts against the run. */
const BROKER_RECOVERY_WINDOW_MS = 15_000;
const SUPERPEER_RECOVERY_WINDOW_MS = 5_000;

const run = promisify(execFile);
const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const log = (line: string) => process.stdout.write(`${new Date().toISOString()} ${line}\n`);

const files = Array.from({ length: 6 }, (_, i) => ({
  name: `soak/file-${i}.bin`,
  data: randomBytes(256 * 1024 * (i + 1)),
}));
const shares = [0, 1, 2].map((p) =>
  Object.fromEntries(files.filter((_, i) => i % 3 !== p).map((f) => [f.name, f.data])),
);

const net = await startNetwork({ label: 'soak', peers: shares });
const client = await connectAmqpClient({
  amqpUrl: AMQP_URL,
  namespace: net.namespace,
  timeoutMs: 2000,
  logger: createLogger({ service: 'soak', level: 'error', format: 'json' }),
});
const outDir = await makeTempDir('soak-out');

const stats = {
  searches: 0,
  searchFailures: 0,
  downloads: 0,
  downloadFailures: 0,
  failuresInWindow: 0,
  failuresAfterRecovery: 0,
  corruptedFiles: 0,
  incompleteSearches: 0,
};
const recovery: Record<string, number> = {};
let windowUntil = 0;
let stopping = false;

function countFailure(kind: 'search' | 'download', reason: string): void {
  if (kind === 'search') stats.searchFailures++;
  else stats.downloadFailures++;
  if (Date.now() <= windowUntil) stats.failuresInWindow++;
  else {
    stats.failuresAfterRecovery++;
    log(`FAILURE after recovery window (${kind}): ${reason}`);
  }
}

async function searchLoop(): Promise<void> {
  while (!stopping) {
    const started = Date.now();
    stats.searches++;
    try {
      const { results } = await client.search('soak', 100);
      // Every file is on two peers.
      if (results.length !== files.length * 2) {
        stats.incompleteSearches++;
        countFailure('search', `incomplete: ${results.length} of ${files.length * 2}`);
      }
    } catch (err) {
      countFailure('search', err instanceof Error ? err.message : String(err));
    }
    await new Promise((resolve) =>
      setTimeout(resolve, Math.max(0, searchIntervalMs - (Date.now() - started))),
    );
  }
}

async function downloadLoop(): Promise<void> {
  let n = 0;
  while (!stopping) {
    const started = Date.now();
    const file = files[n % files.length]!;
    n++;
    stats.downloads++;
    try {
      const { results } = await client.search(sha(file.data), 10);
      if (results.length === 0) throw new Error('no holder found');
      const dest = path.join(outDir, `${n}.bin`);
      await downloadFile({
        sources: results.map((r) => ({ url: r.url, peerId: r.peerId })),
        sha256: sha(file.data),
        size: file.data.length,
        destPath: dest,
      });
      if (sha(await fs.readFile(dest)) !== sha(file.data)) stats.corruptedFiles++;
      await fs.rm(dest);
    } catch (err) {
      countFailure('download', err instanceof Error ? err.message : String(err));
    }
    await new Promise((resolve) =>
      setTimeout(resolve, Math.max(0, downloadIntervalMs - (Date.now() - started))),
    );
  }
}

async function timeToSearch(): Promise<number> {
  const from = Date.now();
  await waitUntil(async () => (await client.search('soak', 100)).results.length === files.length * 2, {
    timeoutMs: 60_000,
    intervalMs: 50,
    what: 'search to answer completely',
  });
  return Date.now() - from;
}

const loops = [searchLoop(), downloadLoop()];
const third = durationMs / 3;
await new Promise((resolve) => setTimeout(resolve, third));

log('fault 1: broker restart (rabbitmqctl stop_app / start_app)');
windowUntil = Number.POSITIVE_INFINITY;
await run('rabbitmqctl', ['stop_app']);
await run('rabbitmqctl', ['start_app']);
windowUntil = Date.now() + BROKER_RECOVERY_WINDOW_MS;
recovery.brokerRestartToFullSearchMs = await timeToSearch();
log(`search complete again ${recovery.brokerRestartToFullSearchMs} ms after the broker's return`);

await new Promise((resolve) => setTimeout(resolve, third));
log('fault 2: superpeer SIGKILL, then a new one');
windowUntil = Number.POSITIVE_INFINITY;
net.superpeer.signal('SIGKILL');
await net.superpeer.exited;
const spawnedAt = Date.now();
net.superpeer = await net.startSuperpeer('sp-soak-2');
windowUntil = spawnedAt + SUPERPEER_RECOVERY_WINDOW_MS;
recovery.superpeerStartToFullSearchMs = Date.now() - spawnedAt + (await timeToSearch());
log(`search complete again ${recovery.superpeerStartToFullSearchMs} ms after the new superpeer was spawned`);

await new Promise((resolve) => setTimeout(resolve, Math.max(0, durationMs - 2 * third)));
stopping = true;
await Promise.all(loops);

const alive = [net.superpeer, ...net.peers.map((p) => p.process)].every((service) => service.alive);
await client.close();
await net.stop();
await fs.rm(outDir, { recursive: true, force: true });

const summary = { durationMs, ...stats, ...recovery, allServicesAlive: alive };
process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
process.exit(stats.failuresAfterRecovery === 0 && stats.corruptedFiles === 0 && alive ? 0 : 1);
