import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { createLogger } from '../../libs/logging/index.js';
import { decode, PeerEventSchema } from '../../libs/protocol/index.js';
import { EventDecoder } from '../../services/superpeer/event-decoder.js';
import type { DeferredDecoding } from '../../services/superpeer/event-decoding.js';
import { files, opened, peer } from './superpeer-fake.js';

/*
 * A hostile client controls the headers of what it publishes, and amqplib hands them over decoded: the
 * signature header can be any AMQP field value (a table, an array nested thousands deep, bytes), not a
 * string. Such a value must never reach a decoding thread's postMessage: a structured clone of a deep
 * enough array throws, and it would throw in a microtask, ending the superpeer.
 */

function quietDecoder() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString('utf8'));
      done();
    },
  });
  const logger = createLogger({ service: 'superpeer', level: 'warn', format: 'json', stream });
  const pool = new EventDecoder({ workers: 1, logger });
  pool.start();
  return { pool, lines };
}

/** An AMQP array field nested `depth` deep, as amqplib decodes it (it decodes ~6,000 levels in a frame). */
function nested(depth: number): unknown {
  let value: unknown = 'x';
  for (let i = 0; i < depth; i++) value = [value];
  return value;
}

/** Resolves with the first uncaught exception, or undefined once `work` settled without one. */
async function uncaughtDuring(work: () => Promise<unknown>): Promise<unknown> {
  let caught: unknown;
  const listener = (err: unknown) => {
    caught ??= err;
  };
  process.on('uncaughtException', listener);
  try {
    await Promise.race([
      work(),
      new Promise((resolve) => {
        const poll = setInterval(() => {
          if (caught !== undefined) {
            clearInterval(poll);
            resolve(undefined);
          }
        }, 5);
        poll.unref();
      }),
    ]);
    await new Promise((resolve) => setImmediate(resolve));
  } finally {
    process.off('uncaughtException', listener);
  }
  return caught;
}

describe('EventDecoder against hostile signature headers', () => {
  const hostileHeaders: Array<[string, unknown]> = [
    ['an array nested 4,000 deep', nested(4000)],
    ['a table', { a: 1, b: [1, 2, { c: 'd' }] }],
    ['bytes', Buffer.from('not a string')],
    ['a number', 42],
    ['void', null],
  ];

  for (const [label, signature] of hostileHeaders) {
    test(`${label}: the event decodes as unsigned, nothing escapes, the thread keeps working`, async () => {
      const { pool } = quietDecoder();
      const alice = peer('alice');
      const [announce] = alice.announces(files(3))[0]!;
      const [heartbeat] = alice.signed({ type: 'peer.heartbeat', seq: 1, fileCount: 3 });
      let event: DeferredDecoding | undefined;
      let arrival: unknown;
      const thrown = await uncaughtDuring(async () => {
        [event, arrival] = await Promise.all([
          pool.decodeEvent(announce, signature),
          pool.checkArrival(heartbeat, signature),
        ]);
      });
      assert.equal(thrown, undefined, `uncaught: ${String(thrown)}`);
      const decoded = opened(event!);
      const reference = decode(PeerEventSchema, announce);
      assert.ok(reference.ok);
      assert.deepEqual(decoded.ok && decoded.event, reference.value);
      assert.equal(decoded.ok && decoded.proof.verifiedKey, undefined, 'nothing verified it');
      assert.ok(arrival === 'busy' || (arrival as { verifiedKey?: string }).verifiedKey === undefined);
      assert.equal(pool.inFlight, 0);
      // The thread still answers, and still verifies what is signed.
      const [next, nextSignature] = peer('bob').announces(files(2))[0]!;
      const after = opened(await pool.decodeEvent(next, nextSignature));
      assert.equal(after.ok && after.proof.verifiedKey !== undefined, true);
      assert.equal(pool.runningWorkers, 1);
      await pool.close();
    });
  }
});

/** Reads its requests and never answers: what it holds stays in flight. */
const silent = new URL(
  `data:text/javascript,${encodeURIComponent(`import { parentPort } from 'node:worker_threads'; parentPort.on('message', () => {});`)}`,
);

