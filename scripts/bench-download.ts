/**
 * Download benchmark (not a test): one file served by three peers through the real `createFilesRouter`,
 * each behind a TCP proxy that paces its upload to a fixed rate (loopback alone is too fast for the
 * difference to show). Reports MiB/s downloading from one source, then from all three at once, and the
 * ratio. The peers run in a worker thread so that serving and pacing do not share the downloader's event
 * loop. Times include the end-to-end verification, fsync and rename into place.
 *
 *   npx tsc -p . && node dist/scripts/bench-download.js [sizeMiB=256] [rateMiBps=40] [runs=1]
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pipeline } from 'node:stream/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import express from 'express';
import type { FileEntry } from '../libs/protocol/index.js';
import {
  createFilesRouter,
  type DownloadSource,
  downloadFile,
  type SharedFileSource,
  startHttpServer,
} from '../libs/transfer/index.js';

const MiB = 1024 * 1024;
const PEERS = 3;
const HOST = '127.0.0.1';
const FILE_NAME = 'bench.bin';
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
  for (let i = 0; i < PEERS; i++) {
    const app = express();
    app.use(createFilesRouter({ share }));
    const running = await startHttpServer(app, { host: HOST, port: 0 });
    const proxy = await startPacedProxy(running.port, new Pacer(data.rateBytesPerSecond));
    ports.push(proxy.port);
    closers.push(async () => {
      proxy.server.close();
      await running.close();
    });
  }
  parentPort?.postMessage({ ports });
  await once(parentPort!, 'message');
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

async function sha256Of(filePath: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(filePath), hash);
  return hash.digest('hex');
}

async function main(): Promise<void> {
  const sizeMiB = Number(process.argv[2] ?? 256);
  const rateMiBps = Number(process.argv[3] ?? 40);
  const runs = Number(process.argv[4] ?? 1);
  if (!(sizeMiB > 0) || !(rateMiBps > 0) || !Number.isInteger(runs) || runs < 1) {
    process.stderr.write('usage: bench-download.js [sizeMiB=256] [rateMiBps=40] [runs=1]\n');
    process.exitCode = 2;
    return;
  }
  const sizeBytes = Math.round(sizeMiB * MiB);
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'bench-download-'));
  const root = path.join(tmp, 'share');
  await fs.mkdir(root);
  const filePath = path.join(root, FILE_NAME);
  let worker: Worker | undefined;
  try {
    process.stdout.write(`writing a ${sizeMiB} MiB file… `);
    const sha256 = await writeRandomFile(filePath, sizeBytes);
    const stats = await fs.stat(filePath);
    process.stdout.write('done\n');
    const entry: FileEntry = { name: FILE_NAME, size: sizeBytes, sha256, mtimeMs: stats.mtimeMs };

    const peersData: PeersData = { root, entry, rateBytesPerSecond: rateMiBps * MiB };
    worker = new Worker(new URL(import.meta.url), { workerData: peersData });
    const [{ ports }] = (await once(worker, 'message')) as [{ ports: number[] }];
    const sources: DownloadSource[] = ports.map((port, i) => ({
      url: `http://${HOST}:${port}/files/${FILE_NAME}`,
      peerId: `peer${i + 1}`,
    }));
    process.stdout.write(
      `${PEERS} peers, each paced to ${rateMiBps} MiB/s; ${os.cpus().length} CPUs; node ${process.version}\n`,
    );

    const measure = async (label: string, from: DownloadSource[]): Promise<number> => {
      let best = 0;
      for (let run = 1; run <= runs; run++) {
        const destPath = path.join(tmp, `out-${from.length}-${run}.bin`);
        const started = performance.now();
        const result = await downloadFile({ sources: from, sha256, size: sizeBytes, destPath });
        const seconds = (performance.now() - started) / 1000;
        const mibps = sizeMiB / seconds;
        best = Math.max(best, mibps);
        if ((await sha256Of(destPath)) !== sha256) throw new Error('the downloaded file does not match');
        process.stdout.write(
          `${label.padEnd(10)} run ${run}: ${seconds.toFixed(2)} s, ${mibps.toFixed(1)} MiB/s ` +
            `(served by ${result.servedBy.join(', ')}; ${result.failures.length} failures)\n`,
        );
        await fs.rm(destPath);
      }
      return best;
    };

    const one = await measure('1 source', sources.slice(0, 1));
    const three = await measure(`${PEERS} sources`, sources);
    process.stdout.write(
      `\n1 source: ${one.toFixed(1)} MiB/s   ${PEERS} sources: ${three.toFixed(1)} MiB/s   ` +
        `ratio: ${(three / one).toFixed(2)}x (ideal ${PEERS}x)\n`,
    );
  } finally {
    if (worker !== undefined) {
      const exited = once(worker, 'exit');
      worker.postMessage('close');
      await exited;
    }
    await fs.rm(tmp, { recursive: true, force: true });
  }
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
