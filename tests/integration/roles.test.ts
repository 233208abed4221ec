import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import amqp from 'amqplib';
import { topologyNames } from '../../libs/protocol/index.js';
import { brokerControl } from '../helpers/broker.js';
import {
  makeTempDir,
  REPO_ROOT,
  type RunningPeer,
  runCli,
  ServiceProcess,
  startNetwork,
  type TestNetwork,
  testNamespace,
  waitUntil,
} from '../helpers/network.js';

const run = promisify(execFile);
const sha = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
const ROLES_SCRIPT = path.join(REPO_ROOT, 'scripts/rabbitmq-roles.sh');
/** The run's broker: users, vhost and queues through its own rabbitmqctl (the host's, or the container's). */
const broker = brokerControl();
/** The roles script runs the same rabbitmqctl. */
const scriptEnv = { ...process.env, RABBITMQCTL: broker.rabbitmqctlCommand.join(' ') };

/** What the broker did with one forbidden action: the AMQP reply code that closed the channel, if any. */
interface Outcome {
  action: string;
  code: number | undefined;
}

/**
 * Runs `action` on a fresh channel of `connection` and reports the code the broker closed the channel with.
 * A refused publish is only noticed asynchronously, so every action is followed by a round trip.
 */
async function attempt(
  connection: amqp.ChannelModel,
  action: string,
  work: (channel: amqp.Channel) => Promise<unknown>,
  probeExchange: string,
): Promise<Outcome> {
  const channel = await connection.createChannel();
  let code: number | undefined;
  channel.on('error', (err: { code?: number }) => {
    code ??= err.code;
  });
  try {
    await work(channel);
    await channel.checkExchange(probeExchange);
  } catch (err) {
    code ??= (err as { code?: number }).code;
  }
  await channel.close().catch(() => undefined);
  return { action, code };
}

