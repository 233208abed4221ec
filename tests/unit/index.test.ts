import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isP2PError } from '../../libs/errors/index.js';
import {
  concatPacked,
  type FileEntry,
  fileUrl,
  namesDistinct,
  PackedFiles,
  packFiles,
} from '../../libs/protocol/index.js';
import { NetworkIndex, parseQuery, type Query, tokenize } from '../../libs/search/index.js';
import { naiveMatches } from '../helpers/naive-search.js';
import { prng } from '../helpers/prng.js';

const SHA_A = 'a'.repeat(64);
const SHA_B = 'b'.repeat(64);

function file(name: string, sha256 = SHA_A, size = 100): FileEntry {
  return { name, size, sha256, mtimeMs: 1_700_000_000_000 };
}

function state(
  peerId: string,
  files: FileEntry[],
  options: { instanceId?: string; seq?: number; url?: string } = {},
) {
  return {
    peerId,
    instanceId: options.instanceId ?? 'instance-1',
    url: options.url ?? `http://${peerId}.test:8080`,
    seq: options.seq ?? 1,
    files,
  };
}

function names(index: NetworkIndex, text: string, limit = 1000): string[] {
  return index.search(parseQuery(text), limit).results.map((r) => `${r.peerId}:${r.name}`);
}

describe('tokenize', () => {
  it('splits a path into lowercase runs of letters and digits', () => {
    assert.deepEqual(tokenize('music/Holiday Photos 2024.JPG'), [
      'music',
      'holiday',
      'photos',
      '2024',
      'jpg',
    ]);
    assert.deepEqual(tokenize('--a.b,c!!  d_e(f)[1]'), ['a', 'b', 'c', 'd', 'e', 'f', '1']);
    assert.deepEqual(tokenize('Track 01 - Intro.mp3'), ['track', '01', 'intro', 'mp3']);
  });

  it('keeps Unicode letters and digits and folds compatibility forms', () => {
    assert.deepEqual(tokenize('Ünïcödé_Straße-日本語.txt'), ['ünïcödé', 'straße', '日本語', 'txt']);
    assert.deepEqual(tokenize('ＡＢＣ１２３ ﬁle'), ['abc123', 'file']);
    assert.deepEqual(tokenize('ΑΘΗΝΑ'), ['αθηνα']);
    // NFD input composes to the same token as NFC input.
    assert.deepEqual(tokenize('Cafe\u0301'), tokenize('Café'));
  });

  it('gives nothing for text without letters or digits', () => {
    assert.deepEqual(tokenize(''), []);
    assert.deepEqual(tokenize(' .-_/!? '), []);
  });
});

describe('parseQuery', () => {
  it('reads 64 hex digits in any case as a lowercase sha256', () => {
    const upper = 'ABCDEF0123456789'.repeat(4);
    assert.deepEqual(parseQuery(upper), { kind: 'sha256', sha256: upper.toLowerCase() });
    assert.deepEqual(parseQuery(`  ${SHA_B}\n`), { kind: 'sha256', sha256: SHA_B });
  });

  it('reads anything else as words', () => {
    assert.deepEqual(parseQuery('Holi PHO'), { kind: 'words', words: ['holi', 'pho'] });
    assert.deepEqual(parseQuery('a'.repeat(63)), { kind: 'words', words: ['a'.repeat(63)] });
    assert.deepEqual(parseQuery(`${'a'.repeat(64)}0`), { kind: 'words', words: [`${'a'.repeat(64)}0`] });
    assert.deepEqual(parseQuery('g'.repeat(64)), { kind: 'words', words: ['g'.repeat(64)] });
  });

  it('refuses a query with no word with USAGE', () => {
    for (const text of ['', '   ', '...', '-_-']) {
      assert.throws(
        () => parseQuery(text),
        (err) => isP2PError(err, 'USAGE'),
      );
    }
  });
});

