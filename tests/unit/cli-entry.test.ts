import assert from 'node:assert/strict';
import { test } from 'node:test';
import { commandOf, entryFor } from '../../services/cli/entry.js';

test('bin/p2p.js runs the services as compiled and every other command bundled', () => {
  const compiled = '../dist/services/cli/main.js';
  const bundled = '../dist/cli/main.js';
  for (const args of [
    ['superpeer'],
    ['peer'],
    ['peer', '--config', 'seed.ini'],
    ['--env-file', 'env/local.env', 'peer'],
    ['--env-file', 'superpeer', 'peer'],
    ['--', 'superpeer'],
  ]) {
    assert.equal(entryFor(args), compiled, args.join(' '));
  }
  for (const args of [
    [],
    ['search', 'peer'],
    ['get', 'superpeer.txt'],
    ['health', 'superpeer'],
    ['--help'],
    ['--env-file', 'peer'],
    ['--env-file', 'peer', 'search', 'x'],
    ['setup'],
  ]) {
    assert.equal(entryFor(args), bundled, args.join(' '));
  }
  assert.equal(commandOf(['-h', 'watch', 'x']), 'watch');
});
