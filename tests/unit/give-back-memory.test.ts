import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ShrinkCollector } from '../../services/give-back-memory.js';

const probe = fileURLToPath(new URL('../helpers/give-back-probe.js', import.meta.url));
const run = async (...args: string[]) =>
  JSON.parse((await promisify(execFile)(process.execPath, [probe, ...args])).stdout) as {
    held: number;
    dropped: number;
    after: number;
  };

describe('giving memory back after the data shrank', () => {
  test('one collection once the size shrank by the minimum and stayed so for the quiet time', () => {
    let size = 0;
    let collections = 0;
    const collector = new ShrinkCollector(
      {
        size: () => size,
        collect: () => collections++,
        minShrink: 100,
        quietMs: 2000,
        collectWithin: 1000,
        checkIntervalMs: 1000,
      },
      0,
    );
    const at = (ms: number, next: number) => {
      size = next;
      collector.check(ms);
    };
    // Growing, and shrinking by less than the minimum, never collect.
    at(1000, 500);
    at(5000, 500);
    at(6000, 420);
    at(10_000, 420);
    assert.equal(collections, 0);
    // A leave of many peers: the size falls over several looks; one collection after it stays quiet 2 s.
    at(11_000, 300);
    at(12_000, 100);
    at(13_000, 100);
    assert.equal(collections, 0, 'not before the quiet time');
    at(14_000, 100);
    assert.equal(collections, 1);
    at(20_000, 100);
    assert.equal(collections, 1, 'once per shrink');
    // The next shrink counts from the size at the last collection.
    at(21_000, 50);
    at(30_000, 50);
    assert.equal(collections, 1);
    at(31_000, 400);
    at(32_000, 250);
    at(40_000, 250);
    assert.equal(collections, 2);
    // A long shrink collects along the way, every `collectWithin`, and once more when it is over.
    at(41_000, 5000);
    at(42_000, 4500);
    at(43_000, 3900);
    assert.equal(collections, 3, 'shrunk by 1100 while still shrinking');
    at(44_000, 3000);
    assert.equal(collections, 3, 'shrunk by 900 since that collection');
    at(45_000, 2000);
    assert.equal(collections, 4);
    at(46_000, 1800);
    at(47_000, 1800);
    at(48_000, 1800);
    assert.equal(collections, 5, 'the rest, once quiet');
  });

  test('the collection gives the memory of dropped mapped arrays back at once (idle, V8 keeps it)', async () => {
    const collected = await run();
    assert.ok(
      collected.held - collected.dropped < 50,
      `dropping alone gives back nothing: ${JSON.stringify(collected)}`,
    );
    assert.ok(
      collected.held - collected.after > 150,
      `the collection gives back 200 MB: ${JSON.stringify(collected)}`,
    );
    const idle = await run('idle');
    assert.ok(idle.held - idle.after < 50, `idle, without it, V8 keeps them: ${JSON.stringify(idle)}`);
  });
});
