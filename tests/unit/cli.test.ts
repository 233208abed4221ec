import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isP2PError } from '../../libs/errors/index.js';
import type { SearchResult } from '../../libs/protocol/index.js';
import { chooseTarget } from '../../services/cli/main.js';

const a = 'a'.repeat(64);
const b = 'b'.repeat(64);
const result = (name: string, sha256: string, peerId = 'p1'): SearchResult => ({
  name,
  size: 10,
  sha256,
  peerId,
  url: `http://127.0.0.1:1/files/${name}`,
});

test('get picks by sha256, then exact path, then base name, then the search words', () => {
  const results = [result('docs/report.pdf', a), result('report.pdf', b), result('docs/report.pdf', a, 'p2')];
  assert.deepEqual(chooseTarget(a.toUpperCase(), results), { sha256: a, name: 'report.pdf' });
  assert.deepEqual(chooseTarget('docs/report.pdf', results), { sha256: a, name: 'report.pdf' });
  assert.deepEqual(chooseTarget('report.pdf', results), { sha256: b, name: 'report.pdf' });
  assert.deepEqual(chooseTarget('REPORT.PDF', [result('docs/report.pdf', a)]), {
    sha256: a,
    name: 'report.pdf',
  });
});

test('get refuses what is missing or ambiguous, with stable codes', () => {
  assert.throws(
    () => chooseTarget('x', []),
    (err) => isP2PError(err, 'NOT_FOUND'),
  );
  assert.throws(
    () => chooseTarget('report', [result('report-2023.pdf', a), result('report-2024.pdf', b)]),
    (err) => isP2PError(err, 'AMBIGUOUS') && err.message.includes(a) && err.message.includes(b),
  );
});
