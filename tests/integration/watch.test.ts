import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import readline from 'node:readline';
import { after, before, describe, test } from 'node:test';
import amqp from 'amqplib';
import { topologyNames, type WatchNotice } from '../../libs/protocol/index.js';
import {
  AMQP_URL,
  P2P_BIN,
  REPO_ROOT,
  type ServiceProcess,
  startNetwork,
  type TestNetwork,
  waitUntil,
} from '../helpers/network.js';

/** `p2p watch …` running in the background, its output collected line by line with arrival times. */
class WatchProcess {
  readonly stdout: Array<{ line: string; atMs: number }> = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;

  constructor(args: string[], env: Record<string, string>) {
    this.child = spawn(process.execPath, [P2P_BIN, 'watch', ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, LOG_FORMAT: 'json', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
    readline
      .createInterface({ input: this.child.stdout! })
      .on('line', (line) => this.stdout.push({ line, atMs: Date.now() }));
    readline.createInterface({ input: this.child.stderr! }).on('line', (line) => this.stderr.push(line));
  }

  json(): Array<{ event: string; name: string; peerId: string; sha256: string; atMs: number }> {
    return this.stdout.map(({ line, atMs }) => ({ ...JSON.parse(line), atMs }));
  }

  waitAccepted(timeoutMs = 10_000): Promise<unknown> {
    return waitUntil(() => this.stderr.some((line) => line.startsWith('watching ')), {
      timeoutMs,
      what: `the watch to be accepted (stderr: ${this.stderr.join(' | ')})`,
    });
  }

  signal(signal: NodeJS.Signals): void {
    if (this.child.exitCode === null) this.child.kill(signal);
  }
}

async function cleanupWatchExchanges(namespace: string): Promise<void> {
  const names = topologyNames(namespace);
  const connection = await amqp.connect(AMQP_URL);
  try {
    const channel = await connection.createChannel();
    await channel.deleteExchange(names.watchesExchange);
    await channel.deleteExchange(names.watchersExchange);
    await channel.close();
  } finally {
    await connection.close();
  }
}

/** A foreign watcher: nothing but amqplib and the protocol document. */
async function foreignWatcher(namespace: string) {
  const names = topologyNames(namespace);
  const connection = await amqp.connect(AMQP_URL);
  const channel = await connection.createChannel();
  const queue = `${namespace}.watch.${randomBytes(12).toString('hex')}`;
  await channel.assertQueue(queue, { exclusive: true, autoDelete: true });
  const notices: WatchNotice[] = [];
  await channel.consume(
    queue,
    (message) => {
      if (message) notices.push(JSON.parse(message.content.toString()) as WatchNotice);
    },
    { noAck: true },
  );
  const register = (watchId: string, query: string, includeRemoved = false) =>
    channel.publish(
      names.watchesExchange,
      '',
      Buffer.from(
        JSON.stringify({
          v: 1,
          type: 'watch.register',
          watchId,
          query,
          queue,
          leaseMs: 30_000,
          includeRemoved,
        }),
      ),
    );
  return { connection, channel, queue, notices, register };
}

const logged = (service: ServiceProcess, message: string) =>
  service.records.filter((r) => r.message === message);

describe('standing searches (p2p watch)', () => {
  let net: TestNetwork;
  const superpeers: ServiceProcess[] = [];

  before(async () => {
    net = await startNetwork({
      label: 'watch',
      peers: [{ 'notes/old-lecture.txt': 'already there\n' }, { 'readme.txt': 'peer two\n' }],
    });
    // Two superpeers: each matches every change, and the watcher shows each change once.
    superpeers.push(net.superpeer, await net.startSuperpeer('sp2'));
  });

  after(async () => {
    await net?.stop();
    await cleanupWatchExchanges(net.namespace).catch(() => undefined);
  });

  test('p2p watch lecture --json --removed prints a new file within 2 s, once, and its removal; Ctrl-C exits 0', async (t) => {
    const watch = new WatchProcess(['lecture', '--json', '--removed'], net.env);
    try {
      await watch.waitAccepted();
      const target = net.peers[1]!;
      const file = path.join(target.shareDir, 'Lecture 07 - Queues.pdf');
      const droppedAt = Date.now();
      await fs.writeFile(file, randomBytes(20_000));
      const added = await waitUntil(() => watch.json().find((m) => m.event === 'added'), {
        timeoutMs: 10_000,
        what: 'the added line',
      });
      const addedMs = added.atMs - droppedAt;
      t.diagnostic(`new file printed ${addedMs} ms after it was written`);
      assert.ok(addedMs < 2000, `printed within 2 s (took ${addedMs} ms)`);
      assert.equal(added.name, 'Lecture 07 - Queues.pdf');
      assert.equal(added.peerId, target.peerId);

      await fs.rm(file);
      const removed = await waitUntil(() => watch.json().find((m) => m.event === 'removed'), {
        timeoutMs: 10_000,
        what: 'the removed line',
      });
      assert.equal(removed.name, 'Lecture 07 - Queues.pdf');
      // Both superpeers sent each notice (each logged the watch); each change printed once.
      await waitUntil(() => logged(net.superpeer, 'watch registered').length >= 1, {
        timeoutMs: 5000,
        what: 'sp1 watch',
      });
      assert.deepEqual(
        watch.json().map((m) => m.event),
        ['added', 'removed'],
        'each change once, though two superpeers matched it',
      );
      // The file that was there before the watch started is not "new".
      assert.ok(!watch.json().some((m) => m.name === 'notes/old-lecture.txt'));
    } finally {
      watch.signal('SIGINT');
    }
    assert.equal(await watch.exited, 0, `Ctrl-C exits 0 (stderr: ${watch.stderr.join(' | ')})`);
  });

  test('a foreign amqplib client watches; limits are enforced; its watches vanish with it', async () => {
    const client = await foreignWatcher(net.namespace);
    try {
      client.register('foreign-watch-0001', 'syllabus');
      await waitUntil(() => client.notices.some((n) => n.type === 'watch.accepted'), {
        timeoutMs: 5000,
        what: 'watch.accepted',
      });
      await fs.writeFile(path.join(net.peers[0]!.shareDir, 'syllabus-2026.txt'), 'week 1\n');
      const match = await waitUntil(() => client.notices.find((n) => n.type === 'watch.match'), {
        timeoutMs: 5000,
        what: 'watch.match',
      });
      assert.equal(match.type === 'watch.match' && match.file.name, 'syllabus-2026.txt');
      assert.equal(match.type === 'watch.match' && match.event, 'added');

      // 16 watches per queue: the 17th is refused by every superpeer.
      for (let i = 2; i <= 17; i++)
        client.register(`foreign-watch-${String(i).padStart(4, '0')}`, `word${i}`);
      const refused = await waitUntil(
        () => {
          const list = client.notices.filter((n) => n.type === 'watch.refused');
          return list.length >= 2 ? list : undefined;
        },
        { timeoutMs: 5000, what: 'two refusals (one per superpeer)' },
      );
      for (const notice of refused) {
        assert.equal(notice.type === 'watch.refused' && notice.error.code, 'WATCH_LIMIT');
        assert.equal(notice.watchId, 'foreign-watch-0017');
      }
      // A query without words is refused too.
      client.register('foreign-watch-bad1', '---');
      await waitUntil(
        () => client.notices.some((n) => n.type === 'watch.refused' && n.watchId === 'foreign-watch-bad1'),
        { timeoutMs: 5000, what: 'the wordless query refused' },
      );
    } finally {
      await client.connection.close();
    }
    // Its queue is gone: the next notice bounces and every superpeer drops its watches at once.
    await fs.writeFile(path.join(net.peers[0]!.shareDir, 'syllabus-2027.txt'), 'week 1\n');
    await waitUntil(() => logged(net.superpeer, 'watcher gone; dropped its watches').length > 0, {
      timeoutMs: 5000,
      what: 'the superpeer to drop the gone watcher’s watches',
    });
  });

  test('garbage on the watches exchange is dead-lettered; a foreign queue is never answered; watches still work', async () => {
    const names = topologyNames(net.namespace);
    const client = await foreignWatcher(net.namespace);
    try {
      const before = logged(net.superpeer, 'refused a message').length;
      client.channel.publish(names.watchesExchange, '', Buffer.from('not json'));
      client.channel.publish(
        names.watchesExchange,
        '',
        Buffer.from(JSON.stringify({ v: 1, type: 'watch.register' })),
      );
      client.channel.publish(names.watchesExchange, '', Buffer.alloc(10_000, 0x20));
      // Aimed at a queue of another namespace: refused without a word to it.
      client.channel.publish(
        names.watchesExchange,
        '',
        Buffer.from(
          JSON.stringify({
            v: 1,
            type: 'watch.register',
            watchId: 'foreign-queue-01',
            query: 'x',
            queue: `${client.queue.replace(net.namespace, 'other-network')}`,
            leaseMs: 30_000,
            includeRemoved: false,
          }),
        ),
      );
      await waitUntil(() => logged(net.superpeer, 'refused a message').length >= before + 3, {
        timeoutMs: 5000,
        what: 'three refusals logged by the superpeer',
      });
      await waitUntil(
        () =>
          net.superpeer.records.some((r) => r.message === 'refused a watch' && r.code === 'QUEUE_FOREIGN'),
        {
          timeoutMs: 5000,
          what: 'the foreign queue refused',
        },
      );
      client.register('after-garbage-01', 'transcript');
      await waitUntil(
        () => client.notices.some((n) => n.type === 'watch.accepted' && n.watchId === 'after-garbage-01'),
        { timeoutMs: 5000, what: 'a valid watch accepted after the garbage' },
      );
      assert.ok(net.superpeer.alive);
    } finally {
      await client.connection.close();
    }
  });

  test('a watch survives its superpeers being killed and started again', async (t) => {
    const watch = new WatchProcess(['exam', '--json'], net.env);
    try {
      await watch.waitAccepted();
      // Kill every superpeer process (never the broker), then start a new one.
      for (const service of superpeers) service.signal('SIGKILL');
      await Promise.all(superpeers.map((service) => service.exited));
      const fresh = await net.startSuperpeer('sp3');
      const restartedAt = Date.now();
      await fresh.waitForLog((r) => r.message === 'watch registered', 10_000, 'the watch registered again');
      t.diagnostic(`watch known to the new superpeer ${Date.now() - restartedAt} ms after it was ready`);
      await fresh.waitForLog((r) => r.message === 'superpeer serving searches', 10_000, 'warm');
      const droppedAt = Date.now();
      await fs.writeFile(path.join(net.peers[0]!.shareDir, 'exam-questions.txt'), 'q1\n');
      const added = await waitUntil(() => watch.json().find((m) => m.name === 'exam-questions.txt'), {
        timeoutMs: 10_000,
        what: 'the match after the restart',
      });
      t.diagnostic(`after the restart, a new file printed ${added.atMs - droppedAt} ms after it was written`);
      assert.ok(added.atMs - droppedAt < 2000);
    } finally {
      watch.signal('SIGINT');
    }
    assert.equal(await watch.exited, 0);
  });
});
