/**
 * `npm run test:compose`: docker-compose.yml for real, as a new user runs it, beside a local RabbitMQ
 * (the broker is published on free host ports through RABBITMQ_PORT / RABBITMQ_MANAGEMENT_PORT):
 * up --build with 3 peers, every service healthy, a whole search from a peer container, a download through
 * `run --rm cli get` into the mounted folder, a host curl checked against the SHA-256, scaling 3→5→2
 * (each seen in search within 5 s), a RabbitMQ restart, then `down -v` leaving no container, network or
 * volume of the project. Without a Docker engine it says so and exits 0. Not part of `npm test`.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const started = Date.now();
const log = (line: string) =>
  process.stdout.write(
    `[test:compose ${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${line}\n`,
  );

/** Goal for a scale step to show in search (issue 9). */
const SCALE_GOAL_MS = 5000;

async function sh(
  file: string,
  args: string[],
  options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
) {
  const { stdout } = await run(file, args, {
    cwd: root,
    env: options.env ?? process.env,
    timeout: options.timeoutMs ?? 120_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout.trim();
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (${String(last)})` : ''}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

async function dockerEngine(): Promise<boolean> {
  try {
    await sh('docker', ['info', '--format', '{{.ServerVersion}}'], { timeoutMs: 20_000 });
    return true;
  } catch {
    return false;
  }
}

/** `docker compose` (v2) where it exists, else Debian's `docker-compose` (v1). */
async function composeCommand(): Promise<[string, string[]] | undefined> {
  try {
    await sh('docker', ['compose', 'version'], { timeoutMs: 20_000 });
    return ['docker', ['compose']];
  } catch {}
  try {
    await sh('docker-compose', ['version'], { timeoutMs: 20_000 });
    return ['docker-compose', []];
  } catch {}
  return undefined;
}

if (!(await dockerEngine())) {
  log('no Docker engine answers (docker info): compose was NOT tested');
  process.exit(0);
}
const composeCli = await composeCommand();
if (!composeCli) {
  log('Docker runs but neither `docker compose` nor `docker-compose` exists: compose was NOT tested');
  process.exit(0);
}

const project = `p2ptest${process.pid}`;
const downloads = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-compose-downloads-'));
// The cli container runs as the image's user node (uid 1000).
fs.chmodSync(downloads, 0o777);
const env: NodeJS.ProcessEnv = {
  ...process.env,
  COMPOSE_PROJECT_NAME: project,
  RABBITMQ_PORT: String(await freePort()),
  RABBITMQ_MANAGEMENT_PORT: String(await freePort()),
  DOWNLOADS_DIR: downloads,
};
const compose = (args: string[], timeoutMs = 300_000) =>
  sh(composeCli[0], [...composeCli[1], '-p', project, ...args], { env, timeoutMs });
const projectFilter = `label=com.docker.compose.project=${project}`;

/** Every volume any container of the project mounted (anonymous ones carry no project label). */
const volumesSeen = new Set<string>();
async function projectContainers(): Promise<string[]> {
  const ids = (await sh('docker', ['ps', '-aq', '--filter', projectFilter])).split('\n').filter(Boolean);
  if (ids.length > 0) {
    const mounts = await sh('docker', [
      'inspect',
      '--format',
      '{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}} {{end}}{{end}}',
      ...ids,
    ]);
    for (const name of mounts.split(/\s+/).filter(Boolean)) volumesSeen.add(name);
  }
  return ids;
}

let tornDown = false;
async function teardown(): Promise<void> {
  if (tornDown) return;
  tornDown = true;
  await projectContainers().catch(() => []);
  await compose(['--profile', 'cli', 'down', '-v', '--remove-orphans'], 180_000).catch((err: unknown) =>
    log(`down -v failed: ${String(err)}`),
  );
  fs.rmSync(downloads, { recursive: true, force: true });
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    log(`${signal}: tearing down`);
    void teardown().finally(() => process.exit(130));
  });
}

interface Result {
  name: string;
  sha256: string;
  peerId: string;
  url: string;
}

async function search(words: string): Promise<Result[]> {
  const out = await compose(
    ['exec', '-T', '--index=1', 'peer', 'node', 'bin/p2p.js', 'search', '--json', words],
    60_000,
  );
  return JSON.parse(out) as Result[];
}

/** Polls search from the first peer until `count` holders of the demo guide are found; returns ms taken. */
async function guideHolders(count: number, timeoutMs: number): Promise<number> {
  const from = Date.now();
  await waitFor(`${count} holders of the demo guide`, timeoutMs, async () =>
    (await search('guide')).length === count ? true : undefined,
  );
  return Date.now() - from;
}

async function healthOf(ids: string[]): Promise<string[]> {
  if (ids.length === 0) return [];
  return (
    await sh('docker', [
      'inspect',
      '--format',
      '{{.Name}} {{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}',
      ...ids,
    ])
  ).split('\n');
}

const failures: string[] = [];
function check(ok: boolean, what: string): void {
  log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures.push(what);
}

try {
  log(
    `project ${project}: ${composeCli[0]} ${composeCli[1].join(' ')} up --build --scale peer=3 (broker on 127.0.0.1:${env.RABBITMQ_PORT})`,
  );
  await compose(['up', '-d', '--build', '--scale', 'peer=3'], 1_200_000);
  const upDone = Date.now();
  const ids = await projectContainers();
  await waitFor('every service healthy', 240_000, async () => {
    const states = await healthOf(ids);
    return states.every((state) => state.endsWith(' healthy')) ? states : undefined;
  });
  check(
    true,
    `every service healthy ${((Date.now() - upDone) / 1000).toFixed(1)} s after up returned: ${(await healthOf(ids)).join(', ')}`,
  );

  const firstWhole = await guideHolders(3, 60_000);
  check(
    true,
    `whole search from a peer container: 3 peers' demo guides (${firstWhole} ms after all were healthy)`,
  );

  // Download through the cli container into the mounted folder, then check it against the search's hash.
  const [guide] = await search('guide');
  await compose(['run', '--rm', 'cli', 'get', 'common/network-guide.txt'], 120_000);
  const saved = path.join(downloads, 'network-guide.txt');
  const savedSha = fs.existsSync(saved)
    ? createHash('sha256').update(fs.readFileSync(saved)).digest('hex')
    : '';
  check(savedSha === guide!.sha256, `run --rm cli get saved ${saved} with the SHA-256 search names`);

  // A host curl: the URL names the container's host name, which the host resolves through docker inspect.
  const url = new URL(guide!.url);
  const addresses = await sh('docker', [
    'inspect',
    '--format',
    '{{.Config.Hostname}} {{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}',
    ...ids,
  ]);
  const address = addresses
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .find(([host]) => host === url.hostname)?.[1];
  const curlSha = await sh('sh', [
    '-c',
    `curl -sS --resolve ${url.hostname}:${url.port}:${address} "${url.href}" | sha256sum | cut -d' ' -f1`,
  ]);
  check(curlSha === guide!.sha256, `host curl ${url.href} (at ${address}) matches the SHA-256`);

  await compose(['up', '-d', '--no-recreate', '--scale', 'peer=5'], 300_000);
  await projectContainers();
  const upMs = await guideHolders(5, 60_000);
  check(
    upMs <= SCALE_GOAL_MS,
    `scale 3→5 seen in search ${upMs} ms after compose returned (goal ${SCALE_GOAL_MS} ms)`,
  );

  await compose(['up', '-d', '--no-recreate', '--scale', 'peer=2'], 300_000);
  const downMs = await guideHolders(2, 60_000);
  check(
    downMs <= SCALE_GOAL_MS,
    `scale 5→2 seen in search ${downMs} ms after compose returned (goal ${SCALE_GOAL_MS} ms)`,
  );

  await compose(['restart', 'rabbitmq'], 180_000);
  const restartMs = await guideHolders(2, 120_000);
  check(true, `RabbitMQ restarted: search whole again ${restartMs} ms after the restart returned`);
} catch (err) {
  failures.push(String(err instanceof Error ? err.message : err));
  log(`FAIL ${String(err instanceof Error ? err.message : err)}`);
  await compose(['ps']).then(log, () => undefined);
} finally {
  await teardown();
}

const leftContainers = await sh('docker', ['ps', '-aq', '--filter', projectFilter]);
const leftNetworks = await sh('docker', ['network', 'ls', '-q', '--filter', projectFilter]);
const allVolumes = new Set((await sh('docker', ['volume', 'ls', '-q'])).split('\n').filter(Boolean));
const leftVolumes = [...volumesSeen].filter((name) => allVolumes.has(name));
check(
  leftContainers === '' && leftNetworks === '' && leftVolumes.length === 0,
  `down -v left nothing (containers: ${leftContainers || 'none'}; networks: ${leftNetworks || 'none'}; volumes of ${volumesSeen.size} seen: ${leftVolumes.join(', ') || 'none'})`,
);
log(failures.length === 0 ? 'all checks passed' : `${failures.length} check(s) failed`);
process.exit(failures.length === 0 ? 0 : 1);
