import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isP2PError } from '../../libs/errors/index.js';
import { createLogger } from '../../libs/logging/index.js';
import { Broker, RpcClient } from '../../libs/messaging/index.js';
import { SearchReplySchema, sharedTopology, topologyNames } from '../../libs/protocol/index.js';
import { downloadFile } from '../../libs/transfer/index.js';
import { connectAmqpClient, type NetworkClient } from '../../services/cli/client.js';
import { brokerControl } from '../helpers/broker.js';
import {
  AMQP_URL,
  makeTempDir,
  runCli,
  startNetwork,
  type TestNetwork,
  waitUntil,
  withAmqp,
} from '../helpers/network.js';
import { msUntil } from '../helpers/timing.js';

const sha = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
const quietLogger = () => createLogger({ service: 'test', level: 'error', format: 'json' });

/** The broker these tests run against: the local one, or the container `npm test` started. */
const brokerHandle = brokerControl();

/** Opens a GET and pauses it after the headers: a transfer "under way" for as long as the test wants. */
function openPausedDownload(url: string): Promise<{ finish: () => Promise<Buffer> }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (response) => {
        response.pause();
        resolve({
          finish: () =>
            new Promise((done, fail) => {
              const chunks: Buffer[] = [];
              response.on('data', (chunk: Buffer) => chunks.push(chunk));
              response.on('end', () => done(Buffer.concat(chunks)));
              response.on('error', fail);
              response.resume();
            }),
        });
      })
      .on('error', reject);
  });
}