describe('NetworkIndex search', () => {
  function sample(): NetworkIndex {
    const index = new NetworkIndex();
    index.applyFull(
      state('p1', [
        file('music/Holiday Photos 2024.JPG'),
        file('docs/report.pdf', SHA_B),
        file('photography/portfolio.zip'),
        file('holidays.txt'),
      ]),
    );
    return index;
  }

  it('matches when every word is a prefix of some token', () => {
    const index = sample();
    assert.deepEqual(names(index, 'holi pho'), ['p1:music/Holiday Photos 2024.JPG']);
    assert.deepEqual(names(index, '2024 jpg'), ['p1:music/Holiday Photos 2024.JPG']);
    assert.deepEqual(names(index, 'MUSIC holiday'), ['p1:music/Holiday Photos 2024.JPG']);
    assert.deepEqual(names(index, 'holi'), ['p1:holidays.txt', 'p1:music/Holiday Photos 2024.JPG']);
    assert.deepEqual(names(index, 'pho'), [
      'p1:music/Holiday Photos 2024.JPG',
      'p1:photography/portfolio.zip',
    ]);
    // The same token may satisfy several words.
    assert.deepEqual(names(index, 'pho photos'), ['p1:music/Holiday Photos 2024.JPG']);
  });

  it('does not match inside a token or when one word is missing', () => {
    const index = sample();
    assert.deepEqual(names(index, 'oliday'), []);
    assert.deepEqual(names(index, 'holiday xyz'), []);
    assert.deepEqual(names(index, 'photosx'), []);
    assert.deepEqual(names(index, 'zzz'), []);
  });

  it('returns one result per peer holding the file, with that peer url', () => {
    const index = new NetworkIndex();
    index.applyFull(state('p2', [file('shared/Song.mp3', SHA_B, 5)]));
    index.applyFull(state('p1', [file('shared/Song.mp3', SHA_B, 5)], { url: 'http://h1:9/base/' }));
    const { results, truncated } = index.search(parseQuery('song'), 10);
    assert.equal(truncated, false);
    assert.deepEqual(results, [
      {
        name: 'shared/Song.mp3',
        size: 5,
        sha256: SHA_B,
        peerId: 'p1',
        url: fileUrl('http://h1:9/base/', 'shared/Song.mp3'),
      },
      {
        name: 'shared/Song.mp3',
        size: 5,
        sha256: SHA_B,
        peerId: 'p2',
        url: fileUrl('http://p2.test:8080', 'shared/Song.mp3'),
      },
    ]);
    assert.equal(results[0]!.url, 'http://h1:9/base/files/shared/Song.mp3');
  });

  it('finds every copy of a sha256 on any peer, whatever its name', () => {
    const index = new NetworkIndex();
    index.applyFull(state('p1', [file('a.bin', SHA_A), file('b.bin', SHA_B)]));
    index.applyFull(state('p2', [file('copy of b.bin', SHA_B)]));
    assert.deepEqual(names(index, SHA_B.toUpperCase()), ['p1:b.bin', 'p2:copy of b.bin']);
    assert.deepEqual(names(index, 'c'.repeat(64)), []);
    index.removePeer('p1');
    assert.deepEqual(names(index, SHA_B), ['p2:copy of b.bin']);
  });

  it('puts exact whole-name matches first, even past the limit', () => {
    const index = new NetworkIndex();
    const files = [];
    for (let i = 0; i < 50; i++) files.push(file(`aaa/report ${i}.pdf`));
    files.push(file('Report.PDF'));
    index.applyFull(state('p1', files));
    index.applyFull(state('p0', [file('report-pdf')]));
    const { results, truncated } = index.search(parseQuery('report.pdf'), 3);
    assert.equal(truncated, true);
    assert.deepEqual(
      results.slice(0, 2).map((r) => `${r.peerId}:${r.name}`),
      ['p1:Report.PDF', 'p0:report-pdf'],
    );
    assert.match(results[2]!.name, /^aaa\/report \d+\.pdf$/);
  });

  it('stops at the limit and says whether more matched', () => {
    const index = new NetworkIndex();
    index.applyFull(state('p1', [file('x1.txt'), file('x2.txt'), file('x3.txt')]));
    const two = index.search(parseQuery('txt'), 2);
    assert.equal(two.results.length, 2);
    assert.equal(two.truncated, true);
    const three = index.search(parseQuery('txt'), 3);
    assert.equal(three.results.length, 3);
    assert.equal(three.truncated, false);
    const none = index.search(parseQuery('txt'), 0);
    assert.deepEqual(none, { results: [], truncated: true, partial: false });
    assert.deepEqual(index.search(parseQuery('nothing'), 0), {
      results: [],
      truncated: false,
      partial: false,
    });
    const shaTwo = index.search({ kind: 'sha256', sha256: SHA_A }, 2);
    assert.equal(shaTwo.results.length, 2);
    assert.equal(shaTwo.truncated, true);
  });

  it('accepts query words that were not tokenized', () => {
    const index = sample();
    const query: Query = { kind: 'words', words: ['Holi', 'PHOTOS 2024'] };
    assert.equal(index.search(query, 10).results.length, 1);
    assert.deepEqual(index.search({ kind: 'words', words: ['...'] }, 10), {
      results: [],
      truncated: false,
      partial: false,
    });
  });
});

