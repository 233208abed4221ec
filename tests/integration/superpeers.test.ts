import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createLogger } from '../../libs/logging/index.js';
import { topologyNames } from '../../libs/protocol/index.js';
import { connectAmqpClient, type NetworkClient } from '../../services/cli/client.js';
import {
  AMQP_URL,
  type ServiceProcess,
  startNetwork,
  type TestNetwork,
  waitUntil,
  withAmqp,
} from '../helpers/network.js';

describe('several superpeers at once', () => {
  let net: TestNetwork;
  let second: ServiceProcess;
  let client: NetworkClient;

  before(async () => {
    net = await startNetwork({
      label: 'multi',
      peers: [{ 'one-doc.txt': 'one' }, { 'two-doc.txt': 'two' }, { 'three-doc.txt': 'three' }],
    });
    // The first serves before the second starts: the second's warm-up asks it for its peers.
    await net.superpeer.waitForLog(
      (r) => r.message === 'superpeer serving searches',
      10_000,
      'the first superpeer serving searches',
    );
    second = await net.startSuperpeer('sp-b');
    client = await connectAmqpClient({
      amqpUrl: AMQP_URL,
      namespace: net.namespace,
      timeoutMs: 2000,
      logger: createLogger({ service: 'test', level: 'error', format: 'json' }),
    });
  });

  after(async () => {
    await client?.close();
    await net?.stop();
  });

  test('both hold the whole index and share the search queue', async () => {
    const names = topologyNames(net.namespace);
    await withAmqp(async (channel) => {
      await waitUntil(async () => (await channel.checkQueue(names.rpcQueue)).consumerCount === 2, {
        timeoutMs: 5000,
        what: 'both superpeers consuming the rpc queue',
      });
    });
    // Competing consumers: over many searches both answer, and every answer is whole.
    const answeredBy = new Set<string>();
    for (let i = 0; i < 40; i++) {
      const reply = await client.search('doc', 50);
      assert.equal(reply.results.length, 3);
      if (reply.superpeerId) answeredBy.add(reply.superpeerId);
    }
    const peers = await client.peers();
    assert.equal(peers.length, 3);
    assert.equal(answeredBy.size, 2, `both superpeers answered searches: ${[...answeredBy]}`);
  });

  test('the one started second asked the first for its peers and served only once it held them all', async () => {
    const serving = await second.waitForLog(
      (r) => r.message === 'superpeer serving searches',
      5000,
      "the second superpeer's warm-up",
    );
    assert.deepEqual(serving.sibling, { peers: 3, missing: 0 }, JSON.stringify(serving));
    assert.equal(serving.peers, 3);
    // The first started alone: nobody answered it.
    const first = net.superpeer.records.find((r) => r.message === 'superpeer serving searches');
    assert.equal(first?.sibling, undefined, JSON.stringify(first));
  });

  test('a change reaches both; killing one leaves searches answering', async () => {
    const peer = net.peers[0]!;
    await fs.writeFile(path.join(peer.shareDir, 'four-doc.txt'), 'four');
    await waitUntil(
      async () => {
        // Ask enough times that both superpeers must have answered with the new file.
        for (let i = 0; i < 6; i++) if ((await client.search('doc', 50)).results.length !== 4) return false;
        return true;
      },
      { timeoutMs: 3000, what: 'both superpeers to know the new file' },
    );

    net.superpeer.signal('SIGKILL');
    await net.superpeer.exited;
    for (let i = 0; i < 20; i++) {
      const reply = await client.search('doc', 50);
      assert.equal(reply.results.length, 4, `search ${i} after the kill`);
    }
    assert.ok(second.alive);
    for (const p of net.peers) assert.ok(p.process.alive);
    // Each peer's own view also survived the duplicate broadcasts of two superpeers: one copy per file.
    const view = (await (await fetch(`${net.peers[1]!.url}/api/peers`)).json()) as {
      peers: { fileCount: number }[];
    };
    assert.deepEqual(view.peers.map((p) => p.fileCount).sort(), [1, 1, 2]);
  });
});
