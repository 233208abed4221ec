import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import amqp from 'amqplib';
import { topologyNames } from '../../libs/protocol/index.js';
import { AMQP_URL, runCli, startNetwork, type TestNetwork, waitUntil } from '../helpers/network.js';

/*
 * Fairness between RPC clients: a foreign client written with plain amqplib keeps thousands of expensive
 * searches waiting in the RPC queue, while a person runs `p2p search`. The person's search must come back
 * in bounded time (not after the flood's backlog), and the flood is told it is over its share.
 */

/** Files the foreign peer announces: a search matching them all, with the largest limit, is expensive. */
const FOREIGN_FILES = 20_000;
const FILES_PER_CHUNK = 1000;
/** Requests the flooding client keeps waiting at all times. */
const FLOOD_WINDOW = 3000;
/**
 * `p2p search` under the flood must answer within this much more than it took without it (its own timeout
 * is set well above). Behind the flood's backlog answered in turn, it would wait for every request of it.
 */
const SEARCH_EXTRA_MS = 5000;

function foreignAnnounce(): Array<[Buffer, string]> {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const der = publicKey.export({ type: 'spki', format: 'der' });
  const peerId = createHash('sha256').update(der).digest().subarray(0, 20).toString('hex');
  const instanceId = randomUUID();
  const chunkCount = FOREIGN_FILES / FILES_PER_CHUNK;
  const messages: Array<[Buffer, string]> = [];
  for (let chunkIndex = 0; chunkIndex < chunkCount; chunkIndex++) {
    const entries: string[] = [];
    for (let i = 0; i < FILES_PER_CHUNK; i++) {
      const n = chunkIndex * FILES_PER_CHUNK + i;
      entries.push(
        `{"name":"flood/common words/f-${n}.bin","size":${n},"sha256":"${n.toString(16).padStart(64, '0')}","mtimeMs":1700000000000}`,
      );
    }
    const body = Buffer.from(
      `{"v":1,"type":"peer.announce","peerId":"${peerId}","instanceId":"${instanceId}","url":"http://127.0.0.1:9/x","seq":1,"publicKey":"${der.toString('base64')}","chunkIndex":${chunkIndex},"chunkCount":${chunkCount},"files":[${entries.join(',')}]}`,
    );
    messages.push([body, sign(null, body, privateKey).toString('base64')]);
  }
  return messages;
}

describe('fairness between RPC clients', { timeout: 300_000 }, () => {
  let network: TestNetwork;
  let connection: amqp.ChannelModel;
  let names: ReturnType<typeof topologyNames>;

  before(async () => {
    network = await startNetwork({ label: 'fair', peers: [{ 'notes/quarterly-report.txt': 'numbers' }] });
    names = topologyNames(network.namespace);
    connection = await amqp.connect(AMQP_URL);
    const channel = await connection.createConfirmChannel();
    for (const [body, signature] of foreignAnnounce()) {
      channel.publish(names.eventsExchange, '', body, {
        contentType: 'application/json',
        type: 'peer.announce',
        messageId: randomUUID(),
        headers: { 'x-p2p-signature': signature },
      });
    }
    await channel.waitForConfirms();
    await channel.close();
  });

  after(async () => {
    await connection?.close().catch(() => undefined);
    await network?.stop();
  });

  test('a flood of expensive searches from one client does not hold up another client’s search', async (t) => {
    const quietStarted = performance.now();
    const quiet = await runCli(['search', 'quarterly', '--json'], network.env);
    const quietMs = performance.now() - quietStarted;
    assert.equal(quiet.code, 0, quiet.stderr);
    const channel = await connection.createChannel();
    const replies = { ok: 0, busy: 0, other: 0 };
    let outstanding = 0;
    let flooding = true;
    const send = () => {
      outstanding++;
      channel.sendToQueue(
        names.rpcQueue,
        Buffer.from(JSON.stringify({ v: 1, type: 'rpc.search', query: 'flood common words', limit: 1000 })),
        {
          replyTo: 'amq.rabbitmq.reply-to',
          correlationId: randomUUID(),
          contentType: 'application/json',
          type: 'rpc.search',
        },
      );
    };
    let indexedFiles = 0;
    await channel.consume(
      'amq.rabbitmq.reply-to',
      (message) => {
        if (!message) return;
        outstanding--;
        const body = JSON.parse(message.content.toString('utf8')) as {
          ok: boolean;
          indexedFiles?: number;
          error?: { code: string };
        };
        if (body.ok) {
          replies.ok++;
          indexedFiles = Math.max(indexedFiles, body.indexedFiles ?? 0);
        } else if (body.error?.code === 'LIMIT_EXCEEDED') replies.busy++;
        else replies.other++;
        // Open loop in effect: whatever comes back is sent again at once, the window stays full.
        if (flooding) send();
      },
      { noAck: true },
    );
    // The foreign state is in before the flood counts.
    await waitUntil(
      async () => {
        if (outstanding === 0) send();
        return indexedFiles >= FOREIGN_FILES;
      },
      { timeoutMs: 60_000, intervalMs: 100, what: 'the foreign peer to be indexed' },
    );
    for (let i = 0; i < FLOOD_WINDOW; i++) send();
    const before = replies.ok + replies.busy;
    await waitUntil(() => replies.ok + replies.busy >= before + 500, {
      timeoutMs: 30_000,
      what: 'the flood to be under way',
    });

    const latencies: number[] = [];
    const floodAtStart: number[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        floodAtStart.push(outstanding);
        const started = performance.now();
        const result = await runCli(['search', 'quarterly', '--json'], {
          ...network.env,
          P2P_TIMEOUT_MS: '20000',
        });
        latencies.push(performance.now() - started);
        assert.equal(result.code, 0, result.stderr);
        assert.match(result.stdout, /quarterly-report\.txt/);
      }
    } finally {
      flooding = false;
    }
    await channel.close();
    t.diagnostic(
      `p2p search: ${Math.round(quietMs)} ms without the flood, ${latencies.map(Math.round).join(' / ')} ms under it; flood replies ${JSON.stringify(replies)}`,
    );
    // The flood was in full flow each time (requests sent and not yet answered).
    for (const waiting of floodAtStart)
      assert.ok(waiting > FLOOD_WINDOW / 2, `only ${waiting} flood requests waiting`);
    for (const ms of latencies) {
      assert.ok(
        ms < quietMs + SEARCH_EXTRA_MS,
        `p2p search took ${Math.round(ms)} ms under the flood, ${Math.round(quietMs)} ms without`,
      );
    }
    assert.ok(replies.busy > 0, 'the flooding client was told it is over its share');
    assert.ok(replies.ok > 0, 'the flooding client still gets answers, at its share');
    assert.equal(replies.other, 0);
  });
});
