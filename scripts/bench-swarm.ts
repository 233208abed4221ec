/**
 * A swarm of N simulated peers × M files each, beside a real superpeer process, through the real wire
 * protocol: signed events (Ed25519 keys), heartbeats every 2 s, re-announces when a superpeer asks. Prints
 * the join time (from the broker's confirm of the last announce to everything indexed), the healthy peers
 * timed out, the superpeer's RSS and longest event-loop delay, and search latency beside a bare amqplib
 * echo on the same broker in the same run. Real peer processes (`p2p peer`, a small share each) keep the
 * whole network's map beside it: the first joins before the swarm and follows its broadcasts, the others
 * join after it and load the map from a snapshot; for each the bench prints its RSS, high-water mark and
 * longest task once its map holds every peer's files, and its RSS after the swarm has left; the
 * superpeer's RSS after the swarm has left, and idle 30 s later. Not part of `npm test`.
 *
 *   npm run bench:swarm -- --peers 1000 --files 1000
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { openSync, readdirSync } from 'node:fs';
import fs from 'node:fs/promises';
import { availableParallelism, loadavg } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import amqp, { type ConsumeMessage } from 'amqplib';
import { v4 as uuidv4 } from 'uuid';
import { signBody } from '../libs/identity/index.js';
import {
  chunk,
  encode,
  type FileEntry,
  HEADERS,
  MAX_FILES_PER_MESSAGE,
  PROTOCOL_VERSION,
  peerIdFromPublicKey,
  topologyNames,
} from '../libs/protocol/index.js';
import { LogTail } from './support/log-tail.js';
import { AMQP_URL, cleanupNamespace, makeTempDir, P2P_BIN, REPO_ROOT, waitUntil } from './support/network.js';
import { brokerPid, cpuSeconds, machineBusySeconds, machineSpeed, rssMb } from './support/proc-stats.js';

const { values } = parseArgs({
  options: {
    peers: { type: 'string', default: '1000' },
    files: { type: 'string', default: '1000' },
    /** Seconds the swarm keeps heartbeating after the join, watching for timeouts. */
    settle: { type: 'string', default: '15' },
    searches: { type: 'string', default: '500' },
    /** Copy the superpeer's log lines to this file. */
    'superpeer-log': { type: 'string' },
    /** Options for the superpeer's node, space-separated (e.g. --superpeer-node-args="--trace-gc"). */
    'superpeer-node-args': { type: 'string' },
    /** Real peer processes: the first joins before the swarm, the others once it has joined. */
    'real-peers': { type: 'string', default: '2' },
    /** Copy each real peer's output (log lines, --trace-gc) to this path followed by its number. */
    'real-peer-log': { type: 'string' },
    /** Options for the real peers' node, space-separated (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"). */
    'real-peer-node-args': { type: 'string' },
    /**
     * Publish the swarm's events without routing keys, as clients written before peers keyed events by
     * type: every announce then reaches the superpeer's liveness copy too.
     */
    'unkeyed-events': { type: 'boolean', default: false },
    /**
     * Build and sign every peer's announce before the join, as peers that each have their state ready:
     * during the join the swarm only publishes (by default each peer builds its state when its turn comes).
     */
    prebuilt: { type: 'boolean', default: false },
    /**
     * Write the swarm's events as many JSON libraries do by default (a space after each `,` and `:`, as
     * Python's json.dumps): valid, but not canonical, so the superpeer reads them the general way.
     */
    'spaced-json': { type: 'boolean', default: false },
    /**
     * `unique`: every file name also holds a word of its own (12 hex digits, as hash-named files do), so the
     * index holds about a token per file instead of a vocabulary of a few thousand.
     */
    names: { type: 'string', default: 'words' },
    /** Files per announce chunk (at most 2000, the protocol's limit), as a client that splits smaller would. */
    'chunk-files': { type: 'string', default: String(MAX_FILES_PER_MESSAGE) },
  },
});
const peerCount = Number(values.peers);
const filesPerPeer = Number(values.files);
const settleMs = Number(values.settle) * 1000;
const searches = Number(values.searches);
const realPeerCount = Number(values['real-peers']);
const realPeerNodeArgs = (values['real-peer-node-args'] ?? '').split(' ').filter((arg) => arg !== '');
const HEARTBEAT_INTERVAL_MS = 2000;
const MAX_UNCONFIRMED = 512;

const namespace = `bench-swarm-${process.pid}`;
const names = topologyNames(namespace);
const WORDS =
  'alpha beta gamma delta photo holiday report draft final music video backup notes invoice scan'.split(' ');

interface SimPeer {
  index: number;
  peerId: string;
  instanceId: string;
  publicKeyDer: string;
  privateKey: KeyObject;
  url: string;
  seq: number;
  heartbeating: boolean;
  /** Heartbeats sent (each carries the next number, as a real peer's do). */
  beats: number;
  /** Its first announce, built and signed before the join (--prebuilt). */
  ready?: SignedEvent[];
}

function filesOf(peer: SimPeer): FileEntry[] {
  const files: FileEntry[] = [];
  for (let j = 0; j < filesPerPeer; j++) {
    const a = WORDS[(peer.index * 7 + j) % WORDS.length]!;
    const b = WORDS[(peer.index + j * 3) % WORDS.length]!;
    // A word of the file's own: a hash of its place, mixed (Knuth's multiplier, then an xorshift).
    let own = Math.imul(peer.index * 1_000_003 + j, 2654435761) >>> 0;
    own = (own ^ (own >>> 13)) >>> 0;
    const word =
      values.names === 'unique' ? `-${own.toString(16).padStart(8, '0')}${(j & 0xfff).toString(16)}` : '';
    files.push({
      name: `${a}/${b}-${peer.index}-${j}${word}.dat`,
      size: j,
      sha256: (peer.index * 1_000_000 + j).toString(16).padStart(64, '0'),
      mtimeMs: 1_700_000_000_000,
    });
  }
  return files;
}

// ---- the superpeer, as a process -------------------------------------------------------------------------

