import { execFile } from 'node:child_process';
import os from 'node:os';
import { promisify } from 'node:util';
import amqp from 'amqplib';

/**
 * The broker a test run uses, and the one handle (`brokerControl`) through which tests reach it: its
 * management API, its rabbitmqctl (the host's, or the container's own), and restarts.
 *
 * Resolution (scripts/test.ts, once per `npm test`): AMQP_URL when set; else a broker answering at the
 * default address; else a RabbitMQ started in a container for this run, removed afterwards. The run hands
 * the result to every test file's process through the environment (AMQP_URL and the variables below), so
 * the files themselves never start a broker.
 *
 * Plain `docker run` rather than Testcontainers: one container, three docker commands, no dependency, and
 * nothing else to pull (Testcontainers' reaper is an image of its own, which an offline machine lacks).
 * Cleanup on interruption is ours: signal handlers in the wrapper, and a label that lets the next run
 * remove a container whose owner died without cleaning up.
 */

const run = promisify(execFile);

/** Environment the tests read. */
export const TEST_BROKER_ENV = {
  /** Port of the default broker address (127.0.0.1), 5672 unless set: CI points it at an unused port. */
  defaultPort: 'P2P_TEST_DEFAULT_AMQP_PORT',
  /** Set by the wrapper when it started a container: tests run its rabbitmqctl with `docker exec`. */
  container: 'P2P_TEST_BROKER_CONTAINER',
  /** Management API of the broker in use, http://host:port; unset: port 15672 of the AMQP URL's host. */
  managementUrl: 'P2P_TEST_MANAGEMENT_URL',
  /** Image of the container broker; default the one docker-compose.yml runs. */
  image: 'P2P_TEST_RABBITMQ_IMAGE',
} as const;

/** The image docker-compose.yml runs (a unit test keeps the two equal). */
export const DEFAULT_RABBITMQ_IMAGE = 'rabbitmq:4.1.4-management';
/** Every container a test run starts carries this label; the owner's pid and host are labels too. */
export const CONTAINER_LABEL = 'p2p-rabbit.test-broker';
const OWNER_PID_LABEL = 'p2p-rabbit.test-broker.pid';
const OWNER_HOST_LABEL = 'p2p-rabbit.test-broker.host';

type Env = Record<string, string | undefined>;

export function defaultAmqpUrl(env: Env = process.env): string {
  const port = env[TEST_BROKER_ENV.defaultPort]?.trim() || '5672';
  return `amqp://guest:guest@127.0.0.1:${port}`;
}

/** The URL tests connect to: AMQP_URL, else the default address. */
export function testAmqpUrl(env: Env = process.env): string {
  return env.AMQP_URL?.trim() || defaultAmqpUrl(env);
}

/** The management HTTP API of the broker in use, with the credentials of the run's AMQP URL. */
export interface ManagementApi {
  /** http://host:port, no trailing slash: P2P_TEST_MANAGEMENT_URL, else the AMQP host's port 15672. */
  readonly url: string;
  /** The vhost of the run's AMQP URL, encoded for an API path (`%2F` for "/"). */
  readonly vhostPath: string;
  /** `fetch` of `path` (starting with /api/) under `url`, authenticated. */
  request(method: string, path: string): Promise<Response>;
  /** True when the API answers `GET /api/overview` with these credentials. */
  available(): Promise<boolean>;
}

/**
 * The one handle on the broker a test process runs against: its AMQP URL, its management API, and its
 * `rabbitmqctl`, which is the host's for a local or given broker and the container's own for a broker the
 * run started. Tests reach the broker only through this, never through host defaults.
 */
export interface BrokerControl {
  /** `rabbitmqctl` on this machine, or in container <id>. */
  readonly description: string;
  readonly amqpUrl: string;
  readonly management: ManagementApi;
  /** The command line that runs rabbitmqctl for this broker (for scripts: `RABBITMQCTL`). */
  readonly rabbitmqctlCommand: readonly string[];
  /** Runs rabbitmqctl with `args`; resolves with its standard output. */
  rabbitmqctl(args: string[]): Promise<string>;
  /** The broker's AMQP URL with other credentials and vhost (`undefined`: the run's own). */
  urlFor(options: { username: string; password: string; vhost?: string }): string;
  /** Stops the RabbitMQ application (connections drop, data stays); `startApp` starts it again. */
  stopApp(): Promise<void>;
  startApp(): Promise<void>;
}

/** The vhost an AMQP URL names ("/" when it names none). */
export function amqpVhost(url: string): string {
  const path = new URL(url).pathname;
  return path === '' || path === '/' ? '/' : decodeURIComponent(path.slice(1));
}

