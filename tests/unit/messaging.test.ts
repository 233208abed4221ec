import assert from 'node:assert/strict';
import fs from 'node:fs';
import { describe, test } from 'node:test';
import type { ConsumeMessage } from 'amqplib';
import { isP2PError } from '../../libs/errors/index.js';
import { DeliveryMemory, replyToProblem, Throttle } from '../../libs/messaging/index.js';
import { MAX_MESSAGE_BYTES, PeersReplySchema, PROTOCOL_VERSION } from '../../libs/protocol/index.js';
import { resyncJitterWindowMs } from '../../services/peer/peer.js';
import { answeringRpcClient } from '../helpers/rpc-fake.js';

/** A virtual clock with timers, so throttling is tested in simulated time, exactly. */
class FakeClock {
  nowMs = 0;
  private timers: Array<{ at: number; run: () => void; id: number }> = [];
  private nextId = 1;

  setTimer = (run: () => void, delayMs: number): unknown => {
    const id = this.nextId++;
    this.timers.push({ at: this.nowMs + delayMs, run, id });
    return id;
  };

  clearTimer = (id: unknown): void => {
    this.timers = this.timers.filter((timer) => timer.id !== id);
  };

  now = (): number => this.nowMs;

  /** Advances time, firing due timers in order. */
  advance(ms: number): void {
    const end = this.nowMs + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at);
      const next = this.timers[0];
      if (!next || next.at > end) break;
      this.timers.shift();
      this.nowMs = next.at;
      next.run();
    }
    this.nowMs = end;
  }
}

function throttled(
  clock: FakeClock,
  options: { minIntervalMs: number; delayMs?: number; jitterMs?: number; burst?: number },
) {
  const runs: number[] = [];
  const throttle = new Throttle(() => runs.push(clock.nowMs), {
    ...options,
    now: clock.now,
    setTimer: clock.setTimer,
    clearTimer: clock.clearTimer,
    random: () => 0.5,
  });
  return { throttle, runs };
}

describe('Throttle', () => {
  test('a flood of requests runs at most once per interval, the last request included', () => {
    const clock = new FakeClock();
    const { throttle, runs } = throttled(clock, { minIntervalMs: 3000, delayMs: 50, jitterMs: 200 });
    // 10,000 requests over 10 s: one every millisecond.
    for (let i = 0; i < 10_000; i++) {
      throttle.request();
      clock.advance(1);
    }
    clock.advance(10_000);
    assert.equal(throttle.requests, 10_000);
    // First run after the coalescing delay + jitter (50 + 0.5 × 200), then one per 3 s, then the trailing one.
    assert.equal(runs[0], 150);
    for (let i = 1; i < runs.length; i++)
      assert.ok(runs[i]! - runs[i - 1]! >= 3000, `runs ${runs.join(',')}`);
    assert.ok(runs.length <= Math.ceil(10_000 / 3000) + 1, `${runs.length} runs`);
    assert.ok(runs.at(-1)! >= 9_999, 'a request at the end of the flood is still served');
  });

  test('immediate skips the delay but not the interval', () => {
    const clock = new FakeClock();
    const { throttle, runs } = throttled(clock, { minIntervalMs: 5000, delayMs: 100 });
    throttle.request({ immediate: true });
    clock.advance(0);
    assert.deepEqual(runs, [0]);
    clock.advance(1000);
    throttle.request({ immediate: true }); // a reconnect 1 s later: waits for the interval
    throttle.request({ immediate: true });
    clock.advance(3999);
    assert.deepEqual(runs, [0]);
    clock.advance(1);
    assert.deepEqual(runs, [0, 5000]);
  });

  test('a burst allows runs back to back, then one per interval', () => {
    const clock = new FakeClock();
    const { throttle, runs } = throttled(clock, { minIntervalMs: 3000, burst: 2 });
    for (let i = 0; i < 9000; i++) {
      throttle.request({ immediate: true });
      clock.advance(1);
    }
    clock.advance(10_000);
    assert.deepEqual(runs.slice(0, 2), [0, 1], 'two at once');
    assert.ok(runs.length <= Math.ceil(9000 / 3000) + 2, `runs ${runs.join(',')}`);
    for (let i = 2; i < runs.length; i++)
      assert.ok(runs[i]! - runs[i - 1]! >= 2999, `runs ${runs.join(',')}`);
  });

  test('requests while a run is scheduled join it; cancel drops it', () => {
    const clock = new FakeClock();
    const { throttle, runs } = throttled(clock, { minIntervalMs: 1000, delayMs: 100 });
    throttle.request();
    clock.advance(50);
    throttle.request();
    assert.equal(throttle.scheduled, true);
    clock.advance(50);
    assert.deepEqual(runs, [100]);
    throttle.request();
    throttle.cancel();
    clock.advance(5000);
    assert.deepEqual(runs, [100]);
  });

  test('the resync jitter window grows with the network, within bounds', () => {
    assert.equal(resyncJitterWindowMs(0), 200);
    assert.equal(resyncJitterWindowMs(3), 200);
    assert.equal(resyncJitterWindowMs(500), 1000);
    assert.equal(resyncJitterWindowMs(1_000_000), 2000);
  });
});

