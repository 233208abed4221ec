/**
 * End-to-end search latency over AMQP against a superpeer holding N files (default 1,000,000), next to the
 * broker's own round trip: a bare amqplib echo server on the same broker, measured in the same run.
 * Absolute times on a shared machine are noisy; the ratio is the figure to read (the kinds are interleaved so
 * that they share the same load). Not part of `npm test`.
 *
 *   npm run bench:rpc -- --files 1000000 --requests 2000
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import amqp from 'amqplib';
import { v4 as uuidv4 } from 'uuid';
import { silentLog } from '../libs/logging/index.js';
import { Broker, RpcClient } from '../libs/messaging/index.js';
import {
  PROTOCOL_VERSION,
  SearchReplySchema,
  sharedTopology,
  topologyNames,
} from '../libs/protocol/index.js';
import { Superpeer } from '../services/superpeer/superpeer.js';
import { AMQP_URL, cleanupNamespace, waitUntil } from './support/network.js';
import { prng } from './support/prng.js';

const { values } = parseArgs({
  options: { files: { type: 'string', default: '1000000' }, requests: { type: 'string', default: '2000' } },
});
const loadAtStart = loadavg();
const fileCount = Number(values.files);
const requests = Number(values.requests);

/*
 * Three families of words; a peer names its files from one family only, except one file in RARE_MIX that
 * takes a word from each. So a query with one word of each family hits three common words (each in about a
 * third of all files) that are rare together: the adversarial case for an index that scans one word's
 * postings and checks the others.
 */
const FAMILIES = [
  'alpha beta gamma delta epsilon'.split(' '),
  'photo holiday report draft final'.split(' '),
  'music video backup notes invoice'.split(' '),
];
const WORDS = FAMILIES.flat();
const RARE_MIX = 10_000;
const IN_FLIGHT = 64;
const ROUNDS = 4;

type Latency = { p50: number; p99: number };
const random = prng(42);
const pick = () => WORDS[Math.floor(random() * WORDS.length)]!;
const pickFrom = (family: readonly string[]) => family[Math.floor(random() * family.length)]!;

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;

/**
 * Requests per second with `IN_FLIGHT` calls outstanding at all times, for each kind. The kinds take turns
 * in rounds of `requests / ROUNDS` so that a shared machine's changing load falls on all of them alike.
 */
async function throughputs(calls: readonly (() => Promise<unknown>)[]): Promise<number[]> {
  const elapsed = calls.map(() => 0);
  const perRound = Math.ceil(requests / ROUNDS);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [k, call] of calls.entries()) {
      let next = 0;
      const worker = async () => {
        while (next++ < perRound) await call();
      };
      const started = performance.now();
      await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
      elapsed[k]! += performance.now() - started;
    }
  }
  return elapsed.map((ms) => (perRound * ROUNDS) / (ms / 1000));
}

/** Latency percentiles of each kind, calls interleaved one by one (same load for every kind). */
async function timeCalls(
  calls: readonly ((i: number) => Promise<unknown>)[],
): Promise<{ p50: number; p99: number }[]> {
  for (let i = 0; i < 200; i++) for (const call of calls) await call(i); // warm-up
  const times = calls.map((): number[] => []);
  for (let i = 0; i < requests; i++) {
    for (const [k, call] of calls.entries()) {
      const started = process.hrtime.bigint();
      await call(i);
      times[k]!.push(Number(process.hrtime.bigint() - started) / 1e6);
    }
  }
  return times.map((list) => {
    list.sort((a, b) => a - b);
    return { p50: percentile(list, 0.5), p99: percentile(list, 0.99) };
  });
}

const namespace = `bench-${process.pid}`;
const names = topologyNames(namespace);
// One client keeps IN_FLIGHT requests outstanding: its share of waiting requests is raised to that, so that
// the throughput lines measure serving, not the refusals that fairness between clients gives a flood.
const superpeer = new Superpeer({
  amqpUrl: AMQP_URL,
  namespace,
  superpeerId: 'bench',
  logger: silentLog,
  rpcFairness: { maxPerClient: IN_FLIGHT },
});

// Fill the index directly: this measures search, not the announcing of a million files.
const peers = 100;
const started = Date.now();
for (let p = 0; p < peers; p++) {
  const files = [];
  for (let i = 0; i < fileCount / peers; i++) {
    const family = FAMILIES[p % FAMILIES.length]!;
    const mixed = i % RARE_MIX === RARE_MIX - 1;
    const words = mixed ? FAMILIES.map(pickFrom) : [pickFrom(family), pickFrom(family), pickFrom(family)];
    files.push({
      name: `${words[0]}/${words[1]}-${words[2]}-${p}-${i}.dat`,
      size: i,
      sha256: (p * 1_000_000 + i).toString(16).padStart(64, '0'),
      mtimeMs: 0,
    });
  }
  superpeer.index.applyFull({
    peerId: p.toString(16).padStart(40, '0'),
    instanceId: `instance-${p}`,
    url: `http://127.0.0.1:${9000 + p}`,
    seq: 1,
    files,
  });
}
process.stdout.write(`index: ${superpeer.index.fileCount} files in ${Date.now() - started} ms\n`);
await superpeer.start();
await waitUntil(() => superpeer.serving, { timeoutMs: 10_000, what: 'the superpeer to serve' });

