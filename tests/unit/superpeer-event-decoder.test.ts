import assert from 'node:assert/strict';
import { PassThrough, Writable } from 'node:stream';
import { describe, test } from 'node:test';
import type { Channel, ConsumeMessage } from 'amqplib';
import { isP2PError } from '../../libs/errors/index.js';
import { createLogger } from '../../libs/logging/index.js';
import { type BrokerSession, consumeValidated, DeliveryMemory } from '../../libs/messaging/index.js';
import {
  decode,
  encode,
  encodeWithField,
  HEADERS,
  type NetworkMessage,
  type NetworkPeerState,
  type PeerEvent,
  PeerEventSchema,
  packFiles,
} from '../../libs/protocol/index.js';
import { AheadWindow } from '../../services/superpeer/ahead-window.js';
import { EventDecoder, type EventDecoderOptions } from '../../services/superpeer/event-decoder.js';
import { decodeEvent, decodingMemory, deferred } from '../../services/superpeer/event-decoding.js';
import { countHeartbeatOnArrival } from '../../services/superpeer/liveness.js';
import { PeerRegistry } from '../../services/superpeer/registry.js';
import type { PublishNetworkOptions } from '../../services/superpeer/transport.js';
import { files, opened, peer, superpeer } from './superpeer-fake.js';

/** A logger whose lines the test can read. */
function recordingLogger() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString('utf8'));
      done();
    },
  });
  return { logger: createLogger({ service: 'superpeer', level: 'warn', format: 'json', stream }), lines };
}

/** Worker scripts standing in for decode-worker.js; each loads the real one unless it says otherwise. */
const realWorker = new URL('../../services/superpeer/decode-worker.js', import.meta.url).href;
const script = (code: string) => new URL(`data:text/javascript,${encodeURIComponent(code)}`);
/**
 * The real thread, dying on a batch holding the bytes `die-die-die` (before it decodes any of it: the real
 * listener only queues, the second one exits). Listening only once the real one does: a listener starts
 * the port, and what comes before the real one listens would be lost.
 */
const dyingOnMarker = script(`
  import { parentPort } from 'node:worker_threads';
  await import(${JSON.stringify(realWorker)});
  parentPort.on('message', (m) => { if (m.kind === 'jobs' && Buffer.from(m.bytes).includes('die-die-die')) process.exit(7); });`);
/** Reads its requests and never answers. */
const silent = script(
  `import { parentPort } from 'node:worker_threads'; parentPort.on('message', () => {});`,
);
/** Dies on every batch. */
const alwaysDying = script(
  `import { parentPort } from 'node:worker_threads'; parentPort.on('message', (m) => { if (m.kind === 'jobs') process.exit(9); });`,
);

function decoder(options: Partial<EventDecoderOptions> = {}) {
  const { logger, lines } = recordingLogger();
  const pool = new EventDecoder({ workers: 1, logger, ...options });
  pool.start();
  return { pool, lines };
}

/** What the in-thread decode says of a body: the reference every decoding must match. */
function expected(body: Buffer) {
  const decoded = decode(PeerEventSchema, body);
  return decoded.ok ? { ok: true as const, event: decoded.value } : decoded;
}

/** The event a body decodes to (the test's bodies are valid where this is used). */
function eventOf(body: Buffer) {
  const decoded = decode(PeerEventSchema, body);
  assert.ok(decoded.ok);
  return decoded.value;
}

/** A mix of events of two peers, and malformed bodies, as [body, signature]. */
function traffic(): Array<[Buffer, string]> {
  const alice = peer('alice');
  const bob = peer('bob');
  return [
    ...alice.announces(files(1500, 'a')),
    alice.signed({ type: 'peer.heartbeat', seq: 1, fileCount: 1500 }),
    [Buffer.from('not json'), 'x'],
    ...bob.announces(files(3, 'b')),
    alice.signed({ type: 'peer.delta', seq: 2, upserted: files(2, 'c'), removed: ['a-1.txt'] }),
    [Buffer.from(JSON.stringify({ v: 1, type: 'peer.heartbeat', peerId: 'nope' })), 'x'],
    bob.signed({ type: 'peer.heartbeat', seq: 1, fileCount: 3 }),
    bob.signed({ type: 'peer.leave' }),
  ];
}

