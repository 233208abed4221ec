import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { utf8 } from '../../libs/search/bytes.js';
import { TokenDictionary } from '../../libs/search/index.js';
import { sortByKey } from '../../libs/search/ordered-tokens.js';
import { hashToken } from '../../libs/search/token-key.js';
import { TokenStore } from '../../libs/search/token-store.js';
import { prng } from '../helpers/prng.js';

describe('TokenDictionary', () => {
  it('keeps its chunks sorted and its prefix walks right while tokens come and go', () => {
    const random = prng(99);
    const word = () =>
      Array.from({ length: 1 + Math.floor(random() * 4) }, () => 'abcdef'[Math.floor(random() * 6)]).join('');
    // Tiny chunks, so that splits and joins happen all the time.
    const dictionary = new TokenDictionary({ chunkMaxTokens: 8, chunkMinTokens: 3 });
    const reference = new Set<string>();
    for (let round = 0; round < 2000; round++) {
      const growing = Math.floor(round / 250) % 2 === 0;
      for (let i = 0; i < 5; i++) {
        const token = word();
        if (random() < (growing ? 0.7 : 0.3)) {
          dictionary.acquire(token);
          reference.add(token);
        } else {
          const h = dictionary.find(token);
          if (h >= 0) dictionary.release(h);
          reference.delete(token);
        }
      }
      dictionary.checkConsistency();
      const sorted = [...reference].sort();
      assert.deepEqual(dictionary.tokens(), sorted);
      for (let q = 0; q < 5; q++) {
        const prefix = word().slice(0, 1 + Math.floor(random() * 2));
        const walked: string[] = [];
        dictionary.forEachWithPrefix(prefix, (_, h) => walked.push(dictionary.tokenOf(h)) > 0);
        assert.deepEqual(
          walked,
          sorted.filter((token) => token.startsWith(prefix)),
        );
      }
    }
    assert.equal(dictionary.size, reference.size);
  });
});

describe('TokenDictionary chunks', () => {
  it('stay sorted when tokens leave from either end, small chunks joining or sharing with a neighbour', () => {
    const random = prng(17);
    for (const fromTop of [true, false]) {
      const dictionary = new TokenDictionary({ chunkMaxTokens: 8, chunkMinTokens: 3 });
      const tokens = Array.from({ length: 300 }, (_, i) => `k${String(i).padStart(3, '0')}`);
      for (const token of [...tokens].sort(() => random() - 0.5)) dictionary.acquire(token);
      const order = fromTop ? [...tokens].reverse() : tokens;
      order.forEach((token, i) => {
        // Now and then a token comes back in the middle, so chunks there fill up again.
        if (i % 7 === 0) dictionary.acquire(tokens[150]!);
        dictionary.release(dictionary.find(token));
        dictionary.checkConsistency();
      });
      const comeback = dictionary.find(tokens[150]!);
      if (comeback >= 0) dictionary.release(comeback);
      assert.deepEqual(dictionary.tokens(), []);
    }
  });
});

describe('TokenDictionary prefix walks', () => {
  it('find exactly the tokens with a prefix, short or long, with units around the sort keys escape', () => {
    const random = prng(41);
    const alphabet = ['a', 'b', '}', '~', '\u007f', 'é', '0'];
    const word = (max: number) =>
      Array.from({ length: 1 + Math.floor(random() * max) }, () => alphabet[Math.floor(random() * 7)]).join(
        '',
      );
    const dictionary = new TokenDictionary({ chunkMaxTokens: 16, chunkMinTokens: 4 });
    const tokens = new Set(Array.from({ length: 3000 }, () => word(10)));
    for (const token of tokens) dictionary.acquire(token);
    const sorted = [...tokens].sort();
    for (let q = 0; q < 400; q++) {
      const prefix = q === 0 ? '' : word(9);
      const walked: string[] = [];
      dictionary.forEachWithPrefix(prefix, (_, h) => walked.push(dictionary.tokenOf(h)) > 0);
      assert.deepEqual(
        walked,
        sorted.filter((token) => token.startsWith(prefix)),
        prefix,
      );
    }
  });
});