describe('EventDecoder under a flood of arrivals', () => {
  test('heartbeats in flight on arrival never count against the events a thread may hold', async () => {
    const { logger } = (() => {
      const stream = new Writable({ write: (_c, _e, done) => done() });
      return { logger: createLogger({ service: 'superpeer', level: 'warn', format: 'json', stream }) };
    })();
    const pool = new EventDecoder({
      workers: 1,
      logger,
      script: silent,
      maxJobsPerWorker: 2,
      maxArrivalsInFlight: 100,
    });
    pool.start();
    const mallory = peer('mallory');
    // A stranger's heartbeats fill the thread's hands: more of them than the events it may hold.
    const arrivals = Array.from({ length: 10 }, (_, seq) =>
      pool.checkArrival(...mallory.signed({ type: 'peer.heartbeat', seq: seq + 1, fileCount: 0 })),
    );
    assert.equal(pool.inFlight, 10);
    // An honest announce still goes to the thread (here: held by it), not to the superpeer's own thread.
    const [announce, signature] = peer('alice').announces(files(3))[0]!;
    const event = pool.decodeEvent(announce, signature);
    assert.equal(pool.inFlight, 11, 'the event was decoded in the main thread instead of the decoding one');
    await pool.close();
    assert.equal((await event).ok, true);
    assert.deepEqual(await Promise.all(arrivals), Array(10).fill('busy'));
  });
});

/** Answers every job with a reply of the other kind (a thread with a bug). */
const crossed = new URL(
  `data:text/javascript,${encodeURIComponent(`import { parentPort } from 'node:worker_threads';
  parentPort.on('message', (m) => {
    if (m.kind !== 'jobs') return;
    parentPort.postMessage(m.jobs.map((job) => job.kind === 'event'
      ? { kind: 'arrival', id: job.id, check: { heartbeat: false } }
      : { kind: 'event', id: job.id, ok: false, reason: 'crossed' }));
  });`)}`,
);

test('a reply of the wrong kind still settles its request (no decode-ahead place is held for ever)', async () => {
  const stream = new Writable({ write: (_c, _e, done) => done() });
  const logger = createLogger({ service: 'superpeer', level: 'warn', format: 'json', stream });
  const pool = new EventDecoder({ workers: 1, logger, script: crossed });
  pool.start();
  const alice = peer('alice');
  const [announce, signature] = alice.announces(files(3))[0]!;
  const [heartbeat, heartbeatSignature] = alice.signed({ type: 'peer.heartbeat', seq: 1, fileCount: 3 });
  const [event, arrival] = await Promise.all([
    pool.decodeEvent(announce, signature),
    pool.checkArrival(heartbeat, heartbeatSignature),
  ]);
  const decoded = opened(event);
  const reference = decode(PeerEventSchema, announce);
  assert.ok(reference.ok);
  assert.deepEqual(decoded.ok && decoded.event, reference.value);
  assert.equal(decoded.ok && decoded.proof.verifiedKey, alice.publicKeyDer);
  assert.equal(arrival, 'busy');
  assert.equal(pool.inFlight, 0);
  await pool.close();
});

describe('a heartbeat number that is not one', () => {
  test('never counts on arrival and is refused in its turn; a valid number does both', async () => {
    const { pool } = quietDecoder();
    const alice = peer('alice');
    const [announce, announceSignature] = alice.announces(files(3))[0]!;
    await pool.decodeEvent(announce, announceSignature); // the threads learn her key
    for (const beat of [0, -1, 1.5, '7', null, 2 ** 53]) {
      const [heartbeat, signature] = alice.signed({ type: 'peer.heartbeat', seq: 1, fileCount: 3, beat });
      assert.deepEqual(await pool.checkArrival(heartbeat, signature), { heartbeat: false }, `beat ${beat}`);
      assert.equal(decode(PeerEventSchema, heartbeat).ok, false, `beat ${beat} passes the schema`);
      const turn = opened(await pool.decodeEvent(heartbeat, signature));
      assert.equal(turn.ok, false, `beat ${beat} decoded in its turn`);
    }
    const [valid, signature] = alice.signed({ type: 'peer.heartbeat', seq: 1, fileCount: 3, beat: 7 });
    const check = await pool.checkArrival(valid, signature);
    assert.equal(check !== 'busy' && check.heartbeat && check.beat, 7);
    assert.equal(check !== 'busy' && check.heartbeat && check.verifiedKey, alice.publicKeyDer);
    await pool.close();
  });
});