describe('least-privilege roles: superpeer, peer, client (scripts/rabbitmq-roles.sh)', () => {
  const vhost = `p2p-roles-${process.pid}-${randomBytes(3).toString('hex')}`;
  const namespace = testNamespace('roles');
  const names = topologyNames(namespace);
  const passwords = {
    superpeer: randomBytes(12).toString('hex'),
    peer: randomBytes(12).toString('hex'),
    client: randomBytes(12).toString('hex'),
    operator: randomBytes(12).toString('hex'),
  };
  const urlOf = (role: keyof typeof passwords) =>
    broker.urlFor({ username: `${namespace}-${role}`, password: passwords[role], vhost });
  const rolesEnv = {
    RABBITMQ_SUPERPEER_PASSWORD: passwords.superpeer,
    RABBITMQ_PEER_PASSWORD: passwords.peer,
    RABBITMQ_CLIENT_PASSWORD: passwords.client,
    RABBITMQ_OPERATOR_PASSWORD: passwords.operator,
  };
  const guide = 'the same guide on every peer\n';
  let net: TestNetwork;
  let early: ServiceProcess;
  let earlyDir: string;
  const peers: RunningPeer[] = [];

  const cli = (args: string[], role: keyof typeof passwords = 'client') =>
    runCli(args, { P2P_NAMESPACE: namespace, AMQP_URL: urlOf(role) });

  before(async () => {
    await broker.rabbitmqctl(['--quiet', 'add_vhost', vhost]);
    await run('bash', [ROLES_SCRIPT, namespace, '--vhost', vhost], { env: { ...scriptEnv, ...rolesEnv } });

    // A peer started before any superpeer only checks the shared objects: it waits for them, declaring nothing.
    earlyDir = await makeTempDir('roles-early');
    await fs.writeFile(path.join(earlyDir, 'early-bird.txt'), 'first\n');
    await fs.writeFile(path.join(earlyDir, 'guide.txt'), guide);
    early = new ServiceProcess('early', 'peer', {
      AMQP_URL: urlOf('peer'),
      P2P_NAMESPACE: namespace,
      PEER_SHARE_DIR: earlyDir,
      PEER_HTTP_HOST: '127.0.0.1',
      PEER_HTTP_PORT: '0',
      PEER_NAME: 'early',
    });
    await waitUntil(() => early.records.some((r) => r.message === 'broker connect failed'), {
      timeoutMs: 20_000,
      what: 'the early peer to find the network not set up yet',
    });
    assert.ok(!early.records.some((r) => r.message === 'peer ready'));

    net = await startNetwork({
      label: 'roles',
      peers: [],
      env: { P2P_NAMESPACE: namespace, AMQP_URL: urlOf('superpeer') },
    });
    const shares: Array<Record<string, string>> = [
      { 'alpha-roles.txt': 'alpha\n', 'guide.txt': guide },
      { 'beta-roles.txt': 'beta\n', 'guide.txt': guide },
    ];
    for (const [i, files] of shares.entries()) {
      peers.push(await net.startPeer(`rpeer${i + 1}`, files, { AMQP_URL: urlOf('peer') }));
    }
    await early.waitForLog((r) => r.message === 'peer ready', 20_000, 'the early peer to join');
    await waitUntil(
      async () => {
        const got = await cli(['search', '--json', 'guide']);
        return got.code === 0 && (JSON.parse(got.stdout) as unknown[]).length === 3;
      },
      { timeoutMs: 20_000, intervalMs: 250, what: 'all three peers found by a client' },
    );
  });

  after(async () => {
    await early?.stop();
    await net?.stop();
    await fs.rm(earlyDir, { recursive: true, force: true }).catch(() => undefined);
    await run('bash', [ROLES_SCRIPT, namespace, '--vhost', vhost, '--remove'], { env: scriptEnv }).catch(
      () => undefined,
    );
    await broker.rabbitmqctl(['--quiet', 'delete_vhost', vhost]).catch(() => undefined);
  });

  test('under the roles the network works: search and a verified get, as a client', async () => {
    const found = await cli(['search', '--json', 'alpha']);
    assert.equal(found.code, 0, found.stderr);
    const results = JSON.parse(found.stdout) as Array<{ peerId: string; peerName?: string; url: string }>;
    assert.deepEqual(
      results.map((r) => [r.peerId, r.peerName]),
      [[peers[0]!.peerId, 'rpeer1']],
    );
    const out = await makeTempDir('roles-get');
    try {
      const got = await cli(['get', 'beta-roles.txt', '--out', out]);
      assert.equal(got.code, 0, got.stderr);
      assert.equal(sha(await fs.readFile(path.join(out, 'beta-roles.txt'))), sha('beta\n'));
    } finally {
      await fs.rm(out, { recursive: true, force: true });
    }
    const listed = await cli(['peers', '--json']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual((JSON.parse(listed.stdout) as Array<{ name: string }>).map((p) => p.name).sort(), [
      'early',
      'rpeer1',
      'rpeer2',
    ]);
  });

  test('the broker refuses every forbidden action of a peer or a client (403), and the network is unharmed', async () => {
    const queues = (
      await broker.rabbitmqctl(['--quiet', 'list_queues', '-p', vhost, 'name', '--no-table-headers'])
    )
      .split('\n')
      .map((line) => line.trim())
      .filter(Boolean);
    const superpeerQueue = queues.find((q) => q.startsWith(`${namespace}.superpeer.`));
    const peerQueue = queues.find((q) => q.startsWith(`${namespace}.peer.`));
    assert.ok(superpeerQueue && peerQueue, `queues: ${queues.join(', ')}`);
    const junk = Buffer.from(JSON.stringify({ v: 1, type: 'network.resync-request', superpeerId: 'rogue' }));
    const peerDlx = { 'x-dead-letter-exchange': names.deadLetterExchange };

    const refusals: Outcome[] = [];
    const asRole = async (role: 'peer' | 'client') => {
      const connection = await amqp.connect(urlOf(role));
      connection.on('error', () => undefined);
      const tryIt = (action: string, work: (channel: amqp.Channel) => Promise<unknown>) =>
        attempt(connection, `${role}: ${action}`, work, names.eventsExchange);
      try {
        // Rogue superpeer: take search requests, answer them, broadcast lies.
        refusals.push(await tryIt('consume N.rpc', (ch) => ch.consume(names.rpcQueue, () => undefined)));
        refusals.push(await tryIt('get from N.rpc', (ch) => ch.get(names.rpcQueue)));
        refusals.push(
          await tryIt('publish to N.network', async (ch) => ch.publish(names.networkExchange, '', junk)),
        );
        // Configure shared objects.
        refusals.push(
          await tryIt('declare N.events', (ch) =>
            ch.assertExchange(names.eventsExchange, 'fanout', { durable: true }),
          ),
        );
        refusals.push(await tryIt('delete N.events', (ch) => ch.deleteExchange(names.eventsExchange)));
        refusals.push(await tryIt('delete N.network', (ch) => ch.deleteExchange(names.networkExchange)));
        refusals.push(await tryIt('delete N.rpc', (ch) => ch.deleteQueue(names.rpcQueue)));
        refusals.push(await tryIt('purge N.rpc', (ch) => ch.purgeQueue(names.rpcQueue)));
        refusals.push(await tryIt('purge N.dead-letter', (ch) => ch.purgeQueue(names.deadLetterQueue)));
        refusals.push(
          await tryIt('declare a new exchange N.evil', (ch) =>
            ch.assertExchange(`${namespace}.evil`, 'fanout', { durable: false }),
          ),
        );
        refusals.push(
          await tryIt('bind N.rpc to N.network', (ch) =>
            ch.bindQueue(names.rpcQueue, names.networkExchange, ''),
          ),
        );
        refusals.push(
          await tryIt('unbind N.dead-letter', (ch) =>
            ch.unbindQueue(names.deadLetterQueue, names.deadLetterExchange, ''),
          ),
        );
        // Read what is not theirs.
        refusals.push(
          await tryIt('consume a superpeer queue', (ch) => ch.consume(superpeerQueue, () => undefined)),
        );
        if (role === 'peer') {
          // Its own queue is fine, but binding it to N.events (to read other peers' events) is not.
          const own = `${namespace}.peer.${'0'.repeat(40)}.${randomBytes(8).toString('hex')}`;
          refusals.push(
            await tryIt('bind own queue to N.events', async (ch) => {
              await ch.assertQueue(own, { exclusive: true, durable: false, arguments: peerDlx });
              await ch.bindQueue(own, names.eventsExchange, '');
            }),
          );
          refusals.push(
            await tryIt('declare a queue outside N.peer.*', (ch) =>
              ch.assertQueue(`${namespace}.rpc2`, { exclusive: true }),
            ),
          );
        } else {
          refusals.push(
            await tryIt('publish to N.events', async (ch) => ch.publish(names.eventsExchange, '', junk)),
          );
          refusals.push(await tryIt('declare any queue', (ch) => ch.assertQueue('', { exclusive: true })));
          refusals.push(await tryIt('consume a peer queue', (ch) => ch.consume(peerQueue, () => undefined)));
        }
      } finally {
        await connection.close().catch(() => undefined);
      }
    };
    await asRole('peer');
    await asRole('client');
    assert.deepEqual(
      refusals.filter((outcome) => outcome.code !== 403),
      [],
      'every forbidden action closed its channel with 403 ACCESS_REFUSED',
    );
    assert.ok(refusals.length >= 30, `${refusals.length} forbidden actions tried`);

    // Another peer's queue is readable by name under the peer role's regex, but it is exclusive to its
    // owner's connection: the broker refuses it with 405 RESOURCE_LOCKED.
    const peerConnection = await amqp.connect(urlOf('peer'));
    peerConnection.on('error', () => undefined);
    try {
      const locked = await attempt(
        peerConnection,
        'peer: consume another peer’s queue',
        (ch) => ch.consume(peerQueue, () => undefined),
        names.eventsExchange,
      );
      assert.equal(locked.code, 405);
    } finally {
      await peerConnection.close().catch(() => undefined);
    }

    // `p2p setup` needs the right to configure the shared objects: refused as a peer, done as an operator.
    const asPeer = await cli(['setup'], 'peer');
    assert.equal(asPeer.code, 3, asPeer.stderr);
    assert.match(asPeer.stderr, /ACCESS_REFUSED/);
    const asOperator = await cli(['setup'], 'operator');
    assert.equal(asOperator.code, 0, asOperator.stderr);

    // Unharmed: every service alive, the topology whole, search and get as before.
    for (const service of [net.superpeer, early, ...peers.map((p) => p.process)]) {
      assert.ok(service.alive, `${service.name} alive`);
    }
    const found = await cli(['search', '--json', 'guide']);
    assert.equal(found.code, 0, found.stderr);
    assert.equal((JSON.parse(found.stdout) as unknown[]).length, 3);
    const out = await makeTempDir('roles-get-after');
    try {
      const got = await cli(['get', 'early-bird.txt', '--out', out]);
      assert.equal(got.code, 0, got.stderr);
      assert.equal(sha(await fs.readFile(path.join(out, 'early-bird.txt'))), sha('first\n'));
    } finally {
      await fs.rm(out, { recursive: true, force: true });
    }
    assert.ok(
      !net.superpeer.records.some((r) => r.message === 'broker connection lost; reconnecting'),
      'the superpeer never lost its connection',
    );
  });
});
