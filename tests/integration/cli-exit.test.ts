import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AMQP_URL, cleanupNamespace, runCli, testNamespace } from '../helpers/network.js';

test('exit status 2: bad usage or configuration, with one line naming the problem', async () => {
  const usage = await runCli(['search'], { AMQP_URL });
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /missing required argument/);
  const badLimit = await runCli(['search', '--limit', '0', 'x'], { AMQP_URL });
  assert.equal(badLimit.code, 2);
  const badEnv = await runCli(['search', 'x'], { AMQP_URL, P2P_NAMESPACE: 'bad namespace!' });
  assert.equal(badEnv.code, 2);
  assert.equal(badEnv.stderr.trim().split('\n').length, 1);
  assert.match(badEnv.stderr, /P2P_NAMESPACE/);
  const badPeer = await runCli(['peer'], { AMQP_URL, PEER_HTTP_PORT: '99999' });
  assert.equal(badPeer.code, 2);
  assert.match(badPeer.stderr, /PEER_HTTP_PORT/);
});

test('exit status 3: broker unreachable, or no superpeer answering', async () => {
  const noBroker = await runCli(['search', 'x'], { AMQP_URL: 'amqp://guest:guest@127.0.0.1:1' });
  assert.equal(noBroker.code, 3);
  assert.match(noBroker.stderr, /cannot reach RabbitMQ/);
  assert.doesNotMatch(noBroker.stderr, /guest:guest/, 'the password is not printed');

  const namespace = testNamespace('cli');
  try {
    const noSuperpeer = await runCli(['search', '--timeout', '300', 'x'], {
      AMQP_URL,
      P2P_NAMESPACE: namespace,
    });
    assert.equal(noSuperpeer.code, 3);
    assert.match(noSuperpeer.stderr, /superpeer unavailable/);
  } finally {
    await cleanupNamespace(namespace);
  }
});
