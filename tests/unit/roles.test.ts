import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DEAD_LETTER_MAX_MESSAGES, sharedTopology, topologyNames } from '../../libs/protocol/index.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const SCRIPT = path.join(ROOT, 'scripts/rabbitmq-roles.sh');

interface Definitions {
  users: Array<{ name: string; password_hash: string; hashing_algorithm: string; tags: string[] }>;
  permissions: Array<{ user: string; vhost: string; configure: string; write: string; read: string }>;
  exchanges: Array<{ name: string; type: string; durable: boolean }>;
  queues: Array<{ name: string; durable: boolean; arguments: Record<string, unknown> }>;
  bindings: Array<{ source: string; destination: string; destination_type: string; routing_key: string }>;
}
const definitions = JSON.parse(
  readFileSync(path.join(ROOT, 'deploy/rabbitmq/definitions.json'), 'utf8'),
) as Definitions;

/** The script's permissions for a namespace, as `user → [configure, write, read]`. */
function scriptPermissions(namespace: string): Map<string, string[]> {
  const out = execFileSync('bash', [SCRIPT, namespace, '--print'], { encoding: 'utf8' });
  return new Map(
    out
      .trim()
      .split('\n')
      .map((line) => {
        const [user, ...rest] = line.split('\t');
        return [user!, rest];
      }),
  );
}

test('the definitions file grants exactly what scripts/rabbitmq-roles.sh grants for namespace p2p', () => {
  const expected = scriptPermissions('p2p');
  assert.deepEqual([...expected.keys()].sort(), ['p2p-client', 'p2p-operator', 'p2p-peer', 'p2p-superpeer']);
  assert.deepEqual(
    new Map(definitions.permissions.map((p) => [p.user, [p.configure, p.write, p.read]])),
    expected,
  );
  for (const permission of definitions.permissions) assert.equal(permission.vhost, '/');
});

test('the documented passwords are the ones hashed in the definitions file (RabbitMQ salted SHA-256)', () => {
  for (const user of definitions.users) {
    assert.equal(user.hashing_algorithm, 'rabbit_password_hashing_sha256');
    const raw = Buffer.from(user.password_hash, 'base64');
    const salt = raw.subarray(0, 4);
    const password = `change-me-${user.name.replace(/^p2p-/, '')}`;
    const digest = createHash('sha256')
      .update(Buffer.concat([salt, Buffer.from(password)]))
      .digest();
    assert.ok(raw.subarray(4).equals(digest), `${user.name}: password ${password}`);
  }
});

test('the definitions declare the shared topology exactly as a superpeer does (no 406 on redeclare)', () => {
  const spec = sharedTopology(topologyNames('p2p'));
  assert.deepEqual(
    definitions.exchanges.map((e) => [e.name, e.type, e.durable]).sort(),
    spec.exchanges.map((e) => [e.name, e.type, e.durable]).sort(),
  );
  assert.deepEqual(
    definitions.queues.map((q) => [q.name, q.durable, q.arguments]).sort(),
    spec.queues.map((q) => [q.name, q.durable, q.arguments ?? {}]).sort(),
  );
  assert.equal(
    definitions.queues.find((q) => q.name === 'p2p.dead-letter')?.arguments['x-max-length'],
    DEAD_LETTER_MAX_MESSAGES,
  );
  assert.deepEqual(
    definitions.bindings.map((b) => [b.source, b.destination, b.destination_type, b.routing_key]),
    spec.bindings.map((b) =>
      'queue' in b
        ? [b.exchange, b.queue, 'queue', b.pattern]
        : [b.exchange, b.toExchange, 'exchange', b.pattern],
    ),
  );
});

test('the regexes are anchored and escape the namespace, so no other network’s names match', () => {
  const perms = scriptPermissions('a.b');
  const [configure, write, read] = perms.get('a.b-peer')!;
  const matches = (regex: string, name: string) => new RegExp(regex).test(name);
  assert.ok(matches(configure!, 'a.b.peer.x.y'));
  assert.ok(!matches(configure!, 'aXb.peer.x.y'), 'the dot is escaped');
  assert.ok(!matches(configure!, 'a.b.events'));
  assert.ok(!matches(configure!, 'other.a.b.peer.x'), 'anchored at the start');
  assert.ok(matches(write!, 'a.b.events') && matches(write!, 'amq.default'));
  assert.ok(!matches(write!, 'a.b.network') && !matches(write!, 'a.b.events2'));
  assert.ok(matches(read!, 'a.b.network') && !matches(read!, 'a.b.rpc') && !matches(read!, 'a.b.events'));
  const [cConfigure, cWrite, cRead] = perms.get('a.b-client')!;
  assert.ok(
    !matches(cConfigure!, 'a.b.rpc') && !matches(cRead!, 'a.b.rpc') && !matches(cWrite!, 'a.b.network'),
  );
  const [, spWrite, spRead] = perms.get('a.b-superpeer')!;
  assert.ok(matches(spWrite!, 'a.b.network') && !matches(spWrite!, 'a.b.events'));
  assert.ok(matches(spRead!, 'a.b.rpc') && !matches(spRead!, 'a.b.peer.x.y'));
});
