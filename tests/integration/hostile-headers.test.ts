import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { HEADERS, topologyNames } from '../../libs/protocol/index.js';
import { AMQP_URL, startNetwork, type TestNetwork } from '../helpers/network.js';

/*
 * A plain AMQP client (someone else's) publishing peer events whose signature header is not a string, to a
 * superpeer with a decoding thread. amqplib on the superpeer decodes any AMQP field value, including an
 * array nested thousands deep; such a value once reached the thread's postMessage, whose structured clone
 * threw uncaught and ended the superpeer (and again on every restart: the message stays queued).
 */

const amqplibPath = createRequire(import.meta.url).resolve('amqplib');

/**
 * Publishes `body` with the signature header nested `depth` arrays deep. amqplib's encoder recurses per
 * level, more deeply than its decoder: the publish runs in a thread with a larger stack.
 */
function publishNested(exchange: string, body: Buffer, depth: number): Promise<void> {
  const code = `
    const { workerData, parentPort } = require('node:worker_threads');
    const amqp = require(workerData.amqplibPath);
    (async () => {
      let value = 'x';
      for (let i = 0; i < workerData.depth; i++) value = [value];
      const connection = await amqp.connect(workerData.url);
      const channel = await connection.createConfirmChannel();
      channel.publish(workerData.exchange, '', Buffer.from(workerData.body), {
        messageId: 'nested-signature',
        headers: { [workerData.header]: value },
      });
      await channel.waitForConfirms();
      await connection.close();
      parentPort.postMessage('published');
    })().catch((err) => parentPort.postMessage('failed: ' + err.message));`;
  return new Promise((resolve, reject) => {
    const worker = new Worker(code, {
      eval: true,
      workerData: { amqplibPath, url: AMQP_URL, exchange, body, depth, header: HEADERS.signature },
      resourceLimits: { stackSizeMb: 32 },
    });
    worker.once('message', (outcome: string) => {
      void worker.terminate();
      if (outcome === 'published') resolve();
      else reject(new Error(outcome));
    });
    worker.once('error', reject);
  });
}

describe('signature headers that are not strings, against a superpeer with a decoding thread', () => {
  let net: TestNetwork;

  before(async () => {
    net = await startNetwork({
      label: 'hostile-headers',
      peers: [{ 'a.txt': 'alpha' }],
      env: { SUPERPEER_DECODE_WORKERS: '1' },
    });
  });

  after(async () => {
    await net?.stop();
  });

  test('an array nested 4,000 deep is refused as unsigned; the superpeer keeps running', async () => {
    const peer = net.peers[0]!;
    // A heartbeat in a registered peer's name: small enough to be read on arrival too.
    const body = Buffer.from(
      JSON.stringify({
        v: 1,
        type: 'peer.heartbeat',
        peerId: peer.peerId,
        instanceId: 'forged-instance-0001',
        seq: 1,
        fileCount: 1,
      }),
    );
    await publishNested(topologyNames(net.namespace).eventsExchange, body, 4000);
    const refused = await net.superpeer.waitForLog(
      (r) => r.message === 'refused a message' && r.messageId === 'nested-signature',
      20_000,
      'the refusal of the nested-signature event',
    );
    assert.match(String(refused.reason), /unsigned event/);
    assert.equal(net.superpeer.alive, true);
    assert.ok(
      !net.superpeer.stderr.some((line) => line.includes('Maximum call stack')),
      net.superpeer.stderr.join('\n'),
    );
  });
});