// Baseline: the broker's round trip with a server that does nothing.
const echoConnection = await amqp.connect(AMQP_URL, { noDelay: true });
const echo = await echoConnection.createChannel();
const echoQueue = `${namespace}.echo`;
await echo.assertQueue(echoQueue, { exclusive: true });
await echo.consume(echoQueue, (message) => {
  if (!message) return;
  echo.sendToQueue(message.properties.replyTo, message.content, {
    correlationId: message.properties.correlationId,
  });
  echo.ack(message);
});

const broker = new Broker({
  url: AMQP_URL,
  connectionName: 'bench client',
  logger: silentLog,
  setup: async (session) => {
    await session.assertTopology(sharedTopology(names));
    await searchClient.setup(session);
    await echoClient.setup(session);
  },
});
const searchClient = new RpcClient(broker, names.rpcQueue);
const echoClient = new RpcClient(broker, echoQueue);
await broker.start();

const EchoSchema = SearchReplySchema.partial();
const echoCall = () =>
  echoClient.call({ v: PROTOCOL_VERSION, type: 'rpc.search', query: 'x', limit: 1 }, EchoSchema, {
    timeoutMs: 5000,
    correlationId: uuidv4(),
  });
let partialReplies = 0;
let adversarialResults = 0;
let adversarialCalls = 0;
const adversarialCall = () =>
  searchClient
    .call(
      { v: PROTOCOL_VERSION, type: 'rpc.search', query: FAMILIES.map(pickFrom).join(' '), limit: 50 },
      SearchReplySchema,
      { timeoutMs: 5000 },
    )
    .then((reply) => {
      adversarialCalls++;
      if (reply.partial) partialReplies++;
      adversarialResults += reply.results.length;
    });
const selectiveCall = () =>
  searchClient.call(
    {
      v: PROTOCOL_VERSION,
      type: 'rpc.search',
      query: `${pick()} ${pick()} ${Math.floor(random() * peers)}`,
      limit: 50,
    },
    SearchReplySchema,
    { timeoutMs: 5000 },
  );
const shaCall = (i: number) =>
  searchClient.call(
    {
      v: PROTOCOL_VERSION,
      type: 'rpc.search',
      query: ((i % peers) * 1_000_000 + (i % 1000)).toString(16).padStart(64, '0'),
      limit: 50,
    },
    SearchReplySchema,
    { timeoutMs: 5000 },
  );
const [baseline, selective, bySha, adversarial] = (await timeCalls([
  echoCall,
  selectiveCall,
  shaCall,
  adversarialCall,
])) as [Latency, Latency, Latency, Latency];
const adversarialPartial = partialReplies;
const adversarialAverage = adversarialResults / adversarialCalls;
const [echoRate, adversarialRate] = (await throughputs([echoCall, adversarialCall])) as [number, number];

const loadAtEnd = loadavg();
const line = (label: string, r: Latency) =>
  `${label.padEnd(34)} p50 ${r.p50.toFixed(3)} ms   p99 ${r.p99.toFixed(3)} ms   p50 ÷ echo p50 = ${(r.p50 / baseline.p50).toFixed(2)}\n`;
process.stdout.write(line('echo RPC (broker round trip)', baseline));
process.stdout.write(line('search, 3 words, limit 50', selective));
process.stdout.write(line('search by sha256', bySha));
process.stdout.write(
  `${line('search, 3 common words rare together', adversarial).trimEnd()}   (avg ${adversarialAverage.toFixed(1)} results, ${adversarialPartial} partial)\n`,
);
process.stdout.write(`echo RPC at ${IN_FLIGHT} in flight               ${echoRate.toFixed(0)} requests/s\n`);
process.stdout.write(
  `adversarial search at ${IN_FLIGHT} in flight     ${adversarialRate.toFixed(0)} requests/s = ${((100 * adversarialRate) / echoRate).toFixed(0)}% of echo\n`,
);

// The ratios are the figures to read; the load says how much the absolute times are worth.
process.stdout.write(
  `load average (1, 5, 15 min) at the start ${loadAtStart.map((l) => l.toFixed(2)).join(' ')}, at the end ${loadAtEnd.map((l) => l.toFixed(2)).join(' ')}\n`,
);

searchClient.close();
echoClient.close();
await broker.close();
await echoConnection.close();
await superpeer.close();
await cleanupNamespace(namespace);
