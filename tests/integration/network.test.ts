import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createLogger } from '../../libs/logging/index.js';
import { topologyNames } from '../../libs/protocol/index.js';
import { connectAmqpClient, type NetworkClient } from '../../services/cli/client.js';
import {
  makeTempDir,
  runCli,
  startNetwork,
  type TestNetwork,
  waitUntil,
  withAmqp,
} from '../helpers/network.js';
import { msUntil } from '../helpers/timing.js';

interface Result {
  name: string;
  size: number;
  sha256: string;
  peerId: string;
  url: string;
}

const sha = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

describe('the network end to end', () => {
  let net: TestNetwork;
  const common = randomBytes(300_000);
  const shares: Array<Record<string, string | Buffer>> = [
    {
      'alpha-report.txt': 'alpha peer one\n',
      'music/Holiday Song.mp3': randomBytes(50_000),
      'common/guide.bin': common,
    },
    { 'beta-notes.md': '# beta peer two\n', 'common/guide.bin': common },
    { 'gamma-photo.jpg': randomBytes(120_000), 'common/guide.bin': common },
  ];

  const search = async (words: string[], extra: string[] = []) => {
    const out = await runCli(['search', '--json', ...extra, ...words], net.env);
    if (out.code !== 0 && out.code !== 1) throw new Error(`search exited ${out.code}: ${out.stderr}`);
    return { code: out.code, results: JSON.parse(out.stdout || '[]') as Result[], stderr: out.stderr };
  };

  // In-process client (the CLI's own code) for the timing checks: a CLI process start would dominate them.
  let client: NetworkClient;
  const quickSearch = async (query: string) => (await client.search(query, 100)).results;

  before(async () => {
    net = await startNetwork({ label: 'e2e', peers: shares });
    client = await connectAmqpClient({
      amqpUrl: net.env.AMQP_URL!,
      namespace: net.namespace,
      timeoutMs: 3000,
      logger: createLogger({ service: 'test', level: 'error', format: 'json' }),
    });
  });

  after(async () => {
    await client?.close();
    await net?.stop();
  });

  test('every peer is found by a search through the superpeer', async () => {
    const found = await waitUntil(
      async () => {
        const { results } = await search(['guide']);
        return results.length === 3 ? results : undefined;
      },
      { timeoutMs: 10_000, what: 'the common file on all three peers' },
    );
    assert.deepEqual(new Set(found.map((r) => r.peerId)), new Set(net.peers.map((p) => p.peerId)));
    for (const result of found) assert.equal(result.sha256, sha(common));
    const { results } = await search(['holi', 'song']);
    assert.equal(results.length, 1);
    assert.equal(results[0]?.name, 'music/Holiday Song.mp3');
    const none = await search(['no-such-file-anywhere']);
    assert.equal(none.code, 1);
    assert.deepEqual(none.results, []);
  });

  test('a search from every peer finds the files of all three', async () => {
    for (const peer of net.peers) {
      for (const word of ['alpha', 'beta', 'gamma']) {
        const { results } = await search([word], ['--peer', peer.url]);
        assert.equal(results.length, 1, `${word} from ${peer.peerId}`);
      }
      // A sha256 query lists every holder.
      const bySha = await search([sha(common)], ['--peer', peer.url]);
      assert.equal(bySha.results.length, 3);
    }
  });

  test('`p2p peers --peer URL` shows when the superpeers last heard from each peer, as `p2p peers` does', async () => {
    const listed = await runCli(['peers', '--json', '--peer', net.peers[0]!.url], net.env);
    assert.equal(listed.code, 0, listed.stderr);
    const peers = JSON.parse(listed.stdout) as Array<{ peerId: string; lastSeenAgoMs?: number }>;
    assert.deepEqual(
      new Set(peers.map((peer) => peer.peerId)),
      new Set(net.peers.map((peer) => peer.peerId)),
    );
    const ages = peers.map((peer) => peer.lastSeenAgoMs);
    for (const age of ages) assert.ok(typeof age === 'number' && age >= 0 && age < 30_000, `age ${age}`);
    // Heartbeats come every 2 s and ages are in milliseconds: three peers all heard from in the same
    // millisecond as the listing would be a placeholder, not a measurement.
    assert.ok(
      ages.some((age) => age !== 0),
      `ages ${ages.join(', ')}`,
    );
    const table = await runCli(['peers', '--peer', net.peers[1]!.url], net.env);
    assert.equal(table.code, 0, table.stderr);
    assert.equal(table.stdout.match(/\d+\.\d s ago/g)?.length, net.peers.length, table.stdout);
    // The page's own listing reads the view: the same peers, without asking a superpeer.
    const view = (await (await fetch(`${net.peers[0]!.url}/api/peers`)).json()) as {
      source: string;
      peers: Array<{ peerId: string }>;
    };
    assert.equal(view.source, 'network-view');
    assert.equal(view.peers.length, net.peers.length);
  });

  test('a result URL serves bytes whose SHA-256 is the result’s, and `p2p get` writes a verified copy', async () => {
    const { results } = await search(['gamma', 'photo']);
    const result = results[0]!;
    const response = await fetch(result.url);
    assert.equal(response.status, 200);
    const bytes = Buffer.from(await response.arrayBuffer());
    assert.equal(sha(bytes), result.sha256);
    assert.equal(response.headers.get('etag'), `"${result.sha256}"`);

    const out = await makeTempDir('get');
    try {
      const got = await runCli(['get', 'gamma-photo.jpg', '--out', out], net.env);
      assert.equal(got.code, 0, got.stderr);
      const written = await fs.readFile(path.join(out, 'gamma-photo.jpg'));
      assert.equal(sha(written), result.sha256);
      assert.deepEqual(
        (await fs.readdir(out)).filter((name) => name.startsWith('.')),
        [],
        'no partial file is left behind',
      );
    } finally {
      await fs.rm(out, { recursive: true, force: true });
    }
  });

  test('a file a peer downloads into its own share is then announced like any other', async () => {
    const into = net.peers[2]!;
    const got = await runCli(['get', 'beta-notes.md', '--out', into.shareDir], net.env);
    assert.equal(got.code, 0, got.stderr);
    const holders = await waitUntil(
      async () => {
        const results = await quickSearch('beta notes');
        return results.length === 2 ? results : undefined;
      },
      { timeoutMs: 3000, what: 'the downloaded copy announced by its new holder' },
    );
    assert.deepEqual(new Set(holders.map((r) => r.peerId)), new Set([net.peers[1]!.peerId, into.peerId]));
    assert.equal(holders[0]!.sha256, holders[1]!.sha256);
  });

  test('a file dropped into a share is found within 2 s', async (t) => {
    const peer = net.peers[1]!;
    const content = `fresh ${Date.now()}`;
    const written = Date.now();
    await fs.writeFile(path.join(peer.shareDir, 'freshly-dropped.txt'), content);
    let found: Awaited<ReturnType<typeof quickSearch>>[number] | undefined;
    const foundMs = await msUntil(
      async () => {
        const results = await quickSearch('freshly dropped');
        found = results.length === 1 ? results[0] : undefined;
        return found !== undefined;
      },
      { goalMs: 2000, intervalMs: 100, since: written, what: 'the new file in search results' },
    );
    assert.equal(found?.sha256, sha(content));
    assert.equal(found?.peerId, peer.peerId);
    t.diagnostic(`found ${foundMs} ms after the write`);
    assert.ok(foundMs <= 2000, `found ${foundMs} ms after the write`);
  });

  test('garbage on the network exchanges is dead-lettered and every service keeps searching', async () => {
    const names = topologyNames(net.namespace);
    const garbage = [
      Buffer.from('not json at all'),
      Buffer.from('{"v":1,"type":"peer.announce"}'),
      Buffer.from(JSON.stringify({ v: 1, type: 'unknown.type', peerId: 'x' })),
      Buffer.from(JSON.stringify({ v: 1, type: 'peer.leave', peerId: '../../etc', instanceId: 'zzzzzzzz' })),
      Buffer.alloc(5 * 1024 * 1024, 0x41),
    ];
    await withAmqp(async (channel) => {
      for (const [i, body] of garbage.entries()) {
        channel.publish(names.eventsExchange, '', body, { messageId: `garbage-events-${i}` });
        channel.publish(names.networkExchange, '', body, { messageId: `garbage-network-${i}` });
      }
    });
    // Each consumer of each exchange accounts for each bad message: 1 superpeer × events, 3 peers × network.
    const expected = garbage.length * (1 + net.peers.length);
    await withAmqp(async (channel) => {
      await waitUntil(
        async () => (await channel.checkQueue(names.deadLetterQueue)).messageCount >= expected,
        { timeoutMs: 10_000, what: `${expected} dead-lettered messages` },
      );
      const message = await channel.get(names.deadLetterQueue, { noAck: true });
      assert.ok(message, 'a dead-lettered message');
      assert.ok(
        String(message.properties.headers?.['x-p2p-reject-reason'] ?? '').length > 0,
        'reason header',
      );
    });
    assert.ok(net.superpeer.alive);
    for (const peer of net.peers) assert.ok(peer.process.alive);
    const { results } = await search(['guide']);
    assert.equal(results.length, 3);
  });

  test('a stopped peer’s files are gone within 1 s; a killed one’s within 10 s', async (t) => {
    const stopped = net.peers[0]!;
    await stopped.process.stop();
    const goneMs = await msUntil(async () => (await quickSearch('alpha report')).length === 0, {
      goalMs: 1000,
      intervalMs: 50,
      what: 'the stopped peer’s files to disappear',
    });
    t.diagnostic(`stopped peer gone from search ${goneMs} ms after it exited`);
    assert.ok(goneMs <= 1000, `stopped peer gone after ${goneMs} ms`);

    const killed = net.peers[2]!;
    killed.process.signal('SIGKILL');
    await killed.process.exited;
    const killedGoneMs = await msUntil(async () => (await quickSearch('gamma')).length === 0, {
      goalMs: 10_000,
      intervalMs: 250,
      what: 'the killed peer’s files to disappear',
    });
    t.diagnostic(`killed peer gone from search ${killedGoneMs} ms after SIGKILL`);
    assert.ok(killedGoneMs <= 10_000, `killed peer gone after ${killedGoneMs} ms`);
    const { results } = await search(['guide']);
    assert.deepEqual(
      results.map((r) => r.peerId),
      [net.peers[1]!.peerId],
    );
  });
});