const nodeArgs = (values['superpeer-node-args'] ?? '').split(' ').filter((arg) => arg !== '');
/** The services' output goes to files read back by polling (see LogTail): a pipe to this busy script blocks them. */
const logDir = await makeTempDir('bench-swarm-logs');
const superpeerLogPath = values['superpeer-log'] ?? path.join(logDir, 'superpeer.log');
/** This machine's speed, probed before anything of the bench runs (see `machineSpeed`). */
const speed = machineSpeed();
const superpeer: ChildProcess = spawn(process.execPath, [...nodeArgs, P2P_BIN, 'superpeer'], {
  cwd: REPO_ROOT,
  env: {
    ...process.env,
    AMQP_URL,
    P2P_NAMESPACE: namespace,
    SUPERPEER_ID: 'sp-bench',
    SUPERPEER_METRICS_PORT: '0',
    LOG_FORMAT: 'json',
    LOG_LEVEL: 'info',
  },
  stdio: ['ignore', openSync(superpeerLogPath, 'w'), 'inherit'],
});
// Whatever happens to this script, the superpeer goes with it.
process.on('exit', () => superpeer.kill('SIGTERM'));
let metricsPort: number | undefined;
let superpeerTimeoutLogs = 0;
const superpeerTail = new LogTail(superpeerLogPath, (line) => {
  try {
    const record = JSON.parse(line) as { message?: string; metricsPort?: number };
    if (record.message === 'superpeer ready') metricsPort = record.metricsPort;
    if (record.message === 'peer timed out') superpeerTimeoutLogs++;
  } catch {
    // not a log record
  }
});
await waitUntil(() => metricsPort !== undefined, { timeoutMs: 20_000, what: 'the superpeer to start' });

/** CPU seconds spent by each party of the join so far (see `joinCpu`). */
function cpuNow(): Record<string, number> {
  const superpeerPid = superpeer.pid!;
  const broker = brokerPid();
  const bench = process.cpuUsage();
  const threads: Record<string, number> = {};
  try {
    for (const tid of readdirSync(`/proc/${superpeerPid}/task`)) {
      // Every thread is called "node": they are told apart by id (the main thread's is the process id).
      if (Number(tid) !== superpeerPid)
        threads[`superpeer thread ${tid}`] = cpuSeconds(superpeerPid, Number(tid));
    }
  } catch {
    // gone
  }
  return {
    ...threads,
    superpeerMain: cpuSeconds(superpeerPid, superpeerPid),
    superpeer: cpuSeconds(superpeerPid),
    firstRealPeer: realPeers[0] ? cpuSeconds(realPeers[0].service.pid!) : Number.NaN,
    swarm: (bench.user + bench.system) / 1e6,
    broker: broker === undefined ? Number.NaN : cpuSeconds(broker),
    machine: machineBusySeconds(),
  };
}

/** Files in the superpeer's index (its p2p_superpeer_indexed_files). */
async function superpeerIndexedFiles(): Promise<number> {
  const text = await getText(`http://127.0.0.1:${metricsPort}/metrics`);
  return Number(/^p2p_superpeer_indexed_files (\S+)$/m.exec(text)?.[1] ?? Number.NaN);
}

/** The superpeer's longest event-loop delay and longest task in CPU time since the previous call. */
async function eventLoopMaxMs(): Promise<{ delayMs: number; cpuMs: number }> {
  const text = await getText(`http://127.0.0.1:${metricsPort}/metrics`);
  const gauge = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
  return {
    delayMs: gauge('p2p_superpeer_event_loop_max_ms'),
    cpuMs: gauge('p2p_superpeer_longest_task_cpu_ms'),
  };
}

/**
 * Full (mark-compact) collections on a service's main thread so far, from its metrics (`url` serves them,
 * their names start with `prefix`).
 */
async function majorGcs(url: string, prefix: 'p2p_superpeer' | 'p2p_peer'): Promise<number> {
  const text = await getText(`${url}/metrics`);
  const count = new RegExp(`^${prefix}_nodejs_gc_duration_seconds_count\\{kind="major"\\} (\\S+)$`, 'm').exec(
    text,
  )?.[1];
  // No line before the first one.
  return count === undefined ? 0 : Number(count);
}

/** `majorGcs` of the superpeer and of the first real peer (NaN without one). */
async function joinGcs(): Promise<{ superpeer: number; firstRealPeer: number }> {
  const first = realPeers[0];
  return {
    superpeer: await majorGcs(`http://127.0.0.1:${metricsPort}`, 'p2p_superpeer'),
    firstRealPeer: first === undefined ? Number.NaN : await majorGcs(first.url, 'p2p_peer'),
  };
}

/** The superpeer's own time serving searches so far (sum of seconds, count), from its metrics. */
async function superpeerSearchSeconds(): Promise<{ sum: number; count: number }> {
  const text = await getText(`http://127.0.0.1:${metricsPort}/metrics`);
  const value = (suffix: string) =>
    Number(
      new RegExp(`^p2p_superpeer_rpc_seconds_${suffix}\\{type="rpc.search"\\} (\\S+)$`, 'm').exec(
        text,
      )?.[1] ?? 0,
    );
  return { sum: value('sum'), count: value('count') };
}

/**
 * The machine's own scheduling noise: a thread that does nothing but wait on timers sees this much
 * event-loop delay when the operating system does not run it in time (a loaded machine), whatever the
 * superpeer does. The superpeer's longest task is judged beside it.
 */
const probe = new Worker(
  `const { monitorEventLoopDelay } = require('node:perf_hooks');
   const { parentPort } = require('node:worker_threads');
   const delay = monitorEventLoopDelay({ resolution: 10 });
   delay.enable();
   parentPort.on('message', () => { parentPort.postMessage(delay.max / 1e6); delay.reset(); });`,
  { eval: true },
);
probe.unref();
const probeMaxMs = (): Promise<number> =>
  new Promise((resolve) => {
    probe.once('message', (ms: number) => resolve(ms));
    probe.postMessage('max');
  });

// ---- the swarm's connection ------------------------------------------------------------------------------