describe('EventDecoder', () => {
  test('decodes exactly as the schema does, and says which key verified each event', async () => {
    const { pool } = decoder({ workers: 2 });
    const alice = peer('alice');
    const [announce, announceSignature] = alice.announces(files(10))[0]!;
    const first = opened(await pool.decodeEvent(announce, announceSignature));
    assert.deepEqual(first.ok && first.event, eventOf(announce));
    assert.equal(first.ok && first.proof.verifiedKey, alice.publicKeyDer);
    assert.equal(first.ok && first.proof.packed?.json.toString(), JSON.stringify(files(10)));

    // Both threads learned alice's key (from the one that verified the announce): her heartbeats verify.
    for (let i = 0; i < 4; i++) {
      const [heartbeat, signature] = alice.signed({ type: 'peer.heartbeat', seq: 1, fileCount: i });
      const decoded = opened(await pool.decodeEvent(heartbeat, signature));
      assert.equal(decoded.ok && decoded.proof.verifiedKey, alice.publicKeyDer);
    }
    // A forgery in her name (another key) decodes, but nothing verified it: its turn refuses it.
    const [forged, forgedSignature] = peer('mallory', alice.peerId).signed({
      type: 'peer.heartbeat',
      seq: 1,
      fileCount: 0,
    });
    const decoded = opened(await pool.decodeEvent(forged, forgedSignature));
    assert.equal(decoded.ok, true);
    assert.equal(decoded.ok && decoded.proof.verifiedKey, undefined);
    const unsigned = opened(await pool.decodeEvent(announce, undefined));
    assert.equal(unsigned.ok && unsigned.proof.verifiedKey, undefined);
    await pool.close();
  });

  test('copies the next bodies into the buffers the thread hands back, and decodes them as the schema does', async () => {
    const { pool } = decoder();
    const alice = peer('alice');
    // Large and small in turn: a buffer handed back holds older bytes past the body copied into it now.
    for (const [k, count] of [1500, 3, 1400, 1500, 700].entries()) {
      const [body, signature] = alice.announces(files(count, `round${k}`), k + 1)[0]!;
      const decoded = opened(await pool.decodeEvent(body, signature));
      assert.deepEqual(decoded.ok && decoded.event, eventOf(body), `round ${k}`);
      assert.equal(
        decoded.ok && decoded.proof.packed?.json.toString(),
        JSON.stringify(files(count, `round${k}`)),
      );
      // An announce's batch is large: it came back with the reply, and the next one is copied into it.
      assert.equal(pool.inputsHeld, count >= 1000 ? 1 : k === 0 ? 0 : 1, `round ${k}`);
    }
    // A body over 1 MiB is copied into a buffer of its own, which is not kept.
    const [large, largeSignature] = alice.announces(files(2000, 'long'.repeat(150)), 9)[0]!;
    assert.ok(large.length > 1024 * 1024);
    const decoded = opened(await pool.decodeEvent(large, largeSignature));
    assert.equal(decoded.ok && decoded.proof.packed?.length, 2000);
    assert.equal(pool.inputsHeld, 1, 'the buffer kept before; not the large one');
    await pool.close();
  });

  test("says whether an announce's names are distinct, in the thread as here", async () => {
    const { pool } = decoder();
    const alice = peer('alice');
    const distinct = files(5);
    const [unique, uniqueSignature] = alice.announces(distinct)[0]!;
    const [repeated, repeatedSignature] = alice.announces([...distinct, distinct[2]!], 2)[0]!;
    const inThread = [
      opened(await pool.decodeEvent(unique, uniqueSignature)),
      opened(await pool.decodeEvent(repeated, repeatedSignature)),
    ];
    const here = [
      opened(deferred(decodeEvent(unique, uniqueSignature, decodingMemory()))),
      opened(deferred(decodeEvent(repeated, repeatedSignature, decodingMemory()))),
    ];
    for (const [first, second] of [inThread, here]) {
      assert.equal(first!.ok && first!.proof.distinctNames, true);
      assert.equal(second!.ok && second!.proof.distinctNames, undefined);
    }
    await pool.close();
  });

  test('refuses with the reasons the in-thread decode gives', async () => {
    const { pool } = decoder();
    const bodies = traffic().map(([body]) => body);
    bodies.push(Buffer.alloc(5 * 1024 * 1024, 0x20));
    const results = await Promise.all(bodies.map((body) => pool.decodeEvent(body, 'x')));
    const refusals = results.flatMap((result) => (result.ok ? [] : [result.reason]));
    assert.deepEqual(
      refusals,
      bodies.map(expected).flatMap((result) => (result.ok ? [] : [result.reason])),
    );
    assert.equal(refusals.length, 3);
    await pool.close();
  });

  test('heartbeats read on arrival go ahead of the events a thread has in hand', async () => {
    const { pool } = decoder();
    const alice = peer('alice');
    const [announce, signature] = alice.announces(files(10))[0]!;
    await pool.decodeEvent(announce, signature);
    const big = Array.from({ length: 40 }, (_, i) => peer(`p${i}`).announces(files(2000, `p${i}`))[0]!);
    const order: string[] = [];
    const events = big.map(([body, sig], i) =>
      pool.decodeEvent(body, sig).then(() => order.push(`event ${i}`)),
    );
    await new Promise((resolve) => setImmediate(resolve)); // the events go in a message of their own
    const [heartbeat, heartbeatSignature] = alice.signed({ type: 'peer.heartbeat', seq: 1, fileCount: 10 });
    const arrival = pool.checkArrival(heartbeat, heartbeatSignature).then((check) => {
      order.push('arrival');
      return check;
    });
    await Promise.all([...events, arrival]);
    assert.deepEqual(await arrival, {
      heartbeat: true,
      peerId: alice.peerId,
      instanceId: alice.instanceId,
      verifiedKey: alice.publicKeyDer,
    });
    assert.ok(order.indexOf('arrival') < order.indexOf('event 39'), order.join(', '));
    await pool.close();
  });

  test('a heartbeat verified on arrival is read here in its turn: no thread is asked, no second verify', async () => {
    const { pool } = decoder();
    const alice = peer('alice');
    const [announce, announceSignature] = alice.announces(files(10))[0]!;
    await pool.decodeEvent(announce, announceSignature);
    const [heartbeat, signature] = alice.signed({ type: 'peer.heartbeat', seq: 1, fileCount: 10 });
    const check = await pool.checkArrival(heartbeat, signature);
    assert.equal(check !== 'busy' && check.heartbeat && check.verifiedKey, alice.publicKeyDer);
    // Its copy from the events queue: another buffer with the same bytes, as a second delivery is.
    const turn = pool.decodeEvent(Buffer.from(heartbeat), signature);
    assert.equal(pool.inFlight, 0, 'sent to a thread');
    const decoded = opened(await turn);
    assert.deepEqual(decoded.ok && decoded.event, eventOf(heartbeat));
    assert.equal(decoded.ok && decoded.proof.verifiedKey, alice.publicKeyDer);
    // The record is used up: the same bytes once more go to a thread (which verifies them itself).
    const again = pool.decodeEvent(Buffer.from(heartbeat), signature);
    assert.equal(pool.inFlight, 1);
    const second = opened(await again);
    assert.equal(second.ok && second.proof.verifiedKey, alice.publicKeyDer);
    // Other bytes under a recorded signature are never taken as verified.
    const [next, nextSignature] = alice.signed({ type: 'peer.heartbeat', seq: 2, fileCount: 10 });
    await pool.checkArrival(next, nextSignature);
    const tampered = Buffer.from(next.toString().replace('"fileCount":10', '"fileCount":11'));
    const forged = opened(await pool.decodeEvent(tampered, nextSignature));
    assert.equal(forged.ok && forged.proof.verifiedKey, undefined);
    await pool.close();
  });

  test('a recorded signature under other bytes is no shortcut: a flood of them goes to the threads', async () => {
    const { pool } = decoder();
    const alice = peer('alice');
    const mallory = peer('mallory');
    const [announce, announceSignature] = alice.announces(files(10))[0]!;
    await pool.decodeEvent(announce, announceSignature);
    const [heartbeat, signature] = alice.signed({ type: 'peer.heartbeat', seq: 1, fileCount: 10 });
    await pool.checkArrival(heartbeat, signature);
    // Anyone who saw the header (or sent it: their own heartbeat) sends small events under it: deltas of a
    // peer whose key is known and announces, which the in-thread decode verifies whatever the record says
    // and which never use the record up.
    const flood: Buffer[] = [];
    for (let seq = 2; seq < 22; seq++) {
      flood.push(alice.signed({ type: 'peer.delta', seq, upserted: [], removed: [`x-${seq}`] })[0]);
      flood.push(mallory.announces(files(1, `m${seq}`), seq)[0]![0]);
    }
    const decodings = flood.map((body) => pool.decodeEvent(body, signature));
    assert.equal(pool.inFlight, flood.length, 'verified in the main thread');
    for (const decoding of await Promise.all(decodings)) {
      const decoded = opened(decoding);
      assert.equal(decoded.ok && decoded.proof.verifiedKey, undefined);
    }
    // The heartbeat's own copy still finds its record.
    const turn = pool.decodeEvent(Buffer.from(heartbeat), signature);
    assert.equal(pool.inFlight, 0, 'sent to a thread');
    const decoded = opened(await turn);
    assert.equal(decoded.ok && decoded.proof.verifiedKey, alice.publicKeyDer);
    await pool.close();
  });

  test('a thread that dies is replaced; what it had in hand is decoded here, and logged', async () => {
    const { pool, lines } = decoder({ script: dyingOnMarker });
    const bodies = traffic();
    // Its instance id carries the marker that kills the thread, with everything sent beside it.
    bodies.splice(3, 0, peer('die-die-die').signed({ type: 'peer.leave' }));
    const results = await Promise.all(bodies.map(([body, signature]) => pool.decodeEvent(body, signature)));
    assert.deepEqual(
      results.map(opened).map((result) => (result.ok ? { ok: true, event: result.event } : result)),
      bodies.map(([body]) => expected(body)),
    );
    assert.ok(lines.some((line) => line.includes('a decoding thread stopped') && line.includes('code 7')));
    assert.equal(pool.runningWorkers, 1, 'replaced');
    assert.equal(pool.inFlight, 0);
    // The new thread answers (and learned the keys the old one verified before it died, if any).
    const [body, signature] = peer('carol').announces(files(5))[0]!;
    const after = opened(await pool.decodeEvent(body, signature));
    assert.equal(after.ok && after.proof.verifiedKey !== undefined, true);
    assert.equal(pool.runningWorkers, 1);
    await pool.close();
  });

  test('a thread that stops answering is stopped after the timeout; its events are decoded here', async () => {
    const { pool, lines } = decoder({ script: silent, jobTimeoutMs: 100 });
    const bodies = traffic();
    const results = await Promise.all(bodies.map(([body, signature]) => pool.decodeEvent(body, signature)));
    assert.deepEqual(
      results.map(opened).map((result) => (result.ok ? { ok: true, event: result.event } : result)),
      bodies.map(([body]) => expected(body)),
    );
    assert.ok(lines.some((line) => line.includes('did not answer within 100 ms')));
    await pool.close();
  });

  test('bounded: past the jobs a thread may hold, events are decoded here; past the arrivals, "busy"', async () => {
    const { pool } = decoder({ script: silent, maxJobsPerWorker: 2, maxArrivalsInFlight: 1 });
    const [[a, sa], [b, sb], [c, sc]] = traffic() as [[Buffer, string], [Buffer, string], [Buffer, string]];
    const held = [pool.decodeEvent(a, sa), pool.decodeEvent(b, sb)];
    const third = opened(await pool.decodeEvent(c, sc));
    assert.deepEqual(third, { ok: false, reason: 'body is not JSON' });
    assert.equal(pool.inFlight, 2);
    const firstArrival = pool.checkArrival(a, sa);
    assert.equal(await pool.checkArrival(b, sb), 'busy');
    assert.equal(pool.inFlight, 3);
    await pool.close();
    // Closing hands what the thread held back: decoded here, and the arrival to its caller.
    assert.equal((await held[0]!).ok, true);
    assert.equal((await held[1]!).ok, true);
    assert.equal(await firstArrival, 'busy');
  });

  test('a thread that keeps dying is given up on: everything is decoded here', async () => {
    const { pool, lines } = decoder({ script: alwaysDying, maxRestartsPerMinute: 1 });
    const dave = peer('dave');
    const [body, signature] = dave.announces(files(3))[0]!;
    for (let i = 0; i < 3; i++) {
      const decoded = opened(await pool.decodeEvent(body, signature));
      assert.equal(decoded.ok && decoded.proof.verifiedKey, dave.publicKeyDer);
      assert.deepEqual(decoded.ok && decoded.event, eventOf(body));
    }
    assert.equal(pool.runningWorkers, 0);
    assert.ok(lines.some((line) => line.includes('keeps dying')));
    await pool.close();
  });
});

