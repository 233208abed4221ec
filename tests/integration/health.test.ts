import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { runCli, startNetwork, type TestNetwork } from '../helpers/network.js';

describe("p2p health: the containers' healthcheck", () => {
  let net: TestNetwork;
  before(async () => {
    net = await startNetwork({ label: 'health', peers: [{ 'a.txt': 'a' }] });
  });
  after(async () => {
    await net?.stop();
  });

  test('superpeer: 0 when this superpeer answers searches, 3 when only others do or none', async () => {
    const own = await runCli(['health', 'superpeer'], { ...net.env, SUPERPEER_ID: `sp-${process.pid}` });
    assert.equal(own.code, 0, own.stderr);
    assert.match(own.stdout, /^healthy: superpeer sp-\d+ serves searches/);

    const other = await runCli(['health', 'superpeer', '--timeout', '2000'], {
      ...net.env,
      SUPERPEER_ID: 'sp-not-running',
    });
    assert.equal(other.code, 3);
    assert.match(other.stderr, /sp-not-running did not answer searches \(sp-\d+ did\)/);
    assert.equal(other.stderr.trim().split('\n').length, 1, 'one line');

    const noBroker = await runCli(['health', 'superpeer'], {
      ...net.env,
      AMQP_URL: 'amqp://guest:guest@127.0.0.1:1',
    });
    assert.equal(noBroker.code, 3);
  });

  test('peer: 0 with HTTP up and the broker connected; 3 when it does not answer; 2 without a port', async () => {
    const peer = net.peers[0]!;
    const up = await runCli(['health', 'peer', '--url', peer.url], net.env);
    assert.equal(up.code, 0, up.stderr);
    const port = new URL(peer.url).port;
    const byEnv = await runCli(['health', 'peer'], { ...net.env, PEER_HTTP_PORT: port });
    assert.equal(byEnv.code, 0, byEnv.stderr);
    const noPort = await runCli(['health', 'peer'], { ...net.env, PEER_HTTP_PORT: '0' });
    assert.equal(noPort.code, 2);
    const unknown = await runCli(['health', 'broker'], net.env);
    assert.equal(unknown.code, 2);

    await peer.process.stop();
    const down = await runCli(['health', 'peer', '--url', peer.url, '--timeout', '1000'], net.env);
    assert.equal(down.code, 3);
  });
});