/** The handle for this process's broker: the container the wrapper started, else the local rabbitmqctl. */
export function brokerControl(env: Env = process.env): BrokerControl {
  const amqpUrl = testAmqpUrl(env);
  const parsed = new URL(amqpUrl);
  const container = env[TEST_BROKER_ENV.container]?.trim();
  const rabbitmqctlCommand = container ? ['docker', 'exec', container, 'rabbitmqctl'] : ['rabbitmqctl'];
  const rabbitmqctl = async (args: string[]) => {
    const [file, ...prefix] = rabbitmqctlCommand as [string, ...string[]];
    return (await run(file, [...prefix, ...args], { timeout: 60_000 })).stdout;
  };
  // AMQP URI defaults (RabbitMQ's URI spec): user and password guest when the URL names none.
  const username = decodeURIComponent(parsed.username) || 'guest';
  const password = decodeURIComponent(parsed.password) || 'guest';
  const managementUrl = (
    env[TEST_BROKER_ENV.managementUrl]?.trim() || `http://${parsed.hostname}:15672`
  ).replace(/\/+$/, '');
  const authorization = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  const management: ManagementApi = {
    url: managementUrl,
    vhostPath: encodeURIComponent(amqpVhost(amqpUrl)),
    request: (method, path) =>
      fetch(`${managementUrl}${path}`, {
        method,
        headers: { Authorization: authorization },
        signal: AbortSignal.timeout(30_000),
      }),
    async available() {
      try {
        return (await management.request('GET', '/api/overview')).ok;
      } catch {
        return false;
      }
    },
  };
  return {
    description: container
      ? `rabbitmqctl in container ${container.slice(0, 12)}`
      : 'rabbitmqctl on this machine',
    amqpUrl,
    management,
    rabbitmqctlCommand,
    rabbitmqctl,
    urlFor({ username: user, password: secret, vhost }) {
      const url = new URL(amqpUrl);
      url.username = encodeURIComponent(user);
      url.password = encodeURIComponent(secret);
      if (vhost !== undefined) url.pathname = `/${encodeURIComponent(vhost)}`;
      return url.toString();
    },
    async stopApp() {
      await rabbitmqctl(['stop_app']);
    },
    async startApp() {
      await rabbitmqctl(['start_app']);
    },
  };
}

/** True when an AMQP broker accepts a connection at `url` within `timeoutMs`. */
export async function brokerAnswers(url: string, timeoutMs = 2000): Promise<boolean> {
  let connection: amqp.ChannelModel | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    connection = await Promise.race([
      amqp.connect(url, { timeout: timeoutMs }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('timeout')), timeoutMs);
      }),
    ]);
    return true;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
    await connection?.close().catch(() => undefined);
  }
}

