import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Channel } from 'amqplib';
import { z } from 'zod';
import { silentLog } from '../../libs/logging/index.js';
import { Broker, consumeValidated } from '../../libs/messaging/index.js';
import { AMQP_URL, testNamespace, waitUntil, withAmqp } from '../helpers/network.js';

/*
 * An ordered consumer with `batchAcks` against the broker: it settles its deliveries with a multiple-ack
 * every few (the superpeer's events, a peer's network stream), acknowledges everything once idle, and a
 * refused delivery in between is dead-lettered and settled like the rest.
 */

describe('an ordered consumer that batches its acks', () => {
  const namespace = testNamespace('acks');
  const queue = `${namespace}.queue`;
  const deadLetters = `${namespace}.dead-letter`;
  const handled: number[] = [];
  const acks: boolean[] = [];
  let spied = false;
  let broker: Broker;

  /** Counts the consumer's acks (whether each is a multiple-ack) on the channel it hands its handler. */
  const spyOnAcks = (channel: Channel): void => {
    if (spied) return;
    spied = true;
    const realAck = channel.ack.bind(channel);
    channel.ack = (message, allUpTo) => {
      acks.push(allUpTo === true);
      return realAck(message, allUpTo);
    };
  };

  before(async () => {
    broker = new Broker({
      url: AMQP_URL,
      connectionName: 'acks test',
      logger: silentLog,
      setup: async (session) => {
        await session.assertTopology({
          exchanges: [{ name: deadLetters, type: 'fanout', durable: false, autoDelete: true }],
          // Durable, not exclusive: it must outlive the consumer's connection for the last check.
          queues: [{ name: queue, durable: true, exclusive: false }],
          bindings: [],
        });
        await consumeValidated(session, {
          queue,
          schema: z.object({ n: z.number() }),
          prefetch: 32,
          deadLetter: { exchange: deadLetters, rejectedBy: 'acks test' },
          batchAcks: true,
          handler: async ({ n }, _message, channel) => {
            spyOnAcks(channel);
            // A turn of the event loop each, as the superpeer's events take: deliveries queue behind.
            await new Promise((resolve) => setImmediate(resolve));
            handled.push(n);
          },
        });
      },
    });
    await broker.start();
  });

  after(async () => {
    await broker?.close();
    await withAmqp(async (channel) => {
      await channel.deleteQueue(queue);
    });
  });

  test('settles 300 deliveries, one refused, with a few multiple-acks, and holds none once idle', async () => {
    await withAmqp(async (channel) => {
      for (let n = 0; n < 300; n++) {
        const body = n === 150 ? '{"n":"not a number"}' : JSON.stringify({ n });
        channel.sendToQueue(queue, Buffer.from(body));
      }
    });
    await waitUntil(() => handled.length === 299, { timeoutMs: 20_000, what: '299 deliveries handled' });
    assert.deepEqual(
      handled,
      Array.from({ length: 300 }, (_, n) => n).filter((n) => n !== 150),
    );
    assert.ok(acks.length <= 300 / 8, `${acks.length} acks for 300 deliveries`);
    assert.ok(acks.every((multiple) => multiple));
    // Nothing left unacknowledged: closing the connection would put it back in the queue.
    await broker.close();
    const left = await withAmqp((channel) => channel.checkQueue(queue));
    assert.equal(left.messageCount, 0, 'deliveries went back to the queue unacknowledged');
  });
});
