import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Log } from '../../libs/logging/index.js';
import type { NetworkMessage } from '../../libs/protocol/index.js';
import { Broadcaster } from '../../services/superpeer/broadcaster.js';
import type { SuperpeerTransport } from '../../services/superpeer/transport.js';

test('a broadcast that fails warns while the superpeer runs, and only says so at debug once it is stopping', async () => {
  const lines: Array<[string, string]> = [];
  const record =
    (level: string) =>
    (message: string): void => {
      lines.push([level, message]);
    };
  const logger: Log = {
    error: record('error'),
    warn: record('warn'),
    info: record('info'),
    debug: record('debug'),
  };
  const transport = {
    publishNetwork: () => Promise.reject(new Error('publish to p2p.network not confirmed')),
  } as unknown as SuperpeerTransport;
  const broadcaster = new Broadcaster(transport, logger);
  const left: NetworkMessage = {
    v: 1,
    type: 'network.peer-left',
    superpeerId: 'sp-1',
    peerId: 'a'.repeat(40),
    instanceId: 'instance-0001',
    reason: 'leave',
  };
  await broadcaster.publish(left);
  assert.deepEqual(lines, [['warn', 'could not publish a network change']]);
  broadcaster.close();
  await broadcaster.publish(left);
  assert.deepEqual(lines[1], ['debug', 'network change not published: the superpeer is stopping']);
  assert.equal(lines.length, 2);
});
