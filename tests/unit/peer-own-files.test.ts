import assert from 'node:assert/strict';
import { test } from 'node:test';
import { silentLog } from '../../libs/logging/index.js';
import type { FileEntry } from '../../libs/protocol/index.js';
import { parseQuery } from '../../libs/search/index.js';
import { OwnFiles } from '../../services/peer/own-files.js';
import { countLoopTurns } from '../helpers/timing.js';

const peerId = 'a'.repeat(40);
const instanceId = 'own-files-test';

function files(prefix: string, from: number, count: number): FileEntry[] {
  return Array.from({ length: count }, (_, k) => ({
    name: `${prefix}/photo ${from + k}.jpg`,
    size: from + k,
    sha256: (from + k).toString(16).padStart(64, '0'),
    mtimeMs: 1,
  }));
}

const hits = (own: OwnFiles, text: string) => own.index.search(parseQuery(text), 10).results.length;

test('a big share and a big change go into the index in slices that let the event loop turn, in order', async () => {
  // Slices end by their item count here, so the test does not depend on the machine's speed.
  const own = new OwnFiles(silentLog, { maxItemsPerSlice: 500 });
  const turns = countLoopTurns();
  const loaded = own.load({ peerId, instanceId, url: 'http://a', seq: 1, files: files('old', 0, 5000) });
  own.change({ peerId, instanceId, seq: 2, upserted: files('new', 0, 3000), removed: [] });
  // Needs the change before it: applied out of order it would be a gap, and ignored.
  own.change({
    peerId,
    instanceId,
    seq: 3,
    upserted: [],
    removed: [...files('new', 0, 1000), ...files('old', 0, 2000)].map((file) => file.name),
  });
  await loaded;
  const turnsByLoad = turns.stop();
  const moreTurns = countLoopTurns();
  await own.settled();
  const turnsByChanges = moreTurns.stop();

  // 5000 files at 500 a slice: ten slices or more, each after a turn of the loop; one task would give none.
  assert.ok(turnsByLoad >= 9, `the load let the loop turn ${turnsByLoad} times`);
  assert.ok(turnsByChanges >= 6, `the changes let the loop turn ${turnsByChanges} times`);
  assert.equal(own.index.fileCount, 5000 + 3000 - 1000 - 2000);
  assert.equal(hits(own, 'photo 500'), 0, 'removed, old and new, by the second change');
  assert.equal(hits(own, 'photo 2999'), 2, 'one old, one new');
  assert.equal(hits(own, 'photo 4999'), 1, 'old only');
});

test('settled resolves at once when nothing is queued, and after a change queued meanwhile', async () => {
  const own = new OwnFiles(silentLog);
  await own.settled();
  await own.load({ peerId, instanceId, url: 'http://a', seq: 1, files: files('a', 0, 10) });
  own.change({ peerId, instanceId, seq: 2, upserted: files('b', 0, 5), removed: [] });
  await own.settled();
  assert.equal(own.index.fileCount, 15);
});
