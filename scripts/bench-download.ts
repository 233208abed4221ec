/**
 * Download benchmark (not a test), two parts, both on this machine's loopback:
 *
 * 1. Against nginx: one file (default 1 GiB) served by nginx (Debian's package, started here with a config
 *    in a temp dir on a free port; skipped, and said so, when `nginx` is not installed) and by three peers
 *    (the real `createFilesRouter`, each in a worker thread). In alternating rounds: `curl` from nginx,
 *    `curl` from one peer, a verified download (`downloadFile` in its own process, as `p2p get` runs it:
 *    SHA-256, rename, no fsync, as curl) from one peer, then from the three at once, the order rotating
 *    from round to round; and, when RabbitMQ answers at AMQP_URL, the command itself: `p2p get <sha256>`
 *    (the CLI's start, its connection, the two searches a get makes, the download from a real peer
 *    process that shares the file beside a superpeer, in a namespace of their own). Prints the ratios to
 *    curl from nginx, in wall time and, when /usr/bin/time is there, in CPU time (user + system), which a
 *    machine loaded by other work disturbs much less. Issue 7's goal is judged on `p2p get` when it ran.
 * 2. Several holders: the same peers behind proxies pacing each upload to a fixed rate (loopback alone is
 *    too fast for the difference to show): one source, then three.
 *
 *   npm run bench:download -- [sizeMiB=1024] [rounds=3] [pacedMiB=256] [rateMiBps=40]
 */

import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pipeline } from 'node:stream/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import express from 'express';
import { createFilesRouter, type SharedFileSource, startHttpServer } from '../libs/file-server/index.js';
import type { FileEntry } from '../libs/protocol/index.js';
import type { DownloadSource } from '../libs/transfer/index.js';
import type { GetInner, GetJob } from './bench-download-get.js';
import { FILE_NAME, HOST, startNginx, timed } from './bench-download-tools.js';
import { brokerAnswers } from './support/broker.js';
import { AMQP_URL, cleanupNamespace, P2P_BIN, runCli, ServiceProcess, waitUntil } from './support/network.js';

const MiB = 1024 * 1024;
const PEERS = 3;
/** Issue 7's goals: a get from one peer at most this many times curl from nginx; the peer's server at least this share of nginx's rate. */
const GET_GOAL = 1.25;
const SERVER_GOAL = 0.85;
/** Pacing granularity: small enough to keep the rate smooth, large enough not to be all timer overhead. */
const SLICE_BYTES = 64 * 1024;
/** A late timer may be made up for, within this much: otherwise timer jitter alone lowers the rate. */
const CATCH_UP_MS = 20;

interface PeersData {
  root: string;
  entry: FileEntry;
  rateBytesPerSecond: number;
}

/** A peer's uplink: every connection through one proxy shares it. */
class Pacer {
  private readyAt = 0;
  private readonly bytesPerMs: number;

  constructor(bytesPerSecond: number) {
    this.bytesPerMs = bytesPerSecond / 1000;
  }

  /** Resolves when `bytes` more may be sent. */
  async take(bytes: number): Promise<void> {
    const now = performance.now();
    const start = Math.max(this.readyAt, now - CATCH_UP_MS);
    this.readyAt = start + bytes / this.bytesPerMs;
    if (start > now) await delay(start - now);
  }
}

/** Forwards to `targetPort`, pacing the answers (server → client); requests pass unpaced. */
async function startPacedProxy(
  targetPort: number,
  pacer: Pacer,
): Promise<{ port: number; server: net.Server }> {
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, HOST);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop);
    upstream.on('error', drop);
    client.on('close', drop);
    upstream.on('close', drop);
    client.pipe(upstream);
    pipeline(
      upstream,
      async function* paced(source: AsyncIterable<Buffer>) {
        for await (const chunk of source) {
          for (let at = 0; at < chunk.length; at += SLICE_BYTES) {
            const slice = chunk.subarray(at, at + SLICE_BYTES);
            await pacer.take(slice.length);
            yield slice;
          }
        }
      },
      client,
    ).catch(drop);
  });
  server.listen(0, HOST);
  await once(server, 'listening');
  return { port: (server.address() as net.AddressInfo).port, server };
}

