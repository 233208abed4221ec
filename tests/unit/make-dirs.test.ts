import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { makeDirs } from '../../libs/fs/index.js';

test('makeDirs creates missing parents, accepts what exists, and fails where a level cannot be made', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-make-dirs-'));
  try {
    const deep = path.join(root, 'a', 'b', 'c');
    makeDirs(deep);
    assert.ok(fs.statSync(deep).isDirectory());
    makeDirs(deep); // already there
    fs.writeFileSync(path.join(root, 'file'), 'x');
    assert.throws(() => makeDirs(path.join(root, 'file', 'sub')), { code: 'ENOTDIR' });
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('makeDirs returns with ENOENT under /proc, where Node 20’s recursive mkdir never returns', (t) => {
  if (!fs.existsSync('/proc/self')) {
    t.skip('no /proc here');
    return;
  }
  // In a child with a deadline: a regression spins in a synchronous call no test timeout can interrupt.
  const moduleUrl = new URL('../../libs/fs/index.js', import.meta.url).href;
  const child = spawnSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import { makeDirs } from ${JSON.stringify(moduleUrl)};
       try { makeDirs('/proc/p2p-make-dirs-test/x'); console.log('made'); } catch (err) { console.log(err.code); }`,
    ],
    { timeout: 10_000, encoding: 'utf8' },
  );
  assert.equal(child.signal, null, 'makeDirs did not return within 10 s');
  assert.equal(child.stdout.trim(), 'ENOENT');
});
