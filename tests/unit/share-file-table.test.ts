import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newState, takeDelta } from '../../libs/share/delta.js';
import { FileTable } from '../../libs/share/file-table.js';

const SHA_A = 'a'.repeat(64);
const SHA_B = 'b'.repeat(64);

function version(size: number, sha256: string) {
  return { size, mtimeMs: 1000 + size, ctimeMs: 2000 + size, ino: 10 + size, dev: 1, sha256 };
}

describe('FileTable', () => {
  it('lists entries sorted by code unit, as copies, and follows every change', () => {
    const table = new FileTable();
    const state = newState();
    table.set(state, 'b.txt', version(2, SHA_B));
    table.set(state, 'B.txt', version(3, SHA_B));
    table.set(state, 'a/x.bin', version(1, SHA_A));
    const listed = table.list();
    assert.deepEqual(
      listed.map((entry) => entry.name),
      ['B.txt', 'a/x.bin', 'b.txt'],
    );
    listed.pop();
    assert.equal(table.list().length, 3, 'a caller changing its copy changes nothing');
    table.set(state, 'B.txt', undefined);
    assert.deepEqual(
      table.list().map((entry) => entry.name),
      ['a/x.bin', 'b.txt'],
    );
    assert.equal(table.size, 2);
    assert.equal(table.has('B.txt'), false);
    const record = table.get('b.txt');
    assert.deepEqual(record?.entry, { name: 'b.txt', size: 2, sha256: SHA_B, mtimeMs: 1002 });
    assert.ok(Object.isFrozen(record?.entry), 'entries are shared with every list(): frozen');
    assert.deepEqual([record?.ctimeMs, record?.ino, record?.dev], [2002, 12, 1]);
  });

  it('notes in the scan state what a name was before its first change, so the delta is the net one', () => {
    const table = new FileTable();
    table.set(newState(), 'kept.txt', version(1, SHA_A));
    table.set(newState(), 'gone.txt', version(1, SHA_A));
    const state = newState();
    table.set(state, 'kept.txt', version(5, SHA_B));
    table.set(state, 'kept.txt', version(1, SHA_A)); // back to what it was: no change in the end
    table.set(state, 'gone.txt', undefined);
    table.set(state, 'new.txt', version(7, SHA_B));
    const change = takeDelta(state, table.records);
    assert.deepEqual(
      change.upserted.map((entry) => entry.name),
      ['new.txt'],
    );
    assert.deepEqual(change.removed, ['gone.txt']);
  });
});
