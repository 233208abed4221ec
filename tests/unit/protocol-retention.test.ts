import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const probe = fileURLToPath(new URL('../helpers/retention-probe.js', import.meta.url));

test('a decoded message with a file list dies young: decoding 40 of 2,000 files leaves the old generation as it was', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, ['--expose-gc', probe]);
  const grownMb = JSON.parse(stdout) as Record<string, number>;
  assert.deepEqual(Object.keys(grownMb).sort(), ['network.peer-state', 'peer.announce', 'rpc.snapshot']);
  // Promoted, the 40 messages would be about 12 MB; what stays young leaves well under one.
  for (const [type, mb] of Object.entries(grownMb))
    assert.ok(mb < 2, `${type}: old generation grew ${mb.toFixed(1)} MB`);
});