const connection = await amqp.connect(AMQP_URL, { noDelay: true });
const publisher = await connection.createConfirmChannel();
await publisher.assertExchange(names.eventsExchange, 'fanout', { durable: true });
await publisher.assertExchange(names.networkExchange, 'fanout', { durable: true });
// Heartbeats have a connection of their own: real peers each have one, so a peer's heartbeat never waits
// in a socket (or in the broker's flow control) behind a thousand other peers' announces.
const heartbeatConnection = await amqp.connect(AMQP_URL, { noDelay: true });
const heartbeatChannel = await heartbeatConnection.createChannel();
for (const model of [connection, heartbeatConnection]) {
  model.on('error', (err: Error) => process.stderr.write(`swarm connection error: ${err.message}\n`));
}
let unconfirmed = 0;
const confirmWaiters: Array<() => void> = [];

/**
 * A service's page as text. Asked once more when the connection was closed under the request: a kept-alive
 * connection idle past the service's keep-alive timeout (the bench busy building announces, say) can be
 * closed by the service just as it is used again.
 */
async function getText(url: string): Promise<string> {
  try {
    return await (await fetch(url)).text();
  } catch {
    return await (await fetch(url)).text();
  }
}

/** `json` with a space after every `,` and `:` outside strings (see --spaced-json). */
function spaced(json: Buffer): Buffer {
  const text = json.toString('utf8');
  let out = '';
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    out += c;
    if (inString) {
      if (c === '\\') out += text[++i] ?? '';
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === ',' || c === ':') out += ' ';
  }
  return Buffer.from(out, 'utf8');
}

function signedEvent(peer: SimPeer, event: Record<string, unknown>) {
  const written = encode({ v: PROTOCOL_VERSION, peerId: peer.peerId, instanceId: peer.instanceId, ...event });
  const body = values['spaced-json'] ? spaced(written) : written;
  const properties = {
    contentType: 'application/json',
    type: String(event.type),
    messageId: uuidv4(),
    appId: `peer ${peer.peerId}`,
    timestamp: Math.floor(Date.now() / 1000),
    headers: { [HEADERS.signature]: signBody(peer.privateKey, body) },
  };
  return { body, properties };
}

/** An event's routing key: its type (docs/protocol.md), or none with --unkeyed-events. */
function routingKey(type: string): string {
  return values['unkeyed-events'] ? '' : type;
}

/** A heartbeat goes out at once, never behind announces (as a real peer's does: unconfirmed). */
function publishHeartbeat(peer: SimPeer): void {
  const { body, properties } = signedEvent(peer, {
    type: 'peer.heartbeat',
    seq: peer.seq,
    fileCount: filesPerPeer,
    beat: ++peer.beats,
  });
  heartbeatChannel.publish(names.eventsExchange, routingKey('peer.heartbeat'), body, properties);
}

type SignedEvent = ReturnType<typeof signedEvent>;

/** Publishes one signed event; resolves when the broker confirms it (at most MAX_UNCONFIRMED at once). */
function publishEvent(peer: SimPeer, event: Record<string, unknown>): Promise<void> {
  return publishSigned(signedEvent(peer, event));
}

async function publishSigned({ body, properties }: SignedEvent): Promise<void> {
  while (unconfirmed >= MAX_UNCONFIRMED) await new Promise<void>((resolve) => confirmWaiters.push(resolve));
  unconfirmed++;
  const confirmed = new Promise<void>((resolve, reject) =>
    publisher.publish(names.eventsExchange, routingKey(properties.type), body, properties, (err) => {
      unconfirmed--;
      confirmWaiters.shift()?.();
      if (err) reject(err);
      else resolve();
    }),
  );
  await confirmed;
}

/** A peer's announce: its state in chunks, each event signed. */
function announceEvents(peer: SimPeer): SignedEvent[] {
  const pieces = chunk(filesOf(peer), Number(values['chunk-files']));
  return pieces.map((files, chunkIndex) =>
    signedEvent(peer, {
      type: 'peer.announce',
      url: peer.url,
      seq: peer.seq, // a resync answer keeps the seq: the state did not change
      publicKey: peer.publicKeyDer,
      name: `sim-${String(peer.index).padStart(6, '0')}`,
      chunkIndex,
      chunkCount: pieces.length,
      files,
    }),
  );
}

async function announce(peer: SimPeer): Promise<void> {
  const events = peer.ready ?? announceEvents(peer);
  peer.ready = undefined; // a resync answer is built anew
  await Promise.all(events.map(publishSigned));
}

// ---- make the peers --------------------------------------------------------------------------------------

const swarm: SimPeer[] = [];
const byId = new Map<string, SimPeer>();
for (let index = 0; index < peerCount; index++) {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const publicKeyDer = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  const peer: SimPeer = {
    index,
    peerId: peerIdFromPublicKey(publicKeyDer) ?? fail(`no peer id for key ${publicKeyDer}`),
    instanceId: uuidv4(),
    publicKeyDer,
    privateKey,
    url: `http://127.0.0.1:9/sim/${index}`,
    seq: 1,
    heartbeating: false,
    beats: 0,
  };
  swarm.push(peer);
  byId.set(peer.peerId, peer);
}

// ---- what the superpeers say -----------------------------------------------------------------------------

let healthyTimeouts = 0;
let resyncsAnswered = 0;
const network = await connection.createChannel();
const networkQueue = (await network.assertQueue('', { exclusive: true })).queue;
// Only what the swarm answers or counts, by routing key (docs/protocol.md), through a direct exchange of its
// own: the thousand peers it simulates would each read the states on their own machines, not here.
const swarmFilter = `${names.networkExchange}.bench-swarm-filter`;
await network.assertExchange(swarmFilter, 'direct', { durable: false, autoDelete: true });
await network.bindExchange(swarmFilter, names.networkExchange, '');
for (const key of ['network.resync-request', 'network.peer-left'])
  await network.bindQueue(networkQueue, swarmFilter, key);
