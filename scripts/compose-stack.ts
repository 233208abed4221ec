/**
 * What `npm run test:compose` (scripts/test-compose.ts) drives: one compose project (a file, a name) run
 * through the Docker CLI, searched from the host with the client role's account, and read back through
 * `docker inspect` / `docker logs` to tell where the time of a step went.
 */
import { execFile } from 'node:child_process';
import net from 'node:net';
import { promisify } from 'node:util';
import type { Log } from '../libs/logging/index.js';
import { connectAmqpClient } from '../services/cli/client.js';

const run = promisify(execFile);

export async function sh(
  file: string,
  args: string[],
  options: { cwd: string; timeoutMs?: number; env?: NodeJS.ProcessEnv; withStderr?: boolean },
): Promise<string> {
  const { stdout, stderr } = await run(file, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    timeout: options.timeoutMs ?? 120_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  return (options.withStderr ? `${stdout}\n${stderr}` : stdout).trim();
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** Polls `probe` every `pollMs` until it gives a value; throws after `timeoutMs` naming `what`. */
export async function waitFor<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined>,
  pollMs = 250,
): Promise<T> {
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
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}

/** The role accounts of deploy/rabbitmq/definitions.json, with the passwords compose gives the services. */
export function roleAccount(role: 'superpeer' | 'peer' | 'client' | 'operator', env: NodeJS.ProcessEnv) {
  const password = env[`RABBITMQ_${role.toUpperCase()}_PASSWORD`] || `change-me-${role}`;
  return { user: `p2p-${role}`, password };
}

export interface Result {
  name: string;
  sha256: string;
  peerId: string;
  peerName?: string;
  url: string;
}

export interface StackContext {
  root: string;
  env: NodeJS.ProcessEnv;
  compose: [string, string[]];
  brokerPort: number;
  managementPort: number;
  log: (line: string) => void;
  check: (ok: boolean, what: string) => void;
  quiet: Log;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/**
 * When a `docker logs --timestamps` line was written: the service's own JSON `timestamp` where it has one
 * (Docker stamps a line when it reads the pipe, so lines written together get one stamp), else Docker's.
 */
function lineTime(line: string): number {
  const own = /"timestamp":"([^"]+)"/.exec(line)?.[1];
  const at = own === undefined ? Number.NaN : Date.parse(own);
  return Number.isNaN(at) ? Date.parse(line.slice(0, line.indexOf(' '))) : at;
}

/** One compose project (a file, a name) and what the checks need of it. */
/** `docker inspect --format`: a container's name, then its health, or its state where it has no healthcheck. */
const STATUS_FORMAT =
  '{{.Name}} {{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}';

export class Stack {
  /** Every volume any container of the project mounted (anonymous ones carry no project label). */
  readonly volumesSeen = new Set<string>();
  readonly filter: string;
  private tornDown = false;

  constructor(
    private readonly context: StackContext,
    readonly file: string,
    readonly project: string,
    readonly queueType: 'classic' | 'quorum',
  ) {
    this.filter = `label=com.docker.compose.project=${project}`;
  }

  docker(args: string[], timeoutMs?: number, withStderr = false): Promise<string> {
    return sh('docker', args, {
      cwd: this.context.root,
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
      withStderr,
    });
  }

  compose(args: string[], timeoutMs = 300_000): Promise<string> {
    const [file, prefix] = this.context.compose;
    return sh(file, [...prefix, '-f', this.file, '-p', this.project, ...args], {
      cwd: this.context.root,
      env: this.context.env,
      timeoutMs,
    });
  }