describe('NetworkIndex updates', () => {
  it('a name twice in a state: the last one wins, and distinctNames spares the look-ups only where none can hit', async () => {
    const twice = [file('a.txt', SHA_A, 1), file('b.txt'), file('a.txt', SHA_B, 2)];
    for (const apply of ['sync', 'async'] as const) {
      const index = new NetworkIndex();
      const run = (s: ReturnType<typeof state> & { distinctNames?: boolean }) =>
        apply === 'sync' ? index.applyFull(s) : index.applyFullAsync(s);
      await run(state('p1', twice));
      assert.equal(index.getPeer('p1')!.fileCount, 2, apply);
      assert.deepEqual(names(index, SHA_B), ['p1:a.txt'], apply);
      assert.equal(index.getPeer('p1')!.totalBytes, 102, apply);

      // A first state claimed distinct, and a later one (the peer has files: its names are looked up).
      await run({ ...state('p2', [file('a.txt'), file('c.txt')]), distinctNames: true });
      await run({
        ...state('p2', [file('c.txt', SHA_B, 5), file('d.txt')], { seq: 2 }),
        distinctNames: true,
      });
      assert.equal(index.getPeer('p2')!.fileCount, 2, apply);
      assert.deepEqual(names(index, 'c'), ['p2:c.txt'], apply);
      assert.deepEqual(names(index, SHA_B), ['p1:a.txt', 'p2:c.txt'], apply);
      assert.equal(index.getPeer('p2')!.totalBytes, 105, apply);
    }
  });

  it('a state that went in without name chains: compaction, deltas and a resync find its names', async () => {
    for (const apply of ['sync', 'async'] as const) {
      const index = new NetworkIndex();
      const full = (s: ReturnType<typeof state> & { distinctNames?: boolean }) =>
        apply === 'sync' ? index.applyFull(s) : index.applyFullAsync(s);
      const delta = (d: Parameters<NetworkIndex['applyDelta']>[0]) =>
        apply === 'sync' ? index.applyDelta(d) : index.applyDeltaAsync(d);
      // p0's files take the low ids; once it leaves, p1's files are moved down into them.
      await full(
        state(
          'p0',
          Array.from({ length: 5000 }, (_, i) => file(`old-${i}.txt`)),
        ),
      );
      const kept = Array.from({ length: 1000 }, (_, i) => file(`kept-${i}.txt`, SHA_A, i));
      await full({ ...state('p1', kept), distinctNames: true });
      if (apply === 'sync') index.removePeer('p0');
      else await index.removePeerAsync('p0');
      await index.compactAsync();
      assert.ok(index.stats.idSlots < 2000, `${apply}: compacted to ${index.stats.idSlots} ids`);
      // A delta updates a name of p1 in place and removes another, as with chained names.
      const result = await delta({
        peerId: 'p1',
        instanceId: 'instance-1',
        seq: 2,
        upserted: [file('kept-7.txt', SHA_B, 70)],
        removed: ['kept-8.txt'],
      });
      assert.equal(result, 'applied', apply);
      assert.equal(index.getPeer('p1')!.fileCount, 999, apply);
      assert.deepEqual(names(index, SHA_B), ['p1:kept-7.txt'], apply);
      const has = (name: string) => index.peerFiles('p1').some((entry) => entry.name === name);
      assert.equal(has('kept-8.txt'), false, apply);
      // A resync of the same run: the same names, found, so nothing is added twice.
      await full({ ...state('p1', kept.slice(0, 500), { seq: 3 }), distinctNames: true });
      assert.equal(index.getPeer('p1')!.fileCount, 500, apply);
      assert.equal(index.fileCount, 500, apply);
      assert.equal(has('kept-7.txt') && has('kept-8.txt') && !has('kept-500.txt'), true, apply);
      assert.deepEqual(names(index, SHA_B), [], apply);
    }
  });

  it('a state packed in columns (PackedFiles) applies exactly as the same state as entries', async () => {
    const random = prng(5);
    const words = ['alpha', 'Beta', 'gamma', 'été', '日本', 'x'];
    const stateOf = (p: number, seq: number, count: number) =>
      state(
        `p${p}`,
        Array.from({ length: count }, (_, i) => {
          const a = words[Math.floor(random() * words.length)]!;
          return file(
            `${a}/${words[i % words.length]} ${p}-${i % 40}.dat`,
            (p * 100 + i * seq).toString(16).padStart(64, '0'),
            i,
          );
        }),
        { seq },
      );
    const packed = new NetworkIndex();
    const entries = new NetworkIndex();
    for (const [p, seq, count, distinct] of [
      [1, 1, 40, true],
      [2, 1, 40, false],
      // A resync of the same run: names found in place, changed hashes and sizes, some gone.
      [1, 2, 30, false],
      [3, 1, 0, true],
    ] as const) {
      const s = { ...stateOf(p, seq, count), distinctNames: distinct };
      await packed.applyFullAsync({ ...s, files: packFiles(s.files, JSON.stringify(s.files)) });
      entries.applyFull(s);
    }
    for (const text of ['alpha', 'beta gam', 'été', '日本', 'x 1', `${'0'.repeat(62)}c8`, 'dat']) {
      assert.deepEqual(names(packed, text), names(entries, text), text);
    }
    assert.equal(packed.fileCount, entries.fileCount);
    for (const peerId of ['p1', 'p2', 'p3']) {
      assert.deepEqual(packed.peerFiles(peerId), entries.peerFiles(peerId), peerId);
      assert.equal(packed.getPeer(peerId)!.totalBytes, entries.getPeer(peerId)!.totalBytes, peerId);
    }
  });

  it('a first state claimed distinct searches exactly as the same state looked up name by name', async () => {
    const random = prng(7);
    const words = ['alpha', 'beta', 'gamma', 'delta', 'été', '日本'];
    const states = Array.from({ length: 20 }, (_, p) =>
      state(
        `p${p}`,
        Array.from({ length: 50 }, (_, i) => {
          const a = words[Math.floor(random() * words.length)]!;
          return file(
            `${a}/${words[i % words.length]} ${p}-${i}.dat`,
            (p * 100 + i).toString(16).padStart(64, '0'),
            i,
          );
        }),
      ),
    );
    const claimed = new NetworkIndex();
    const looked = new NetworkIndex();
    for (const s of states) {
      await claimed.applyFullAsync({ ...s, distinctNames: true });
      looked.applyFull(s);
    }
    for (const text of ['alpha', 'gam 3', 'été', '日本', 'dat', `${'0'.repeat(61)}105`, 'beta 7-4']) {
      assert.deepEqual(names(claimed, text), names(looked, text), text);
    }
    assert.equal(claimed.fileCount, looked.fileCount);
    assert.deepEqual(claimed.peerFiles('p3'), looked.peerFiles('p3'));
  });

  it('applyFull: applied, stale, unchanged, and a new instance replaces', () => {
    const index = new NetworkIndex();
    assert.equal(index.applyFull(state('p1', [file('old.txt')], { seq: 5 })), 'applied');
    assert.equal(index.applyFull(state('p1', [file('stale.txt')], { seq: 4 })), 'stale');
    assert.deepEqual(names(index, 'stale'), []);
    assert.equal(index.getPeer('p1')!.seq, 5);

    assert.equal(index.applyFull(state('p1', [file('same.txt')], { seq: 5 })), 'unchanged');
    assert.deepEqual(names(index, 'txt'), ['p1:same.txt'], 'files are replaced even when unchanged');

    assert.equal(
      index.applyFull(state('p1', [file('same.txt')], { seq: 5, url: 'http://moved:1' })),
      'applied',
    );
    assert.equal(index.getPeer('p1')!.url, 'http://moved:1');
    assert.equal(index.search(parseQuery('same'), 5).results[0]!.url, 'http://moved:1/files/same.txt');

    assert.equal(index.applyFull(state('p1', [file('newer.txt')], { seq: 6 })), 'applied');
    assert.deepEqual(names(index, 'txt'), ['p1:newer.txt']);

    const restarted = state('p1', [file('fresh.txt'), file('newer.txt', SHA_B, 7)], {
      instanceId: 'instance-2',
      seq: 1,
    });
    assert.equal(index.applyFull(restarted), 'applied');
    assert.deepEqual(names(index, 'txt'), ['p1:fresh.txt', 'p1:newer.txt']);
    assert.deepEqual(names(index, SHA_A), ['p1:fresh.txt']);
    assert.deepEqual(index.getPeer('p1'), {
      peerId: 'p1',
      instanceId: 'instance-2',
      url: 'http://p1.test:8080',
      seq: 1,
      fileCount: 2,
      totalBytes: 107,
    });
    assert.equal(index.fileCount, 2);
  });

  it('applyDelta: applied, duplicate, gap, unknown peer', () => {
    const index = new NetworkIndex();
    assert.equal(
      index.applyDelta({ peerId: 'p1', instanceId: 'instance-1', seq: 2, upserted: [], removed: [] }),
      'unknown-peer',
    );
    index.applyFull(state('p1', [file('a.txt'), file('b.txt')], { seq: 3 }));
    const delta = {
      peerId: 'p1',
      instanceId: 'instance-1',
      seq: 4,
      upserted: [file('c.txt'), file('a.txt', SHA_B, 1)],
      removed: ['b.txt', 'missing.txt'],
    };
    assert.equal(index.applyDelta(delta), 'applied');
    assert.deepEqual(names(index, 'txt'), ['p1:a.txt', 'p1:c.txt']);
    assert.deepEqual(names(index, SHA_B), ['p1:a.txt']);
    assert.equal(index.getPeer('p1')!.seq, 4);
    assert.equal(index.getPeer('p1')!.totalBytes, 101);

    assert.equal(index.applyDelta({ ...delta, upserted: [file('dup.txt')] }), 'duplicate');
    assert.equal(index.applyDelta({ ...delta, seq: 3, upserted: [file('dup.txt')] }), 'duplicate');
    assert.equal(index.applyDelta({ ...delta, seq: 6, upserted: [file('gap.txt')] }), 'gap');
    assert.equal(
      index.applyDelta({ ...delta, seq: 5, instanceId: 'instance-9', upserted: [file('gap.txt')] }),
      'gap',
    );
    assert.deepEqual(names(index, 'txt'), ['p1:a.txt', 'p1:c.txt']);
    assert.equal(index.getPeer('p1')!.seq, 4);

    assert.equal(
      index.applyDelta({ ...delta, seq: 5, upserted: [file('b.txt')], removed: ['b.txt', 'c.txt'] }),
      'applied',
    );
    assert.deepEqual(names(index, 'txt'), ['p1:a.txt', 'p1:b.txt'], 'removals apply before upserts');
  });

  it('removePeer: an old instance id is a no-op, the current one removes everything', () => {
    const index = new NetworkIndex();
    index.applyFull(state('p1', [file('a.txt')], { instanceId: 'instance-2' }));
    index.applyFull(state('p2', [file('b.txt')]));
    assert.equal(index.removePeer('p1', 'instance-1'), false);
    assert.equal(index.hasPeer('p1'), true);
    assert.deepEqual(names(index, 'txt'), ['p1:a.txt', 'p2:b.txt']);
    assert.equal(index.removePeer('p1', 'instance-2'), true);
    assert.equal(index.hasPeer('p1'), false);
    assert.equal(index.getPeer('p1'), undefined);
    assert.deepEqual(names(index, 'txt'), ['p2:b.txt']);
    assert.equal(index.removePeer('p1'), false);
    assert.equal(index.removePeer('p2'), true);
    assert.equal(index.fileCount, 0);
    assert.equal(index.peerCount, 0);
    assert.deepEqual(names(index, 'txt'), []);
  });

  it('removes many files of one content (or one set of words) as fast as files of their own', () => {
    const count = 30_000;
    const hex = (n: number) => n.toString(16).padStart(64, '0');
    /** Milliseconds to take out the 2,000 oldest files of p1 by a delta, then p1, from beside p2 (best of two). */
    const removal = (shaOf: (j: number) => string, nameOf: (j: number) => string) => {
      let best = Number.POSITIVE_INFINITY;
      for (let round = 0; round < 2; round++) {
        const index = new NetworkIndex();
        const files = Array.from({ length: count }, (_, j) => file(nameOf(j), shaOf(j)));
        // The same files on both, p1 first: its files are at the far end of each chain, behind all of p2's.
        index.applyFull(state('p1', files));
        index.applyFull(state('p2', files));
        const started = performance.now();
        const removed = Array.from({ length: 2000 }, (_, j) => nameOf(j));
        assert.equal(
          index.applyDelta({ peerId: 'p1', instanceId: 'instance-1', seq: 2, upserted: [], removed }),
          'applied',
        );
        assert.equal(index.removePeer('p1'), true);
        best = Math.min(best, performance.now() - started);
        assert.equal(index.fileCount, count);
        const copies = Array.from({ length: count }, (_, j) => shaOf(j)).filter(
          (sha) => sha === shaOf(0),
        ).length;
        assert.equal(index.search(parseQuery(shaOf(0)), 1000).results.length, Math.min(1000, copies));
      }
      return best;
    };
    const apart = removal(hex, (j) => `file ${j}.txt`);
    const sharedContent = removal(
      () => SHA_A,
      (j) => `file ${j}.txt`,
    );
    // Names that differ in case only share their words, and so a key: j's bits pick the capitals.
    const letters = [...'abcdefghijklmno'];
    const sharedWords = removal(
      hex,
      (j) => `${letters.map((c, at) => ((j >> at) & 1 ? c.toUpperCase() : c)).join('')}.txt`,
    );
    const slow = [
      ['one content', sharedContent],
      ['one set of words', sharedWords],
    ].filter(([, ms]) => Number(ms) >= 10 * apart + 50);
    assert.deepEqual(slow, [], `files of their own: ${apart.toFixed(1)} ms`);
  });

  it('forgets a token once its only file is gone', () => {
    const index = new NetworkIndex();
    index.applyFull(state('p1', [file('zebra.txt'), file('zeppelin.txt'), file('other.txt')]));
    const removeZebra = {
      peerId: 'p1',
      instanceId: 'instance-1',
      seq: 2,
      upserted: [],
      removed: ['zebra.txt'],
    };
    assert.equal(index.applyDelta(removeZebra), 'applied');
    assert.deepEqual(names(index, 'zeb'), []);
    assert.deepEqual(names(index, 'ze'), ['p1:zeppelin.txt']);
    assert.deepEqual(names(index, 'zebra txt'), []);
    assert.equal(
      index.applyDelta({
        peerId: 'p1',
        instanceId: 'instance-1',
        seq: 3,
        upserted: [],
        removed: ['zeppelin.txt'],
      }),
      'applied',
    );
    assert.deepEqual(names(index, 'z'), []);
    assert.equal(
      index.applyDelta({
        peerId: 'p1',
        instanceId: 'instance-1',
        seq: 4,
        upserted: [file('zebra/new.txt')],
        removed: [],
      }),
      'applied',
    );
    assert.deepEqual(names(index, 'zeb'), ['p1:zebra/new.txt']);
  });

  it('lists peers sorted and pages through a peer files by name', () => {
    const index = new NetworkIndex();
    index.applyFull(state('zz', [file('b'), file('a'), file('c/d', SHA_B, 3)]));
    index.applyFull(state('aa', []));
    assert.deepEqual(
      index.peers().map((p) => [p.peerId, p.fileCount, p.totalBytes]),
      [
        ['aa', 0, 0],
        ['zz', 3, 203],
      ],
    );
    assert.deepEqual(
      index.peerFiles('zz').map((f) => f.name),
      ['a', 'b', 'c/d'],
    );
    assert.deepEqual(index.peerFiles('zz', 1, 1), [file('b')]);
    assert.deepEqual(index.peerFiles('zz', 2, 10), [file('c/d', SHA_B, 3)]);
    assert.deepEqual(index.peerFiles('zz', 3, 10), []);
    assert.deepEqual(index.peerFiles('nobody'), []);
    index.applyDelta({
      peerId: 'zz',
      instanceId: 'instance-1',
      seq: 2,
      upserted: [file('0')],
      removed: ['b'],
    });
    assert.deepEqual(
      index.peerFiles('zz').map((f) => f.name),
      ['0', 'a', 'c/d'],
    );
  });
});