await network.consume(
  networkQueue,
  (message: ConsumeMessage | null) => {
    if (!message) return;
    const type = message.properties.type;
    if (type !== 'network.peer-left' && type !== 'network.resync-request') return; // states: not parsed
    const body = JSON.parse(message.content.toString('utf8')) as {
      type: string;
      peerId?: string;
      reason?: string;
      peerIds?: string[];
    };
    if (
      body.type === 'network.peer-left' &&
      body.reason === 'timeout' &&
      body.peerId &&
      byId.has(body.peerId)
    ) {
      healthyTimeouts++;
    }
    if (body.type === 'network.resync-request') {
      const asked = body.peerIds ? body.peerIds.map((id) => byId.get(id)) : swarm;
      for (const peer of asked) {
        if (!peer?.heartbeating) continue; // not announced yet: its first announce is on its way
        resyncsAnswered++;
        void announce(peer).catch(() => undefined);
      }
    }
  },
  { noAck: true },
);

// ---- an RPC client and the echo baseline -------------------------------------------------------------------

const rpcChannel = await connection.createChannel();
const waiting = new Map<string, (body: Buffer) => void>();
await rpcChannel.consume(
  'amq.rabbitmq.reply-to',
  (message) => {
    if (!message) return;
    waiting.get(String(message.properties.correlationId))?.(message.content);
  },
  { noAck: true },
);
const echoQueue = (await rpcChannel.assertQueue('', { exclusive: true })).queue;
await rpcChannel.consume(echoQueue, (message) => {
  if (!message) return;
  rpcChannel.sendToQueue(message.properties.replyTo, message.content, {
    correlationId: message.properties.correlationId,
  });
  rpcChannel.ack(message);
});

function call<T>(queue: string, request: object, timeoutMs = 5000): Promise<T> {
  const correlationId = uuidv4();
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      waiting.delete(correlationId);
      reject(new Error(`no reply within ${timeoutMs} ms`));
    }, timeoutMs);
    waiting.set(correlationId, (body) => {
      clearTimeout(timer);
      waiting.delete(correlationId);
      resolve(JSON.parse(body.toString('utf8')) as T);
    });
    rpcChannel.sendToQueue(queue, encode(request), {
      replyTo: 'amq.rabbitmq.reply-to',
      correlationId,
      expiration: String(timeoutMs),
      contentType: 'application/json',
      type: (request as { type: string }).type,
    });
  });
}

interface Counts {
  indexedFiles: number;
  indexedPeers: number;
}
const counts = () =>
  call<Counts>(
    names.rpcQueue,
    { v: PROTOCOL_VERSION, type: 'rpc.search', query: 'zzzq', limit: 1 },
    2000,
  ).catch(() => undefined);
await waitUntil(async () => (await counts()) !== undefined, {
  timeoutMs: 20_000,
  what: 'the superpeer to serve',
});

// ---- real peers, as processes ----------------------------------------------------------------------------

type Phase = 'join' | 'rest' | 'leave';
interface HeapFigures {
  usedMb: number;
  totalMb: number;
  externalMb: number;
  /** The size of each of V8's heap spaces. */
  spacesMb: Record<string, number>;
}
interface RealPeer {
  label: string;
  service: ChildProcess;
  tail: LogTail;
  exited: Promise<unknown>;
  shareDir: string;
  url: string;
  /** When its map held every simulated peer's files (ms after the last confirm; after its start if late). */
  completeMs?: number;
  atComplete?: { rss: number; peak: number };
  /** Every simulated peer in its map with all of its files, checked peer by peer. */
  holdsAll?: boolean;
  view?: { peers: number; files: number };
  peakRss: number;
  /** The V8 heap and the memory outside it (buffers, typed arrays), at the last scrape. */
  heap?: HeapFigures;
  heapAtComplete?: HeapFigures;
  taskCpuMaxMs: Record<Phase, number>;
  loopMaxMs: Record<Phase, number>;
  afterLeave?: { emptiedMs: number; rss: number; laterRss: number; peak: number };
}
const REAL_PEER_FILES = 3;
const realPeers: RealPeer[] = [];
let phase: Phase = 'join';

async function startRealPeer(label: string): Promise<RealPeer> {
  const shareDir = await makeTempDir(`bench-${label}`);
  const logPath = values['real-peer-log']
    ? `${values['real-peer-log']}${label}`
    : path.join(logDir, `${label}.log`);
  for (let i = 0; i < REAL_PEER_FILES; i++) {
    await fs.writeFile(path.join(shareDir, `${label}-file-${i}.txt`), `${label} ${i}\n`);
  }
  const service = spawn(process.execPath, [...realPeerNodeArgs, P2P_BIN, 'peer'], {
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      AMQP_URL,
      P2P_NAMESPACE: namespace,
      PEER_SHARE_DIR: shareDir,
      PEER_HTTP_HOST: '127.0.0.1',
      PEER_HTTP_PORT: '0',
      PEER_NAME: label,
      LOG_FORMAT: 'json',
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', openSync(logPath, 'w'), 'inherit'],
  });
  const exited = new Promise((resolve) => service.once('exit', resolve));
  let url: string | undefined;
  const tail = new LogTail(logPath, (line) => {
    try {
      const record = JSON.parse(line) as { message?: string; url?: string };
      if (record.message === 'peer ready') url = record.url;
    } catch {
      // not a log record
    }
  });
  await waitUntil(() => url !== undefined || service.exitCode !== null, {
    timeoutMs: 30_000,
    what: `${label} to start`,
  });
  if (url === undefined) fail(`${label} exited at start (status ${service.exitCode})`);
  const real: RealPeer = {
    label,
    service,
    tail,
    exited,
    shareDir,
    url,
    peakRss: 0,
    taskCpuMaxMs: { join: 0, rest: 0, leave: 0 },
    loopMaxMs: { join: 0, rest: 0, leave: 0 },
  };
  await realPeerLoop(real); // resets the window: the peer's start-up is not what is measured
  realPeers.push(real);
  return real;
}
process.on('exit', () => {
  for (const real of realPeers) real.service.kill('SIGTERM');
});
// Stopped early (Ctrl-C, kill): the services go (through the 'exit' handlers) and the namespace's
// exchanges and queues with them, as at the end of a run.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`bench-swarm: ${signal}, cleaning up namespace ${namespace}\n`);
    Promise.all([
      cleanupNamespace(namespace).catch(() => undefined),
      fs.rm(logDir, { recursive: true, force: true }),
    ]).finally(() => process.exit(130));
  });
}

