import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { STATE_DIR_NAME } from '../../libs/identity/index.js';
import { silentLog } from '../../libs/logging/index.js';
import { FileNameSchema } from '../../libs/protocol/index.js';
import {
  HASH_CACHE_FILE_NAME,
  type HashCacheRecord,
  HashCacheWriter,
  loadHashCache,
  PIECE_RECORDS,
} from '../../libs/share/hash-cache.js';
import { countLoopTurns } from '../helpers/timing.js';

function record(i: number): HashCacheRecord {
  return {
    size: i,
    mtimeMs: 1_700_000_000_000 + i,
    ctimeMs: 1,
    ino: 1000 + i,
    dev: 7,
    sha256: i.toString(16).padStart(64, '0'),
  };
}

test('a big hash cache is saved and read a piece at a time, the event loop turning between pieces', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'p2p-hash-cache-'));
  try {
    const count = 20 * PIECE_RECORDS + 7;
    // Counts the loop's turns, and how many records the save read within one turn, at most.
    const loop = countLoopTurns();
    let mostInOneTurn = 0;
    let turnOfLast = -1;
    let inThisTurn = 0;
    function* records(): Iterable<[string, HashCacheRecord]> {
      for (let i = 0; i < count; i++) {
        if (loop.turns !== turnOfLast) {
          turnOfLast = loop.turns;
          inThisTurn = 0;
        }
        mostInOneTurn = Math.max(mostInOneTurn, ++inThisTurn);
        yield [`dir ${i % 50}/file "${i}" ü.txt`, record(i)];
      }
    }
    const writer = new HashCacheWriter(() => dir, records, silentLog, 60_000);
    writer.markDirty();
    await writer.flush();
    loop.stop();

    // In one task, all of them would be read in the same turn.
    assert.ok(mostInOneTurn <= PIECE_RECORDS, `${mostInOneTurn} records read in one turn`);
    // Counts the names the load checks within one turn, at most (each record's name is checked first).
    const loading = countLoopTurns();
    const check = FileNameSchema.safeParse;
    let checkedMost = 0;
    let checkTurn = -1;
    let checkedInTurn = 0;
    FileNameSchema.safeParse = ((...args: Parameters<typeof check>) => {
      if (loading.turns !== checkTurn) {
        checkTurn = loading.turns;
        checkedInTurn = 0;
      }
      checkedMost = Math.max(checkedMost, ++checkedInTurn);
      return check(...args);
    }) as typeof check;
    let loaded: Map<string, HashCacheRecord>;
    try {
      loaded = await loadHashCache(dir, silentLog);
    } finally {
      FileNameSchema.safeParse = check;
      loading.stop();
    }
    assert.ok(checkedMost <= PIECE_RECORDS, `${checkedMost} records checked in one turn`);
    assert.equal(loaded.size, count);
    assert.deepEqual(loaded.get(`dir 3/file "4003" ü.txt`), record(4003));
    assert.deepEqual(loaded.get(`dir 6/file "${count - 1}" ü.txt`), record(count - 1));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('an empty hash cache is saved as valid JSON and reads back empty', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'p2p-hash-cache-'));
  try {
    const writer = new HashCacheWriter(
      () => dir,
      () => [],
      silentLog,
      60_000,
    );
    writer.markDirty();
    await writer.flush();
    assert.equal((await loadHashCache(dir, silentLog)).size, 0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('one bad record past the first pieces drops the whole cache, with the record named', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'p2p-hash-cache-'));
  try {
    await mkdir(path.join(dir, STATE_DIR_NAME));
    const cases: Array<[string, (files: Record<string, unknown>) => void, RegExp]> = [
      ['a bad hash', (files) => Object.assign(files['f 2100'] as object, { sha256: 'XYZ' }), /f 2100/],
      ['a bad name', (files) => Object.assign(files, { '../outside': record(1) }), /\.\.\/outside/],
      ['a record that is no object', (files) => Object.assign(files, { 'f 2200': 42 }), /f 2200/],
    ];
    for (const [label, spoil, named] of cases) {
      const files: Record<string, unknown> = {};
      for (let i = 0; i < 2 * PIECE_RECORDS + 500; i++) files[`f ${i}`] = record(i);
      spoil(files);
      await writeFile(
        path.join(dir, STATE_DIR_NAME, HASH_CACHE_FILE_NAME),
        JSON.stringify({ version: 2, files }),
      );
      const warnings: string[] = [];
      const logger = {
        ...silentLog,
        warn: (message: string, meta?: object) => warnings.push(`${message} ${JSON.stringify(meta)}`),
      };
      assert.equal((await loadHashCache(dir, logger)).size, 0, label);
      assert.equal(warnings.length, 1, label);
      assert.match(warnings[0]!, /hash cache corrupt/, label);
      assert.match(warnings[0]!, named, label);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