describe('NetworkIndex against a linear scan', () => {
  it('finds the same files for random names, updates and queries', () => {
    const random = prng(20240611);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const letters = 'abcdefghijklmnopqrstuvwxyzäöüßéç日本ж';
    const vocabulary: string[] = [];
    for (let i = 0; i < 3000; i++) {
      let word = '';
      const length = 1 + Math.floor(random() * 7);
      for (let j = 0; j < length; j++) word += pick([...letters]);
      vocabulary.push(random() < 0.2 ? word.toUpperCase() : word);
    }
    const separators = [' ', '/', '_', '-', '.', ' - ', '  '];
    const shas = Array.from({ length: 40 }, (_, i) => i.toString(16).padStart(2, '0').repeat(32));
    const randomName = () => {
      const count = 1 + Math.floor(random() * 5);
      let name = pick(vocabulary);
      for (let i = 1; i < count; i++)
        name += pick(separators) + (random() < 0.15 ? String(Math.floor(random() * 300)) : pick(vocabulary));
      return name + pick(['.txt', '.mp3', '.JPG', '']);
    };
    const randomFile = () => file(randomName(), pick(shas), Math.floor(random() * 1000));

    const index = new NetworkIndex();
    const model = new Map<string, Map<string, FileEntry>>();
    const seqs = new Map<string, number>();
    const peerIds = Array.from({ length: 8 }, (_, i) => `peer-${i}`);

    const check = (round: number) => {
      let total = 0;
      for (const [peerId, byName] of model) {
        total += byName.size;
        const bytes = [...byName.values()].reduce((sum, f) => sum + f.size, 0);
        assert.equal(index.getPeer(peerId)!.fileCount, byName.size);
        assert.equal(index.getPeer(peerId)!.totalBytes, bytes);
      }
      assert.equal(index.fileCount, total);
      assert.equal(index.peerCount, model.size);
      for (let q = 0; q < 60; q++) {
        let query: Query;
        const kind = random();
        if (kind < 0.1) query = { kind: 'sha256', sha256: pick(shas) };
        else {
          const count = 1 + Math.floor(random() * 3);
          const words = [];
          for (let i = 0; i < count; i++) {
            const word = tokenize(pick(vocabulary))[0] ?? 'a';
            words.push(word.slice(0, 1 + Math.floor(random() * word.length)));
          }
          if (kind < 0.2) words.push(String(Math.floor(random() * 30)));
          query = { kind: 'words', words };
        }
        const expected = naiveMatches(model, query);
        const all = index.search(query, 100_000);
        const got = all.results.map((r) => `${r.peerId}:${r.name}`);
        assert.equal(all.truncated, false);
        assert.equal(got.length, new Set(got).size, 'no duplicate results');
        assert.deepEqual(new Set(got), expected, `round ${round} query ${JSON.stringify(query)}`);
        for (const r of all.results) assert.equal(r.url, fileUrl(`http://${r.peerId}.test:8080`, r.name));

        const limit = 1 + Math.floor(random() * 5);
        const page = index.search(query, limit);
        assert.equal(page.results.length, Math.min(limit, expected.size));
        assert.equal(page.truncated, expected.size > limit);
        for (const r of page.results) assert.ok(expected.has(`${r.peerId}:${r.name}`));
      }
    };

    for (let round = 0; round < 40; round++) {
      for (let op = 0; op < 30; op++) {
        const peerId = pick(peerIds);
        const known = model.get(peerId);
        const roll = random();
        if (known === undefined || roll < 0.08) {
          const files = Array.from({ length: Math.floor(random() * 150) }, randomFile);
          if (known !== undefined && random() < 0.5)
            files.push(...[...known.values()].filter(() => random() < 0.5));
          const seq = (seqs.get(peerId) ?? 0) + 1;
          assert.equal(index.applyFull(state(peerId, files, { seq })), 'applied');
          seqs.set(peerId, seq);
          model.set(peerId, new Map(files.map((f) => [f.name, f])));
        } else if (roll < 0.12) {
          assert.equal(index.removePeer(peerId), true);
          model.delete(peerId);
          seqs.delete(peerId);
        } else {
          const existing = [...known.keys()];
          const removed = existing.filter(() => random() < 0.1);
          const upserted = Array.from({ length: Math.floor(random() * 20) }, randomFile);
          for (const name of existing) if (random() < 0.05) upserted.push(file(name, pick(shas), 1));
          const seq = seqs.get(peerId)! + 1;
          const result = index.applyDelta({ peerId, instanceId: 'instance-1', seq, upserted, removed });
          assert.equal(result, 'applied');
          seqs.set(peerId, seq);
          for (const name of removed) known.delete(name);
          for (const f of upserted) known.set(f.name, f);
        }
      }
      check(round);
    }
  });

  it('keeps prefix search right across many distinct tokens coming and going', () => {
    const random = prng(7);
    const index = new NetworkIndex();
    const model = new Map<string, Map<string, FileEntry>>();
    const alphabet = 'abcdefghij';
    const word = () =>
      Array.from({ length: 2 + Math.floor(random() * 5) }, () => alphabet[Math.floor(random() * 10)]).join(
        '',
      );
    for (let p = 0; p < 4; p++) {
      const files = Array.from({ length: 6000 }, (_, i) => file(`${word()} ${word()} ${i}`));
      index.applyFull(state(`p${p}`, files));
      model.set(`p${p}`, new Map(files.map((f) => [f.name, f])));
    }
    const compare = () => {
      for (let q = 0; q < 200; q++) {
        const words = [word().slice(0, 1 + Math.floor(random() * 3))];
        if (random() < 0.5) words.push(word().slice(0, 2));
        const query: Query = { kind: 'words', words };
        const got = new Set(index.search(query, 1_000_000).results.map((r) => `${r.peerId}:${r.name}`));
        assert.deepEqual(got, naiveMatches(model, query), JSON.stringify(query));
      }
    };
    compare();
    index.removePeer('p1');
    model.delete('p1');
    index.removePeer('p3');
    model.delete('p3');
    compare();
    // Thin out what is left so that most tokens go, then add new ones among the survivors.
    const replacement = [...model.get('p0')!.values()].filter(() => random() < 0.05);
    index.applyFull(state('p0', replacement, { seq: 2 }));
    model.set('p0', new Map(replacement.map((f) => [f.name, f])));
    index.removePeer('p2');
    model.delete('p2');
    assert.ok(index.tokenCount < 2000, `${index.tokenCount} tokens left`);
    compare();
    const newcomer = Array.from({ length: 3000 }, (_, i) => file(`${word()} ${word()} new${i}`));
    index.applyFull(state('p4', newcomer));
    model.set('p4', new Map(newcomer.map((f) => [f.name, f])));
    compare();
    index.removePeer('p0');
    index.removePeer('p4');
    assert.equal(index.tokenCount, 0);
    assert.equal(index.fileCount, 0);
  });
});

