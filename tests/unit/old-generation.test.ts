import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  PEER_OLD_GENERATION_GROWING_PERCENT,
  SUPERPEER_OLD_GENERATION_GROWING_PERCENT,
} from '../../services/old-generation.js';

const probe = fileURLToPath(new URL('../helpers/old-generation-probe.js', import.meta.url));

/** The factor V8 applied to the live size for the old generation's limit after the probe's last collection. */
async function lastLimitFactor(...args: string[]): Promise<number> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--expose-gc', '--trace-gc-verbose', probe, ...args],
    { maxBuffer: 16 * 1024 * 1024 },
  );
  const factors = [...stdout.matchAll(/\[HeapController\] Limit: .* \((\d+(?:\.\d+)?)\)$/gm)].map((m) =>
    Number(m[1]),
  );
  assert.ok(factors.length > 0, `no limit in V8's trace:\n${stdout.slice(0, 2000)}`);
  return factors.at(-1)!;
}

test('the old-generation growth set at run time is the factor V8 applies at the next collections', async () => {
  // 150% = a limit of 2.5 times the live size: a factor V8's own heuristic does not pick here (4.0).
  assert.equal(await lastLimitFactor('150'), 2.5);
  assert.notEqual(await lastLimitFactor(), 2.5, 'without the call V8 picks its own factor');
});

test("each service's own setting replaces an earlier one: the superpeer's 200%, the peer's 300%", async () => {
  assert.equal(await lastLimitFactor('50'), 1.5);
  assert.equal(await lastLimitFactor('superpeer'), 1 + SUPERPEER_OLD_GENERATION_GROWING_PERCENT / 100);
  assert.equal(await lastLimitFactor('peer'), 1 + PEER_OLD_GENERATION_GROWING_PERCENT / 100);
});
