import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FileEntry } from '../../libs/protocol/index.js';
import { NetworkIndex, NetworkMap, type Query, type SearchOutcome } from '../../libs/search/index.js';
import { naiveMatches } from '../helpers/naive-search.js';
import { prng } from '../helpers/prng.js';

const SHAS = Array.from({ length: 30 }, (_, i) => i.toString(16).padStart(2, '0').repeat(32));

function state(peerId: string, files: FileEntry[], seq = 1) {
  return { peerId, instanceId: 'instance-1', url: `http://${peerId}.test:8080`, seq, files };
}

/** Names of a few common words in families, so that words are frequent but some triples rare together. */
function makeFiles(random: () => number, count: number, tag: string): FileEntry[] {
  const families = [
    ['alpha', 'beta', 'gamma', 'delta'],
    ['photo', 'holiday', 'report', 'draft'],
    ['music', 'video', 'backup', 'notes'],
  ];
  const pick = <T>(items: readonly T[]) => items[Math.floor(random() * items.length)]!;
  const files: FileEntry[] = [];
  for (let i = 0; i < count; i++) {
    const family = random() < 0.02 ? families.flat() : pick(families);
    const name = `${pick(family)} ${pick(family)}_${pick(family)} ${tag}${i}.${pick(['txt', 'mp3', 'jpg'])}`;
    files.push({ name, size: Math.floor(random() * 1000), sha256: pick(SHAS), mtimeMs: 1 });
  }
  return files;
}

function randomQuery(random: () => number): Query {
  const words = [
    'alpha',
    'beta',
    'gamma',
    'photo',
    'holi',
    'rep',
    'music',
    'vid',
    'b',
    'no',
    'txt',
    'p1',
    'x',
  ];
  if (random() < 0.1) return { kind: 'sha256', sha256: SHAS[Math.floor(random() * SHAS.length)]! };
  const count = 1 + Math.floor(random() * 3);
  return {
    kind: 'words',
    words: Array.from({ length: count }, () => words[Math.floor(random() * words.length)]!),
  };
}

const key = (r: { peerId: string; name: string }) => `${r.peerId}:${r.name}`;