describe('faults: the network keeps working and loses nothing', () => {
  let net: TestNetwork;
  let client: NetworkClient;
  // More than a source can have sent when the download has written its first MiB: the download's unwritten
  // bytes (at most 16 MiB, its flow bound) plus loopback's socket buffers (here up to 32 MiB received and
  // 4 MiB sent, net.ipv4.tcp_rmem / tcp_wmem). With 32 MiB, a source killed then had sometimes already
  // pushed the whole body into the kernel, and the download never needed the other holder.
  const big = randomBytes(96 * 1024 * 1024);
  const shares: Array<Record<string, string | Buffer>> = [
    { 'one/alpha.txt': 'alpha', 'big.bin': big },
    { 'two/beta.txt': 'beta' },
    { 'three/gamma.txt': 'gamma' },
  ];
  const everything = async () =>
    (await client.search('alpha', 50)).results.length +
    (await client.search('beta', 50)).results.length +
    (await client.search('gamma', 50)).results.length;

  before(async () => {
    net = await startNetwork({ label: 'faults', peers: shares });
    client = await connectAmqpClient({
      amqpUrl: AMQP_URL,
      namespace: net.namespace,
      timeoutMs: 2000,
      logger: quietLogger(),
    });
    await waitUntil(async () => (await everything()) === 3, { timeoutMs: 10_000, what: 'all files indexed' });
  });

  after(async () => {
    await client?.close();
    await net?.stop();
  });

  test('broker restart: every service reconnects and search answers again within 15 s; transfers go on', async (t) => {
    const { results } = await client.search('big', 5);
    const transfer = await openPausedDownload(results[0]!.url);

    t.diagnostic(`restarting the broker with ${brokerHandle.description}`);
    await brokerHandle.stopApp();
    await brokerHandle.startApp();
    const recoveryMs = await msUntil(async () => (await everything()) === 3, {
      goalMs: 15_000,
      intervalMs: 250,
      what: 'search to find every file again after the broker restart',
    });
    t.diagnostic(`search complete again ${recoveryMs} ms after the broker's return`);
    assert.ok(recoveryMs <= 15_000, `recovered in ${recoveryMs} ms`);

    assert.equal(sha(await transfer.finish()), sha(big), 'the transfer under way completed intact');
    assert.ok(net.superpeer.alive);
    for (const peer of net.peers) assert.ok(peer.process.alive, `${peer.peerId} alive`);
  });

  test('superpeer killed and started again: its index is whole within 5 s of its start, no peer restarted', async (t) => {
    // A peer that dies while no superpeer runs never gets a peer-left: the others' views must still drop it.
    const doomed = await net.startPeer('doomed', { 'doomed-file.txt': 'doomed' });
    const viewOf = async (url: string) =>
      ((await (await fetch(`${url}/api/peers`)).json()) as { peers: { peerId: string }[] }).peers.map(
        (p) => p.peerId,
      );
    await waitUntil(async () => (await viewOf(net.peers[1]!.url)).includes(doomed.peerId), {
      timeoutMs: 5000,
      what: 'the doomed peer in a view',
    });

    net.superpeer.signal('SIGKILL');
    await net.superpeer.exited;
    doomed.process.signal('SIGKILL');
    await doomed.process.exited;
    const started = Date.now();
    net.superpeer = await net.startSuperpeer('sp-again');
    const wholeMs = await msUntil(async () => (await everything()) === 3, {
      goalMs: 5000,
      intervalMs: 100,
      since: started,
      what: 'the new superpeer to know every file',
    });
    t.diagnostic(`index whole ${wholeMs} ms after the new superpeer was spawned`);
    assert.ok(wholeMs <= 5000, `index whole after ${wholeMs} ms`);
    for (const peer of net.peers) assert.ok(peer.process.alive, `${peer.peerId} was not restarted`);
    assert.equal((await client.search('doomed', 10)).results.length, 0);
    // Each peer reloads its view 3 s after the new superpeer's request, even when it reloaded for the broker
    // restart of the test before (a second reload within the throttle's interval is allowed).
    const droppedBy = started + 9000;
    for (const peer of net.peers) {
      await waitUntil(async () => !(await viewOf(peer.url)).includes(doomed.peerId), {
        timeoutMs: Math.max(0, droppedBy - Date.now()),
        what: `${peer.peerId}'s view to drop the peer that died with the superpeer`,
      });
    }
    t.diagnostic(
      `every view dropped the dead peer ${Date.now() - started} ms after the new superpeer was spawned`,
    );
  });

  test('superpeer paused: peers answer from their own view, marked stale; a flood of searches dies in the broker', async () => {
    const names = topologyNames(net.namespace);
    const peer = net.peers[1]!;
    net.superpeer.signal('SIGSTOP');
    try {
      // A peer answers from its own view and says so.
      const viaPeer = await runCli(['search', '--json', '--peer', peer.url, 'alpha'], net.env);
      assert.equal(viaPeer.code, 0, viaPeer.stderr);
      assert.equal(JSON.parse(viaPeer.stdout).length, 1);
      assert.match(viaPeer.stderr, /superpeer unavailable.*stale/);
      assert.equal(viaPeer.stderr.trim().split('\n').length, 1, 'one line');
      const answer = (await (await fetch(`${peer.url}/api/search?q=gamma`)).json()) as {
        source: string;
        stale: boolean;
      };
      assert.equal(answer.source, 'network-view');
      assert.equal(answer.stale, true);

      // Without a peer to ask, the CLI says the superpeer is unavailable: exit status 3.
      const direct = await runCli(['search', '--timeout', '500', 'alpha'], net.env);
      assert.equal(direct.code, 3);
      assert.match(direct.stderr, /superpeer unavailable/);

      // A flood of searches, each with a short timeout: all time out, and expire in the broker.
      const broker = new Broker({
        url: AMQP_URL,
        connectionName: 'test flood',
        logger: quietLogger(),
        setup: async (session) => {
          await session.assertTopology(sharedTopology(names));
          await rpc.setup(session);
        },
      });
      const rpc = new RpcClient(broker, names.rpcQueue);
      await broker.start();
      try {
        const flood = await Promise.allSettled(
          Array.from({ length: 300 }, (_, i) =>
            rpc.call({ v: 1, type: 'rpc.search', query: `flood ${i}`, limit: 5 }, SearchReplySchema, {
              timeoutMs: 300,
            }),
          ),
        );
        assert.ok(flood.every((r) => r.status === 'rejected' && isP2PError(r.reason, 'RPC_TIMEOUT')));
        await withAmqp(async (channel) => {
          await waitUntil(async () => (await channel.checkQueue(names.rpcQueue)).messageCount === 0, {
            timeoutMs: 5000,
            what: 'the expired requests to leave the rpc queue',
          });
        });
      } finally {
        rpc.close();
        await broker.close();
      }
    } finally {
      net.superpeer.signal('SIGCONT');
    }
    const resumedMs = await msUntil(async () => (await everything()) === 3, {
      goalMs: 5000,
      what: 'search after resuming',
    });
    assert.ok(resumedMs < 5000, `searches answered ${resumedMs} ms after resuming`);
    assert.ok(net.superpeer.alive);
  });

  test('a peer killed mid-download: the download continues from the byte it had on another holder', async () => {
    const copy = await net.startPeer('copy', { 'mirror/big-copy.bin': big });
    const holders = await waitUntil(
      async () => {
        const found = (await client.search(sha(big), 10)).results;
        return found.length === 2 ? found : undefined;
      },
      { timeoutMs: 5000, what: 'both holders of the big file' },
    );
    const victim = net.peers[0]!;
    const ordered = [
      ...holders.filter((h) => h.peerId === victim.peerId),
      ...holders.filter((h) => h.peerId !== victim.peerId),
    ];
    const out = await makeTempDir('resume');
    try {
      let killedAt: number | undefined;
      const result = await downloadFile({
        sources: ordered.map((h) => ({ url: h.url, peerId: h.peerId })),
        sha256: sha(big),
        size: big.length,
        destPath: path.join(out, 'big.bin'),
        // One source at a time, so the kill lands mid-body of the victim's own transfer (the parallel
        // path's refetch of a dead source's segment is covered by the transfer unit tests).
        maxParallelSources: 1,
        onProgress: (progress) => {
          if (
            killedAt === undefined &&
            progress.peerId === victim.peerId &&
            progress.receivedBytes > 1024 * 1024
          ) {
            killedAt = progress.receivedBytes;
            // Freeze it first so it cannot finish the body in the instant before the kill lands.
            victim.process.signal('SIGSTOP');
            victim.process.signal('SIGKILL');
          }
        },
      });
      assert.ok(killedAt !== undefined, 'the source was killed during the transfer');
      assert.deepEqual(result.servedBy, [victim.peerId, copy.peerId]);
      assert.ok(result.failures.some((f) => f.peerId === victim.peerId));
      assert.deepEqual(result.badSources, []);
      assert.equal(sha(await fs.readFile(path.join(out, 'big.bin'))), sha(big));
      assert.deepEqual(await fs.readdir(out), ['big.bin'], 'no partial file left');
    } finally {
      await fs.rm(out, { recursive: true, force: true });
    }
  });
});
