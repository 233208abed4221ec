import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import amqp, { type ChannelModel } from 'amqplib';
import { coalesceWrites } from '../../libs/messaging/coalesce-writes.js';
import { AMQP_URL, testNamespace, waitUntil } from '../helpers/network.js';

/** Counts the socket writes amqplib makes (one `_write` or `_writev` call is one system call). */
function countWrites(model: ChannelModel): { readonly calls: number } {
  const socket = (model as unknown as { connection: { stream: Record<string, unknown> } }).connection.stream;
  const counter = { calls: 0 };
  for (const name of ['_write', '_writev'] as const) {
    const original = socket[name] as ((...args: unknown[]) => unknown) | undefined;
    if (typeof original !== 'function') continue;
    socket[name] = function (this: unknown, ...args: unknown[]) {
      counter.calls++;
      return original.apply(this, args);
    };
  }
  return counter;
}

describe('coalesceWrites', () => {
  const queue = `${testNamespace('coalesce')}.q`;
  let plain: ChannelModel;
  let coalesced: ChannelModel;

  before(async () => {
    plain = await amqp.connect(AMQP_URL, { noDelay: true });
    coalesced = await amqp.connect(AMQP_URL, { noDelay: true });
    const channel = await plain.createChannel();
    await channel.assertQueue(queue, { durable: false, autoDelete: false });
    await channel.close();
  });

  after(async () => {
    const channel = await plain.createChannel();
    await channel.deleteQueue(queue);
    await plain.close();
    await coalesced.close();
  });

  test('sends the frames of one turn in one write, all of them, in order', async () => {
    assert.equal(coalesceWrites(coalesced), true);
    const sending = await coalesced.createChannel();
    const receiving = await plain.createChannel();
    const received: string[] = [];
    await receiving.consume(
      queue,
      (message) => {
        if (message) received.push(message.content.toString());
      },
      { noAck: true },
    );
    const count = 40;
    for (const [model, label] of [
      [plain, 'plain'],
      [coalesced, 'coalesced'],
    ] as const) {
      const channel = model === plain ? await plain.createChannel() : sending;
      const writes = countWrites(model);
      for (let i = 0; i < count; i++) channel.sendToQueue(queue, Buffer.from(`${label}-${i}`));
      await waitUntil(() => received.filter((text) => text.startsWith(`${label}-`)).length === count, {
        timeoutMs: 10_000,
        what: `the ${label} messages`,
      });
      if (label === 'plain') assert.ok(writes.calls >= count, `plain: ${writes.calls} writes`);
      else assert.ok(writes.calls <= 2, `coalesced: ${writes.calls} writes for ${count} frames`);
    }
    const ours = received.filter((text) => text.startsWith('coalesced-'));
    assert.deepEqual(
      ours,
      Array.from({ length: count }, (_, i) => `coalesced-${i}`),
    );
  });
});