/** Worker side: the peers, each a files router behind its own paced proxy. */
async function runPeers(data: PeersData): Promise<void> {
  const absPath = path.join(data.root, FILE_NAME);
  const share: SharedFileSource = {
    root: data.root,
    get: (name) => (name === data.entry.name ? { entry: data.entry, absPath } : undefined),
    list: () => [data.entry],
  };
  const closers: Array<() => Promise<void>> = [];
  const ports: number[] = [];
  const direct: number[] = [];
  for (let i = 0; i < PEERS; i++) {
    const app = express();
    app.use(createFilesRouter({ share }));
    const running = await startHttpServer(app, { host: HOST, port: 0 });
    const proxy = await startPacedProxy(running.port, new Pacer(data.rateBytesPerSecond));
    ports.push(proxy.port);
    direct.push(running.port);
    closers.push(async () => {
      proxy.server.close();
      await running.close();
    });
  }
  parentPort?.postMessage({ ports, direct });
  // { entry } swaps the file the peers serve (same name, new content); 'close' ends them.
  for (;;) {
    const [message] = (await once(parentPort!, 'message')) as [{ entry: FileEntry } | 'close'];
    if (message === 'close') break;
    data.entry = message.entry;
    parentPort?.postMessage('ok');
  }
  await Promise.all(closers.map((close) => close()));
  // Proxied sockets still open end with the process.
  process.exit(0);
}