describe('PackedFiles', () => {
  it('gives back the entries and the JSON it was packed from, ASCII or not, and refuses a torn buffer', () => {
    const entries = [file('a.txt', SHA_A, 1), file('dir/été 日本.txt', SHA_B, 2 ** 40), file('Z', SHA_A, 0)];
    const json = JSON.stringify(entries);
    const packed = packFiles(entries, json);
    assert.deepEqual(packed.entries(), entries);
    assert.equal(packed.json.toString(), json);
    assert.deepEqual(
      [0, 1, 2].map((i) => packed.isAscii(i)),
      [true, false, true],
    );
    const copy = PackedFiles.from(packed.buffer.slice(0));
    assert.deepEqual(copy.entries(), entries);
    assert.deepEqual(packFiles([], '[]').entries(), []);
    assert.throws(() => PackedFiles.from(packed.buffer.slice(0, packed.buffer.byteLength - 1)), RangeError);
  });

  it('joins lists one after another (a state in chunks), ASCII or not, with no JSON of its own', () => {
    const pieces = [
      [file('a.txt', SHA_A, 1), file('dir/été 日本.txt', SHA_B, 2 ** 40)],
      [],
      [file('Z', SHA_A, 0), file('😀/ok.txt', SHA_B, 7), file('b', SHA_A, 3)],
    ];
    const joined = concatPacked(pieces.map((entries) => packFiles(entries, JSON.stringify(entries))));
    assert.deepEqual(joined.entries(), pieces.flat());
    assert.deepEqual(
      pieces.flat().map((_, i) => joined.isAscii(i)),
      [true, false, true, false, true],
    );
    assert.equal(joined.json.length, 0);
    assert.deepEqual(concatPacked([]).entries(), []);
  });

  it('tells whether names are distinct, names of the same hash told apart by their bytes', () => {
    const packed = (names: string[]) => {
      const entries = names.map((name, i) => file(name, SHA_A, i));
      return packFiles(entries, JSON.stringify(entries));
    };
    // 'n3pvu' and 'ne3ea' have the same 32-bit FNV-1a hash.
    assert.equal(namesDistinct(packed(['n3pvu', 'ne3ea', 'b', 'été'])), true);
    assert.equal(namesDistinct(packed(['n3pvu', 'ne3ea', 'n3pvu'])), false);
    assert.equal(namesDistinct(packed(['a', 'été', 'b', 'été'])), false);
    assert.equal(namesDistinct(packed([])), true);
    const many = Array.from({ length: 5000 }, (_, i) => `dir/${i}.txt`);
    assert.equal(namesDistinct(packed(many)), true);
    assert.equal(namesDistinct(packed([...many, 'dir/4999.txt'])), false);
  });

  it('packs an all-ASCII list (written in one piece) and a list with astral names the same way, into a used spare', () => {
    const ascii = [file('a.txt', SHA_A, 1), file('b/c d.txt', SHA_B, 2), file('Z', SHA_A, 0)];
    const astral = [file('x.txt', SHA_B, 3), file('😀/ok.txt', SHA_A, 4), file('y', SHA_B, 5)];
    for (const entries of [ascii, astral]) {
      const json = JSON.stringify(entries);
      // A spare full of old bytes: everything read back must have been written anew.
      const spare = new ArrayBuffer(4096);
      new Uint8Array(spare).fill(0xff);
      const packed = packFiles(entries, json, (bytes) => (bytes <= spare.byteLength ? spare : undefined));
      assert.equal(packed.buffer, spare);
      assert.deepEqual(packed.entries(), entries);
      assert.equal(packed.json.toString(), json);
      assert.deepEqual(
        entries.map((_, i) => packed.isAscii(i)),
        entries.map((entry) => Buffer.byteLength(entry.name) === entry.name.length),
      );
    }
  });
});