describe('TokenDictionary batches', () => {
  it('merges batches of new tokens chunk by chunk: spread out, in one chunk, in reverse, with tied sort keys', () => {
    const random = prng(23);
    for (const chunkMaxTokens of [8, 2048]) {
      const dictionary = new TokenDictionary({ chunkMaxTokens, chunkMinTokens: chunkMaxTokens >> 3 });
      const reference = new Set<string>();
      const add = (tokens: string[]) => {
        for (const token of tokens) {
          dictionary.acquire(token);
          reference.add(token);
        }
        // Reading the order merges what is pending.
        dictionary.checkConsistency();
        assert.deepEqual(dictionary.tokens(), [...reference].sort(), `chunks of ${chunkMaxTokens}`);
      };
      const counter = (i: number) => `img${String(i).padStart(9, '0')}`;
      add(Array.from({ length: 500 }, () => Math.floor(random() * 2 ** 40).toString(36)));
      // Spread over every chunk; then a run past the greatest token, reversed; then one squeezed between two
      // neighbours (keys tie: seven shared units), shuffled; then a batch larger than the pending limit.
      add(Array.from({ length: 3000 }, () => Math.floor(random() * 2 ** 40).toString(36)));
      add(Array.from({ length: 700 }, (_, i) => `zz${counter(700 - i)}`));
      add(Array.from({ length: 900 }, (_, i) => counter(i * 2)).sort(() => random() - 0.5));
      add(Array.from({ length: 900 }, (_, i) => counter(i * 2 + 1)).sort(() => random() - 0.5));
      add(Array.from({ length: 9000 }, (_, i) => `m${i}`).sort(() => random() - 0.5));
    }
  });
});

describe('sortByKey', () => {
  it('orders any sort keys, ties in the order they came, whatever digits they share', () => {
    const random = prng(5);
    const digit = () => Math.floor(random() * 128);
    const keyOfDigits = (digits: number[]) => digits.reduce((key, d) => key * 128 + d, 0);
    for (const shared of [0, 3, 6, 7]) {
      // `shared` leading digits alike (a common prefix; 7: every key ties), the others random.
      const prefix = Array.from({ length: shared }, digit);
      const keys = Float64Array.from({ length: 3000 }, () =>
        keyOfDigits([...prefix, ...Array.from({ length: 7 - shared }, digit)]),
      );
      keys[0] = 0;
      keys[1] = 128 ** 7 - 1;
      const expected = [...keys.keys()].sort((a, b) => keys[a]! - keys[b]! || a - b);
      assert.deepEqual(Array.from(sortByKey(keys)), expected, `${shared} shared digits`);
    }
  });
});

describe('TokenDictionary handles', () => {
  it('move down when most tokens left, keeping every token with its files and its place in the order', () => {
    const random = prng(5);
    const dictionary = new TokenDictionary({ chunkMaxTokens: 64, chunkMinTokens: 16 });
    // Token i is held by file i alone, or (every third) by files i and i + 1 as postings.
    const expected = new Map<string, number[]>();
    for (let i = 0; i < 30_000; i++) {
      const token = `t${(i * 7919) % 30_000}x`;
      const h = dictionary.acquire(token);
      if (i % 3 === 0) dictionary.setPostings(h, { ids: [i, i + 1], count: 2, live: 2, mark: 0 });
      else dictionary.setSingle(h, i);
      expected.set(token, i % 3 === 0 ? [i, i + 1] : [i]);
    }
    const peak = dictionary.handleLimit;
    for (const token of [...expected.keys()]) {
      if (random() < 0.1) continue;
      dictionary.release(dictionary.find(token));
      expected.delete(token);
    }
    dictionary.checkConsistency();
    assert.ok(
      dictionary.handleLimit <= 2 * expected.size + 2,
      `${dictionary.handleLimit} handles for ${expected.size} tokens`,
    );
    assert.ok(peak > (10 * dictionary.handleLimit) / 2);
    assert.deepEqual(dictionary.tokens(), [...expected.keys()].sort());
    let postings = 0;
    dictionary.forEachPostings(() => postings++);
    assert.equal(
      postings,
      [...expected.values()].filter((ids) => ids.length > 1).length,
      'postings of tokens gone',
    );
    for (const [token, ids] of expected) {
      const view = dictionary.get(token)!;
      assert.deepEqual(view.ids.slice(0, view.count), ids, token);
      assert.equal(dictionary.tokenOf(dictionary.find(token)), token);
    }
    const walked: string[] = [];
    dictionary.forEachWithPrefix(
      't1',
      (view, h) => walked.push(`${dictionary.tokenOf(h)}:${view.ids[0]}`) > 0,
    );
    assert.deepEqual(
      walked,
      [...expected.keys()]
        .filter((t) => t.startsWith('t1'))
        .sort()
        .map((t) => `${t}:${expected.get(t)![0]}`),
    );
  });
});

