import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import amqp from 'amqplib';
import { topologyNames } from '../../libs/protocol/index.js';
import { brokerControl } from '../helpers/broker.js';
import { AMQP_URL, startNetwork, type TestNetwork, waitUntil } from '../helpers/network.js';

/*
 * Heavy and hostile load from a foreign client written with plain amqplib and node:crypto (not this
 * project's libs): one peer announcing 1,000,000 files, and a flood of chunked announces that never
 * complete, from many ids. Meanwhile the real peers keep searching through the superpeer.
 */

/** The run's broker's management API (the container's when the run started one). */
const management = brokerControl().management;

/** A foreign peer with its own key; its id is derived from the key as docs/protocol.md says ("Identity"). */
function makeForeignPeer() {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return {
    peerId: createHash('sha256').update(der).digest().subarray(0, 20).toString('hex'),
    instanceId: randomUUID(),
    publicKeyDer: der.toString('base64'),
    sign: (body: Buffer) => sign(null, body, privateKey).toString('base64'),
  };
}
type ForeignPeer = ReturnType<typeof makeForeignPeer>;

/** One chunk of an announce, built as a string: a million file objects would cost the test more than the superpeer. */
function announceChunk(peer: ForeignPeer, chunkIndex: number, chunkCount: number, files: number): Buffer {
  const entries: string[] = [];
  for (let i = 0; i < files; i++) {
    const n = chunkIndex * files + i;
    entries.push(
      `{"name":"flood/${peer.peerId}/f-${n}.bin","size":${n},"sha256":"${n.toString(16).padStart(64, '0')}","mtimeMs":1700000000000}`,
    );
  }
  return Buffer.from(
    `{"v":1,"type":"peer.announce","peerId":"${peer.peerId}","instanceId":"${peer.instanceId}","url":"http://127.0.0.1:9/${peer.peerId}","seq":1,"publicKey":"${peer.publicKeyDer}","chunkIndex":${chunkIndex},"chunkCount":${chunkCount},"files":[${entries.join(',')}]}`,
  );
}

async function publishAll(
  channel: amqp.ConfirmChannel,
  exchange: string,
  messages: Iterable<[Buffer, string]>,
) {
  let sinceConfirm = 0;
  for (const [body, signature] of messages) {
    const ok = channel.publish(exchange, '', body, {
      contentType: 'application/json',
      type: 'peer.announce',
      messageId: randomUUID(),
      headers: { 'x-p2p-signature': signature },
    });
    if (!ok) await new Promise((resolve) => channel.once('drain', resolve));
    // Building a chunk takes a while: let this process's searches and timers run between chunks, so that
    // their latencies measure the network, not this loop.
    await new Promise((resolve) => setImmediate(resolve));
    if (++sinceConfirm >= 64) {
      await channel.waitForConfirms();
      sinceConfirm = 0;
    }
  }
  await channel.waitForConfirms();
}

/**
 * Searches through the real peers' HTTP API, round-robin, until stopped; keeps every latency. Bounded in
 * time, so that a test failing before `stop()` cannot keep the test process alive.
 */