  async containers(): Promise<string[]> {
    const ids = (await this.docker(['ps', '-aq', '--filter', this.filter])).split('\n').filter(Boolean);
    if (ids.length > 0) {
      const mounts = await this.docker([
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
    return this.docker([
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

  /** The names `docker-compose ps` shows for a service's running containers, without the project. */
  async psNames(service: string): Promise<string[]> {
    const out = await this.docker([
      'ps',
      '--format',
      '{{.Names}}',
      '--filter',
      this.filter,
      '--filter',
      `label=com.docker.compose.service=${service}`,
    ]);
    return out
      .split('\n')
      .filter(Boolean)
      .map((name) => name.slice(this.project.length + 1))
      .sort();
  }

  /** `name status` of each container: its health where it has a healthcheck, else its state. */
  async health(): Promise<string[]> {
    const ids = await this.containers();
    if (ids.length === 0) return [];
    return (await this.docker(['inspect', '--format', STATUS_FORMAT, ...ids])).split('\n');
  }

  /**
   * For a failed stage: every container of the project that is not healthy (or running, where it has no
   * healthcheck), with its healthcheck's last outputs and its last log lines, to tell afterwards why.
   */
  async diagnose(): Promise<string> {
    const parts: string[] = [];
    for (const id of await this.containers()) {
      const [name = id, status = '?'] = (await this.docker(['inspect', '--format', STATUS_FORMAT, id])).split(
        ' ',
      );
      if (status === 'healthy' || status === 'running') continue;
      const probes = await this.docker([
        'inspect',
        '--format',
        '{{if .State.Health}}{{range .State.Health.Log}}{{.ExitCode}}: {{.Output}}{{end}}{{end}}',
        id,
      ]).catch((err: unknown) => String(err));
      const logs = await this.docker(['logs', '--tail', '40', id], 30_000, true).catch((err: unknown) =>
        String(err),
      );
      parts.push(
        `${name} is ${status}\n  healthcheck: ${probes.trim() || 'none'}\n  last log lines:\n${logs}`,
      );
    }
    return parts.join('\n') || 'every container healthy or running';
  }

  async up(peers: number): Promise<void> {
    const { log, check, brokerPort } = this.context;
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
      `every service healthy ${seconds(Date.now() - upDone)} after up returned: ${states.join(', ')}`,
    );
  }

  /** A search from the host through the published broker port, as a fresh CLI connection would. */
  async search(words: string): Promise<Result[]> {
    const { user, password } = roleAccount('client', this.context.env);
    const client = await connectAmqpClient({
      amqpUrl: `amqp://${user}:${encodeURIComponent(password)}@127.0.0.1:${this.context.brokerPort}`,
      namespace: 'p2p',
      queueType: this.queueType,
      timeoutMs: 2000,
      logger: this.context.quiet,
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
    await waitFor(
      `${count} holders of the demo guide`,
      timeoutMs,
      async () =>
        (await this.search('guide')).length === count && (also === undefined || (await also()))
          ? true
          : undefined,
      100,
    );
    return Date.now() - from;
  }

  /** The management API as the operator role (the UI's login). */
  async management(pathname: string): Promise<unknown> {
    const { user, password } = roleAccount('operator', this.context.env);
    const response = await fetch(`http://127.0.0.1:${this.context.managementPort}${pathname}`, {
      headers: { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` },
      signal: AbortSignal.timeout(5000),
    });
    if (!response.ok) throw new Error(`${pathname}: HTTP ${response.status}`);
    return response.json();
  }

  /**
   * Where the time went: for each container, when it started and when its log first showed each of
   * `messages`, relative to `fromMs` (negative: before it). Lines and starts before `sinceMs` (the step's
   * beginning, default `fromMs`) are left out.
   */
  async timeline(
    containers: string[],
    fromMs: number,
    messages: string[],
    sinceMs = fromMs,
  ): Promise<string> {
    const parts: string[] = [];
    for (const id of containers) {
      const [name, startedAt] = (
        await this.docker(['inspect', '--format', '{{.Name}} {{.State.StartedAt}}', id])
      ).split(' ');
      const logs = await this.docker(
        ['logs', '--timestamps', '--since', new Date(sinceMs - 1000).toISOString(), id],
        30_000,
        true,
      );
      const events: string[] = [];
      const started = Date.parse(startedAt ?? '');
      const restarted = started >= sinceMs;
      if (restarted) events.push(`started ${seconds(started - fromMs)}`);
      const lines = logs
        .split('\n')
        .map((line) => ({ at: lineTime(line), line }))
        .filter(({ at }) => at >= sinceMs);
      if (lines[0] !== undefined && restarted) events.push(`first log line ${seconds(lines[0].at - fromMs)}`);
      for (const message of messages) {
        const found = lines.find(({ line }) => line.includes(message));
        if (found !== undefined) events.push(`'${message}' ${seconds(found.at - fromMs)}`);
      }
      parts.push(`${name?.replace(/^\/[^_]+_/, '')}: ${events.join(', ') || 'nothing'}`);
    }
    return parts.join('; ');
  }

  async teardown(): Promise<void> {
    if (this.tornDown) return;
    this.tornDown = true;
    await this.containers().catch(() => []);
    await this.compose(['--profile', 'cli', 'down', '-v', '--remove-orphans'], 180_000).catch(
      (err: unknown) => this.context.log(`${this.project}: down -v failed: ${String(err)}`),
    );
  }

  async leftovers(): Promise<void> {
    const containers = await this.docker(['ps', '-aq', '--filter', this.filter]);
    const networks = await this.docker(['network', 'ls', '-q', '--filter', this.filter]);
    const all = new Set((await this.docker(['volume', 'ls', '-q'])).split('\n').filter(Boolean));
    const volumes = [...this.volumesSeen].filter((name) => all.has(name));
    this.context.check(
      containers === '' && networks === '' && volumes.length === 0,
      `${this.project}: down -v left nothing (containers: ${containers || 'none'}; networks: ${networks || 'none'}; volumes, of ${this.volumesSeen.size} seen: ${volumes.join(', ') || 'none'})`,
    );
  }
}
