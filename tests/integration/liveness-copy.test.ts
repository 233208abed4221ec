import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import amqp from 'amqplib';
import { silentLog } from '../../libs/logging/index.js';
import { LIVENESS_ROUTING_KEYS, topologyNames } from '../../libs/protocol/index.js';
import { AmqpSuperpeerTransport } from '../../services/superpeer/transport.js';
import {
  AMQP_URL,
  cleanupNamespace,
  startNetwork,
  testNamespace,
  waitUntil,
  withAmqp,
} from '../helpers/network.js';

/*
 * The superpeer's second copy of the events stream (read for heartbeats on arrival) against a real broker:
 * peers key their events by type, so an announce, up to 4 MiB, no longer crosses the network twice. Events
 * of clients that publish without a key still reach it, and a deleted piece of it comes back.
 */
describe("a superpeer's liveness copy of the events stream", () => {
  const namespace = testNamespace('liveness');
  const names = topologyNames(namespace);
  /** Message ids, as the liveness consumer and the events consumer see them. */
  const onArrival: string[] = [];
  let inTurn = 0;
  let transport: AmqpSuperpeerTransport;
  const instanceId = randomUUID();
  const livenessName = `${names.superpeerQueue('sp-liveness', instanceId)}.liveness`;

  before(async () => {
    transport = new AmqpSuperpeerTransport({
      amqpUrl: AMQP_URL,
      namespace,
      superpeerId: 'sp-liveness',
      instanceId,
      logger: silentLog,
      rpcPrefetch: 8,
      queueType: 'classic',
    });
    await transport.start({
      onEvent: async () => {
        inTurn++;
      },
      onDelivery: (message) => {
        onArrival.push(String(message.properties.messageId));
      },
      // The bodies below are not valid events: the events copy refuses each, which counts it as read.
      onEventRefused: () => {
        inTurn++;
      },
      onRpc: () => ({}),
      onConnected: () => undefined,
      onTopologyRepaired: () => undefined,
    });
  });

  after(async () => {
    await transport?.close();
    await cleanupNamespace(namespace);
  });

  /** Publishes one message per routing key to `N.events`, each with its key as message id. */
  function publish(keys: string[], body = Buffer.from('{}')): Promise<void> {
    return withAmqp(async (channel) => {
      for (const key of keys) channel.publish(names.eventsExchange, key, body, { messageId: `key:${key}` });
    });
  }

  test('takes heartbeats and unkeyed events only; the events copy takes everything', async () => {
    const before = inTurn;
    const announce = Buffer.alloc(256 * 1024, 'a');
    await publish(['peer.announce', 'peer.delta', 'peer.leave', 'anything'], announce);
    await publish(['peer.heartbeat', '']);
    await waitUntil(() => inTurn - before === 6, {
      timeoutMs: 10_000,
      what: 'the events copy to read all six',
    });
    // In order: any copy of the announces would come before the heartbeats, published after them.
    await waitUntil(() => onArrival.includes('key:') && onArrival.includes('key:peer.heartbeat'), {
      timeoutMs: 5_000,
      what: 'both heartbeats on arrival',
    });
    assert.deepEqual(onArrival.sort(), ['key:', 'key:peer.heartbeat']);
    assert.deepEqual([...LIVENESS_ROUTING_KEYS].sort(), ['', 'peer.heartbeat']);
  });

  test('comes back when its exchange is deleted', async () => {
    await withAmqp((channel) => channel.deleteExchange(livenessName));
    onArrival.length = 0;
    // The topology check (every 3 s) declares it and its bindings again.
    await waitUntil(
      async () => {
        await publish(['peer.heartbeat']);
        return onArrival.length > 0;
      },
      { timeoutMs: 15_000, intervalMs: 250, what: 'a heartbeat through the liveness copy again' },
    );
  });
});

describe('peers and superpeers key what they publish by its type', () => {
  test('peer.announce/heartbeat/delta/leave and network.peer-state/peer-delta/peer-left/tick', async () => {
    const net = await startNetwork({ label: 'event-keys', peers: [] });
    const names = topologyNames(net.namespace);
    const connection = await amqp.connect(AMQP_URL);
    try {
      const channel = await connection.createChannel();
      const keys = new Map<string, string>();
      for (const exchange of [names.eventsExchange, names.networkExchange]) {
        const spy = await channel.assertQueue('', { exclusive: true, autoDelete: true });
        await channel.bindQueue(spy.queue, exchange, '');
        await channel.consume(
          spy.queue,
          (message) => {
            if (message) keys.set(String(message.properties.type), message.fields.routingKey);
          },
          { noAck: true },
        );
      }
      const peer = await net.startPeer('keyed', { 'a.txt': 'alpha' });
      await fs.writeFile(path.join(peer.shareDir, 'b.txt'), 'beta');
      await waitUntil(() => keys.has('network.peer-delta') && keys.has('peer.heartbeat'), {
        timeoutMs: 15_000,
        what: "the peer's delta, as accepted, and a heartbeat",
      });
      await peer.process.stop();
      await waitUntil(() => keys.has('network.peer-left'), { timeoutMs: 10_000, what: "the peer's leave" });
      const types = ['peer.announce', 'peer.heartbeat', 'peer.delta', 'peer.leave'];
      types.push('network.peer-state', 'network.peer-delta', 'network.peer-left', 'network.tick');
      for (const type of types)
        assert.equal(keys.get(type), type, `${type} published with the routing key ${keys.get(type)}`);
    } finally {
      await connection.close();
      await net.stop();
    }
  });
});