describe('replyToProblem', () => {
  test('accepts what brokers hand out and named queues', () => {
    // RabbitMQ 3.10 (NEW_PID_EXT with an ATOM_UTF8 node name).
    assert.equal(
      replyToProblem(
        'amq.rabbitmq.reply-to.g1h2AA1yZXBseUA5MjQ4ODg0AAAOhwAAAABrDOiu.nLyf7MXJQa+p/VvtlQakGw==',
      ),
      undefined,
    );
    // Not an Erlang term (a newer broker's encoding): left to the broker, which refuses it cleanly.
    assert.equal(replyToProblem('amq.rabbitmq.reply-to.AAECAwQFBgc=.a2V5'), undefined);
    assert.equal(replyToProblem('my-client.replies'), undefined);
  });

  test('refuses what would crash the reply path or cannot be answered', () => {
    for (const bad of [
      'amq.rabbitmq.reply-to.g2dkAA.abc', // the truncated pid of issue 6
      'amq.rabbitmq.reply-to.g1h2AA1yZXBseUA.bad', // node name cut short
      'amq.rabbitmq.reply-to.g1h2AA1yZXBseUA5MjQ4ODg0AAAOhwAAAABrDOiuAA==.k', // a byte too many
      'amq.rabbitmq.reply-to.g2gCZAABYWQAAWI=.k', // a tuple, not a pid
      'amq.rabbitmq.reply-to.not-base64!.x',
      'amq.rabbitmq.reply-to.onlyone',
      'amq.rabbitmq.reply-to.a.b.c',
      'amq.rabbitmq.reply-to.',
      'amq.rabbitmq.reply-to',
      'queue\nwith newline',
      'x'.repeat(256),
      '',
      undefined,
      42,
    ]) {
      assert.equal(typeof replyToProblem(bad), 'string', `refused: ${String(bad).slice(0, 60)}`);
    }
  });
});

describe('DeliveryMemory', () => {
  const message = (content: string, messageId?: string): ConsumeMessage =>
    ({
      content: Buffer.from(content),
      fields: { redelivered: true },
      properties: { messageId, correlationId: undefined, headers: {} },
    }) as unknown as ConsumeMessage;

  test('a remembered delivery is recognized once, by queue, ids and body', () => {
    const memory = new DeliveryMemory(10);
    const key = DeliveryMemory.key('q', message('body', 'id-1'));
    memory.remember(key);
    assert.equal(memory.take(DeliveryMemory.key('other-queue', message('body', 'id-1'))), false);
    assert.equal(memory.take(DeliveryMemory.key('q', message('body', 'id-2'))), false);
    assert.equal(memory.take(DeliveryMemory.key('q', message('other body', 'id-1'))), false);
    assert.equal(memory.take(key), true);
    assert.equal(memory.take(key), false, 'consumed: a third delivery would be handled again');
  });

  test('bounded in count, oldest first', () => {
    const memory = new DeliveryMemory(100);
    for (let i = 0; i < 1000; i++) memory.remember(DeliveryMemory.key('q', message(`m${i}`)));
    assert.equal(memory.size, 100);
    assert.equal(memory.take(DeliveryMemory.key('q', message('m0'))), false);
    assert.equal(memory.take(DeliveryMemory.key('q', message('m999'))), true);
  });
});

describe('RpcClient', () => {
  const page = { v: PROTOCOL_VERSION, type: 'rpc.peers', ok: true, superpeerId: 'sp-1', peers: [] };
  const call = async (reply: Buffer) =>
    (await answeringRpcClient(() => reply)).call(
      { v: PROTOCOL_VERSION, type: 'rpc.peers' },
      PeersReplySchema,
      { timeoutMs: 1000 },
    );

  test('a reply that is not JSON, fails the schema or is too large rejects with RPC_ERROR', async () => {
    for (const [what, reply] of [
      ['not JSON', Buffer.from('{"v":1,"type":"rpc.peers",')],
      ['not a page', Buffer.from(JSON.stringify({ ...page, peers: [{ peerId: 'not-an-id' }] }))],
      ['peers not a list', Buffer.from(JSON.stringify({ ...page, peers: null }))],
      ['another reply type', Buffer.from(JSON.stringify({ ...page, type: 'rpc.search' }))],
      ['larger than a message', Buffer.alloc(MAX_MESSAGE_BYTES + 1, 0x20)],
    ] as const) {
      await assert.rejects(
        call(reply),
        (err) => isP2PError(err, 'RPC_ERROR') && /^invalid reply/.test(err.message),
        what,
      );
    }
    // The same client with a valid page resolves with it.
    assert.deepEqual(await call(Buffer.from(JSON.stringify(page))), page);
  });

  test('a reply that came in time is taken even when a long task held the event loop past the deadline', async () => {
    const timeoutMs = 50;
    let heldMs = 0;
    // The reply comes as I/O (a file system callback, read in the loop's poll phase like a socket) while
    // the caller's thread is busy for twice the timeout.
    const client = await answeringRpcClient(
      () => Buffer.from(JSON.stringify(page)),
      (handOver) => {
        fs.stat(process.execPath, () => handOver());
        const started = performance.now();
        while (performance.now() - started < 2 * timeoutMs);
        heldMs = performance.now() - started;
      },
    );
    const answer = await client.call({ v: PROTOCOL_VERSION, type: 'rpc.peers' }, PeersReplySchema, {
      timeoutMs,
    });
    assert.ok(heldMs >= 2 * timeoutMs);
    assert.deepEqual(answer, page);
    // No reply at all still times out.
    const silent = await answeringRpcClient(
      () => Buffer.alloc(0),
      () => undefined,
    );
    await assert.rejects(
      silent.call({ v: PROTOCOL_VERSION, type: 'rpc.peers' }, PeersReplySchema, { timeoutMs }),
      (err) => isP2PError(err, 'RPC_TIMEOUT'),
    );
  });
});
