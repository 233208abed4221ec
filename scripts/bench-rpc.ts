/**
 * End-to-end search latency over AMQP against a superpeer holding N files (default 1,000,000), next to the
 * broker's own round trip: a bare amqplib echo server on the same broker, measured in the same run.
 * Absolute times on a shared machine are noisy; the ratio is the figure to read. Not part of `npm test`.
 *
 *   npm run bench:rpc -- --files 1000000 --requests 2000
 */
import { parseArgs } from 'node:util';
import amqp from 'amqplib';
import { v4 as uuidv4 } from 'uuid';
import { silentLog } from '../libs/logging/index.js';
import { Broker, RpcClient } from '../libs/messaging/index.js';
import { SearchReplySchema, sharedTopology, topologyNames } from '../libs/protocol/index.js';
import { Superpeer } from '../services/superpeer/superpeer.js';
import { AMQP_URL, cleanupNamespace, waitUntil } from '../tests/helpers/network.js';
import { prng } from '../tests/helpers/prng.js';

const { values } = parseArgs({
  options: { files: { type: 'string', default: '1000000' }, requests: { type: 'string', default: '2000' } },
});
const fileCount = Number(values.files);
const requests = Number(values.requests);

const WORDS =
  'alpha beta gamma delta photo holiday report draft final music video backup notes invoice scan'.split(' ');
const random = prng(42);
const pick = () => WORDS[Math.floor(random() * WORDS.length)]!;

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;

async function timeCalls(call: (i: number) => Promise<unknown>): Promise<{ p50: number; p99: number }> {
  for (let i = 0; i < 200; i++) await call(i); // warm-up
  const times: number[] = [];
  for (let i = 0; i < requests; i++) {
    const started = process.hrtime.bigint();
    await call(i);
    times.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 0.5), p99: percentile(times, 0.99) };
}

const namespace = `bench-${process.pid}`;
const names = topologyNames(namespace);
const superpeer = new Superpeer({ amqpUrl: AMQP_URL, namespace, superpeerId: 'bench', logger: silentLog });

// Fill the index directly: this measures search, not the announcing of a million files.
const peers = 100;
const started = Date.now();
for (let p = 0; p < peers; p++) {
  const files = [];
  for (let i = 0; i < fileCount / peers; i++) {
    files.push({
      name: `${pick()}/${pick()}-${pick()}-${p}-${i}.dat`,
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
const baseline = await timeCalls(() =>
  echoClient.call({ v: 1, type: 'rpc.search', query: 'x', limit: 1 }, EchoSchema, {
    timeoutMs: 5000,
    correlationId: uuidv4(),
  }),
);
const selective = await timeCalls(() =>
  searchClient.call(
    { v: 1, type: 'rpc.search', query: `${pick()} ${pick()} ${Math.floor(random() * peers)}`, limit: 50 },
    SearchReplySchema,
    {
      timeoutMs: 5000,
    },
  ),
);
const bySha = await timeCalls((i) =>
  searchClient.call(
    {
      v: 1,
      type: 'rpc.search',
      query: ((i % peers) * 1_000_000 + (i % 1000)).toString(16).padStart(64, '0'),
      limit: 50,
    },
    SearchReplySchema,
    { timeoutMs: 5000 },
  ),
);

const line = (label: string, r: { p50: number; p99: number }) =>
  `${label.padEnd(34)} p50 ${r.p50.toFixed(3)} ms   p99 ${r.p99.toFixed(3)} ms   p50 ÷ echo p50 = ${(r.p50 / baseline.p50).toFixed(2)}\n`;
process.stdout.write(line('echo RPC (broker round trip)', baseline));
process.stdout.write(line('search, 3 words, limit 50', selective));
process.stdout.write(line('search by sha256', bySha));

searchClient.close();
echoClient.close();
await broker.close();
await echoConnection.close();
await superpeer.close();
await cleanupNamespace(namespace);
