import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { FileEntry, WatchMatch, WatchRegister } from '../../libs/protocol/index.js';
import { WatchNoticeSchema, WatchRegisterSchema } from '../../libs/protocol/index.js';
import { SeenSet } from '../../libs/watch/index.js';
import { type ChangedPeer, WatchRegistry } from '../../services/superpeer/watches.js';

const NS = 'ns';
const QUEUE = 'ns.watch.aaaaaaaaaaaa';
const peer: ChangedPeer = {
  peerId: 'a1'.repeat(20),
  instanceId: 'inst-0001',
  url: 'http://127.0.0.1:1',
  seq: 3,
};

function register(overrides: Partial<WatchRegister> = {}): WatchRegister {
  return WatchRegisterSchema.parse({
    v: 1,
    type: 'watch.register',
    watchId: 'watch-0001',
    query: 'lecture',
    queue: QUEUE,
    leaseMs: 30_000,
    includeRemoved: false,
    ...overrides,
  });
}

function file(name: string, sha = 'a'.repeat(64)): FileEntry {
  return { name, size: 10, sha256: sha, mtimeMs: 0 };
}

function registry(options: Partial<ConstructorParameters<typeof WatchRegistry>[0]> = {}) {
  return new WatchRegistry({ namespace: NS, superpeerId: 'sp1', ...options });
}

const matches = (out: ReturnType<WatchRegistry['match']>) =>
  out.map((o) => o.notice as WatchMatch).map((n) => `${n.watchId} ${n.event} ${n.file.name}`);