/** Reads (and resets) a real peer's longest event-loop delay and longest task since the previous call. */
async function realPeerLoop(real: RealPeer): Promise<void> {
  const text = await getText(`${real.url}/metrics`);
  const gauge = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
  const cpuMs = gauge('p2p_peer_longest_task_cpu_ms');
  const delayMs = gauge('p2p_peer_event_loop_max_ms');
  if (Number.isFinite(cpuMs)) real.taskCpuMaxMs[phase] = Math.max(real.taskCpuMaxMs[phase], cpuMs);
  if (Number.isFinite(delayMs)) real.loopMaxMs[phase] = Math.max(real.loopMaxMs[phase], delayMs);
  const mb = (name: string) => gauge(name) / 2 ** 20;
  real.heap = {
    usedMb: mb('p2p_peer_nodejs_heap_size_used_bytes'),
    totalMb: mb('p2p_peer_nodejs_heap_size_total_bytes'),
    externalMb: mb('p2p_peer_nodejs_external_memory_bytes'),
    spacesMb: Object.fromEntries(
      [...text.matchAll(/^p2p_peer_nodejs_heap_space_size_total_bytes\{space="(\w+)"\} (\S+)$/gm)].map(
        ([, space, bytes]) => [space!, Math.round(Number(bytes) / 2 ** 20)],
      ),
    ),
  };
}

async function realPeerStatus(real: RealPeer): Promise<{ viewPeers: number; viewFiles: number }> {
  return JSON.parse(await getText(`${real.url}/api/status`)) as { viewPeers: number; viewFiles: number };
}

/**
 * Waits until a real peer's map holds every simulated peer's files, then records its memory and checks its
 * map peer by peer (`GET /api/peers`: the peers of its own view).
 */
async function awaitCompleteMap(real: RealPeer, since: number): Promise<void> {
  await waitUntil(
    async () => {
      const status = await realPeerStatus(real);
      real.view = { peers: status.viewPeers, files: status.viewFiles };
      return status.viewPeers >= peerCount && status.viewFiles >= peerCount * filesPerPeer;
    },
    { timeoutMs: JOIN_LIMIT_MS, intervalMs: 100, what: `${real.label}'s map to hold every peer's files` },
  ).catch(() =>
    process.stdout.write(
      `${real.label}: map incomplete after ${JOIN_LIMIT_MS / 1000} s: ${JSON.stringify(real.view)}\n`,
    ),
  );
  real.completeMs = performance.now() - since;
  real.atComplete = rssMb(real.service.pid!);
  await realPeerLoop(real);
  real.heapAtComplete = real.heap;
  const listing = JSON.parse(await getText(`${real.url}/api/peers`)) as {
    peers: Array<{ peerId: string; fileCount: number }>;
  };
  const held = new Map(listing.peers.map((peer) => [peer.peerId, peer.fileCount]));
  real.holdsAll = swarm.every((peer) => held.get(peer.peerId) === filesPerPeer);
}

const JOIN_LIMIT_MS = 300_000;
const earlyPeer = realPeerCount > 0 ? await startRealPeer('real-peer-1') : undefined;

// ---- the join --------------------------------------------------------------------------------------------

let loopMaxMs = 0;
let taskCpuMaxMs = 0;
let noiseMaxMs = 0;
const sampleLoop = ({ delayMs, cpuMs }: { delayMs: number; cpuMs: number }) => {
  if (Number.isFinite(delayMs)) loopMaxMs = Math.max(loopMaxMs, delayMs);
  if (Number.isFinite(cpuMs)) taskCpuMaxMs = Math.max(taskCpuMaxMs, cpuMs);
};
let peakRss = 0;
const sampler = setInterval(() => {
  void probeMaxMs().then((ms) => {
    noiseMaxMs = Math.max(noiseMaxMs, ms);
  });
  void eventLoopMaxMs().then(sampleLoop, () => undefined);
  peakRss = Math.max(peakRss, rssMb(superpeer.pid!).rss);
  for (const real of realPeers) {
    if (real.service.exitCode !== null) continue;
    real.peakRss = Math.max(real.peakRss, rssMb(real.service.pid!).rss);
    void realPeerLoop(real).catch(() => undefined);
  }
}, 1000);
await eventLoopMaxMs(); // resets the window: the superpeer's start-up is not the join
await probeMaxMs();

let tick = 0;
const TICKS = 20;
const heartbeats = setInterval(() => {
  // Spread over the interval, as independent peers would be.
  tick = (tick + 1) % TICKS;
  for (let i = tick; i < swarm.length; i += TICKS) {
    const peer = swarm[i]!;
    if (!peer.heartbeating) continue;
    publishHeartbeat(peer);
  }
}, HEARTBEAT_INTERVAL_MS / TICKS);

