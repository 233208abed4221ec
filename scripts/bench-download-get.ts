/**
 * The get side of `bench:download`, a process of its own as \`p2p get\` is: one verified download of the job
 * given as JSON in argv[2], then its result on stdout. It loads the transfer lib only (as the CLI's get
 * does), so its process start is what a get pays, not what the benchmark itself needs.
 */
import { type DownloadSource, downloadFile } from '../libs/transfer/index.js';

export interface GetJob {
  sources: DownloadSource[];
  sha256: string;
  size: number;
  destPath: string;
}

/** What the child measured of `downloadFile` itself (every thread's CPU time). */
export interface GetInner {
  seconds: number;
  cpuSeconds: number;
}

async function runGet(job: GetJob): Promise<void> {
  // The download alone, without the process start and module loading.
  const started = performance.now();
  const cpu = process.cpuUsage();
  const result = await downloadFile(job);
  const used = process.cpuUsage(cpu);
  const inner: GetInner = {
    seconds: (performance.now() - started) / 1000,
    cpuSeconds: (used.user + used.system) / 1e6,
  };
  process.stdout.write(
    `${JSON.stringify({ servedBy: result.servedBy, failures: result.failures.length, inner })}\n`,
  );
}

await runGet(JSON.parse(process.argv[2] ?? '{}') as GetJob);