describe('WatchRegistry', () => {
  test('register answers watch.accepted once; a refresh is silent and extends the lease', () => {
    const reg = registry();
    const first = reg.register(register(), 0);
    assert.equal(first.kind, 'accepted');
    assert.ok(first.kind === 'accepted' && WatchNoticeSchema.safeParse(first.notice.notice).success);
    assert.equal(reg.register(register(), 20_000).kind, 'refreshed');
    assert.equal(reg.tick(45_000).expired, 0, 'refreshed at 20 s: alive at 45 s');
    assert.equal(reg.tick(50_000).expired, 1, 'gone once its lease ran out');
    assert.equal(reg.size, 0);
  });

  test('limits: per queue, in all, and only queues of this namespace', () => {
    const reg = registry({ maxPerQueue: 2, maxTotal: 3 });
    assert.equal(reg.register(register({ watchId: 'watch-0001' }), 0).kind, 'accepted');
    assert.equal(reg.register(register({ watchId: 'watch-0002' }), 0).kind, 'accepted');
    const third = reg.register(register({ watchId: 'watch-0003' }), 0);
    assert.equal(third.kind === 'refused' && third.code, 'WATCH_LIMIT');
    assert.equal(
      reg.register(register({ watchId: 'watch-0004', queue: 'ns.watch.bbbbbbbbbbbb' }), 0).kind,
      'accepted',
    );
    const total = reg.register(register({ watchId: 'watch-0005', queue: 'ns.watch.cccccccccccc' }), 0);
    assert.equal(total.kind === 'refused' && total.code, 'WATCH_LIMIT');
    const foreign = reg.register(register({ queue: 'other.watch.aaaaaaaaaaaa' }), 0);
    assert.equal(foreign.kind === 'refused' && foreign.code, 'QUEUE_FOREIGN');
    assert.equal(
      foreign.kind === 'refused' && foreign.notice,
      undefined,
      'no notice is sent to a foreign queue',
    );
    const wordless = reg.register(
      register({ watchId: 'watch-0009', queue: 'ns.watch.dddddddddddd', query: '--' }),
      0,
    );
    assert.equal(wordless.kind === 'refused' && wordless.code, 'QUERY_INVALID');
    assert.equal(reg.size, 3);
  });

  test('matches added files by word prefixes, like the index; removals only when asked', () => {
    const reg = registry();
    reg.register(register({ watchId: 'watch-words', query: 'lec QUEU' }), 0);
    reg.register(register({ watchId: 'watch-remov', query: 'notes', includeRemoved: true }), 0);
    reg.register(register({ watchId: 'watch-shaaa', query: 'B'.repeat(64) }), 0);
    const out = reg.match(
      peer,
      'added',
      [
        file('courses/Lecture 07 - Queues.pdf'),
        file('lecture-notes.txt'),
        file('queues.txt'),
        file('electric queue.txt'), // "lec" must start a word
        file('other.bin', 'b'.repeat(64)),
      ],
      0,
    );
    assert.deepEqual(matches(out).sort(), [
      'watch-remov added lecture-notes.txt',
      'watch-shaaa added other.bin',
      'watch-words added courses/Lecture 07 - Queues.pdf',
    ]);
    const first = out.find((o) => (o.notice as WatchMatch).file.name === 'other.bin')!.notice as WatchMatch;
    assert.equal(first.file.url, 'http://127.0.0.1:1/files/other.bin');
    assert.equal(first.seq, 3);
    assert.ok(WatchNoticeSchema.safeParse(first).success);
    assert.deepEqual(
      matches(reg.match(peer, 'removed', [file('lecture-notes.txt'), file('Lecture queue')], 0)),
      ['watch-remov removed lecture-notes.txt'],
    );
  });

  test('short first words and one-letter words find their watches', () => {
    const reg = registry();
    reg.register(register({ watchId: 'watch-short', query: 'a' }), 0);
    reg.register(register({ watchId: 'watch-two22', query: 'ab cd' }), 0);
    assert.deepEqual(matches(reg.match(peer, 'added', [file('abc cde')], 0)).sort(), [
      'watch-short added abc cde',
      'watch-two22 added abc cde',
    ]);
    assert.equal(reg.mayConcern('xyz'), false);
    assert.equal(reg.mayConcern('Abacus'), true);
  });

  test('a changed query replaces the old one; cancel and dropQueue forget watches', () => {
    const reg = registry();
    reg.register(register({ query: 'old' }), 0);
    reg.register(register({ query: 'new' }), 0);
    assert.equal(reg.match(peer, 'added', [file('old.txt')], 0).length, 0);
    assert.equal(reg.match(peer, 'added', [file('new.txt')], 0).length, 1);
    assert.equal(reg.cancel({ v: 1, type: 'watch.cancel', watchId: 'watch-0001', queue: QUEUE }), true);
    assert.equal(reg.size, 0);
    reg.register(register({ watchId: 'watch-0001' }), 0);
    reg.register(register({ watchId: 'watch-0002' }), 0);
    assert.equal(reg.dropQueue(QUEUE), 2);
    assert.equal(reg.size, 0);
    assert.equal(reg.queueCount, 0);
  });

  test('the match rate is bounded per watch; dropped matches are reported once as watch.overflow', () => {
    const reg = registry({ matchBurst: 5, matchesPerSecond: 10 });
    reg.register(register(), 0);
    const files = Array.from({ length: 12 }, (_, i) => file(`lecture-${i}.txt`));
    assert.equal(reg.match(peer, 'added', files, 0).length, 5);
    const { notices } = reg.tick(0);
    assert.deepEqual(
      notices.map((n) => n.notice),
      [{ v: 1, type: 'watch.overflow', superpeerId: 'sp1', watchId: 'watch-0001', dropped: 7 }],
    );
    assert.equal(reg.tick(0).notices.length, 0, 'reported once');
    assert.equal(reg.match(peer, 'added', files, 300).length, 3, '10 per second refill: 3 after 300 ms');
  });

  test('all watches together get at most totalBurst matches per burst; the rest are counted as overflow', () => {
    // The attack: many queues of 16 watches on a one-letter word, then one change of 2,000 matching files.
    const reg = registry({ maxTotal: 10_000, totalBurst: 1000, totalPerSecond: 100, checksPerChange: 1e9 });
    const watches = 320;
    for (let i = 0; i < watches; i++)
      reg.register(
        register({
          watchId: `watch-${String(i % 16).padStart(4, '0')}`,
          query: 'a',
          queue: `ns.watch.queue-${i >> 4}-of-many`,
        }),
        0,
      );
    const files = Array.from({ length: 2000 }, (_, i) => file(`a${i}.txt`));
    const out = reg.match(peer, 'added', files, 0);
    assert.equal(out.length, 1000, 'the burst of all watches together, not 320 × 500');
    const overflow = reg.tick(0).notices.map((n) => n.notice as { type: string; dropped: number });
    assert.equal(overflow.length, watches, 'every watch learns it missed matches');
    assert.equal(
      overflow.reduce((sum, n) => sum + n.dropped, 0),
      watches * 2000 - 1000,
      'each missed match counted once',
    );
    assert.equal(
      reg.match(peer, 'added', files.slice(0, 100), 500).length,
      50,
      '100 a second: 50 after 500 ms',
    );
  });

  test('one change checks at most checksPerChange (file, watch) pairs; watches it did not reach count a drop', () => {
    const reg = registry({ maxPerQueue: 100, checksPerChange: 1000 });
    for (let i = 0; i < 100; i++)
      reg.register(register({ watchId: `watch-${String(i).padStart(4, '0')}`, query: `lec nothing${i}` }), 0);
    reg.register(register({ watchId: 'watch-sha', query: 'b'.repeat(64), queue: 'ns.watch.other-queue' }), 0);
    const files = Array.from({ length: 50 }, (_, i) =>
      file(`lecture-${i}.txt`, i === 49 ? 'b'.repeat(64) : undefined),
    );
    assert.deepEqual(
      reg.match(peer, 'added', files, 0),
      [],
      'no words watch matches; the SHA-256 one was not reached',
    );
    const dropped = new Map(
      reg
        .tick(0)
        .notices.map((n) => [
          (n.notice as { watchId: string }).watchId,
          (n.notice as { dropped: number }).dropped,
        ]),
    );
    // 10 files × 100 watches were checked; the other files' watch sets were not, once each.
    assert.equal(dropped.size, 101);
    assert.equal(dropped.get('watch-0000'), 1);
    assert.equal(dropped.get('watch-sha'), 1);
  });

  test('matching 1,000 changed files against 10,000 watches stays cheap', (t) => {
    const reg = registry({ maxPerQueue: 10_000 });
    for (let i = 0; i < 10_000; i++)
      reg.register(register({ watchId: `watch-${String(i).padStart(5, '0')}`, query: `topic${i} part` }), 0);
    const files = Array.from({ length: 1000 }, (_, i) => file(`folder/unrelated name ${i} partial.txt`));
    const started = performance.now();
    const out = reg.match(peer, 'added', files, 0);
    const ms = performance.now() - started;
    t.diagnostic(`1,000 files × 10,000 watches: ${ms.toFixed(1)} ms`);
    assert.equal(out.length, 0);
    // Baseline in the same run: one pass over the watches for every file would cost at least this.
    const naiveStarted = performance.now();
    let naive = 0;
    for (let f = 0; f < 1000; f++)
      for (let w = 0; w < 10_000; w++) if (`topic${w}`.startsWith(String(f))) naive++;
    const naiveMs = performance.now() - naiveStarted;
    t.diagnostic(`naive scan: ${naiveMs.toFixed(1)} ms (${naive})`);
    assert.ok(
      ms * 5 < naiveMs,
      `bucketed matching (${ms.toFixed(1)} ms) is far below a scan (${naiveMs.toFixed(1)} ms)`,
    );
  });
});

test('SeenSet keeps the newest keys up to its bound', () => {
  const seen = new SeenSet(2);
  assert.equal(seen.add('a'), true);
  assert.equal(seen.add('a'), false);
  seen.add('b');
  seen.add('c');
  assert.equal(seen.size, 2);
  assert.equal(seen.add('a'), true, 'the oldest was forgotten');
  assert.equal(seen.add('c'), false);
});
