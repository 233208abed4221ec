import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { lowerBoundBy } from '../../libs/search/index.js';
import { prng } from '../helpers/prng.js';

const self = (value: string): string => value;

/** The answer by definition: the first position whose key is >= `key`. */
function linearLowerBound(items: readonly string[], key: string): number {
  const at = items.findIndex((item) => item >= key);
  return at === -1 ? items.length : at;
}

describe('lowerBoundBy', () => {
  it('finds the first position at or after a key, at the edges and among equal keys', () => {
    assert.equal(lowerBoundBy([], 'a', self), 0);
    const items = ['b', 'd', 'd', 'd', 'f'];
    assert.equal(lowerBoundBy(items, 'a', self), 0);
    assert.equal(lowerBoundBy(items, 'b', self), 0);
    assert.equal(lowerBoundBy(items, 'c', self), 1);
    assert.equal(lowerBoundBy(items, 'd', self), 1, 'the first of equal keys');
    assert.equal(lowerBoundBy(items, 'e', self), 4);
    assert.equal(lowerBoundBy(items, 'g', self), 5);
  });

  it('orders by code units, through the key function', () => {
    const peers = [{ peerId: 'A' }, { peerId: 'Z' }, { peerId: 'a' }, { peerId: 'é' }];
    assert.equal(
      lowerBoundBy(peers, 'B', (peer) => peer.peerId),
      1,
    );
    assert.equal(
      lowerBoundBy(peers, 'b', (peer) => peer.peerId),
      3,
    );
    assert.equal(
      lowerBoundBy(peers, '\u{1F600}', (peer) => peer.peerId),
      4,
    );
  });

  it('agrees with a linear scan on random sorted lists', () => {
    const random = prng(7);
    const next = (below: number): number => Math.floor(random() * below);
    const word = (): string => String.fromCharCode(97 + next(6), 97 + next(6));
    for (let round = 0; round < 200; round++) {
      const items = Array.from({ length: next(40) }, word).sort();
      for (let probe = 0; probe < 10; probe++) {
        const key = word();
        assert.equal(lowerBoundBy(items, key, self), linearLowerBound(items, key), `${key} in ${items}`);
      }
    }
  });
});
