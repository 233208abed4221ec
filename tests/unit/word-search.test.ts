import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FileEntry } from '../../libs/protocol/index.js';
import { NetworkIndex, type Query } from '../../libs/search/index.js';
import { naiveMatches } from '../helpers/naive-search.js';
import { prng } from '../helpers/prng.js';

/*
 * The paths of the word search that pick a plan by the words' shapes: bitmap checks in a scan of the
 * driver's postings, one fused AND pass over up to three bitmaps (more are checked per file), bitmaps built
 * from several tokens. Queries of up to six words over common words, each checked against a linear scan.
 */
const COMMON = ['red', 'green', 'blue', 'cyan', 'pink', 'gold'];

function files(random: () => number, count: number, tag: string): FileEntry[] {
  const pick = () => COMMON[Math.floor(random() * COMMON.length)]!;
  return Array.from({ length: count }, (_, i) => ({
    // Four common words each (often repeated), a rare number, and words sharing prefixes (gr, gre, b).
    name: `${pick()} ${pick()}-${pick()}_${pick()} ${tag}${i % 97} n${i}.txt`,
    size: i,
    sha256: 'ab'.repeat(32),
    mtimeMs: 1,
  }));
}

const key = (r: { peerId: string; name: string }) => `${r.peerId}:${r.name}`;

describe('word search plans', () => {
  it('finds exactly what a linear scan finds, with any number of bitmap words', () => {
    const random = prng(17);
    // Low threshold: every common word and most numbers get a bitmap.
    const index = new NetworkIndex({ bitmapMinFiles: 32 });
    const model = new Map<string, Map<string, FileEntry>>();
    for (let p = 0; p < 5; p++) {
      const list = files(random, 3000, `t${p}x`);
      index.applyFull({
        peerId: `p${p}`,
        instanceId: 'instance-1',
        url: `http://p${p}.test`,
        seq: 1,
        files: list,
      });
      model.set(`p${p}`, new Map(list.map((f) => [f.name, f])));
    }
    const words = [...COMMON, 'gr', 'b', 't1x1', 't2', 'n1', 'n', 'txt', 'zzz'];
    for (let q = 0; q < 300; q++) {
      const count = 1 + Math.floor(random() * 6);
      const query: Query = {
        kind: 'words',
        words: Array.from({ length: count }, () => words[Math.floor(random() * words.length)]!),
      };
      const label = JSON.stringify(query);
      const expected = naiveMatches(model, query);
      const whole = index.search(query, 1_000_000, Number.POSITIVE_INFINITY);
      assert.equal(whole.partial, false, label);
      assert.deepEqual(new Set(whole.results.map(key)), expected, label);
      assert.equal(whole.results.length, expected.size, `${label}: duplicates`);
      const limit = 1 + Math.floor(random() * 30);
      const page = index.search(query, limit);
      assert.equal(page.results.length, Math.min(limit, expected.size), label);
      for (const r of page.results) assert.ok(expected.has(key(r)), label);
    }
  });

  it('stops the AND pass of bitmaps at the work budget and says partial', () => {
    const random = prng(3);
    const index = new NetworkIndex({ bitmapMinFiles: 32 });
    const model = new Map<string, Map<string, FileEntry>>();
    const list = files(random, 20_000, 'q');
    index.applyFull({ peerId: 'p0', instanceId: 'instance-1', url: 'http://p0.test', seq: 1, files: list });
    model.set('p0', new Map(list.map((f) => [f.name, f])));
    const query: Query = { kind: 'words', words: ['red', 'green', 'blue', 'cyan'] };
    const expected = naiveMatches(model, query);
    assert.ok(expected.size > 100, `${expected.size} matches`);
    const whole = index.search(query, 1_000_000, Number.POSITIVE_INFINITY);
    assert.equal(whole.results.length, expected.size);
    // 20,000 ids are 625 words of bitmap: a budget of 300 stops the pass about half way.
    const cut = index.search(query, 1_000_000, 300);
    assert.equal(cut.partial, true);
    assert.equal(cut.truncated, true);
    assert.ok(cut.results.length > 0 && cut.results.length < expected.size, `${cut.results.length}`);
    for (const r of cut.results) assert.ok(expected.has(key(r)));
  });
});

describe('word search work', () => {
  it('charges a walk several units a token, so many tokens under one prefix exhaust the budget sooner', () => {
    const index = new NetworkIndex();
    // A thousand tokens under the prefix "t", each held by one file.
    const list = Array.from({ length: 1000 }, (_, i) => ({
      name: `t${i}x.dat`,
      size: i,
      sha256: 'ab'.repeat(32),
      mtimeMs: 1,
    }));
    index.applyFull({ peerId: 'p', instanceId: 'instance-1', url: 'http://p.test', seq: 1, files: list });
    const query: Query = { kind: 'words', words: ['t'] };
    // The walk visits 1,000 tokens and their 1,000 files: 2,000 units at one a token, 5,000 at four.
    assert.equal(index.search(query, 2000, 3000).partial, true);
    const whole = index.search(query, 2000, 6000);
    assert.equal(whole.partial, false);
    assert.equal(whole.results.length, 1000);
  });
});