/** True when a Docker engine answers (`docker info`) within a few seconds. */
export async function dockerAvailable(): Promise<boolean> {
  try {
    await run('docker', ['info', '--format', '{{.ServerVersion}}'], { timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

async function docker(args: string[], timeoutMs = 60_000): Promise<string> {
  const { stdout } = await run('docker', args, { timeout: timeoutMs });
  return stdout.trim();
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes test brokers left by runs on this host whose process is gone (killed with SIGKILL, or a crash
 * before cleanup). A container of a run still going is left alone. Returns the ids removed.
 */
export async function removeStaleContainers(): Promise<string[]> {
  const lines = (
    await docker([
      'ps',
      '-a',
      '--filter',
      `label=${CONTAINER_LABEL}`,
      '--format',
      `{{.ID}} {{.Label "${OWNER_PID_LABEL}"}} {{.Label "${OWNER_HOST_LABEL}"}}`,
    ])
  )
    .split('\n')
    .filter((line) => line !== '');
  const stale: string[] = [];
  for (const line of lines) {
    const [id, pid, host] = line.split(' ');
    if (id && host === os.hostname() && !pidAlive(Number(pid))) stale.push(id);
  }
  if (stale.length > 0) await docker(['rm', '-f', '-v', ...stale]).catch(() => undefined);
  return stale;
}

export interface ContainerBroker {
  id: string;
  amqpUrl: string;
  managementUrl: string;
  image: string;
}

/** Host port Docker mapped to a container port (`docker port` prints e.g. `127.0.0.1:49153`). */
async function hostPort(id: string, containerPort: number): Promise<number> {
  const out = await docker(['port', id, `${containerPort}/tcp`]);
  const port = Number(out.split('\n')[0]?.split(':').pop());
  if (!Number.isInteger(port) || port <= 0) throw new Error(`docker port ${containerPort}: "${out}"`);
  return port;
}

/**
 * Starts RabbitMQ (management plugin on, as in the image) with its ports on free loopback ports, and
 * resolves once it accepts AMQP. `--rm` and `-v` on removal: its anonymous data volume goes with it.
 */
export async function startBrokerContainer(
  options: { image?: string; readyTimeoutMs?: number } = {},
): Promise<ContainerBroker> {
  const image = options.image ?? DEFAULT_RABBITMQ_IMAGE;
  const readyTimeoutMs = options.readyTimeoutMs ?? 120_000;
  try {
    await docker(['image', 'inspect', '--format', '{{.Id}}', image]);
  } catch {
    // Not here: docker run pulls it, which needs a registry; say what to do if that fails.
    try {
      await docker(['pull', '-q', image], 600_000);
    } catch {
      throw new Error(
        `image ${image} is not available and cannot be pulled: pull it on a connected machine, or build a local stand-in (../shared/docker/make-base-images.sh)`,
      );
    }
  }
  const id = await docker([
    'run',
    '-d',
    '--rm',
    '--label',
    CONTAINER_LABEL,
    '--label',
    `${OWNER_PID_LABEL}=${process.pid}`,
    '--label',
    `${OWNER_HOST_LABEL}=${os.hostname()}`,
    '-p',
    '127.0.0.1::5672',
    '-p',
    '127.0.0.1::15672',
    image,
  ]);
  try {
    const amqpUrl = `amqp://guest:guest@127.0.0.1:${await hostPort(id, 5672)}`;
    const managementUrl = `http://127.0.0.1:${await hostPort(id, 15672)}`;
    const deadline = Date.now() + readyTimeoutMs;
    while (!(await brokerAnswers(amqpUrl, 2000))) {
      if (Date.now() > deadline)
        throw new Error(`RabbitMQ in container ${id.slice(0, 12)} not ready in ${readyTimeoutMs} ms`);
      const state = await docker(['inspect', '--format', '{{.State.Running}}', id]).catch(() => 'false');
      if (state !== 'true') throw new Error(`RabbitMQ container ${id.slice(0, 12)} exited during start`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    return { id, amqpUrl, managementUrl, image };
  } catch (err) {
    await removeContainer(id);
    throw err;
  }
}

export async function removeContainer(id: string): Promise<void> {
  await docker(['rm', '-f', '-v', id]).catch(() => undefined);
}

export type ResolvedBroker =
  | { kind: 'given'; amqpUrl: string }
  | { kind: 'local'; amqpUrl: string }
  | { kind: 'container'; amqpUrl: string; container: ContainerBroker };

/** What to tell a person who has neither a broker nor Docker: one line. */
export function noBrokerMessage(env: Env = process.env): string {
  const address = defaultAmqpUrl(env).replace(/^amqp:\/\/[^@]*@/, '');
  return `tests need RabbitMQ: none answers at ${address} and no Docker engine runs; start Docker (the tests then run their own broker), or run RabbitMQ (docker run -d -p 5672:5672 ${DEFAULT_RABBITMQ_IMAGE}, or apt-get install rabbitmq-server), or set AMQP_URL`;
}

/**
 * AMQP_URL when set (used as given, not probed); else the default address if a broker answers there; else
 * a container broker. Throws with `noBrokerMessage` when there is neither a broker nor Docker.
 */
export async function resolveTestBroker(env: Env = process.env): Promise<ResolvedBroker> {
  const given = env.AMQP_URL?.trim();
  if (given) return { kind: 'given', amqpUrl: given };
  const local = defaultAmqpUrl(env);
  if (await brokerAnswers(local)) return { kind: 'local', amqpUrl: local };
  if (!(await dockerAvailable())) throw new Error(noBrokerMessage(env));
  await removeStaleContainers();
  const image = env[TEST_BROKER_ENV.image]?.trim() || DEFAULT_RABBITMQ_IMAGE;
  const container = await startBrokerContainer({ image });
  return { kind: 'container', amqpUrl: container.amqpUrl, container };
}

/** The environment a resolved broker gives to the test processes. */
export function brokerEnv(broker: ResolvedBroker): Record<string, string> {
  if (broker.kind !== 'container') return { AMQP_URL: broker.amqpUrl };
  return {
    AMQP_URL: broker.amqpUrl,
    [TEST_BROKER_ENV.container]: broker.container.id,
    [TEST_BROKER_ENV.managementUrl]: broker.container.managementUrl,
  };
}
