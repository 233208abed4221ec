import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const probe = fileURLToPath(new URL('../helpers/young-generation-probe.js', import.meta.url));
const run = async (...args: string[]) =>
  JSON.parse((await promisify(execFile)(process.execPath, [probe, ...args])).stdout) as {
    before: number;
    after: number;
  };

test('a held young generation keeps its size under a stream of messages (V8 would grow it to its ceiling)', async () => {
  const held = await run();
  assert.equal(held.after, held.before, `young generation ${held.before} MB grew to ${held.after} MB`);
  // The same stream without the hold: V8 grows it, so the check above means something.
  const free = await run('free');
  assert.ok(free.after > free.before, `without the hold: ${free.before} → ${free.after} MB`);
});