function keepSearching(network: TestNetwork, maxDurationMs = 300_000) {
  const latencies: number[] = [];
  const failures: string[] = [];
  let running = true;
  const until = performance.now() + maxDurationMs;
  const loop = (async () => {
    for (let i = 0; running && performance.now() < until; i++) {
      const peer = network.peers[i % network.peers.length]!;
      const started = performance.now();
      try {
        const response = await fetch(`${peer.url}/api/search?q=alpha`);
        const answer = (await response.json()) as { results: unknown[]; source: string };
        latencies.push(performance.now() - started);
        if (answer.source !== 'superpeer' || answer.results.length === 0) {
          failures.push(`${answer.source}: ${answer.results.length} results`);
        }
      } catch (err) {
        latencies.push(performance.now() - started);
        failures.push(String(err));
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      const sorted = [...latencies].sort((a, b) => a - b);
      return { count: sorted.length, p99: sorted[Math.floor(sorted.length * 0.99)] ?? Number.NaN, failures };
    },
  };
}

describe('limits under heavy and hostile load', { timeout: 600_000 }, () => {
  let network: TestNetwork;
  let metricsUrl: string;
  let connection: amqp.ChannelModel;
  let channel: amqp.ConfirmChannel;
  let names: ReturnType<typeof topologyNames>;

  /** One scrape; the event-loop maximum is reset by every scrape, so read what you need from one. */
  const scrape = async (): Promise<string> => (await fetch(metricsUrl)).text();
  const metric = async (name: string, text?: string): Promise<number> => {
    text ??= await scrape();
    const value = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1];
    assert.ok(value !== undefined, `metric ${name} missing`);
    return Number(value);
  };

  /** Announce chunks the superpeer has taken (its own counter: the management API's figures lag by seconds). */
  const announcesReceived = async (): Promise<number> => {
    const value = /^p2p_superpeer_events_received_total\{type="peer\.announce"\} (\S+)$/m.exec(
      await scrape(),
    )?.[1];
    return value === undefined ? 0 : Number(value);
  };

  /**
   * Waits until the superpeer has taken `announces` announce chunks in all (its counter), then every message
   * of its events queue (management API). The counter comes first: the management API's queue figures are
   * sampled every few seconds, so right after a publish they can still show the empty queue of before.
   */
  const eventsDrained = async (timeoutMs: number, announces: number) => {
    await waitUntil(async () => (await announcesReceived()) >= announces, {
      timeoutMs,
      intervalMs: 200,
      what: `the superpeer to take ${announces} announce chunks in all`,
    });
    const prefix = `${names.superpeerQueue(`sp-${process.pid}`, '')}`;
    await waitUntil(
      async () => {
        const response = await management.request(
          'GET',
          `/api/queues/${management.vhostPath}?page=1&page_size=10&use_regex=true&name=${encodeURIComponent(`^${prefix.replace(/\./g, '\\.')}`)}`,
        );
        const body = (await response.json()) as {
          items: Array<{ messages?: number; messages_unacknowledged?: number }>;
        };
        const queue = body.items[0];
        return queue !== undefined && queue.messages === 0 && queue.messages_unacknowledged === 0;
      },
      { timeoutMs, intervalMs: 500, what: "the superpeer's events queue to drain" },
    );
  };

  before(async () => {
    // Drains are watched through the management API: without it every wait below would run out.
    assert.ok(
      await management.available(),
      `RabbitMQ management API not reachable at ${management.url} (rabbitmq-plugins enable rabbitmq_management)`,
    );
    network = await startNetwork({
      label: 'limits',
      peers: [{ 'docs/alpha-guide.txt': 'guide one' }, { 'music/alpha-song.txt': 'song two' }],
      env: { SUPERPEER_METRICS_PORT: '0' },
    });
    const ready = await network.superpeer.waitForLog((r) => r.message === 'superpeer ready', 1000, 'ready');
    metricsUrl = `http://127.0.0.1:${ready.metricsPort}/metrics`;
    names = topologyNames(network.namespace);
    connection = await amqp.connect(AMQP_URL);
    channel = await connection.createConfirmChannel();
    await waitUntil(
      async () => {
        const answer = (await (await fetch(`${network.peers[0]!.url}/api/search?q=alpha`)).json()) as {
          results: unknown[];
        };
        return answer.results.length === 2;
      },
      { timeoutMs: 20_000, what: 'both real peers to be searchable' },
    );
  });

  after(async () => {
    await connection?.close().catch(() => undefined);
    await network?.stop();
  });

  test('one peer announcing 1,000,000 files is refused whole; the others keep searching', async (t) => {
    const heapBefore = await metric('p2p_superpeer_nodejs_heap_size_used_bytes');
    const hog = makeForeignPeer();
    const searching = keepSearching(network);
    const CHUNKS = 500;
    const FILES = 2000;
    function* chunks(): Generator<[Buffer, string]> {
      for (let c = 0; c < CHUNKS; c++) {
        const body = announceChunk(hog, c, CHUNKS, FILES);
        yield [body, hog.sign(body)];
      }
    }
    const announcesBefore = await announcesReceived();
    await publishAll(channel, names.eventsExchange, chunks());
    await eventsDrained(240_000, announcesBefore + CHUNKS);
    const after = await scrape();
    const heapAfter = await metric('p2p_superpeer_nodejs_heap_size_used_bytes', after);
    const result = await searching.stop();
    const loopMaxMs = await metric('p2p_superpeer_event_loop_max_ms', after);
    t.diagnostic(
      `searches ${result.count}, p99 ${result.p99.toFixed(0)} ms; superpeer heap +${((heapAfter - heapBefore) / 2 ** 20).toFixed(0)} MB, longest event-loop delay ${loopMaxMs.toFixed(0)} ms`,
    );

    // Refused with a reason, on the dead-letter queue.
    let reason: string | undefined;
    for (let i = 0; i < 10_000 && reason === undefined; i++) {
      const message = await channel.get(names.deadLetterQueue, { noAck: true });
      if (message === false) break;
      const why = String(message.properties.headers?.['x-p2p-reject-reason'] ?? '');
      if (why.includes('LIMIT_EXCEEDED')) reason = why;
    }
    assert.ok(reason, 'the announce is dead-lettered with LIMIT_EXCEEDED');
    assert.ok(
      network.superpeer.records.some(
        (r) => r.message === 'refused a peer over the file limit' && r.peerId === hog.peerId,
      ),
      'the superpeer warns',
    );
    // Nothing of it indexed.
    const answer = (await (await fetch(`${network.peers[0]!.url}/api/search?q=flood`)).json()) as {
      results: unknown[];
    };
    assert.equal(answer.results.length, 0);
    assert.equal(await metric('p2p_superpeer_indexed_files'), 2);
    // Nobody dropped, no broker outage, searches served throughout.
    assert.ok(!network.superpeer.records.some((r) => r.message === 'peer timed out'), 'no peer timed out');
    assert.ok(
      !network.superpeer.records.some((r) => r.message === 'broker connection lost; reconnecting'),
      'the superpeer kept its connection',
    );
    assert.ok(result.count >= 20, `searches ran meanwhile (${result.count})`);
    assert.deepEqual(result.failures, []);
    assert.ok(result.p99 < 1000, `search p99 ${result.p99.toFixed(0)} ms under 1 s`);
    assert.ok(
      heapAfter - heapBefore < 300 * 2 ** 20,
      `heap grew ${((heapAfter - heapBefore) / 2 ** 20).toFixed(0)} MB`,
    );
  });

  test('a flood of chunked announces that never complete, from many ids, stays bounded', async (t) => {
    const heapBefore = await metric('p2p_superpeer_nodejs_heap_size_used_bytes');
    const searching = keepSearching(network);
    const IDS = 3000;
    function* dangling(): Generator<[Buffer, string]> {
      for (let i = 0; i < IDS; i++) {
        const peer = makeForeignPeer();
        const body = announceChunk(peer, 0, 50, 100);
        yield [body, peer.sign(body)];
      }
    }
    const announcesBefore = await announcesReceived();
    await publishAll(channel, names.eventsExchange, dangling());
    await eventsDrained(240_000, announcesBefore + IDS);
    const after = await scrape();
    const pending = await metric('p2p_superpeer_pending_announces', after);
    const heapAfter = await metric('p2p_superpeer_nodejs_heap_size_used_bytes', after);
    const result = await searching.stop();
    const loopMaxMs = await metric('p2p_superpeer_event_loop_max_ms', after);
    t.diagnostic(
      `searches ${result.count}, p99 ${result.p99.toFixed(0)} ms; superpeer heap +${((heapAfter - heapBefore) / 2 ** 20).toFixed(0)} MB, longest event-loop delay ${loopMaxMs.toFixed(0)} ms`,
    );

    assert.ok(pending > 0 && pending <= 1000, `pending assemblies ${pending} within the bound of 1000`);
    assert.ok(
      heapAfter - heapBefore < 200 * 2 ** 20,
      `heap grew ${((heapAfter - heapBefore) / 2 ** 20).toFixed(0)} MB`,
    );
    assert.deepEqual(result.failures, []);
    assert.ok(result.p99 < 1000, `search p99 ${result.p99.toFixed(0)} ms under 1 s`);
    assert.ok(!network.superpeer.records.some((r) => r.message === 'peer timed out'), 'no peer timed out');
  });
});
