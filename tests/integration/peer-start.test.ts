import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { after, test } from 'node:test';
import { loadOrCreateIdentity } from '../../libs/identity/index.js';
import { silentLog } from '../../libs/logging/index.js';
import { Broker } from '../../libs/messaging/index.js';
import { type FileEntry, sharedTopology, topologyNames } from '../../libs/protocol/index.js';
import type { Share } from '../../libs/share/index.js';
import { Peer } from '../../services/peer/peer.js';
import {
  AMQP_URL,
  cleanupNamespace,
  makeTempDir,
  testNamespace,
  waitUntil,
  withAmqp,
} from '../helpers/network.js';

const namespace = testNamespace('peer-start');
after(() => cleanupNamespace(namespace));

function files(count: number): FileEntry[] {
  return Array.from({ length: count }, (_, i) => ({
    name: `photos/holiday ${i}.jpg`,
    size: i,
    sha256: i.toString(16).padStart(64, '0'),
    mtimeMs: 1,
  }));
}

/** What a peer reads of its share: the listing at start, then 'change' events. */
class ListedShare extends EventEmitter {
  constructor(private readonly listing: FileEntry[]) {
    super();
  }

  list(): FileEntry[] {
    return this.listing;
  }
}

test('a share change while the peer loads its own files is neither lost nor left unpublished', async () => {
  const names = topologyNames(namespace);
  // The shared objects, as a superpeer would declare them (a peer only checks they exist).
  const declarer = new Broker({
    url: AMQP_URL,
    connectionName: 'test declarer',
    logger: silentLog,
    setup: (session) => session.assertTopology(sharedTopology(names)),
  });
  await declarer.start();
  const deltas: string[] = [];
  const watchQueue = `${namespace}.test-events`;
  await withAmqp(async (channel) => {
    // Gone a minute after the test, should it fail before deleting it.
    await channel.assertQueue(watchQueue, { durable: false, autoDelete: false, expires: 60_000 });
    await channel.bindQueue(watchQueue, names.eventsExchange, '');
  });
  const share = new ListedShare(files(20_000));
  const peer = new Peer({
    amqpUrl: AMQP_URL,
    namespace,
    identity: await loadOrCreateIdentity(await makeTempDir('peer-start')),
    share: share as unknown as Share,
    publicUrl: 'http://127.0.0.1:9',
    logger: silentLog,
    searchTimeoutMs: 200,
  });
  try {
    const started = peer.start();
    // While its own 20,000 files go into its index, in slices.
    const added: FileEntry = {
      name: 'new/brandnew poster.png',
      size: 7,
      sha256: 'ab'.repeat(32),
      mtimeMs: 2,
    };
    share.emit('change', { upserted: [added], removed: [] });
    await started;
    await waitUntil(
      async () => (await peer.search('brandnew', 5)).results.some((result) => result.name === added.name),
      { timeoutMs: 10_000, what: 'the change in the peer’s own results' },
    );
    await waitUntil(
      () =>
        withAmqp(async (channel) => {
          let message = await channel.get(watchQueue, { noAck: true });
          while (message) {
            if (message.properties.type === 'peer.delta') deltas.push(message.content.toString('utf8'));
            message = await channel.get(watchQueue, { noAck: true });
          }
          return deltas.some((delta) => delta.includes(added.name));
        }),
      { timeoutMs: 10_000, what: 'the change published as a delta' },
    );
    const [delta] = deltas.map((text) => JSON.parse(text) as { seq: number; upserted: FileEntry[] });
    assert.equal(delta?.seq, 2, 'numbered after the announced state');
    assert.deepEqual(
      delta?.upserted.map((file) => file.name),
      [added.name],
    );
  } finally {
    await peer.close();
    await declarer.close();
    await withAmqp((channel) => channel.deleteQueue(watchQueue));
  }
});
