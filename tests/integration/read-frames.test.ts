import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import amqp, { type ChannelModel } from 'amqplib';
import { readFramesInPlace } from '../../libs/messaging/read-frames.js';
import { AMQP_URL, testNamespace, waitUntil } from '../helpers/network.js';
import { prng } from '../helpers/prng.js';

const FRAME_BODY = 3;
const FRAME_HEARTBEAT = 8;
const FRAME_END = 0xce;

interface Frame {
  type: number;
  channel: number;
  payload: Buffer;
}

/** What amqplib's reader returns for a body or heartbeat frame. */
interface Read {
  channel: number;
  content?: Buffer;
}

interface Reader {
  recvFrame(): Read | false;
  maxFrameSize: number;
}

function encodeFrame(frame: Frame): Buffer {
  const bytes = Buffer.alloc(7 + frame.payload.length + 1);
  bytes.writeUInt8(frame.type, 0);
  bytes.writeUInt16BE(frame.channel, 1);
  bytes.writeUInt32BE(frame.payload.length, 3);
  frame.payload.copy(bytes, 7);
  bytes.writeUInt8(FRAME_END, 7 + frame.payload.length);
  return bytes;
}

describe('readFramesInPlace', () => {
  let model: ChannelModel;
  /** amqplib's Connection class, taken from a real connection (it is not exported). */
  let Connection: new (stream: PassThrough) => Reader;

  before(async () => {
    model = await amqp.connect(AMQP_URL);
    Connection = (model as unknown as { connection: { constructor: typeof Connection } }).connection
      .constructor;
  });

  after(async () => {
    await model.close();
  });

  /** A connection of amqplib's over a stream this test writes, read in place (or as amqplib reads, `plain`). */
  function reader(plain: boolean): { connection: Reader; stream: PassThrough } {
    const stream = new PassThrough();
    const connection = new Connection(stream);
    if (!plain) assert.equal(readFramesInPlace({ connection } as unknown as ChannelModel), true);
    return { connection, stream };
  }

  /** Every frame readable now, as amqplib's loop reads them on 'readable'. */
  function drain(connection: Reader, into: Read[]): void {
    for (let frame = connection.recvFrame(); frame; frame = connection.recvFrame()) into.push(frame);
  }

  for (const seed of [1, 2, 3, 4, 5, 6]) {
    test(`reads every frame whole and in order, however the bytes are split (seed ${seed})`, () => {
      const next = prng(seed);
      const frames: Frame[] = [];
      for (let i = 0; i < 300; i++) {
        if (next() < 0.1) {
          frames.push({ type: FRAME_HEARTBEAT, channel: 0, payload: Buffer.alloc(0) });
          continue;
        }
        // Mostly small frames, some up to 300 kB, some empty.
        const size = next() < 0.2 ? Math.floor(next() * 300_000) : Math.floor(next() * 40);
        const payload = Buffer.alloc(size);
        for (let b = 0; b < size; b += 97) payload[b] = Math.floor(next() * 256);
        frames.push({ type: FRAME_BODY, channel: 1 + Math.floor(next() * 5), payload });
      }
      const bytes = Buffer.concat(frames.map(encodeFrame));
      for (const plain of [true, false]) {
        const { connection, stream } = reader(plain);
        const read: Read[] = [];
        const inPlace: boolean[] = [];
        let at = 0;
        while (at < bytes.length) {
          // Chunks of 1 byte to 200 kB: headers and frame ends fall anywhere.
          const roll = next();
          const length =
            roll < 0.2 ? 1 + Math.floor(next() * 10) : Math.floor(next() * (roll < 0.6 ? 2000 : 200_000));
          const chunk = Buffer.from(bytes.subarray(at, Math.min(bytes.length, at + length + 1)));
          at += chunk.length;
          stream.write(chunk);
          const before = read.length;
          drain(connection, read);
          for (const frame of read.slice(before))
            inPlace.push(frame.content !== undefined && frame.content.buffer === chunk.buffer);
        }
        assert.equal(read.length, frames.length, plain ? 'plain' : 'in place');
        for (const [i, frame] of frames.entries()) {
          assert.equal(read[i]!.channel, frame.channel);
          if (frame.type === FRAME_BODY) assert.ok(read[i]!.content?.equals(frame.payload), `frame ${i}`);
          else assert.equal(read[i]!.content, undefined);
        }
        // Read in place, frames that came whole in one chunk are views of it.
        if (!plain)
          assert.ok(inPlace.filter(Boolean).length > 50, `${inPlace.filter(Boolean).length} in place`);
        stream.destroy();
      }
    });
  }

  test('refuses a frame over the size limit before its bytes have come, as amqplib does', () => {
    for (const plain of [true, false]) {
      const { connection, stream } = reader(plain);
      connection.maxFrameSize = 1000;
      const header = encodeFrame({ type: FRAME_BODY, channel: 1, payload: Buffer.alloc(1001) }).subarray(
        0,
        20,
      );
      stream.write(header.subarray(0, 3));
      assert.equal(connection.recvFrame(), false);
      stream.write(header.subarray(3));
      assert.throws(() => connection.recvFrame(), /exceeds maxFrameSize/);
      stream.destroy();
    }
  });

  test('refuses a frame whose end byte is wrong once it is whole, split or not, as amqplib does', () => {
    for (const plain of [true, false]) {
      for (const split of [0, 3, 9, 600]) {
        const { connection, stream } = reader(plain);
        const frame = encodeFrame({ type: FRAME_BODY, channel: 1, payload: Buffer.alloc(1000, 1) });
        frame[frame.length - 1] = 0;
        if (split > 0) {
          stream.write(frame.subarray(0, split));
          assert.equal(connection.recvFrame(), false, `split at ${split}`);
        }
        stream.write(frame.subarray(split));
        assert.throws(() => connection.recvFrame(), /Invalid frame/, `split at ${split}`);
        stream.destroy();
      }
    }
  });

  test('a connection read in place carries large and small messages intact through the broker', async () => {
    const queue = `${testNamespace('read-frames')}.q`;
    const receiving = await amqp.connect(AMQP_URL);
    assert.equal(readFramesInPlace(receiving), true);
    const sendChannel = await model.createChannel();
    const channel = await receiving.createChannel();
    await channel.assertQueue(queue, { durable: false, autoDelete: true });
    const sent: Buffer[] = [];
    const next = prng(7);
    for (let i = 0; i < 60; i++) {
      const size = i % 3 === 0 ? 100_000 + Math.floor(next() * 400_000) : Math.floor(next() * 200);
      const body = Buffer.alloc(size);
      for (let b = 0; b < size; b += 13) body[b] = Math.floor(next() * 256);
      sent.push(body);
    }
    const received: Buffer[] = [];
    await channel.consume(
      queue,
      (message) => {
        if (message) received.push(message.content);
      },
      { noAck: true },
    );
    for (const body of sent) sendChannel.sendToQueue(queue, body);
    await waitUntil(() => received.length === sent.length, { timeoutMs: 10_000, what: 'every message' });
    for (const [i, body] of sent.entries()) assert.ok(received[i]!.equals(body), `message ${i}`);
    await sendChannel.close();
    await receiving.close();
  });
});
