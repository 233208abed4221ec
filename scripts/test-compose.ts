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
import { createLogger } from '../libs/logging/index.js';
import { connectAmqpClient } from '../services/cli/client.js';

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

const downloads = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-compose-downloads-'));
// The cli container runs as the image's user node (uid 1000).
fs.chmodSync(downloads, 0o777);
const brokerPort = await freePort();
const managementPort = await freePort();
const env: NodeJS.ProcessEnv = {
  ...process.env,
  RABBITMQ_PORT: String(brokerPort),
  RABBITMQ_MANAGEMENT_PORT: String(managementPort),
  DOWNLOADS_DIR: downloads,
};
const quiet = createLogger({
  service: 'test-compose',
  level: 'error',
  format: 'json',
  stream: process.stderr,
});

const failures: string[] = [];
function check(ok: boolean, what: string): void {
  log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures.push(what);
}

interface Result {
  name: string;
  sha256: string;
  peerId: string;
  url: string;
}

/** One compose project (a file, a name) and what the checks need of it. */
class Stack {
  /** Every volume any container of the project mounted (anonymous ones carry no project label). */
  readonly volumesSeen = new Set<string>();
  readonly filter: string;
  private tornDown = false;

  constructor(
    readonly file: string,
    readonly project: string,
    readonly queueType: 'classic' | 'quorum',
  ) {
    this.filter = `label=com.docker.compose.project=${project}`;
  }

  compose(args: string[], timeoutMs = 300_000): Promise<string> {
    return sh(composeCli![0], [...composeCli![1], '-f', this.file, '-p', this.project, ...args], {
      env,
      timeoutMs,
    });
  }

  async containers(): Promise<string[]> {
    const ids = (await sh('docker', ['ps', '-aq', '--filter', this.filter])).split('\n').filter(Boolean);
    if (ids.length > 0) {
      const mounts = await sh('docker', [
        'inspect',
        '--format',
        '{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}} {{end}}{{end}}',
        ...ids,
      ]);
      for (const name of mounts.split(/\s+/).filter(Boolean)) this.volumesSeen.add(name);
    }
    return ids;
  }

  async container(service: string, index = 1): Promise<string> {
    return sh('docker', [
      'ps',
      '-q',
      '--filter',
      this.filter,
      '--filter',
      `label=com.docker.compose.service=${service}`,
      '--filter',
      `label=com.docker.compose.container-number=${index}`,
    ]);
  }

