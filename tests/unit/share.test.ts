import assert from 'node:assert/strict';
import { appendFile, chmod, readFile, realpath, rename, rm, stat, symlink } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { isP2PError } from '../../libs/errors/index.js';
import { loadOrCreateIdentity } from '../../libs/identity/index.js';
import type { FileEntry } from '../../libs/protocol/index.js';
import { FileEntrySchema } from '../../libs/protocol/index.js';
import { Share, type ShareChange, writeDemoFiles } from '../../libs/share/index.js';
import { shareFixtures } from '../helpers/share-fixtures.js';
import { sha256 } from '../helpers/transfer-fixtures.js';

const { tempDir, put, newShare, startShare } = shareFixtures('share-test');

const CHANGE_DEADLINE_MS = 2000;

interface CapturedLogger {
  warnings: { msg: string; meta?: object }[];
  error(): void;
  warn(msg: string, meta?: object): void;
  info(): void;
  debug(): void;
}

function captureLogger(): CapturedLogger {
  const warnings: { msg: string; meta?: object }[] = [];
  return { warnings, error() {}, warn: (msg, meta) => warnings.push({ msg, meta }), info() {}, debug() {} };
}

/** Records every 'change' and lets a test wait, with a deadline, until what it expects has been seen. */
function recordChanges(share: Share) {
  const changes: ShareChange[] = [];
  share.on('change', (change) => changes.push(change));
  return {
    changes,
    upserted: () => changes.flatMap((change) => change.upserted),
    removed: () => changes.flatMap((change) => change.removed),
    async until(what: string, done: () => boolean, timeoutMs = CHANGE_DEADLINE_MS): Promise<number> {
      const startedAt = Date.now();
      while (!done()) {
        if (Date.now() - startedAt > timeoutMs) {
          assert.fail(`no change "${what}" within ${timeoutMs} ms; saw ${JSON.stringify(changes)}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      return Date.now() - startedAt;
    },
  };
}

function names(entries: readonly FileEntry[]): string[] {
  return entries.map((entry) => entry.name);
}

describe('Share scanning', () => {
  it('lists files recursively with the sha256 of their bytes, sorted by name', async () => {
    const dir = await tempDir();
    const files: Record<string, Buffer> = {
      'b.txt': Buffer.from('bravo'),
      'a.txt': Buffer.from('alpha'),
      'empty.dat': Buffer.alloc(0),
      'docs/guide.md': Buffer.from('# guide\n'),
      'docs/deep/er/still.bin': Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 31) % 256)),
      'with space/ünïcode name.txt': Buffer.from('unicode'),
    };
    for (const [name, content] of Object.entries(files)) await put(dir, name, content);

    const share = await startShare(dir);
    assert.equal(share.root, await realpath(dir));
    const list = share.list();
    assert.deepEqual(names(list), Object.keys(files).sort());
    for (const entry of list) {
      const content = files[entry.name]!;
      FileEntrySchema.parse(entry);
      assert.equal(entry.sha256, sha256(content), entry.name);
      assert.equal(entry.size, content.length, entry.name);
      assert.equal(entry.mtimeMs, (await stat(path.join(dir, entry.name))).mtimeMs);
    }
    assert.equal(share.fileCount, 6);
    assert.equal(share.hashesComputed, 6);

    const found = share.get('docs/deep/er/still.bin');
    assert.ok(found);
    assert.equal(found.absPath, path.join(share.root, 'docs', 'deep', 'er', 'still.bin'));
    assert.deepEqual(await readFile(found.absPath), files['docs/deep/er/still.bin']);
    assert.equal(share.get('docs'), undefined);
    assert.equal(share.get('nope.txt'), undefined);
    assert.equal(share.get('/a.txt'), undefined);
  });

  it('creates a missing share directory', async () => {
    const dir = path.join(await tempDir(), 'not', 'yet');
    const share = await startShare(dir);
    assert.equal(share.fileCount, 0);
    assert.ok((await stat(dir)).isDirectory());
  });

  it('skips dotfiles, dot directories and the .p2p state folder', async () => {
    const dir = await tempDir();
    await put(dir, 'visible.txt', 'v');
    await put(dir, '.hidden', 'h');
    await put(dir, '.partial-download.part', 'p');
    await put(dir, '.git/config', 'c');
    await put(dir, 'sub/.secret/key', 'k');
    await put(dir, 'sub/.env', 'e');
    await put(dir, 'sub/ok.txt', 'ok');
    const share = await startShare(dir);
    assert.deepEqual(names(share.list()), ['sub/ok.txt', 'visible.txt']);
    assert.equal(share.get('.hidden'), undefined);
  });

  it('skips names that FileNameSchema refuses, warning once per name', async () => {
    const dir = await tempDir();
    await put(dir, 'good.txt', 'g');
    await put(dir, 'back\\slash.txt', 'b');
    await put(dir, 'ctrl\u0001char.txt', 'c');
    const logger = captureLogger();
    const share = await startShare(dir, { logger });
    assert.deepEqual(names(share.list()), ['good.txt']);
    await share.rescan();
    await share.rescan();
    const nameWarnings = logger.warnings.filter((w) => w.msg.includes('name cannot be shared'));
    assert.equal(nameWarnings.length, 2, JSON.stringify(logger.warnings));
  });

  it('never shares symlinks: not those leading outside, not those inside', async () => {
    const outside = await tempDir();
    await put(outside, 'secret.txt', 'outside secret');
    await put(outside, 'dir/more.txt', 'more secret');
    const dir = await tempDir();
    await put(dir, 'real.txt', 'real');
    await symlink(path.join(outside, 'secret.txt'), path.join(dir, 'to-secret.txt'));
    await symlink(path.join(outside, 'dir'), path.join(dir, 'to-dir'));
    await symlink('real.txt', path.join(dir, 'alias.txt'));
    await symlink(path.join(dir, 'nowhere'), path.join(dir, 'dangling'));
    const share = await startShare(dir);
    assert.deepEqual(names(share.list()), ['real.txt']);
  });

  it('does not hang on symlink cycles', async () => {
    const dir = await tempDir();
    await put(dir, 'a/file.txt', 'x');
    await symlink('..', path.join(dir, 'a', 'up'));
    await symlink('.', path.join(dir, 'self'));
    await symlink('loop2', path.join(dir, 'loop1'));
    await symlink('loop1', path.join(dir, 'loop2'));
    const share = newShare(dir);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('start() did not finish within 5 s')), 5000);
    });
    try {
      await Promise.race([share.start(), deadline]);
      await Promise.race([share.rescan(), deadline]);
    } finally {
      clearTimeout(timer);
    }
    assert.deepEqual(names(share.list()), ['a/file.txt']);
  });

  it('rejects bad options with CONFIG_INVALID', () => {
    assert.throws(
      () => new Share({ dir: 'x', hashConcurrency: 0 }),
      (err) => isP2PError(err, 'CONFIG_INVALID'),
    );
    assert.throws(
      () => new Share({ dir: 'x', debounceMs: -1 }),
      (err) => isP2PError(err, 'CONFIG_INVALID'),
    );
  });

  it('refuses rescan() before start()', async () => {
    const share = new Share({ dir: await tempDir() });
    await assert.rejects(share.rescan(), (err) => isP2PError(err, 'USAGE'));
  });
});

describe('Share watching', () => {
  it('announces an added, a changed and a removed file within 2 s each', async () => {
    const dir = await tempDir();
    await put(dir, 'keep.txt', 'keep');
    const share = await startShare(dir);
    const rec = recordChanges(share);

    await put(dir, 'new.txt', 'first version');
    await rec.until('add', () => rec.upserted().some((e) => e.name === 'new.txt'));
    assert.equal(share.get('new.txt')?.entry.sha256, sha256('first version'));

    rec.changes.length = 0;
    await put(dir, 'new.txt', 'second, longer version');
    await rec.until('modify', () =>
      rec.upserted().some((e) => e.name === 'new.txt' && e.sha256 === sha256('second, longer version')),
    );
    assert.equal(share.get('new.txt')?.entry.size, 'second, longer version'.length);

    rec.changes.length = 0;
    await rm(path.join(dir, 'new.txt'));
    await rec.until('remove', () => rec.removed().includes('new.txt'));
    assert.equal(share.get('new.txt'), undefined);
    assert.deepEqual(names(share.list()), ['keep.txt']);
    // Nothing about the untouched file was announced.
    assert.ok(!rec.upserted().some((e) => e.name === 'keep.txt'));
  });

  it('coalesces a burst of writes into one change with the net delta', async () => {
    const dir = await tempDir();
    const share = await startShare(dir, { debounceMs: 300 });
    const rec = recordChanges(share);
    for (let i = 0; i < 20; i++) await put(dir, `burst/f${i}.txt`, `file ${i}`);
    await rec.until('burst', () => rec.upserted().length >= 20);
    assert.equal(rec.changes.length, 1, `expected one batch, got ${rec.changes.length}`);
    assert.equal(share.fileCount, 20);
  });

  it('shows a rename as remove + add', async () => {
    const dir = await tempDir();
    await put(dir, 'old-name.txt', 'same bytes');
    const share = await startShare(dir);
    const rec = recordChanges(share);
    await rename(path.join(dir, 'old-name.txt'), path.join(dir, 'new-name.txt'));
    await rec.until(
      'rename',
      () => rec.removed().includes('old-name.txt') && rec.upserted().some((e) => e.name === 'new-name.txt'),
    );
    assert.equal(share.get('new-name.txt')?.entry.sha256, sha256('same bytes'));
    assert.deepEqual(names(share.list()), ['new-name.txt']);
    // Same inode, size and mtime: the cache keyed by name does not know the new name, but no wrong hash.
    assert.ok(rec.upserted().every((e) => e.name !== 'old-name.txt'));
  });

  it('removing a directory removes its files; a new directory with files is picked up', async () => {
    const dir = await tempDir();
    await put(dir, 'top.txt', 't');
    await put(dir, 'album/one.jpg', '1');
    await put(dir, 'album/sub/two.jpg', '2');
    const share = await startShare(dir);
    const rec = recordChanges(share);

    await rm(path.join(dir, 'album'), { recursive: true });
    await rec.until('dir removal', () => rec.removed().length === 2);
    assert.deepEqual(rec.removed().sort(), ['album/one.jpg', 'album/sub/two.jpg']);
    assert.deepEqual(names(share.list()), ['top.txt']);

    rec.changes.length = 0;
    const staging = await tempDir();
    await put(staging, 'moved/a.txt', 'a');
    await put(staging, 'moved/deeper/b.txt', 'b');
    await rename(path.join(staging, 'moved'), path.join(dir, 'moved'));
    await rec.until('dir moved in', () => rec.upserted().length === 2);
    assert.deepEqual(names(share.list()), ['moved/a.txt', 'moved/deeper/b.txt', 'top.txt']);
  });

  it('ignores dotfiles and the .p2p folder created while watching', async () => {
    const dir = await tempDir();
    const share = await startShare(dir);
    const rec = recordChanges(share);
    await put(dir, '.download.part', 'partial');
    await put(dir, '.p2p/state.json', '{}');
    await put(dir, 'sub/.hidden/x.txt', 'x');
    await put(dir, 'visible.txt', 'v');
    await rec.until('visible add', () => rec.upserted().some((e) => e.name === 'visible.txt'));
    assert.deepEqual(names(rec.upserted()), ['visible.txt']);
    assert.deepEqual(names(share.list()), ['visible.txt']);
  });

  it('skips an unreadable file with a warning instead of failing', {
    skip: process.getuid?.() === 0 ? 'root can read any file' : false,
  }, async () => {
    const dir = await tempDir();
    await put(dir, 'ok.txt', 'ok');
    await put(dir, 'locked.txt', 'locked');
    await chmod(path.join(dir, 'locked.txt'), 0o000);
    const logger = captureLogger();
    const share = await startShare(dir, { logger });
    assert.deepEqual(names(share.list()), ['ok.txt']);
    assert.ok(logger.warnings.some((w) => w.msg.includes('could not be read')));
  });

  it('stops announcing after close()', async () => {
    const dir = await tempDir();
    const share = await startShare(dir);
    const rec = recordChanges(share);
    await share.close();
    await share.close();
    // A witness: an open share of the same tree. Once it has announced the new file, a watcher still
    // alive on the closed share would have announced it too.
    const witness = recordChanges(await startShare(dir));
    await put(dir, 'late.txt', 'late');
    assert.deepEqual(await share.rescan(), { upserted: [], removed: [] });
    await witness.until('the open share announces the file', () =>
      witness.upserted().some((e) => e.name === 'late.txt'),
    );
    assert.equal(rec.changes.length, 0);
  });
});

describe('Share hash cache', () => {
  it('an unchanged rescan only stats, and a change re-hashes only that file', async () => {
    const dir = await tempDir();
    for (let i = 0; i < 50; i++) await put(dir, `d${i % 5}/f${i}.txt`, `content ${i}`);
    // quietMs 0: the rescan right after the write must hash it, not wait for the file to settle.
    const share = await startShare(dir, { quietMs: 0 });
    assert.equal(share.hashesComputed, 50);

    const change = await share.rescan();
    assert.deepEqual(change, { upserted: [], removed: [] });
    assert.equal(share.hashesComputed, 50);

    await put(dir, 'd3/f8.txt', 'changed content');
    const after = await share.rescan();
    assert.deepEqual(names(after.upserted), ['d3/f8.txt']);
    assert.equal(after.upserted[0]?.sha256, sha256('changed content'));
    assert.equal(share.hashesComputed, 51);
  });

  it('survives a restart: a new Share on the same dir hashes nothing', async () => {
    const dir = await tempDir();
    await put(dir, 'a.bin', Buffer.alloc(300_000, 7));
    await put(dir, 'sub/b.txt', 'b');
    const first = await startShare(dir);
    const listed = first.list();
    await first.close();
    const cacheFile = path.join(dir, '.p2p', 'hash-cache.json');
    assert.ok((await stat(cacheFile)).isFile());

    const second = await startShare(dir);
    assert.equal(second.hashesComputed, 0);
    assert.deepEqual(second.list(), listed);
    await second.close();

    // A file changed while no Share was running is re-hashed, the others still come from the cache.
    await put(dir, 'sub/b.txt', 'b changed while offline');
    const third = await startShare(dir);
    assert.equal(third.hashesComputed, 1);
    assert.equal(third.get('sub/b.txt')?.entry.sha256, sha256('b changed while offline'));
  });

  it('close() during start() returns promptly and an interrupted start keeps the cache', async () => {
    const dir = await tempDir();
    for (let i = 0; i < 200; i++) await put(dir, `many/f${i}.txt`, `file ${i}`);
    const first = await startShare(dir);
    await first.close();

    const interrupted = new Share({ dir, rescanIntervalMs: 0 });
    const starting = interrupted.start();
    const startedAt = Date.now();
    await interrupted.close();
    await starting;
    assert.ok(Date.now() - startedAt < 2000, 'close() took too long');
    assert.deepEqual(await interrupted.rescan(), { upserted: [], removed: [] });

    const third = await startShare(dir);
    assert.equal(third.hashesComputed, 0);
    assert.equal(third.fileCount, 200);
  });

  it('ignores a corrupt cache with a warning and re-hashes', async () => {
    const dir = await tempDir();
    await put(dir, 'a.txt', 'a');
    await put(dir, '.p2p/hash-cache.json', '{"version":1,"files":{"a.txt":{"size":1,');
    const logger = captureLogger();
    const share = await startShare(dir, { logger });
    assert.equal(share.hashesComputed, 1);
    assert.equal(share.get('a.txt')?.entry.sha256, sha256('a'));
    assert.ok(logger.warnings.some((w) => w.msg.includes('hash cache corrupt')));
    await share.close();
    // The rewritten cache is valid again.
    const again = await startShare(dir);
    assert.equal(again.hashesComputed, 0);
  });

  it('does not trust a cache entry whose hash looks right but whose file changed', async () => {
    const dir = await tempDir();
    await put(dir, 'a.txt', 'original');
    const first = await startShare(dir);
    await first.close();
    await put(dir, 'a.txt', 'replaced!');
    const second = await startShare(dir);
    assert.equal(second.get('a.txt')?.entry.sha256, sha256('replaced!'));
  });

  it('never announces a hash of bytes read while the file was being appended to', async () => {
    const dir = await tempDir();
    const chunk = Buffer.alloc(256 * 1024, 1);
    await put(dir, 'growing.log', Buffer.alloc(8 * 1024 * 1024, 0));
    const share = await startShare(dir, { debounceMs: 20 });
    const rec = recordChanges(share);
    // Appends race with the watcher-triggered hashing; every announced entry must describe the first
    // `size` bytes of the file exactly.
    for (let i = 0; i < 40; i++) {
      await appendFile(path.join(dir, 'growing.log'), chunk);
      await new Promise((resolve) => setImmediate(resolve));
    }
    const finalBytes = await readFile(path.join(dir, 'growing.log'));
    await rec.until(
      'final version',
      () => share.get('growing.log')?.entry.sha256 === sha256(finalBytes),
      5000,
    );
    for (const entry of rec.upserted()) {
      assert.equal(entry.sha256, sha256(finalBytes.subarray(0, entry.size)), `announced size ${entry.size}`);
    }
  });

  it('the periodic rescan catches what the watcher did not report', async () => {
    // No watcher at all: only the rescan can see the new file.
    const dir = await tempDir();
    const share = await startShare(dir, { rescanIntervalMs: 100, watch: false });
    const rec = recordChanges(share);
    await put(dir, 'x.txt', 'x');
    await rec.until('add seen by the periodic rescan', () => rec.upserted().some((e) => e.name === 'x.txt'));
  });
});

describe('demo files', () => {
  it('writes demo files into an empty share only, with a common file identical on every peer', async () => {
    const dirA = await tempDir();
    const dirB = await tempDir();
    // The peer's own state folder does not make a share non-empty.
    await loadOrCreateIdentity(dirA);
    const writtenA = await writeDemoFiles(dirA, 'alice');
    const writtenB = await writeDemoFiles(dirB, 'bob');
    assert.ok(writtenA.includes('common/network-guide.txt'));
    assert.ok(writtenA.includes('welcome-alice.txt'));
    assert.ok(writtenB.includes('data/bob-sample.bin'));

    const shareA = await startShare(dirA);
    const shareB = await startShare(dirB);
    assert.deepEqual(names(shareA.list()), [...writtenA].sort());
    const guideA = shareA.get('common/network-guide.txt')!.entry;
    const guideB = shareB.get('common/network-guide.txt')!.entry;
    assert.equal(guideA.sha256, guideB.sha256);
    const sample = shareB.get('data/bob-sample.bin')!.entry;
    assert.ok(sample.size >= 200 * 1024 && sample.size <= 300 * 1024);
    assert.notEqual(shareA.get('data/alice-sample.bin')!.entry.sha256, sample.sha256);

    assert.deepEqual(await writeDemoFiles(dirA, 'alice'), []);
    const dirC = await tempDir();
    await put(dirC, 'mine.txt', 'user file');
    assert.deepEqual(await writeDemoFiles(dirC, 'carol'), []);
    assert.deepEqual(names((await startShare(dirC)).list()), ['mine.txt']);
  });
});
