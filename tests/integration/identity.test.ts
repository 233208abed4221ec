import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import amqp from 'amqplib';
import { createLogger } from '../../libs/logging/index.js';
import { connectAmqpClient, type NetworkClient } from '../../services/cli/client.js';
import {
  AMQP_URL,
  makeTempDir,
  runCli,
  type ServiceProcess,
  startNetwork,
  type TestNetwork,
  waitUntil,
} from '../helpers/network.js';

const sha = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
const EVIL = Buffer.from('EVIL PAYLOAD\n');

/**
 * A foreign client, written against docs/protocol.md only: its own Ed25519 key, the id that key owns
 * (hex of the first 20 bytes of SHA-256 of the DER public key), and events signed over their exact bytes.
 */
function foreignKey() {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return {
    publicKey: der.toString('base64'),
    ownId: createHash('sha256').update(der).digest().subarray(0, 20).toString('hex'),
    sign: (body: Buffer) => sign(null, body, privateKey).toString('base64'),
  };
}

describe('no peer id can be taken over, even while the superpeer restarts', () => {
  let net: TestNetwork;
  let client: NetworkClient;
  let attackerServer: http.Server;
  let attackerUrl: string;
  const contents = ['one\n', 'two\n', 'three\n'];

  before(async () => {
    net = await startNetwork({
      label: 'identity',
      peers: contents.map((content, i) => ({
        [`real-${i + 1}.txt`]: content,
        'shared-guide.txt': 'guide\n',
      })),
    });
    attackerServer = http.createServer((_req, res) => {
      res.writeHead(200, { 'Content-Length': String(EVIL.length), ETag: `"${sha(EVIL)}"` }).end(EVIL);
    });
    await new Promise<void>((resolve) => attackerServer.listen(0, '127.0.0.1', resolve));
    attackerUrl = `http://127.0.0.1:${(attackerServer.address() as AddressInfo).port}`;
    client = await connectAmqpClient({
      amqpUrl: AMQP_URL,
      namespace: net.namespace,
      timeoutMs: 3000,
      logger: createLogger({ service: 'test', level: 'error', format: 'json' }),
    });
    await waitUntil(async () => (await client.search('real', 50)).results.length === 3, {
      timeoutMs: 15_000,
      what: 'the three real files',
    });
  });

  after(async () => {
    await client?.close();
    attackerServer?.closeAllConnections();
    await new Promise((resolve) => attackerServer?.close(resolve));
    await net?.stop();
  });

  test('a foreign key re-announcing every real id during a superpeer kill and restart wins nothing', async () => {
    const names = { events: `${net.namespace}.events`, deadLetter: `${net.namespace}.dead-letter` };
    const attacker = foreignKey();
    const victims = net.peers.map((peer) => ({ peerId: peer.peerId, name: peer.name }));
    const evilFiles = contents.map((_, i) => ({
      name: `real-${i + 1}.txt`,
      size: EVIL.length,
      sha256: sha(EVIL),
      mtimeMs: Date.now(),
    }));
    const connection = await amqp.connect(AMQP_URL);
    const channel = await connection.createConfirmChannel();
    let sent = 0;
    const publish = (event: Record<string, unknown>) => {
      const body = Buffer.from(JSON.stringify(event));
      channel.publish(names.events, '', body, {
        contentType: 'application/json',
        type: String(event.type),
        messageId: randomUUID(),
        headers: { 'x-p2p-signature': attacker.sign(body) },
      });
      sent++;
    };
    const instanceId = randomUUID();
    const storm = async () => {
      for (const victim of victims) {
        // The victim's id, the victim's name, the attacker's key and URL, files with the real names.
        publish({
          v: 1,
          type: 'peer.announce',
          peerId: victim.peerId,
          name: victim.name,
          instanceId,
          url: attackerUrl,
          seq: 1,
          publicKey: attacker.publicKey,
          chunkIndex: 0,
          chunkCount: 1,
          files: evilFiles,
        });
        for (const type of ['peer.heartbeat', 'peer.leave'] as const) {
          publish({
            v: 1,
            type,
            peerId: victim.peerId,
            instanceId,
            ...(type === 'peer.heartbeat' ? { seq: 1, fileCount: 3 } : {}),
          });
        }
      }
      // Bounded: a broker that stops confirming must fail the test, not hang it.
      await Promise.race([
        channel.waitForConfirms(),
        new Promise((_, reject) =>
          setTimeout(() => reject(new Error('no publisher confirms within 10 s')), 10_000).unref(),
        ),
      ]);
    };

    // Whatever a client asks during the attack: never the attacker's URL, under any id.
    const seenUrls = new Set<string>();
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const answer = await client.search('real', 50).catch(() => undefined);
        for (const result of answer?.results ?? []) seenUrls.add(new URL(result.url).origin);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    let storming = true;
    const stormer = (async () => {
      while (storming) {
        await storm();
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    stormer.catch(() => undefined); // awaited below; a failure there fails the test

    let restarted: ServiceProcess | undefined;
    try {
      await storm();
      net.superpeer.signal('SIGKILL');
      await net.superpeer.exited;
      const killedAt = Date.now();
      // The attacker has the field to itself for a while: no superpeer, then a fresh one with empty memory.
      await waitUntil(() => sent > 300, { timeoutMs: 10_000, what: 'the attacker to keep announcing' });
      const restartAt = Date.now();
      restarted = await net.startSuperpeer('sp-restarted');
      const whole = await waitUntil(
        async () => {
          const { results } = await client.search('real', 50);
          const holders = new Map(results.map((r) => [r.name, r]));
          const ok = contents.every((content, i) => {
            const result = holders.get(`real-${i + 1}.txt`);
            return (
              result?.sha256 === sha(content) &&
              result.peerId === net.peers[i]!.peerId &&
              result.url.startsWith(net.peers[i]!.url)
            );
          });
          return ok && results.length === 3 ? Date.now() : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 100, what: 'search whole again after the restart' },
      );
      const sinceRestartMs = whole - restartAt;
      const sinceKillMs = whole - killedAt;
      process.stderr.write(
        `identity: search whole ${sinceRestartMs} ms after the restart began (${sinceKillMs} ms after the kill); ${sent} forged events\n`,
      );
      assert.ok(sinceRestartMs < 10_000, `search whole ${sinceRestartMs} ms after the restart (goal < 10 s)`);

      // A while longer under attack, with the new superpeer in charge.
      const until = sent + 300;
      await waitUntil(() => sent > until, {
        timeoutMs: 20_000,
        what: 'more forged events after the restart',
      });
    } finally {
      storming = false;
      await stormer;
      watching = false;
      await watcher;
    }
    assert.ok(
      !seenUrls.has(attackerUrl),
      `a search returned the attacker's URL: ${[...seenUrls].join(', ')}`,
    );
    const { results } = await client.search('real', 50);
    assert.deepEqual(
      results.map((r) => [r.name, r.peerId, r.sha256]).sort(),
      contents.map((content, i) => [`real-${i + 1}.txt`, net.peers[i]!.peerId, sha(content)]),
    );
    assert.deepEqual(
      new Set((await client.peers()).map((p) => p.peerId)),
      new Set(victims.map((v) => v.peerId)),
    );

    // `p2p get <name>` saves the real bytes.
    const out = await makeTempDir('identity-get');
    try {
      for (const [i, content] of contents.entries()) {
        const got = await runCli(['get', `real-${i + 1}.txt`, '--out', out], net.env);
        assert.equal(got.code, 0, got.stderr);
        assert.equal(await fs.readFile(path.join(out, `real-${i + 1}.txt`), 'utf8'), content);
      }
    } finally {
      await fs.rm(out, { recursive: true, force: true });
    }

    // The forged announces were refused for what they are, with the reason in the dead-letter queue.
    const reasons = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const message = await channel.get(names.deadLetter, { noAck: true });
      if (!message) break;
      const reason = message.properties.headers?.['x-p2p-reject-reason'];
      reasons.add(Buffer.isBuffer(reason) ? reason.toString() : String(reason));
    }
    assert.ok(
      [...reasons].some((reason) => /peerId: peer id: not derived from publicKey/.test(reason)),
      `dead-letter reasons: ${[...reasons].join(' | ')}`,
    );
    for (const service of [restarted!, ...net.peers.map((p) => p.process)]) assert.ok(service.alive);
    await connection.close();
  });
});
