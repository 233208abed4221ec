import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import amqp from 'amqplib';
import { HEADERS, topologyNames } from '../../libs/protocol/index.js';
import { brokerControl } from '../helpers/broker.js';
import { AMQP_URL, type LogRecord, startNetwork, type TestNetwork, waitUntil } from '../helpers/network.js';

/*
 * A hostile client on the same broker, written with plain amqplib and the management HTTP API (not the
 * project's libs): a request whose reply_to breaks the broker's reply path, shared exchanges deleted under
 * a running network, and a flood of forged resync requests. Each test measures what the network paid.
 */

/** The run's broker's management API (the container's when the run started one). */
const management = brokerControl().management;
const json = (value: unknown) => Buffer.from(JSON.stringify(value), 'utf8');

const FILES: Array<Record<string, string>> = [
  { 'alpha/hostile-one.txt': 'one', 'shared/hostile-common.txt': 'common' },
  { 'beta/hostile-two.txt': 'two', 'shared/hostile-common.txt': 'common' },
  { 'gamma/hostile-three.txt': 'three', 'shared/hostile-common.txt': 'common' },
];
/** `hostile` starts a word of every file name above: one result per (file, peer), 6 when search is whole. */
const WHOLE_RESULTS = 6;

/**
 * Searches as any AMQP client may (direct reply-to), with its own channel: number of results, 0 when no
 * superpeer answered in time. Spawning the CLI would cost seconds on a loaded machine.
 */
class ForeignSearch {
  private readonly waiting = new Map<string, (count: number) => void>();
  private constructor(private readonly channel: amqp.Channel) {}

  static async open(connection: amqp.ChannelModel): Promise<ForeignSearch> {
    const channel = await connection.createChannel();
    const search = new ForeignSearch(channel);
    await channel.consume(
      'amq.rabbitmq.reply-to',
      (message) => {
        if (!message) return;
        const resolve = search.waiting.get(String(message.properties.correlationId));
        const body = JSON.parse(message.content.toString()) as { ok: boolean; results?: unknown[] };
        resolve?.(body.ok ? (body.results?.length ?? 0) : 0);
      },
      { noAck: true },
    );
    return search;
  }

  count(queue: string, query: string, timeoutMs = 1500): Promise<number> {
    const id = randomUUID();
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(0), timeoutMs);
      const done = (count: number) => {
        clearTimeout(timer);
        this.waiting.delete(id);
        resolve(count);
      };
      this.waiting.set(id, done);
      this.channel.sendToQueue(queue, json({ v: 1, type: 'rpc.search', query, limit: 100 }), {
        replyTo: 'amq.rabbitmq.reply-to',
        correlationId: id,
        expiration: String(timeoutMs),
        contentType: 'application/json',
        type: 'rpc.search',
      });
    });
  }
}

let foreignSearch: ForeignSearch;

async function searchCount(net: TestNetwork): Promise<number> {
  return foreignSearch.count(topologyNames(net.namespace).rpcQueue, 'hostile');
}

/** Polls search until it is whole; returns how long that took from `sinceMs`. */
async function searchWholeWithin(net: TestNetwork, sinceMs: number, timeoutMs: number): Promise<number> {
  await waitUntil(async () => (await searchCount(net)) === WHOLE_RESULTS, {
    timeoutMs,
    intervalMs: 200,
    what: 'search whole again',
  });
  return Date.now() - sinceMs;
}

interface PeerStatus {
  viewStale: boolean;
  viewPeers: number;
}

async function peerStatus(url: string): Promise<PeerStatus> {
  const response = await fetch(`${url}/api/status`);
  return (await response.json()) as PeerStatus;
}

const reconnectRecords = (records: LogRecord[], fromIndex: number) =>
  records
    .slice(fromIndex)
    .filter(
      (r) =>
        r.message === 'broker connection lost; reconnecting' || r.message === 'restarting broker connection',
    );

