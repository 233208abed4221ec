import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nameFromPtr } from '../../services/peer/container-name.js';

test('a compose v1 replica is named as `docker-compose ps` shows it, without the project', () => {
  assert.equal(nameFromPtr('p2ptest123_peer_3.p2ptest123_default'), 'peer_3');
  assert.equal(nameFromPtr('p2ptest123_peer_12.p2ptest123_default.'), 'peer_12');
  assert.equal(nameFromPtr('p2p_superpeer_1.p2p_default'), 'superpeer_1');
});

test('project and service names that hold separators themselves', () => {
  assert.equal(nameFromPtr('my_net_peer_2.my_net_default'), 'peer_2');
  assert.equal(nameFromPtr('my-net_file-peer_2.my-net_backend'), 'file-peer_2');
});

test('a compose v2 replica (hyphens) keeps the form v2 shows', () => {
  assert.equal(nameFromPtr('p2ptest123-peer-3.p2ptest123_default'), 'peer-3');
});

test('a container named by hand (docker run --name) keeps its name', () => {
  assert.equal(nameFromPtr('alice.shared-net'), 'alice');
});

test('answers that are not `<container>.<network>` or not a valid name give nothing', () => {
  assert.equal(nameFromPtr('localhost'), undefined);
  assert.equal(nameFromPtr('.p2p_default'), undefined);
  assert.equal(nameFromPtr(''), undefined);
  assert.equal(nameFromPtr(`${'x'.repeat(70)}.net`), undefined);
  assert.equal(nameFromPtr('p2p_.p2p_default'), undefined);
});