  /** `name status` of each container: its health where it has a healthcheck, else its state. */
  async health(): Promise<string[]> {
    const ids = await this.containers();
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

  async up(peers: number): Promise<void> {
    log(
      `${this.project}: up --build --scale peer=${peers} (${this.file}, broker on 127.0.0.1:${brokerPort})`,
    );
    await this.compose(['up', '-d', '--build', '--scale', `peer=${peers}`], 1_200_000);
    const upDone = Date.now();
    const states = await waitFor('every service healthy', 480_000, async () => {
      const all = await this.health();
      return all.every((state) => / (healthy|running)$/.test(state)) ? all : undefined;
    });
    check(
      true,
      `every service healthy ${((Date.now() - upDone) / 1000).toFixed(1)} s after up returned: ${states.join(', ')}`,
    );
  }

  /** A search from the host through the published broker port, as a fresh CLI connection would. */
  async search(words: string): Promise<Result[]> {
    const client = await connectAmqpClient({
      amqpUrl: `amqp://guest:guest@127.0.0.1:${brokerPort}`,
      namespace: 'p2p',
      queueType: this.queueType,
      timeoutMs: 2000,
      logger: quiet,
    });
    try {
      return (await client.search(words, 50)).results;
    } finally {
      await client.close();
    }
  }

  /** Polls until `count` holders of the demo guide are found; returns the ms it took. */
  async guideHolders(count: number, timeoutMs: number, also?: () => Promise<boolean>): Promise<number> {
    const from = Date.now();
    await waitFor(`${count} holders of the demo guide`, timeoutMs, async () =>
      (await this.search('guide')).length === count && (also === undefined || (await also()))
        ? true
        : undefined,
    );
    return Date.now() - from;
  }

  async teardown(): Promise<void> {
    if (this.tornDown) return;
    this.tornDown = true;
    await this.containers().catch(() => []);
    await this.compose(['--profile', 'cli', 'down', '-v', '--remove-orphans'], 180_000).catch(
      (err: unknown) => log(`${this.project}: down -v failed: ${String(err)}`),
    );
  }

  async leftovers(): Promise<void> {
    const containers = await sh('docker', ['ps', '-aq', '--filter', this.filter]);
    const networks = await sh('docker', ['network', 'ls', '-q', '--filter', this.filter]);
    const all = new Set((await sh('docker', ['volume', 'ls', '-q'])).split('\n').filter(Boolean));
    const volumes = [...this.volumesSeen].filter((name) => all.has(name));
    check(
      containers === '' && networks === '' && volumes.length === 0,
      `${this.project}: down -v left nothing (containers: ${containers || 'none'}; networks: ${networks || 'none'}; volumes, of ${this.volumesSeen.size} seen: ${volumes.join(', ') || 'none'})`,
    );
  }
}

const single = new Stack('docker-compose.yml', `p2ptest${process.pid}`, 'classic');
const cluster = new Stack('docker-compose.cluster.yml', `p2ptest${process.pid}c`, 'quorum');
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    log(`${signal}: tearing down`);
    void Promise.all([single.teardown(), cluster.teardown()]).finally(() => {
      fs.rmSync(downloads, { recursive: true, force: true });
      process.exit(130);
    });
  });
}

async function runStage(stack: Stack, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    failures.push(reason);
    log(`FAIL ${reason}`);
    await stack.compose(['ps']).then(log, () => undefined);
  } finally {
    await stack.teardown();
    await stack.leftovers();
  }
}

// P2P_TEST_COMPOSE_SINGLE=false / P2P_TEST_COMPOSE_CLUSTER=false skip a stage (to rerun one alone).
if (process.env.P2P_TEST_COMPOSE_SINGLE !== 'false')
  await runStage(single, async () => {
    await single.up(3);
    const fromPeer = await waitFor('a whole search from a peer container', 60_000, async () => {
      const out = await single.compose([
        'exec',
        '-T',
        '--index=1',
        'peer',
        'node',
        'bin/p2p.js',
        'search',
        '--json',
        'guide',
      ]);
      const results = JSON.parse(out) as Result[];
      return results.length === 3 ? results : undefined;
    });
    check(
      true,
      `whole search from a peer container: the 3 peers' demo guides (${fromPeer.map((r) => r.url).join(', ')})`,
    );

    // Download through the cli container into the mounted folder, then check it against the search's hash.
    const guide = fromPeer[0]!;
    await single.compose(['run', '--rm', 'cli', 'get', 'common/network-guide.txt'], 120_000);
    const saved = path.join(downloads, 'network-guide.txt');
    const savedSha = fs.existsSync(saved)
      ? createHash('sha256').update(fs.readFileSync(saved)).digest('hex')
      : '';
    check(savedSha === guide.sha256, `run --rm cli get saved ${saved} with the SHA-256 search names`);

    // A host curl: the URL names the container's host name; the host resolves it through docker inspect.
    const url = new URL(guide.url);
    const addresses = await sh('docker', [
      'inspect',
      '--format',
      '{{.Config.Hostname}} {{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}',
      ...(await single.containers()),
    ]);
    const address = addresses
      .split('\n')
      .map((line) => line.trim().split(/\s+/))
      .find(([host]) => host === url.hostname)?.[1];
    const curlSha = await sh('sh', [
      '-c',
      `curl -sS --resolve ${url.hostname}:${url.port}:${address} "${url.href}" | sha256sum | cut -d' ' -f1`,
    ]);
    check(curlSha === guide.sha256, `host curl ${url.href} (at ${address}) matches the SHA-256`);

    await single.compose(['up', '-d', '--no-recreate', '--scale', 'peer=5'], 300_000);
    await single.containers();
    const upMs = await single.guideHolders(5, 60_000);
    check(
      upMs <= SCALE_GOAL_MS,
      `scale 3→5 seen in search ${upMs} ms after compose returned (goal ${SCALE_GOAL_MS} ms)`,
    );

    await single.compose(['up', '-d', '--no-recreate', '--scale', 'peer=2'], 300_000);
    const downMs = await single.guideHolders(2, 60_000);
    check(
      downMs <= SCALE_GOAL_MS,
      `scale 5→2 seen in search ${downMs} ms after compose returned (goal ${SCALE_GOAL_MS} ms)`,
    );

    await single.compose(['restart', 'rabbitmq'], 180_000);
    const restartMs = await single.guideHolders(2, 120_000);
    check(true, `RabbitMQ restarted: search whole again ${restartMs} ms after the restart returned`);
  });

