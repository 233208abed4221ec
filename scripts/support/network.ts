import { type ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import amqp from 'amqplib';
import { sharedTopology, topologyNames } from '../../libs/protocol/index.js';
import { testAmqpUrl } from './broker.js';

/** Repository root (this file runs from dist/scripts/support). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const P2P_BIN = path.join(REPO_ROOT, 'bin/p2p.js');
/** The broker of this run: AMQP_URL (set by `npm test`'s runner, scripts/test.ts), else the default address. */
export const AMQP_URL = testAmqpUrl();

/** Polls `probe` until it returns a value other than undefined/false, or throws after `timeoutMs`. */
export async function waitUntil<T>(
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  options: { timeoutMs: number; intervalMs?: number; what: string },
): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const reason = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new Error(`timed out after ${options.timeoutMs} ms waiting for ${options.what}${reason}`);
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 50));
  }
}

export type LogRecord = Record<string, unknown> & { message?: string; level?: string };

/** A service started through the same entry point docker-compose uses: `node bin/p2p.js <kind>`. */
export class ServiceProcess extends EventEmitter<{ record: [LogRecord] }> {
  readonly records: LogRecord[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcess;

  constructor(
    readonly name: string,
    kind: 'superpeer' | 'peer',
    env: Record<string, string>,
    args: string[] = [],
  ) {
    super();
    this.child = spawn(process.execPath, [P2P_BIN, kind, ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, LOG_FORMAT: 'json', LOG_LEVEL: 'debug', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    readline.createInterface({ input: this.child.stdout! }).on('line', (line) => {
      let record: LogRecord;
      try {
        record = JSON.parse(line) as LogRecord;
      } catch {
        record = { message: line, level: 'raw' };
      }
      this.records.push(record);
      this.emit('record', record);
    });
    readline.createInterface({ input: this.child.stderr! }).on('line', (line) => this.stderr.push(line));
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Resolves with the first log record (past or future) that `match` accepts. */
  waitForLog(match: (record: LogRecord) => boolean, timeoutMs: number, what: string): Promise<LogRecord> {
    const seen = this.records.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const onRecord = (record: LogRecord) => {
        if (!match(record)) return;
        cleanup();
        resolve(record);
      };
      const onExit = () => {
        cleanup();
        reject(new Error(`${this.name} exited while waiting for ${what}; stderr: ${this.stderr.join('\n')}`));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${this.name}: timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.off('record', onRecord);
        this.child.off('exit', onExit);
      };
      this.on('record', onRecord);
      this.child.once('exit', onExit);
    });
  }

  signal(signal: NodeJS.Signals): void {
    if (this.alive) this.child.kill(signal);
  }

  /** SIGTERM and wait; SIGKILL if it does not exit within `timeoutMs`. */
  async stop(timeoutMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (!this.alive) return this.exited;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const result = await this.exited;
    clearTimeout(timer);
    return result;
  }
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs one `p2p` command to completion. */
export function runCli(args: string[], env: Record<string, string>, timeoutMs = 30_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [P2P_BIN, ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, LOG_FORMAT: 'json', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`p2p ${args.join(' ')} did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A namespace of its own for each test, so tests never see each other's messages. */
export function testNamespace(label: string): string {
  return `t-${label}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}

export async function makeTempDir(label: string): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), `p2p-${label}-`));
}

/** Deletes what a namespace declared that outlives connections (exclusive queues go with their owners). */
export async function cleanupNamespace(namespace: string): Promise<void> {
  // Whatever the shared topology declares (queues and exchanges), from its one definition.
  const shared = sharedTopology(topologyNames(namespace));
  const connection = await amqp.connect(AMQP_URL);
  try {
    const channel = await connection.createChannel();
    for (const queue of shared.queues) await channel.deleteQueue(queue.name);
    for (const exchange of shared.exchanges) await channel.deleteExchange(exchange.name);
    await channel.close();
  } finally {
    await connection.close();
  }
}

/**
 * A short-lived plain AMQP client, as "another client" on the broker would be. Its channel is in confirm
 * mode and every publish is confirmed before the connection closes.
 */
export async function withAmqp<T>(work: (channel: amqp.ConfirmChannel) => Promise<T>): Promise<T> {
  const connection = await amqp.connect(AMQP_URL);
  try {
    const channel = await connection.createConfirmChannel();
    const result = await work(channel);
    await channel.waitForConfirms();
    return result;
  } finally {
    await connection.close();
  }
}

export interface RunningPeer {
  process: ServiceProcess;
  shareDir: string;
  url: string;
  peerId: string;
  /** Display name (PEER_NAME, defaulting to the label the test gave). */
  name: string;
}

export interface TestNetwork {
  namespace: string;
  /** Environment that points a CLI or service at this network. */
  env: Record<string, string>;
  superpeer: ServiceProcess;
  peers: RunningPeer[];
  startPeer(
    label: string,
    files: Record<string, string | Buffer>,
    extraEnv?: Record<string, string>,
  ): Promise<RunningPeer>;
  startSuperpeer(label?: string): Promise<ServiceProcess>;
  stop(): Promise<void>;
}

/** Starts a superpeer and peers (each with the files given, by relative name) in a fresh namespace. */
export async function startNetwork(options: {
  label: string;
  peers: Array<Record<string, string | Buffer>>;
  env?: Record<string, string>;
}): Promise<TestNetwork> {
  const namespace = testNamespace(options.label);
  const env = { AMQP_URL, P2P_NAMESPACE: namespace, ...options.env };
  const dirs: string[] = [];
  const started: ServiceProcess[] = [];

  const startSuperpeer = async (label = 'sp') => {
    const superpeer = new ServiceProcess(label, 'superpeer', {
      ...env,
      SUPERPEER_ID: `${label}-${process.pid}`,
    });
    started.push(superpeer);
    await superpeer.waitForLog((r) => r.message === 'superpeer ready', 20_000, 'superpeer ready');
    return superpeer;
  };

  const startPeer = async (
    label: string,
    files: Record<string, string | Buffer>,
    extraEnv: Record<string, string> = {},
  ) => {
    const shareDir = await makeTempDir(label);
    dirs.push(shareDir);
    for (const [name, content] of Object.entries(files)) {
      const file = path.join(shareDir, name);
      await fs.mkdir(path.dirname(file), { recursive: true });
      await fs.writeFile(file, content);
    }
    const peer = new ServiceProcess(label, 'peer', {
      ...env,
      PEER_SHARE_DIR: shareDir,
      PEER_HTTP_HOST: '127.0.0.1',
      PEER_HTTP_PORT: '0',
      PEER_NAME: label,
      ...extraEnv,
    });
    started.push(peer);
    const ready = await peer.waitForLog((r) => r.message === 'peer ready', 20_000, `${label} ready`);
    return {
      process: peer,
      shareDir,
      url: String(ready.url),
      peerId: String(ready.peerId),
      name: String(ready.name),
    };
  };

  const superpeer = await startSuperpeer();
  const peers: RunningPeer[] = [];
  for (const [i, files] of options.peers.entries()) peers.push(await startPeer(`peer${i + 1}`, files));

  return {
    namespace,
    env,
    superpeer,
    peers,
    startPeer,
    startSuperpeer,
    async stop() {
      await Promise.all(started.map((service) => service.stop()));
      await cleanupNamespace(namespace).catch(() => undefined);
      await Promise.all(dirs.map((dir) => fs.rm(dir, { recursive: true, force: true })));
    },
  };
}