if (values.prebuilt) for (const peer of swarm) peer.ready = announceEvents(peer);
const majorGcsAtStart = await joinGcs();
const joinStarted = performance.now();
const cpuAtStart = cpuNow();
// A few peers at a time build and publish their state (each one's files are made only then, unless
// --prebuilt), and the event loop turns between peers, so that heartbeats leave on time.
const ANNOUNCING_AT_ONCE = 16;
let nextPeer = 0;
await Promise.all(
  Array.from({ length: ANNOUNCING_AT_ONCE }, async () => {
    for (let peer = swarm[nextPeer++]; peer; peer = swarm[nextPeer++]) {
      await announce(peer);
      peer.heartbeating = true;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }),
);
await publisher.waitForConfirms();
const lastConfirm = performance.now();
let indexedAt: number | undefined;
let last: Counts | undefined;
await waitUntil(
  async () => {
    last = await counts();
    if (last && last.indexedPeers >= peerCount && last.indexedFiles >= peerCount * filesPerPeer) {
      indexedAt = performance.now();
      return true;
    }
    return false;
  },
  { timeoutMs: JOIN_LIMIT_MS, intervalMs: 50, what: 'every simulated peer to be indexed' },
).catch(() =>
  process.stdout.write(
    `not all indexed within ${JOIN_LIMIT_MS / 1000} s of the last confirm: ${JSON.stringify(last)}\n`,
  ),
);
const cpuAtIndexed = cpuNow();
const majorGcsAtIndexed = await joinGcs();
const joinMajorGcs = majorGcsAtIndexed.superpeer - majorGcsAtStart.superpeer;
const firstRealPeerJoinMajorGcs = majorGcsAtIndexed.firstRealPeer - majorGcsAtStart.firstRealPeer;
/** CPU seconds each party spent from the first announce to everything indexed. */
const joinCpu = Object.fromEntries(
  Object.entries(cpuAtIndexed).map(([party, seconds]) => [party, seconds - cpuAtStart[party]!]),
);
const joinMs = (indexedAt ?? Number.NaN) - lastConfirm;
const publishMs = lastConfirm - joinStarted;
const rssAtJoin = rssMb(superpeer.pid!);

// The real peer that followed the join, then those that load the whole map from a snapshot.
if (earlyPeer) {
  await awaitCompleteMap(earlyPeer, lastConfirm);
  await realPeerLoop(earlyPeer);
}
for (let i = 2; i <= realPeerCount; i++) {
  const started = performance.now();
  const late = await startRealPeer(`real-peer-${i}`);
  await awaitCompleteMap(late, started);
  await realPeerLoop(late);
}
phase = 'rest';

// Every peer listed through rpc.peers pages.
let listed = 0;
let cursor: { peerId: string } | undefined;
for (let page = 0; page < 10_000; page++) {
  const reply = await call<{ peers: unknown[]; next?: { peerId: string } }>(
    names.rpcQueue,
    { v: PROTOCOL_VERSION, type: 'rpc.peers', ...(cursor ? { cursor } : {}) },
    30_000,
  ).catch(() => ({ peers: [], next: undefined }));
  listed += reply.peers.length;
  if (!reply.next) break;
  cursor = reply.next;
}

// Heartbeats go on: any healthy peer dropped now is the superpeer's fault.
const settleUntil = performance.now() + settleMs;
await waitUntil(() => performance.now() >= settleUntil, {
  timeoutMs: settleMs + 5000,
  intervalMs: 200,
  what: 'the settle period',
});

/** Calls of one kind in a row, in the `alone` measure of `timeCalls`. */
const ALONE_RUN = 50;
/**
 * p50 of each kind of call: first each kind alone, in runs of one kind (ALONE_RUN calls of a kind, then
 * as many of the next, round after round: the kinds see the same moments of a drifting machine, and a call
 * meets only the tail of its own kind's work), then the kinds interleaved one by one (a call may also meet
 * the tail of the other kind's work, on a machine whose cores are all busy). Both are printed.
 */
async function timeCalls(kinds: ReadonlyArray<{ queue: string; request: (i: number) => object }>) {
  for (let i = 0; i < 50; i++) for (const { queue, request } of kinds) await call(queue, request(i));
  const timed = async (k: number, i: number, into: number[][]) => {
    const { queue, request } = kinds[k]!;
    const started = performance.now();
    await call(queue, request(i));
    into[k]!.push(performance.now() - started);
  };
  const alone = kinds.map((): number[] => []);
  for (let run = 0; run < searches; run += ALONE_RUN) {
    for (const k of kinds.keys()) {
      for (let i = run; i < Math.min(searches, run + ALONE_RUN); i++) await timed(k, i, alone);
    }
  }
  const interleaved = kinds.map((): number[] => []);
  for (let i = 0; i < searches; i++) for (const k of kinds.keys()) await timed(k, i, interleaved);
  const p50 = (list: number[]) => list.sort((a, b) => a - b)[Math.floor(list.length / 2)]!;
  return { alone: alone.map(p50), interleaved: interleaved.map(p50) };
}
const servedBefore = await superpeerSearchSeconds();
const rpcTimes = await timeCalls([
  { queue: echoQueue, request: () => ({ v: PROTOCOL_VERSION, type: 'rpc.search', query: 'x', limit: 1 }) },
  {
    queue: names.rpcQueue,
    request: (i) => ({
      v: PROTOCOL_VERSION,
      type: 'rpc.search',
      query: `${WORDS[i % WORDS.length]} ${WORDS[(i * 7 + 3) % WORDS.length]} ${i % peerCount}`,
      limit: 50,
    }),
  },
]);
const servedAfter = await superpeerSearchSeconds();
/** Mean ms the superpeer spent in a search itself (the index and the reply's results), over those timed. */
const searchServeMs =
  (1000 * (servedAfter.sum - servedBefore.sum)) / Math.max(1, servedAfter.count - servedBefore.count);
const [echoP50, searchP50] = rpcTimes.alone as [number, number];
const [echoP50Interleaved, searchP50Interleaved] = rpcTimes.interleaved as [number, number];

clearInterval(heartbeats);
// Peers that stop heartbeating from now on are leaving, not timed out while healthy.
const healthyTimeoutsSeen = healthyTimeouts;
// The superpeer's own count, beside what the swarm heard on N.network (the two must agree).
const timeoutLogsSeen = superpeerTimeoutLogs;
sampleLoop(await eventLoopMaxMs());
const rssEnd = rssMb(superpeer.pid!);

// The swarm leaves (each peer says peer.leave), and the real peers' maps empty.
for (const real of realPeers) await realPeerLoop(real);
phase = 'leave';
// The superpeer's longest task until now, and from now on in the leave (removals, compaction, collections).
const superpeerTaskBeforeLeaveMs = taskCpuMaxMs;
taskCpuMaxMs = 0;
const leaveStarted = performance.now();
for (const peer of swarm) peer.heartbeating = false;
await Promise.all(swarm.map((peer) => publishEvent(peer, { type: 'peer.leave' }).catch(() => undefined)));
/** After the last peer left, how long a real peer idles before its RSS is read again. */
const IDLE_AFTER_LEAVE_MS = 10_000;
const SUPERPEER_IDLE_AFTER_LEAVE_MS = 30_000;
for (const real of realPeers) {
  await waitUntil(async () => (await realPeerStatus(real)).viewPeers <= realPeers.length, {
    timeoutMs: JOIN_LIMIT_MS,
    intervalMs: 100,
    what: `${real.label}'s map to lose the swarm`,
  }).catch(() => process.stdout.write(`${real.label}: the swarm is still in its map\n`));
  real.afterLeave = {
    emptiedMs: performance.now() - leaveStarted,
    rss: rssMb(real.service.pid!).rss,
    laterRss: Number.NaN,
    peak: Number.NaN,
  };
}
// The superpeer's index empties too (the real peers' few files stay): its memory, then and idle later.
const superpeerEmptied = await waitUntil(
  async () => (await superpeerIndexedFiles()) <= realPeers.length * 10,
  {
    timeoutMs: JOIN_LIMIT_MS,
    intervalMs: 100,
    what: "the superpeer's index to lose the swarm",
  },
)
  .then(() => performance.now() - leaveStarted)
  .catch(() => Number.NaN);
const superpeerAfterLeave = {
  rss: rssMb(superpeer.pid!).rss,
  laterRss: Number.NaN,
  idleRss: Number.NaN,
  /** VmHWM at the very end: the leave included. */
  peak: Number.NaN,
};
await new Promise((resolve) => setTimeout(resolve, IDLE_AFTER_LEAVE_MS));
superpeerAfterLeave.laterRss = rssMb(superpeer.pid!).rss;
for (const real of realPeers) {
  const { rss, peak } = rssMb(real.service.pid!);
  real.afterLeave = { ...real.afterLeave!, laterRss: rss, peak };
  await realPeerLoop(real);
}
// V8 gives back the memory of a dropped index at its next full collection, which an idle process runs
// some seconds after its last one (its memory reducer): the superpeer once more, 30 s after its index emptied.
await new Promise((resolve) => setTimeout(resolve, SUPERPEER_IDLE_AFTER_LEAVE_MS - IDLE_AFTER_LEAVE_MS));
({ rss: superpeerAfterLeave.idleRss, peak: superpeerAfterLeave.peak } = rssMb(superpeer.pid!));
clearInterval(sampler);

const out = (label: string, value: string, goal = '') =>
  process.stdout.write(`${label.padEnd(46)} ${value.padEnd(22)} ${goal}\n`);
process.stdout.write(
  `swarm: ${peerCount} peers × ${filesPerPeer} files, beside one superpeer process${
    values['unkeyed-events'] ? '; events published without routing keys' : ''
  }${values.prebuilt ? '; announces built and signed before the join' : ''}${
    values['spaced-json'] ? '; events written with spaces (not canonical)' : ''
  }${values.names === 'unique' ? '; a word of its own in every file name' : ''}${
    Number(values['chunk-files']) < MAX_FILES_PER_MESSAGE
      ? `; announces in chunks of ${values['chunk-files']} files`
      : ''
  }\n`,
);
out('announces published and confirmed in', `${(publishMs / 1000).toFixed(2)} s`);
out('indexed after the last confirm', `${(joinMs / 1000).toFixed(2)} s`, 'goal ≤ 3 s');
out(
  'CPU s in the join: superpeer main / other threads',
  `${joinCpu.superpeerMain!.toFixed(2)} / ${(joinCpu.superpeer! - joinCpu.superpeerMain!).toFixed(2)}`,
  'first announce to all indexed',
);
out(
  "CPU s in the join: superpeer's other threads",
  Object.entries(joinCpu)
    .filter(([party, seconds]) => party.startsWith('superpeer thread') && seconds >= 0.05)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 4)
    .map(([, seconds]) => seconds.toFixed(2))
    .join(', '),
);
out(
  'CPU s in the join: real peer 1, swarm, broker',
  `${joinCpu.firstRealPeer!.toFixed(2)}, ${joinCpu.swarm!.toFixed(2)}, ${joinCpu.broker!.toFixed(2)}`,
);
out(
  'CPU s in the join: whole machine (every core)',
  `${joinCpu.machine!.toFixed(2)}`,
  `of ${(((indexedAt ?? Number.NaN) - joinStarted) / 1000).toFixed(2)} s × ${availableParallelism()} cores`,
);
out(
  'full GCs (main thread) in the join: superpeer, real peer 1',
  `${joinMajorGcs}, ${firstRealPeerJoinMajorGcs}`,
  'mark-compacts, from their metrics',
);
out('peers listed through rpc.peers pages', `${listed}`, `expected ${peerCount + realPeers.length}`);
out(
  'healthy peers timed out (join + settle)',
  `${healthyTimeoutsSeen}; logged ${timeoutLogsSeen}`,
  'goal 0 (heard as network.peer-left; logged by the superpeer)',
);
out('re-announces answered (resync requests)', `${resyncsAnswered}`);
out(
  'superpeer RSS at join / end / peak sampled',
  `${rssAtJoin.rss.toFixed(0)} / ${rssEnd.rss.toFixed(0)} / ${Math.max(peakRss, rssEnd.rss).toFixed(0)} MB`,
);
out(
  'superpeer RSS high-water mark (VmHWM)',
  `${rssEnd.peak.toFixed(0)} / ${superpeerAfterLeave.peak.toFixed(0)} MB`,
  'goal ≤ 400 MB; before the leave / at the end',
);
out(
  `superpeer RSS after the swarm left / ${IDLE_AFTER_LEAVE_MS / 1000} / ${SUPERPEER_IDLE_AFTER_LEAVE_MS / 1000} s on`,
  `${superpeerAfterLeave.rss.toFixed(0)} / ${superpeerAfterLeave.laterRss.toFixed(0)} / ${superpeerAfterLeave.idleRss.toFixed(0)} MB`,
  `index empty by ${(superpeerEmptied / 1000).toFixed(2)} s after the leaves`,
);
out('superpeer longest event-loop delay', `${loopMaxMs.toFixed(1)} ms`);
out(
  'superpeer longest task (CPU time)',
  `${superpeerTaskBeforeLeaveMs.toFixed(1)} / ${taskCpuMaxMs.toFixed(1)} ms`,
  'goal ≤ 50 ms; join and rest / leave',
);
out(
  'idle probe thread: scheduling delay (noise)',
  `${noiseMaxMs.toFixed(1)} ms`,
  'the machine, not the superpeer',
);
out(
  'load average (1 / 5 / 15 min) at the end',
  loadavg()
    .map((load) => load.toFixed(2))
    .join(' / '),
);
out(
  'machine: random read over 256 MiB / loop step',
  `${speed.randomReadNs.toFixed(0)} / ${speed.loopStepNs.toFixed(2)} ns`,
  'probed before the bench started; compare runs by these',
);
out(
  'echo RPC p50 (bare amqplib, same broker)',
  `${echoP50.toFixed(3)} ms`,
  `alone: runs of ${ALONE_RUN} echoes, taking turns with runs of searches`,
);
out(
  'search p50 (3 words, limit 50)',
  `${searchP50.toFixed(3)} ms`,
  `= ${(searchP50 / echoP50).toFixed(2)} × echo (goal ≤ 3); alone, in runs of ${ALONE_RUN}`,
);
out(
  "search: the superpeer's own time, mean",
  `${searchServeMs.toFixed(3)} ms`,
  'the index and the results, from its p2p_superpeer_rpc_seconds',
);
out(
  'interleaved: echo / search p50',
  `${echoP50Interleaved.toFixed(3)} / ${searchP50Interleaved.toFixed(3)} ms`,
  `= ${(searchP50Interleaved / echoP50Interleaved).toFixed(2)} × echo, one of each in turn (as bench:rpc)`,
);
for (const real of realPeers) {
  const name = real.label === 'real-peer-1' ? `${real.label} (joined first)` : `${real.label} (joined last)`;
  const at = real.atComplete ?? { rss: Number.NaN, peak: Number.NaN };
  out(
    `${name}: map complete after`,
    `${((real.completeMs ?? Number.NaN) / 1000).toFixed(2)} s`,
    real.label === 'real-peer-1' ? 'from the last confirm' : 'from its start (snapshot)',
  );
  out(
    `${real.label}: map holds every peer × files`,
    `${real.holdsAll ? 'yes' : 'NO'} (${real.view?.peers} / ${real.view?.files})`,
    `expected ${peerCount} × ${filesPerPeer} + the real peers`,
  );
  out(
    `${real.label}: RSS at complete map / peak sampled`,
    `${at.rss.toFixed(0)} / ${real.peakRss.toFixed(0)} MB`,
  );
  const heap = real.heapAtComplete;
  out(
    `${real.label}: heap used / total, external`,
    `${heap?.usedMb.toFixed(0)} / ${heap?.totalMb.toFixed(0)}, ${heap?.externalMb.toFixed(0)} MB`,
    'at complete map',
  );
  out(
    `${real.label}: VmHWM at complete map / at end`,
    `${at.peak.toFixed(0)} / ${(real.afterLeave?.peak ?? Number.NaN).toFixed(0)} MB`,
    'goal ≤ 200 MB',
  );
  out(
    `${real.label}: longest task CPU join/rest/leave`,
    `${real.taskCpuMaxMs.join.toFixed(1)} / ${real.taskCpuMaxMs.rest.toFixed(1)} / ${real.taskCpuMaxMs.leave.toFixed(1)} ms`,
    'goal ≤ 50 ms',
  );
  out(
    `${real.label}: longest loop delay join/rest/leave`,
    `${real.loopMaxMs.join.toFixed(1)} / ${real.loopMaxMs.rest.toFixed(1)} / ${real.loopMaxMs.leave.toFixed(1)} ms`,
  );
  const left = real.afterLeave;
  out(
    `${real.label}: RSS after the swarm left / ${IDLE_AFTER_LEAVE_MS / 1000} s on`,
    `${left?.rss.toFixed(0)} / ${left?.laterRss.toFixed(0)} MB`,
    `map empty ${((left?.emptiedMs ?? Number.NaN) / 1000).toFixed(2)} s after the leaves`,
  );
}
process.stdout.write(
  `${JSON.stringify({ peerCount, filesPerPeer, publishMs, joinMs, joinCpu, joinMajorGcs, firstRealPeerJoinMajorGcs, listed, healthyTimeouts: healthyTimeoutsSeen, superpeerTimeoutLogs: timeoutLogsSeen, resyncsAnswered, rssAtJoinMb: rssAtJoin.rss, rssEndMb: rssEnd.rss, rssPeakMb: rssEnd.peak, superpeerAfterLeave, loopMaxMs, taskCpuMaxMs: superpeerTaskBeforeLeaveMs, leaveTaskCpuMaxMs: taskCpuMaxMs, noiseMaxMs, loadAverage: loadavg(), machineSpeed: speed, echoP50, searchP50, echoP50Interleaved, searchP50Interleaved, searchServeMs, realPeers: realPeers.map(({ service: _service, tail: _tail, exited: _exited, shareDir: _dir, ...real }) => real) })}\n`,
);

await heartbeatConnection.close();
await connection.close();
// Each real peer says peer.leave and exits (a --cpu-prof profile is written then).
for (const real of realPeers) real.service.kill('SIGTERM');
await Promise.all(realPeers.map((real) => real.exited));
superpeer.kill('SIGTERM');
await new Promise((resolve) => superpeer.once('exit', resolve));
superpeerTail.close();
for (const real of realPeers) real.tail.close();
await Promise.all(realPeers.map((real) => fs.rm(real.shareDir, { recursive: true, force: true })));
await fs.rm(logDir, { recursive: true, force: true });
await cleanupNamespace(namespace).catch(() => undefined);

function fail(message: string): never {
  throw new Error(message);
}