describe('NetworkIndex and NetworkMap at scale', () => {
  it('find exactly what a linear scan finds, bitmaps and intersections included, in the same order', async () => {
    const random = prng(99);
    // A low bitmap threshold makes most tokens bitmaps, so both search paths run on small data.
    const index = new NetworkIndex({ bitmapMinFiles: 16 });
    const map = new NetworkMap();
    const model = new Map<string, Map<string, FileEntry>>();
    const seqs = new Map<string, number>();
    for (let round = 0; round < 12; round++) {
      for (let op = 0; op < 6; op++) {
        const peerId = `p${Math.floor(random() * 6)}`;
        const known = model.get(peerId);
        const roll = random();
        if (known === undefined || roll < 0.25) {
          const files = makeFiles(random, Math.floor(random() * 1500), `r${round}o${op}`);
          if (known && random() < 0.5) files.push(...[...known.values()].filter(() => random() < 0.5));
          const seq = (seqs.get(peerId) ?? 0) + 1;
          const slices: number[] = [];
          const options = { maxItemsPerSlice: 97, onSlice: (n: number) => slices.push(n) };
          const [a, b] = await Promise.all([
            index.applyFullAsync(state(peerId, files, seq), options),
            map.applyFullAsync(state(peerId, files, seq), options),
          ]);
          assert.equal(a, 'applied');
          assert.equal(b, 'applied');
          assert.ok(Math.max(0, ...slices) <= 97, `a slice of ${Math.max(...slices)} items`);
          seqs.set(peerId, seq);
          model.set(peerId, new Map(files.map((f) => [f.name, f])));
        } else if (roll < 0.35) {
          assert.equal(await index.removePeerAsync(peerId, undefined, { maxItemsPerSlice: 50 }), true);
          assert.equal(map.removePeer(peerId), true);
          model.delete(peerId);
          seqs.delete(peerId);
        } else {
          const removed = [...known.keys()].filter(() => random() < 0.2);
          const upserted = makeFiles(random, Math.floor(random() * 100), `d${round}o${op}`);
          const seq = seqs.get(peerId)! + 1;
          const delta = { peerId, instanceId: 'instance-1', seq, upserted, removed };
          assert.equal(index.applyDelta(delta), 'applied');
          assert.equal(map.applyDelta(delta), 'applied');
          seqs.set(peerId, seq);
          for (const name of removed) known.delete(name);
          for (const f of upserted) known.set(f.name, f);
        }
      }
      let total = 0;
      for (const byName of model.values()) total += byName.size;
      assert.equal(index.fileCount, total);
      assert.equal(map.fileCount, total);
      for (let q = 0; q < 40; q++) {
        const query = randomQuery(random);
        const expected = naiveMatches(model, query);
        const fromIndex = index.search(query, 1_000_000, Number.POSITIVE_INFINITY);
        const fromMap = map.search(query, 1_000_000, Number.POSITIVE_INFINITY);
        const label = `round ${round} ${JSON.stringify(query)}`;
        assert.equal(fromIndex.partial, false, label);
        assert.deepEqual(new Set(fromIndex.results.map(key)), expected, label);
        assert.equal(fromIndex.results.length, expected.size, `${label}: duplicates`);
        assert.deepEqual(fromMap.results, fromIndex.results, label);
        const limit = 1 + Math.floor(random() * 20);
        for (const page of [index.search(query, limit), map.search(query, limit)]) {
          assert.equal(page.results.length, Math.min(limit, expected.size), label);
          assert.equal(page.truncated, expected.size > limit, label);
          for (const r of page.results) assert.ok(expected.has(key(r)), label);
        }
      }
    }
  });

  it('takes a state the same whole, in slices or in pieces: non-ASCII and astral names, a name twice, upper-case hex', async () => {
    const upper = 'AB'.repeat(32);
    const files: FileEntry[] = [
      { name: 'music/Été 2024.mp3', size: 1, sha256: SHAS[0]!, mtimeMs: 1 },
      { name: 'x/😀 smile.png', size: 2, sha256: SHAS[1]!, mtimeMs: 1 },
      { name: 'plain.txt', size: 3, sha256: upper, mtimeMs: 1 },
      { name: 'plain.txt', size: 4, sha256: SHAS[2]!, mtimeMs: 1 },
      { name: '日本語/ファイル.txt', size: 5, sha256: SHAS[3]!, mtimeMs: 1 },
      { name: 'last.bin', size: 6, sha256: upper, mtimeMs: 1 },
    ];
    const expected = [...new Map(files.map((f) => [f.name, f])).values()]
      .map(({ name, size, sha256 }) => ({ name, size, sha256: sha256.toLowerCase() }))
      .sort((a, b) => (a.name < b.name ? -1 : 1));
    const whole = new NetworkMap();
    whole.applyFull(state('p1', files));
    const sliced = new NetworkMap();
    await sliced.applyFullAsync(state('p1', files), { maxItemsPerSlice: 2 });
    const pieces = new NetworkMap();
    const staged = pieces.stage(state('p1', []), files.length);
    pieces.addStaged(staged, files.slice(0, 3));
    await pieces.addStagedAsync(staged, files.slice(3), { maxItemsPerSlice: 1 });
    await pieces.applyStagedAsync(staged);
    for (const map of [whole, sliced, pieces]) {
      const got = map.peerFiles('p1').sort((a, b) => (a.name < b.name ? -1 : 1));
      assert.deepEqual(got, expected);
      assert.equal(map.fileCount, expected.length);
      for (const words of [['été'], ['smile'], ['ファイル'], ['plain', 'txt']]) {
        const found = map.search({ kind: 'words', words }, 10).results.map((r) => r.name);
        assert.equal(found.length, 1, JSON.stringify(words));
      }
    }
  });

  it('stops a search at its work budget and says partial', () => {
    const random = prng(5);
    const index = new NetworkIndex({ bitmapMinFiles: 64 });
    const map = new NetworkMap();
    const model = new Map<string, Map<string, FileEntry>>();
    for (let p = 0; p < 4; p++) {
      const files = makeFiles(random, 5000, `p${p}-`);
      index.applyFull(state(`p${p}`, files));
      map.applyFull(state(`p${p}`, files));
      model.set(`p${p}`, new Map(files.map((f) => [f.name, f])));
    }
    // Common words, rare together (only the 2% mixed names have both).
    const query: Query = { kind: 'words', words: ['alpha', 'holiday'] };
    const expected = naiveMatches(model, query);
    assert.ok(expected.size > 5 && expected.size < 200, `${expected.size} matches`);
    for (const store of [index, map]) {
      const whole: SearchOutcome = store.search(query, 1000, Number.POSITIVE_INFINITY);
      assert.equal(whole.partial, false);
      assert.equal(whole.results.length, expected.size);
      const cut: SearchOutcome = store.search(query, 1000, 500);
      assert.equal(cut.partial, true);
      assert.equal(cut.truncated, true);
      assert.ok(cut.results.length < expected.size);
      for (const r of cut.results) assert.ok(expected.has(key(r)));
    }
  });

  it('gives memory back when peers leave: ids compacted and trimmed, bitmaps and postings dropped', async () => {
    const random = prng(11);
    const index = new NetworkIndex({ bitmapMinFiles: 32 });
    for (let p = 0; p < 6; p++) await index.applyFullAsync(state(`p${p}`, makeFiles(random, 4000, `p${p}-`)));
    const full = index.stats;
    assert.equal(full.idSlots, 24_000);
    assert.ok(full.bitmapTokens > 0);
    // Leave one peer in the middle of the id space: compaction must move its files down.
    for (const p of [0, 1, 2, 4, 5]) await index.removePeerAsync(`p${p}`);
    const after = index.stats;
    assert.equal(index.fileCount, 4000);
    // Compaction runs once fewer than half of the ids are live, so at most twice the live files remain.
    assert.ok(after.idSlots <= 8000, `${after.idSlots} id slots for 4000 files`);
    assert.ok(after.capacity <= 8192, `capacity ${after.capacity}`);
    assert.ok(after.capacity < full.capacity, `capacity ${full.capacity} → ${after.capacity}`);
    const survivors = index.search({ kind: 'words', words: ['p3'] }, 10_000, Number.POSITIVE_INFINITY);
    assert.equal(survivors.results.length, 4000);
    await index.removePeerAsync('p3');
    assert.deepEqual(index.stats, { idSlots: 0, capacity: 1024, bitmapTokens: 0, postings: 0, textBytes: 0 });
    assert.equal(index.tokenCount, 0);
  });

  it('runs async updates one at a time in call order, and a leaving peer vanishes from results at once', async () => {
    const random = prng(3);
    const index = new NetworkIndex();
    const files = makeFiles(random, 3000, 'a');
    const applied = index.applyFullAsync(state('p1', files), { maxItemsPerSlice: 100 });
    const delta = index.applyDeltaAsync({
      peerId: 'p1',
      instanceId: 'instance-1',
      seq: 2,
      upserted: [{ name: 'late arrival.txt', size: 1, sha256: SHAS[0]!, mtimeMs: 1 }],
      removed: [files[0]!.name],
    });
    assert.equal(await applied, 'applied');
    assert.equal(await delta, 'applied');
    assert.equal(index.fileCount, 3000);
    assert.equal(index.search({ kind: 'words', words: ['late', 'arrival'] }, 10).results.length, 1);
    let during: { results: number; files: number } | undefined;
    const removal = index.removePeerAsync('p1', undefined, {
      maxItemsPerSlice: 100,
      onSlice: () => {
        during ??= {
          results: index.search({ kind: 'words', words: ['late'] }, 10).results.length,
          files: index.fileCount,
        };
      },
    });
    assert.equal(await removal, true);
    assert.ok(during !== undefined && during.files > 0, 'searched while the removal was under way');
    assert.equal(during.results, 0);
    assert.equal(index.peerCount, 0);
    assert.equal(index.fileCount, 0);
  });
});