async function writeRandomFile(filePath: string, sizeBytes: number): Promise<string> {
  const hash = createHash('sha256');
  const out = createWriteStream(filePath);
  const block = Buffer.alloc(MiB);
  let seed = 0x9e3779b9;
  for (let written = 0; written < sizeBytes; written += block.length) {
    // xorshift32: incompressible enough, and much faster than crypto.randomBytes for hundreds of MiB.
    for (let i = 0; i < block.length; i += 4) {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      block.writeUInt32LE(seed >>> 0, i);
    }
    const piece = block.subarray(0, Math.min(block.length, sizeBytes - written));
    hash.update(piece);
    if (!out.write(piece)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  return hash.digest('hex');
}

async function main(): Promise<void> {
  const sizeMiB = Number(process.argv[2] ?? 1024);
  const rounds = Number(process.argv[3] ?? 3);
  const pacedMiB = Number(process.argv[4] ?? 256);
  const rateMiBps = Number(process.argv[5] ?? 40);
  if (!(sizeMiB > 0) || !Number.isInteger(rounds) || rounds < 1 || !(pacedMiB >= 0) || !(rateMiBps > 0)) {
    process.stderr.write(
      'usage: bench-download.js [sizeMiB=1024] [rounds=3] [pacedMiB=256] [rateMiBps=40]\n',
    );
    process.exitCode = 2;
    return;
  }
  const sizeBytes = Math.round(sizeMiB * MiB);
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'bench-download-'));
  // nginx's workers run as an unprivileged user: the files must be readable by anyone.
  await fs.chmod(tmp, 0o755);
  const root = path.join(tmp, 'share');
  await fs.mkdir(root);
  const filePath = path.join(root, FILE_NAME);
  let worker: Worker | undefined;
  let nginx: Awaited<ReturnType<typeof startNginx>>;
  const network = { namespace: `bench-download-${process.pid}`, services: [] as ServiceProcess[] };
  try {
    process.stdout.write(`writing a ${sizeMiB} MiB file… `);
    const sha256 = await writeRandomFile(filePath, sizeBytes);
    const stats = await fs.stat(filePath);
    process.stdout.write('done\n');
    const entry: FileEntry = { name: FILE_NAME, size: sizeBytes, sha256, mtimeMs: stats.mtimeMs };

    const peersData: PeersData = { root, entry, rateBytesPerSecond: rateMiBps * MiB };
    worker = new Worker(new URL(import.meta.url), { workerData: peersData });
    const [{ ports, direct }] = (await once(worker, 'message')) as [{ ports: number[]; direct: number[] }];
    const toSources = (list: number[]): DownloadSource[] =>
      list.map((port, i) => ({ url: `http://${HOST}:${port}/files/${FILE_NAME}`, peerId: `peer${i + 1}` }));
    nginx = await startNginx(tmp, root);
    process.stdout.write(
      `${os.cpus().length} CPUs; node ${process.version}; ${PEERS} peers in a worker thread; ` +
        `${nginx ? `nginx on port ${nginx.port}` : 'nginx not installed (apt-get install -y nginx): no nginx baseline'}\n`,
    );

    const out = path.join(tmp, 'out.bin');
    const script = fileURLToPath(new URL('./bench-download-get.js', import.meta.url));
    const cpuFile = path.join(tmp, 'cpu.txt');
    type Timing = { seconds: number; cpuSeconds: number; inner?: GetInner };
    const get = async (sources: DownloadSource[]): Promise<Timing> => {
      const job: GetJob = { sources, sha256, size: sizeBytes, destPath: out };
      const timing = await timed(process.execPath, [script, JSON.stringify(job)], cpuFile);
      // A get that exits 0 without its result line (or its file) did not finish: not a timing.
      if (!timing.stdout.includes('servedBy') || (await fs.stat(out)).size !== sizeBytes)
        throw new Error(`get: no verified file: ${timing.stdout.trim()}`);
      await fs.rm(out);
      const { inner } = JSON.parse(timing.stdout) as { inner: GetInner };
      return { ...timing, inner };
    };
    const curl = async (url: string): Promise<Timing> => {
      const timing = await timed('curl', ['-sS', '--fail', '-o', out, url], cpuFile);
      if ((await fs.stat(out)).size !== sizeBytes) throw new Error(`curl ${url}: wrong size`);
      await fs.rm(out);
      return timing;
    };
    const p2pGet = await startNetwork(network, root, sha256);
    const runs: Array<[string, () => Promise<Timing>]> = [];
    if (nginx) runs.push(['curl nginx', () => curl(`http://${HOST}:${nginx?.port}/${FILE_NAME}`)]);
    runs.push(['curl peer', () => curl(`http://${HOST}:${direct[0]}/files/${FILE_NAME}`)]);
    runs.push(['get 1 peer', () => get(toSources(direct.slice(0, 1)))]);
    runs.push([`get ${PEERS} peers`, () => get(toSources(direct))]);
    if (p2pGet) {
      const outDir = path.join(tmp, 'p2p-out');
      await fs.mkdir(outDir);
      const received = path.join(outDir, FILE_NAME);
      runs.push([
        'p2p get',
        async () => {
          const timing = await timed(process.execPath, [P2P_BIN, 'get', sha256, '--out', outDir], cpuFile);
          if ((await fs.stat(received)).size !== sizeBytes) throw new Error('p2p get: wrong size');
          await fs.rm(received);
          return timing;
        },
      ]);
    }
    const times = new Map<string, number[]>(runs.map(([label]) => [label, []]));
    const cpuTimes = new Map<string, number[]>(runs.map(([label]) => [label, []]));
    const inners = new Map<string, GetInner[]>(runs.map(([label]) => [label, []]));
    for (let round = 1; round <= rounds; round++) {
      const line: string[] = [];
      // Rotated, so that no kind always runs right after the same other one (whose writeback it would share).
      const order = runs.map((_, i) => runs[(i + round - 1) % runs.length] as (typeof runs)[number]);
      for (const [label, run] of order) {
        const { seconds, cpuSeconds, inner } = await run();
        times.get(label)?.push(seconds);
        cpuTimes.get(label)?.push(cpuSeconds);
        if (inner) inners.get(label)?.push(inner);
        line.push(`${label} ${seconds.toFixed(2)} s (CPU ${cpuSeconds.toFixed(2)} s)`);
      }
      process.stdout.write(`round ${round}: ${line.join(' | ')}\n`);
    }
    const median = (values: number[]): number => {
      const sorted = [...values].sort((a, b) => a - b);
      return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
    };
    const baselineLabel = nginx ? 'curl nginx' : 'curl peer';
    const baseline = median(times.get(baselineLabel) ?? []);
    const cpuBaseline = median(cpuTimes.get(baselineLabel) ?? []);
    process.stdout.write(
      `\nmedians over ${rounds} round(s), ${sizeMiB} MiB, ratio = time / ${baselineLabel}:\n`,
    );
    for (const [label] of runs) {
      const seconds = median(times.get(label) ?? []);
      process.stdout.write(
        `  ${label.padEnd(12)} ${seconds.toFixed(2)} s  ${(sizeMiB / seconds).toFixed(0).padStart(5)} MiB/s  ` +
          `ratio ${(seconds / baseline).toFixed(2)}  CPU ${median(cpuTimes.get(label) ?? []).toFixed(2)} s\n`,
      );
    }
    for (const [label, measured] of inners) {
      if (measured.length === 0) continue;
      const seconds = median(measured.map((m) => m.seconds));
      process.stdout.write(
        `  ${label}, downloadFile alone (no process start): ${seconds.toFixed(2)} s, ratio ` +
          `${(seconds / baseline).toFixed(2)}, CPU ${median(measured.map((m) => m.cpuSeconds)).toFixed(2)} s\n`,
      );
    }
    process.stdout.write(
      `  CPU of a verified get from 1 peer: ${(median(cpuTimes.get('get 1 peer') ?? []) / cpuBaseline).toFixed(2)}x ` +
        `that of ${baselineLabel}\n`,
    );
    if (nginx) {
      const server = baseline / median(times.get('curl peer') ?? []);
      const judged = p2pGet ? 'p2p get' : 'get 1 peer';
      const ratio = median(times.get(judged) ?? []) / baseline;
      process.stdout.write(
        `  the peer's server delivers ${(server * 100).toFixed(0)} % of nginx's rate to curl ` +
          `(goal >= ${(SERVER_GOAL * 100).toFixed(0)} %: ${server >= SERVER_GOAL ? 'met' : 'NOT met'})\n` +
          `  goal: a verified get from one peer (${judged}) <= ${GET_GOAL}x curl from nginx: ` +
          `${ratio <= GET_GOAL ? 'met' : 'NOT met'} (${ratio.toFixed(2)}x, load average ${(os.loadavg()[0] ?? Number.NaN).toFixed(1)})\n`,
      );
    }
    await stopNetwork(network);
    await fs.rm(filePath);

    if (pacedMiB > 0) {
      const pacedBytes = Math.round(pacedMiB * MiB);
      const pacedFile = path.join(root, FILE_NAME);
      const pacedSha = await writeRandomFile(pacedFile, pacedBytes);
      const pacedStats = await fs.stat(pacedFile);
      worker.postMessage({
        entry: { ...entry, size: pacedBytes, sha256: pacedSha, mtimeMs: pacedStats.mtimeMs },
      });
      await once(worker, 'message');
      const paced = async (sources: DownloadSource[]): Promise<number> => {
        const job: GetJob = { sources, sha256: pacedSha, size: pacedBytes, destPath: out };
        const { seconds } = await timed(process.execPath, [script, JSON.stringify(job)], cpuFile);
        await fs.rm(out);
        return pacedMiB / seconds;
      };
      const one = await paced(toSources(ports.slice(0, 1)));
      const three = await paced(toSources(ports));
      process.stdout.write(
        `\nseveral holders, each upload paced to ${rateMiBps} MiB/s, ${pacedMiB} MiB: ` +
          `1 source ${one.toFixed(1)} MiB/s, ${PEERS} sources ${three.toFixed(1)} MiB/s, ` +
          `ratio ${(three / one).toFixed(2)}x (ideal ${PEERS}x)\n`,
      );
    }
  } finally {
    await stopNetwork(network);
    await nginx?.stop();
    if (worker !== undefined) {
      const exited = once(worker, 'exit');
      worker.postMessage('close');
      await exited;
    }
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

/**
 * A superpeer and a real peer process sharing `root`, in a namespace of their own, for `p2p get`; false
 * (and said) when no broker answers. Resolves once a search finds the file at that peer.
 */
async function startNetwork(
  network: { namespace: string; services: ServiceProcess[] },
  root: string,
  sha256: string,
): Promise<boolean> {
  if (!(await brokerAnswers(AMQP_URL))) {
    process.stdout.write(`no RabbitMQ at ${AMQP_URL}: \`p2p get\` itself is not timed\n`);
    return false;
  }
  // The CLI runs (timed) read these from the environment, as a user's shell gives them.
  process.env.AMQP_URL = AMQP_URL;
  process.env.P2P_NAMESPACE = network.namespace;
  const env = { AMQP_URL, P2P_NAMESPACE: network.namespace, LOG_LEVEL: 'info' };
  network.services.push(new ServiceProcess('superpeer', 'superpeer', env));
  network.services.push(
    new ServiceProcess('peer', 'peer', { ...env, PEER_SHARE_DIR: root, PEER_NAME: 'bench-peer' }),
  );
  // The peer hashes the file first (about a second per GiB).
  await waitUntil(
    async () => {
      const found = await runCli(['search', sha256, '--json'], env);
      return found.code === 0 && found.stdout.includes(sha256);
    },
    { timeoutMs: 120_000, intervalMs: 500, what: 'the peer to share the file' },
  );
  return true;
}

async function stopNetwork(network: { namespace: string; services: ServiceProcess[] }): Promise<void> {
  const services = network.services.splice(0);
  if (services.length === 0) return;
  for (const service of services.reverse()) await service.stop();
  await cleanupNamespace(network.namespace);
}

if (isMainThread) {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  });
} else {
  runPeers(workerData as PeersData).catch((err: unknown) => {
    process.stderr.write(`peers: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