describe('TokenStore', () => {
  it('finds every token under its handle, ASCII bytes or not, through mass releases, compactions and reuse', () => {
    const random = prng(123);
    const store = new TokenStore(0x5eed);
    // Long and short tokens, some beyond Latin-1 and some beyond the BMP, in numbers that grow the shards,
    // the arena and the columns past one piece.
    const alphabet = ['a', 'b', 'z', '0', '9', 'é', '日', '😀'];
    const word = (n: number) =>
      `${Array.from({ length: 1 + Math.floor(random() * 12) }, () => alphabet[Math.floor(random() * 8)]).join('')}${n}`;
    const held = new Map<string, number>();
    let n = 0;
    const check = () => {
      store.checkConsistency();
      assert.equal(store.size, held.size);
      for (const [token, h] of held) {
        assert.equal(store.find(token), h);
        assert.equal(store.tokenOf(h), token);
        assert.equal(store.value(h), token.length);
      }
    };
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < 40_000; i++) {
        const token = word(n++);
        const ascii = [...token].every((c) => c.charCodeAt(0) < 128);
        const bytes = utf8(`#${token.toUpperCase()}#`);
        const h = ascii
          ? store.addAscii(bytes, 1, bytes.length - 1, hashToken(token, 0x5eed))
          : store.add(token);
        if (ascii) assert.equal(store.findAscii(bytes, 1, bytes.length - 1, hashToken(token, 0x5eed)), h);
        store.setValue(h, token.length);
        held.set(token, h);
      }
      check();
      const arena = store.arenaUnits;
      const limit = store.handleLimit;
      // Release nearly all, the newest last: the arena is compacted and the top handles trimmed.
      for (const [token, h] of held) {
        if (random() < 0.05) continue;
        store.release(h);
        held.delete(token);
        assert.equal(store.find(token), -1);
      }
      check();
      // What is left fits in a quarter, besides a page of each kind (bytes, units) being filled.
      assert.ok(store.arenaUnits < arena / 4 + 2 ** 16, `arena ${store.arenaUnits} units after ${arena}`);
      assert.ok(store.handleLimit <= limit);
    }
    for (const h of held.values()) store.release(h);
    held.clear();
    check();
    assert.equal(store.handleLimit, 0);
  });

  it('keeps tokens of bytes and of wider units apart, each found, ordered and moved with the others', () => {
    const store = new TokenStore(7);
    // Latin-1 up to 255 units in pages of bytes; longer, or wider, in pages of units.
    const tokens = [
      'a',
      'é'.repeat(255),
      'é'.repeat(256),
      'x'.repeat(255),
      'x'.repeat(300),
      '日本',
      'ÿ',
      'ā',
    ];
    const handles = tokens.map((token) => store.add(token));
    const ascii = utf8('Q'.repeat(256));
    const long = store.addAscii(ascii, 0, ascii.length, hashToken('q'.repeat(256), 7));
    // Enough short tokens of both kinds after them to fill pages, then most released: the pages above are
    // moved out.
    const filler = Array.from({ length: 60_000 }, (_, i) => store.add(`f${i}`));
    const wide = Array.from({ length: 30_000 }, (_, i) => store.add(`日${i}`));
    const longest = store.add('z'.repeat(65_535)); // a page of units to itself
    for (const h of [...filler.slice(0, 59_000), ...wide.slice(0, 29_500)]) store.release(h);
    store.checkConsistency();
    assert.equal(store.tokenOf(longest), 'z'.repeat(65_535));
    tokens.forEach((token, i) => {
      assert.equal(store.find(token), handles[i]);
      assert.equal(store.tokenOf(handles[i]!), token);
    });
    assert.equal(store.tokenOf(long), 'q'.repeat(256));
    const sorted = [...tokens].sort();
    const byStore = [...handles].sort((a, b) => store.compare(a, b)).map((h) => store.tokenOf(h));
    assert.deepEqual(byStore, sorted);
  });

  it('orders tokens by code units, whatever their sort keys hold', () => {
    const store = new TokenStore();
    const tokens = ['a', 'ab', 'abc', 'abcd', 'abd', 'b', 'é', 'éa', '日本', '😀', 'zzzz', 'zzz', 'a0'];
    // Past the seven units of a sort key, around its escape (units from 126 up) and past an escape.
    tokens.push('0000000a', '0000000b', '0000000', '000000', '00000001', 'ab~', 'ab\u007f', 'abé', 'ab日');
    tokens.push('abéz', 'abéa', 'ab日a', 'ab}', 'ab~~', '~', '}z', '\u007fa', 'x😀', 'x\uffff');
    const handles = new Map(tokens.map((token) => [token, store.add(token)]));
    const sorted = [...tokens].sort();
    for (const a of tokens)
      for (const b of tokens) {
        const expected = Math.sign(sorted.indexOf(a) - sorted.indexOf(b));
        assert.equal(Math.sign(store.compare(handles.get(a)!, handles.get(b)!)), expected, `${a} ? ${b}`);
      }
  });
});