if (process.env.P2P_TEST_COMPOSE_CLUSTER !== 'false') {
  await runStage(cluster, async () => {
    await cluster.up(3);
    const management = async (pathname: string): Promise<unknown> => {
      const response = await fetch(`http://127.0.0.1:${managementPort}${pathname}`, {
        headers: { authorization: `Basic ${Buffer.from('guest:guest').toString('base64')}` },
        signal: AbortSignal.timeout(5000),
      });
      if (!response.ok) throw new Error(`${pathname}: HTTP ${response.status}`);
      return response.json();
    };
    const nodes = (await management('/api/nodes')) as { name: string; running: boolean }[];
    check(
      nodes.filter((node) => node.running).length === 3,
      `3 running nodes: ${nodes.map((n) => n.name).join(', ')}`,
    );
    for (const queue of ['p2p.rpc', 'p2p.dead-letter']) {
      const info = (await management(`/api/queues/%2F/${queue}`)) as { type?: string; members?: string[] };
      check(
        info.type === 'quorum' && info.members?.length === 3,
        `${queue} is a quorum queue on ${info.members?.length ?? 0} nodes`,
      );
    }
    await cluster.guideHolders(3, 60_000);

    const connections = (await management('/api/connections?columns=node,client_properties')) as {
      node: string;
      client_properties?: { connection_name?: string };
    }[];
    const superpeerNode = connections.find((c) =>
      c.client_properties?.connection_name?.startsWith('superpeer'),
    )?.node;
    const service = superpeerNode?.replace(/^rabbit@/, '');
    check(
      service !== undefined && /^rabbitmq[123]$/.test(service),
      `the superpeer is connected to ${superpeerNode}`,
    );
    const peer = await cluster.container('peer', 1);
    const killedAt = Date.now();
    await sh('docker', ['kill', await cluster.container(service!, 1)]);
    // A file added while the superpeer fails over.
    const marker = `failover-${process.pid}.txt`;
    await sh('docker', ['exec', peer, 'sh', '-c', `echo failover > /data/share/${marker}`]);
    const wholeMs = await cluster.guideHolders(
      3,
      60_000,
      async () => (await cluster.search(marker)).length === 1,
    );
    const sinceKill = Date.now() - killedAt;
    check(
      sinceKill <= 10_000,
      `${service} killed: search whole again, with the file added during the failover, ${sinceKill} ms after the kill (goal 10000 ms; polling took ${wholeMs} ms)`,
    );
  });
}

fs.rmSync(downloads, { recursive: true, force: true });
log(failures.length === 0 ? 'all checks passed' : `${failures.length} check(s) failed`);
process.exit(failures.length === 0 ? 0 : 1);