describe('a hostile client on the broker', { timeout: 180_000 }, () => {
  let net: TestNetwork;
  let connection: amqp.ChannelModel;
  let channel: amqp.ConfirmChannel;

  before(async () => {
    net = await startNetwork({ label: 'hostile', peers: FILES });
    connection = await amqp.connect(AMQP_URL);
    channel = await connection.createConfirmChannel();
    foreignSearch = await ForeignSearch.open(connection);
    await searchWholeWithin(net, Date.now(), 20_000);
  });

  after(async () => {
    await connection?.close().catch(() => undefined);
    await net?.stop();
  });

  test('a request with a malformed reply_to costs one dead-letter and one log line, no reconnect', async (t) => {
    const names = topologyNames(net.namespace);
    const logStart = net.superpeer.records.length;
    const poisons = [
      'amq.rabbitmq.reply-to.g2dkAA.abc', // the issue's: a truncated Erlang pid
      'amq.rabbitmq.reply-to.g1h2AA1yZXBseUA.bad', // a pid cut in its node name
      'amq.rabbitmq.reply-to.not-base64!.x',
    ];
    const ids: string[] = poisons.map(() => randomUUID());
    const sentMs = Date.now();
    for (const [i, replyTo] of poisons.entries()) {
      channel.sendToQueue(names.rpcQueue, json({ v: 1, type: 'rpc.search', query: 'hostile', limit: 10 }), {
        replyTo,
        correlationId: ids[i],
        messageId: ids[i],
        contentType: 'application/json',
        type: 'rpc.search',
      });
    }
    await channel.waitForConfirms();

    // Each poison request lands in the dead-letter queue once, with a reason.
    const deadLettered = new Map<string, { reason: string; count: number }>();
    const readDeadLetters = async () => {
      for (;;) {
        const message = await channel.get(names.deadLetterQueue, { noAck: true });
        if (message === false) return;
        const id = message.properties.messageId as string;
        if (!ids.includes(id)) continue;
        const entry = deadLettered.get(id) ?? {
          reason: String(message.properties.headers?.[HEADERS.rejectReason]),
          count: 0,
        };
        entry.count++;
        deadLettered.set(id, entry);
      }
    };
    await waitUntil(
      async () => {
        await readDeadLetters();
        return deadLettered.size === ids.length;
      },
      { timeoutMs: 10_000, what: 'every poison request dead-lettered' },
    );
    const wholeAfterMs = await searchWholeWithin(net, sentMs, 10_000);
    await readDeadLetters(); // a second copy would show up by now
    for (const [id, entry] of deadLettered) {
      assert.equal(entry.count, 1, `request ${id} dead-lettered ${entry.count} times`);
      assert.match(entry.reason, /reply_to/);
    }
    const rpcQueue = await channel.checkQueue(names.rpcQueue);
    assert.equal(rpcQueue.messageCount, 0, 'no request left to be redelivered');
    const reconnects = reconnectRecords(net.superpeer.records, logStart);
    assert.ok(reconnects.length <= 1, `superpeer reconnected ${reconnects.length} times`);
    const refused = net.superpeer.records
      .slice(logStart)
      .filter((r) => r.message === 'refused a message' && ids.includes(String(r.messageId)));
    assert.equal(refused.length, ids.length, 'one warning line per poison request');
    t.diagnostic(
      `3 poison requests: ${deadLettered.size} dead-letters, ${reconnects.length} reconnects, search whole ${wholeAfterMs} ms after`,
    );
  });

  test('deleting a shared exchange: repaired within seconds, views stale meanwhile, search whole', async (t) => {
    if (!(await management.available())) {
      t.skip('RabbitMQ management API not reachable (rabbitmq-plugins enable rabbitmq_management)');
      return;
    }
    const names = topologyNames(net.namespace);
    for (const exchange of [names.eventsExchange, names.networkExchange]) {
      const logStarts = net.peers.map((peer) => peer.process.records.length);
      const superpeerLogStart = net.superpeer.records.length;
      const seenStale = new Set<string>();
      let sampling = true;
      // Bounded, so that a failed wait below (which skips `sampling = false`) cannot keep the test alive.
      const samplingUntil = Date.now() + 60_000;
      const sampler = (async () => {
        while (sampling && Date.now() < samplingUntil) {
          await Promise.all(
            net.peers.map(async (peer) => {
              const status = await peerStatus(peer.url).catch(() => undefined);
              if (status?.viewStale) seenStale.add(peer.peerId);
            }),
          );
          await new Promise((resolve) => setTimeout(resolve, 25));
        }
      })();

      const deletedMs = Date.now();
      const response = await management.request(
        'DELETE',
        `/api/exchanges/${management.vhostPath}/${encodeURIComponent(exchange)}`,
      );
      assert.equal(response.status, 204, `DELETE ${exchange}`);

      if (exchange === names.networkExchange) {
        // A peer that missed part of the stream (two silent tick intervals, or a skipped tick number) says
        // its view is stale, then reloads it once the exchange and its binding are back. A peer whose binding
        // came back within one tick interval missed nothing and stays current; either way the change made
        // below must then reach every view through the re-bound exchange.
        const NO_GAP_AFTER_MS = 8000;
        await waitUntil(
          () =>
            net.peers.every((peer, i) => {
              const records = peer.process.records.slice(logStarts[i]);
              const staleAt = records.findIndex(
                (r) =>
                  r.message === 'reloading the network view' ||
                  r.message === 'no network.tick from any superpeer; the network view is stale',
              );
              if (staleAt === -1) return Date.now() - deletedMs >= NO_GAP_AFTER_MS;
              return records.slice(staleAt).some((r) => r.message === 'network view loaded');
            }),
          {
            // Detection takes up to 3 s (the check) or 4 s (two missed ticks); a loaded machine adds to both.
            timeoutMs: 15_000,
            intervalMs: 100,
            what: `every peer's view stale, then reloaded, after ${exchange} (${net.peers
              .map((peer, i) =>
                peer.process.records
                  .slice(logStarts[i])
                  .map((r) => r.message)
                  .filter((m) => /view|tick|stream|broker|topology/.test(String(m)))
                  .join(' > '),
              )
              .join(' | ')})`,
          },
        );
      } else {
        // Peers declare the events exchange again on their next publish; the superpeer's binding to it is
        // gone with it, and only the superpeer can repair that (its periodic check declares its bindings
        // again; the silence of the stream makes it repair at once). Proof: a change made now is searchable.
        const extra = path.join(net.peers[0]!.shareDir, 'alpha/hostile-after-delete.txt');
        await fs.writeFile(extra, 'after');
        await waitUntil(async () => (await searchCount(net)) === WHOLE_RESULTS + 1, {
          timeoutMs: 10_000,
          intervalMs: 200,
          what: `a change to reach the superpeer after ${exchange} was deleted`,
        });
        await fs.rm(extra);
      }
      const reloadedMs = Date.now() - deletedMs;
      const wholeMs = await searchWholeWithin(net, deletedMs, 10_000);
      // The exchange exists again and carries changes to every peer: a new file shows up in every view.
      await waitUntil(
        async () =>
          (await Promise.all(net.peers.map((peer) => peerStatus(peer.url)))).every((s) => !s.viewStale),
        { timeoutMs: 5000, what: 'every view current again' },
      );
      sampling = false;
      await sampler;
      await channel.checkExchange(exchange);
      const peerReconnects = net.peers.map((peer, i) =>
        reconnectRecords(peer.process.records, logStarts[i] ?? 0),
      );
      const superpeerReconnects = reconnectRecords(net.superpeer.records, superpeerLogStart);
      assert.ok(superpeerReconnects.length <= 2, `superpeer reconnected ${superpeerReconnects.length} times`);
      for (const records of peerReconnects)
        assert.ok(records.length <= 2, `a peer reconnected ${records.length} times`);
      t.diagnostic(
        `${exchange}: stale views reloaded or change searchable by ${reloadedMs} ms, search whole ${wholeMs} ms after the delete; ` +
          `viewStale seen by polling on ${seenStale.size}/${net.peers.length} peers; ` +
          `reconnects: superpeer ${superpeerReconnects.length}, peers ${peerReconnects.map((r) => r.length).join('/')}`,
      );
    }

    // A change made after the repairs reaches every peer's view through the re-bound network exchange.
    const before = await Promise.all(net.peers.map((peer) => peerStatus(peer.url)));
    const added = await net.startPeer('late', { 'late/hostile-late.txt': 'late' });
    await waitUntil(
      async () => {
        const now = await Promise.all(net.peers.map((peer) => peerStatus(peer.url)));
        return now.every((status, i) => status.viewPeers === before[i]!.viewPeers + 1);
      },
      { timeoutMs: 10_000, what: `every view to learn of ${added.peerId}` },
    );
    await added.process.stop();
    await waitUntil(async () => (await searchCount(net)) === WHOLE_RESULTS, {
      timeoutMs: 10_000,
      what: 'the late peer gone',
    });
  });

  test('a flood of forged resync requests costs each peer a bounded number of announces', async (t) => {
    const names = topologyNames(net.namespace);
    const spy = await channel.assertQueue('', { exclusive: true, autoDelete: true });
    await channel.bindQueue(spy.queue, names.eventsExchange, '');
    const announces = new Map<string, number>();
    const { consumerTag } = await channel.consume(
      spy.queue,
      (message) => {
        if (message?.properties.type !== 'peer.announce') return;
        const body = JSON.parse(message.content.toString()) as { peerId: string; chunkIndex: number };
        if (body.chunkIndex === 0) announces.set(body.peerId, (announces.get(body.peerId) ?? 0) + 1);
      },
      { noAck: true },
    );
    const peerIds = net.peers.map((peer) => peer.peerId);
    const forged = 1500;
    const started = Date.now();
    for (let i = 0; i < forged; i++) {
      const body =
        i % 2 === 0
          ? { v: 1, type: 'network.resync-request', superpeerId: 'forger' }
          : { v: 1, type: 'network.resync-request', superpeerId: 'forger', peerIds };
      channel.publish(names.networkExchange, '', json(body), {
        type: 'network.resync-request',
        messageId: randomUUID(),
        contentType: 'application/json',
      });
      if (i % 100 === 99) {
        await channel.waitForConfirms();
        await new Promise((resolve) => setTimeout(resolve, 300)); // the flood lasts a few seconds
      }
    }
    await channel.waitForConfirms();
    const floodMs = Date.now() - started;
    // Announce interval 3 s, burst 3: whatever arrives, at most one per interval after three back to back.
    const bound = Math.ceil((floodMs + 4000) / 3000) + 3;
    await waitUntil(() => peerIds.every((id) => (announces.get(id) ?? 0) >= 1), {
      timeoutMs: 10_000,
      what: 'every peer re-announced',
    });
    // Let any announce still owed arrive: until none came for more than one announce interval.
    let last = JSON.stringify([...announces]);
    let quietSinceMs = Date.now();
    await waitUntil(
      () => {
        const now = JSON.stringify([...announces]);
        if (now !== last) {
          last = now;
          quietSinceMs = Date.now();
        }
        return Date.now() - quietSinceMs > 3500;
      },
      { timeoutMs: 30_000, intervalMs: 100, what: 'the announces to stop' },
    );
    await channel.cancel(consumerTag);
    const counts = peerIds.map((id) => announces.get(id) ?? 0);
    for (const [i, count] of counts.entries()) {
      assert.ok(count <= bound, `peer ${peerIds[i]} announced ${count} times for ${forged} forged requests`);
    }
    assert.ok(
      net.peers.every((peer) => peer.process.alive),
      'every peer still runs',
    );
    await searchWholeWithin(net, Date.now(), 10_000);
    t.diagnostic(
      `${forged} forged resync requests over ${floodMs} ms: announces per peer ${counts.join('/')} (bound ${bound})`,
    );
  });
});
