import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PeerRegistry } from '../../services/superpeer/registry.js';

const binding = (instanceId: string, lastSeenMs: number) => ({
  publicKey: 'key',
  name: undefined,
  instanceId,
  lastSeenMs,
});

describe('peer registry', () => {
  it('touches only the registered run, and never back in time', () => {
    const registry = new PeerRegistry();
    registry.bind('p1', binding('run-1111', 100));
    assert.equal(registry.touch('p1', 'run-2222', 500), false);
    assert.equal(registry.get('p1')?.lastSeenMs, 100);
    assert.equal(registry.touch('p1', 'run-1111', 500), true);
    registry.touch('p1', 'run-1111', 300);
    assert.equal(registry.get('p1')?.lastSeenMs, 500);
    assert.equal(registry.touch('nobody', 'run-1111', 500), false);
  });

  it('lists overdue peers, at most a slice of them', () => {
    const registry = new PeerRegistry();
    for (let i = 0; i < 10; i++) registry.bind(`p${i}`, binding('run-1111', i * 100));
    assert.deepEqual(
      registry.overdue(350, 100).map((peer) => peer.peerId),
      ['p0', 'p1', 'p2', 'p3'],
    );
    assert.equal(registry.overdue(10_000, 3).length, 3);
    registry.refreshAll(10_000);
    assert.equal(registry.overdue(10_000, 100).length, 0);
    assert.equal(registry.lastSeenAgoMs('p1', 10_500), 500);
  });

  it('remembers runs refused over the file limit until the peer binds again, boundedly', () => {
    const registry = new PeerRegistry(2);
    registry.markOverLimit('p1', 'run-1111');
    assert.equal(registry.isOverLimit('p1', 'run-1111'), true);
    assert.equal(registry.isOverLimit('p1', 'run-2222'), false, 'a new run is judged anew');
    registry.markOverLimit('p2', 'run-1111');
    registry.markOverLimit('p3', 'run-1111');
    assert.equal(registry.isOverLimit('p1', 'run-1111'), false, 'oldest forgotten past the bound');
    registry.bind('p3', binding('run-1111', 0));
    assert.equal(registry.isOverLimit('p3', 'run-1111'), false);
  });

  it('keeps the key of the last peers dropped (numbered heartbeats or not), boundedly', () => {
    const registry = new PeerRegistry(10, 2);
    for (const id of ['p1', 'p2', 'p3'])
      registry.bind(id, { ...binding('run-1111', 0), publicKey: `key-${id}` });
    assert.equal(registry.keyOf('p1'), 'key-p1', 'registered');
    for (const id of ['p1', 'p2', 'p3']) registry.delete(id);
    assert.equal(registry.get('p2'), undefined);
    assert.equal(registry.keyOf('p2'), 'key-p2', 'dropped lately');
    assert.equal(registry.keyOf('p3'), 'key-p3');
    assert.equal(registry.keyOf('p1'), undefined, 'oldest forgotten past the bound');
    assert.equal(registry.keyOf('nobody'), undefined);
  });
});