describe('the events consumer with decodeAhead', () => {
  /** A session of one channel whose deliveries the test makes; acks and dead letters are recorded. */
  function fakeSession() {
    let deliver: ((message: ConsumeMessage | null) => void) | undefined;
    const settled: string[] = [];
    const channel = {
      prefetch: async () => undefined,
      consume: async (_queue: string, onMessage: (message: ConsumeMessage | null) => void) => {
        deliver = onMessage;
      },
      ack: (message: ConsumeMessage) => settled.push(`ack ${message.properties.messageId}`),
      nack: (message: ConsumeMessage) => settled.push(`nack ${message.properties.messageId}`),
    } as unknown as Channel;
    const session = {
      open: true,
      logger: createLogger({
        service: 'superpeer',
        level: 'error',
        format: 'json',
        stream: new PassThrough(),
      }),
      interruptedDeliveries: new DeliveryMemory(),
      onClose: () => undefined,
      createChannel: async () => channel,
      publishConfirmed: async (
        _exchange: string,
        _key: string,
        _body: Buffer,
        options: { messageId: string; headers: Record<string, unknown> },
      ) => {
        settled.push(`dead-letter ${options.messageId}: ${String(options.headers[HEADERS.rejectReason])}`);
      },
    } as unknown as BrokerSession;
    return { session, settled, deliver: (message: ConsumeMessage) => deliver!(message) };
  }

  test('handles deliveries in their order, whenever their decoding ends, and refuses with the reason', async () => {
    const { pool } = decoder({ workers: 2 });
    const { session, settled, deliver } = fakeSession();
    const handled: string[] = [];
    await consumeValidated(session, {
      queue: 'events',
      schema: PeerEventSchema,
      prefetch: 64,
      deadLetter: { exchange: 'dlx', rejectedBy: 'test' },
      decodeAhead: async (message) => {
        const decoded = await pool.decodeEvent(
          message.content,
          message.properties.headers?.[HEADERS.signature],
        );
        return decoded.ok ? { ok: true, value: decoded.open } : decoded;
      },
      handler: (open, message) => {
        const { event } = open();
        handled.push(`${message.properties.messageId} ${event.type}`);
      },
    });
    const bodies = traffic();
    // Slow first (a 1500-file announce), fast after: the fast ones' decodings end first.
    for (const [i, [body, signature]] of bodies.entries()) {
      deliver({
        content: body,
        fields: { redelivered: false },
        properties: { messageId: `m${i}`, headers: { [HEADERS.signature]: signature } },
      } as unknown as ConsumeMessage);
    }
    const expectations = bodies.map(([body]) => expected(body));
    // A refused delivery is settled twice (its dead letter, then its ack): wait for every entry.
    const settlements = expectations.reduce((total, result) => total + (result.ok ? 1 : 2), 0);
    const deadline = Date.now() + 10_000;
    while (settled.length < settlements && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.deepEqual(
      handled,
      expectations.flatMap((result, i) => (result.ok ? [`m${i} ${result.event.type}`] : [])),
    );
    assert.deepEqual(
      settled,
      expectations.flatMap((result, i) =>
        result.ok ? [`ack m${i}`] : [`dead-letter m${i}: ${result.reason}`, `ack m${i}`],
      ),
    );
    await pool.close();
  });
});

describe("the superpeer with a thread's proof", () => {
  const delivery = ([content, signature]: [Buffer, string]) =>
    ({
      content,
      properties: { headers: { [HEADERS.signature]: signature } },
      fields: {},
    }) as unknown as ConsumeMessage;

  test('a verified key spares the verify only when it is the registered one; a forgery stays refused', async () => {
    const { sp, transport } = await superpeer();
    const bob = peer('bob');
    for (const [body, signature] of bob.announces(files(3))) await transport.deliver(body, signature);
    const mallory = peer('mallory', bob.peerId);
    const forged = mallory.signed({ type: 'peer.heartbeat', seq: 5, fileCount: 0 });
    for (const verifiedKey of [mallory.publicKeyDer, undefined]) {
      await assert.rejects(
        transport.handlers!.onEvent(eventOf(forged[0]), delivery(forged), { verifiedKey }),
        (err) => isP2PError(err, 'MESSAGE_INVALID') && /bad signature/.test(err.message),
      );
    }
    const forgedLeave = mallory.signed({ type: 'peer.leave' });
    await assert.rejects(
      transport.handlers!.onEvent(eventOf(forgedLeave[0]), delivery(forgedLeave), {
        verifiedKey: mallory.publicKeyDer,
      }),
      (err) => isP2PError(err, 'MESSAGE_INVALID'),
    );
    const unsigned = bob.signed({ type: 'peer.heartbeat', seq: 1, fileCount: 3 });
    await assert.rejects(
      transport.handlers!.onEvent(
        eventOf(unsigned[0]),
        { content: unsigned[0], properties: { headers: {} }, fields: {} } as unknown as ConsumeMessage,
        { verifiedKey: bob.publicKeyDer },
      ),
      (err) => isP2PError(err, 'MESSAGE_INVALID') && /unsigned/.test(err.message),
    );
    assert.equal(sp.index.peerCount, 1);
    const leave = bob.signed({ type: 'peer.leave' });
    await transport.handlers!.onEvent(eventOf(leave[0]), delivery(leave), { verifiedKey: bob.publicKeyDer });
    assert.equal(sp.index.peerCount, 0);
    await sp.close();
  });

  test("an announce's files JSON becomes its rebroadcast's body, byte for byte what encode writes", async () => {
    const { sp, transport } = await superpeer();
    const bodies: Array<{ message: unknown; body: Buffer | undefined }> = [];
    const publish = transport.publishNetwork.bind(transport);
    Object.assign(transport, {
      publishNetwork: async (message: NetworkMessage, options?: PublishNetworkOptions) => {
        bodies.push({ message, body: options?.body });
        return publish(message);
      },
    });
    const carol = peer('carol');
    const [announce] = carol.announces(files(20)) as [[Buffer, string]];
    const event = eventOf(announce[0]);
    assert.equal(event.type, 'peer.announce');
    const announced = event.type === 'peer.announce' ? event.files : [];
    await transport.handlers!.onEvent({ ...event, files: [] } as PeerEvent, delivery(announce), {
      verifiedKey: carol.publicKeyDer,
      packed: packFiles(announced, JSON.stringify(announced)),
    });
    const states = bodies.filter(
      ({ message }) => (message as { type: string }).type === 'network.peer-state',
    );
    assert.equal(states.length, 1);
    assert.ok(states[0]!.body);
    // The message's own list is empty: the body carries the files, as encode would write them.
    assert.deepEqual(states[0]!.body, encode({ ...(states[0]!.message as object), files: announced }));
    await sp.close();
  });
});

describe("liveness with a thread's reading", () => {
  test('a heartbeat counts when the registered key verified it, here or in the thread, and only then', () => {
    const registry = new PeerRegistry();
    const bob = peer('bob');
    registry.bind(bob.peerId, {
      publicKey: bob.publicKeyDer,
      name: undefined,
      instanceId: bob.instanceId,
      lastSeenMs: 0,
    });
    const [heartbeat, signature] = bob.signed({ type: 'peer.heartbeat', seq: 1, fileCount: 0 });
    const message = {
      content: heartbeat,
      properties: { headers: { [HEADERS.signature]: signature } },
    } as unknown as ConsumeMessage;
    const read = { heartbeat: true as const, peerId: bob.peerId, instanceId: bob.instanceId };
    assert.equal(
      countHeartbeatOnArrival(registry, message, 10, undefined, { ...read, verifiedKey: bob.publicKeyDer }),
      true,
    );
    // The thread knew no key, or another: the registered key decides here.
    assert.equal(countHeartbeatOnArrival(registry, message, 20, undefined, read), true);
    assert.equal(registry.get(bob.peerId)!.lastSeenMs, 20);
    const [forged, forgedSignature] = peer('mallory', bob.peerId).signed({
      type: 'peer.heartbeat',
      seq: 1,
      fileCount: 0,
    });
    const forgery = {
      content: forged,
      properties: { headers: { [HEADERS.signature]: forgedSignature } },
    } as unknown as ConsumeMessage;
    assert.equal(
      countHeartbeatOnArrival(registry, forgery, 30, undefined, { ...read, verifiedKey: 'another key' }),
      false,
    );
    assert.equal(countHeartbeatOnArrival(registry, forgery, 30, undefined, { heartbeat: false }), false);
    assert.equal(registry.get(bob.peerId)!.lastSeenMs, 20);
  });
});

test('encodeWithField writes the bytes encode writes', () => {
  const list = files(3);
  const message: NetworkPeerState = {
    v: 1,
    type: 'network.peer-state',
    superpeerId: 'sp',
    peerId: 'a'.repeat(40),
    publicKey: 'k',
    name: 'héllo \u2028 "quoted"',
    instanceId: 'instance-1',
    url: 'http://x.test',
    seq: 1,
    chunkIndex: 0,
    chunkCount: 1,
    files: list,
  };
  assert.deepEqual(encodeWithField(message, 'files', JSON.stringify(list)), encode(message));
  assert.deepEqual(encodeWithField({ files: list }, 'files', JSON.stringify(list)), encode({ files: list }));
});

test('the decode-ahead window holds at most its size, and gives places in call order', async () => {
  const window = new AheadWindow(2);
  const entered: number[] = [];
  const calls = [0, 1, 2, 3, 4].map((i) => window.enter().then(() => entered.push(i)));
  await Promise.all(calls.slice(0, 2));
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(entered, [0, 1]);
  assert.equal(window.pending, 2);
  window.leave();
  window.leave();
  await Promise.all(calls.slice(2, 4));
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(entered, [0, 1, 2, 3]);
  window.leave();
  await calls[4];
  assert.deepEqual(entered, [0, 1, 2, 3, 4]);
  window.leave();
  window.leave();
  assert.equal(window.pending, 0);
});
