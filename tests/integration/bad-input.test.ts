import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, randomBytes, randomUUID, sign } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import amqp from 'amqplib';
import { createLogger } from '../../libs/logging/index.js';
import {
  DEAD_LETTER_BODY_BYTES,
  ErrorReplySchema,
  fileUrl,
  HEADERS,
  MAX_RPC_REQUEST_BYTES,
  NetworkMessageSchema,
  PeerEventSchema,
  topologyNames,
} from '../../libs/protocol/index.js';
import { connectAmqpClient, type NetworkClient } from '../../services/cli/client.js';
import {
  AMQP_URL,
  makeTempDir,
  runCli,
  startNetwork,
  type TestNetwork,
  waitUntil,
  withAmqp,
} from '../helpers/network.js';

/*
 * Hostile input against the real services (superpeer and three peers as processes, a real broker): malformed
 * AMQP messages from a plain client, forged peer events, invalid RPC requests, hostile HTTP paths and
 * ranges, and a peer serving bytes that do not match what it announced. Each test asserts what was kept.
 */

const sha = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

/**
 * A key pair of an outsider, with the same encodings the peers use (DER SPKI base64, base64 signature), and
 * the peer id that key owns (hex of the first 20 bytes of SHA-256 of the DER key).
 */
function makeAttacker() {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return {
    publicKeyDer: der.toString('base64'),
    peerId: createHash('sha256').update(der).digest().subarray(0, 20).toString('hex'),
    sign: (body: Buffer) => sign(null, body, privateKey).toString('base64'),
  };
}
type Attacker = ReturnType<typeof makeAttacker>;

const json = (value: unknown) => Buffer.from(JSON.stringify(value), 'utf8');

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** A request with the path sent exactly as given: `fetch` and `URL` would normalize `..`, `\` and `//` away. */
function rawRequest(
  baseUrl: string,
  rawPath: string,
  headers: Record<string, string> = {},
  method = 'GET',
): Promise<RawResponse> {
  const base = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const request = http.request(
      { host: base.hostname, port: Number(base.port), path: rawPath, method, headers, agent: false },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            body: Buffer.concat(chunks),
          }),
        );
        response.on('error', reject);
      },
    );
    request.setTimeout(5000, () => request.destroy(new Error(`${method} ${rawPath.slice(0, 80)} timed out`)));
    request.on('error', reject);
    if (method === 'GET' || method === 'HEAD') {
      request.end();
    } else {
      // With a Content-Length, as a browser or curl sends it, so that only routing decides the status.
      const body = Buffer.from('uploaded by a stranger');
      request.setHeader('Content-Length', body.length);
      request.end(body);
    }
  });
}

/** Every regular file or link under `dir`, relative, recursively. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => !entry.isDirectory())
    .map((entry) => path.relative(dir, path.join(entry.parentPath, entry.name)));
}

/**
 * Everything read from the dead-letter queue, by messageId, over the whole file. Each section adds what it
 * expects; the last test checks the whole ledger, so a late duplicate or a stray refusal shows up there.
 */
class DeadLetterLedger {
  readonly counts = new Map<string, number>();
  readonly expected = new Map<string, number>();
  /** messageIds of entries that came without a non-empty x-p2p-reject-reason. */
  readonly withoutReason: string[] = [];
  readonly reasons = new Map<string, string[]>();
  /** Ids whose reason header a test of their own asserts; the whole-ledger check counts them only. */
  readonly reasonCheckedElsewhere = new Set<string>();
  /** Each entry's body and its x-p2p-original-bytes header (a number when the body was cut), by messageId. */
  readonly bodies = new Map<string, Array<{ body: Buffer; originalBytes: unknown }>>();

  constructor(
    private readonly channel: amqp.Channel,
    private readonly queue: string,
  ) {}

  expect(messageId: string, times: number): void {
    this.expected.set(messageId, (this.expected.get(messageId) ?? 0) + times);
  }

  async drain(): Promise<void> {
    for (;;) {
      const message = await this.channel.get(this.queue, { noAck: true });
      if (message === false) return;
      const id = String(message.properties.messageId ?? '(no messageId)');
      this.counts.set(id, (this.counts.get(id) ?? 0) + 1);
      const reason = message.properties.headers?.[HEADERS.rejectReason];
      const text = Buffer.isBuffer(reason)
        ? reason.toString('utf8')
        : typeof reason === 'string'
          ? reason
          : '';
      if (text.length === 0) this.withoutReason.push(id);
      this.reasons.set(id, [...(this.reasons.get(id) ?? []), text]);
      const originalBytes = message.properties.headers?.[HEADERS.originalBytes];
      this.bodies.set(id, [...(this.bodies.get(id) ?? []), { body: message.content, originalBytes }]);
    }
  }

  /** Drains until every listed id reached its expected count (or the deadline passes). */
  async waitFor(ids: readonly string[], timeoutMs: number, what: string): Promise<void> {
    await waitUntil(
      async () => {
        await this.drain();
        return ids.every((id) => (this.counts.get(id) ?? 0) >= (this.expected.get(id) ?? 0));
      },
      { timeoutMs, intervalMs: 100, what },
    ).catch((err: Error) => {
      throw new Error(`${err.message}; missing: ${this.describe(ids, (got, want) => got < want)}`);
    });
  }

  /** Asserts each listed id was dead-lettered exactly as often as expected, each time with a reason. */
  assertExact(ids: readonly string[]): void {
    const wrong = this.describe(ids, (got, want) => got !== want);
    assert.equal(wrong, '', `dead-letter counts differ from the expected ones: ${wrong}`);
    const unreasoned = this.withoutReason.filter(
      (id) => ids.includes(id) && !this.reasonCheckedElsewhere.has(id),
    );
    assert.deepEqual(unreasoned, [], 'every dead-lettered copy carries x-p2p-reject-reason');
  }

  private describe(ids: readonly string[], bad: (got: number, want: number) => boolean): string {
    return ids
      .map((id) => ({ id, got: this.counts.get(id) ?? 0, want: this.expected.get(id) ?? 0 }))
      .filter(({ got, want }) => bad(got, want))
      .map(({ id, got, want }) => `${id} ×${got} (want ×${want})`)
      .join(', ');
  }
}

describe('hostile input against the running services', () => {
  let net: TestNetwork;
  let client: NetworkClient;
  let connection: amqp.ChannelModel;
  let ledger: DeadLetterLedger;
  let names: ReturnType<typeof topologyNames>;
  /** Prefix of every messageId this file publishes, so nothing else is mistaken for ours. */
  const tag = `bad-${process.pid}-${randomBytes(3).toString('hex')}`;

  const common = randomBytes(200_000);
  const rangeTarget = randomBytes(1000);
  const photo = randomBytes(120_000);
  const shares: Array<Record<string, string | Buffer>> = [
    {
      'alpha-report.txt': 'alpha peer one\n',
      'music/Holiday Song.mp3': randomBytes(30_000),
      'common/guide.bin': common,
      'data/range-target.bin': rangeTarget,
    },
    { 'beta-notes.md': '# beta peer two\n', 'common/guide.bin': common },
    { 'gamma-photo.jpg': photo, 'common/guide.bin': common },
  ];
  /** Searches whose answers must not change whatever the hostile input. Include names attackers used. */
  const probeQueries = [
    'guide',
    'alpha',
    'beta',
    'gamma',
    'holi song',
    'range target',
    sha(common),
    'intruder',
    'evil',
    'passwd',
    'etc',
    'hidden',
  ];

  const searchAll = async () => {
    const answers: Record<string, unknown[]> = {};
    for (const query of probeQueries) {
      const { results } = await client.search(query, 1000);
      answers[query] = results
        .map((r) => ({ ...r }))
        .sort((a, b) => `${a.peerId}/${a.name}`.localeCompare(`${b.peerId}/${b.name}`));
    }
    return answers;
  };

  /** The superpeer's peer list and each peer's own view of the network (both are "the index"). */
  const indexState = async () => {
    const strip = (peers: Array<Record<string, unknown>>) =>
      peers
        .map(({ peerId, instanceId, url, seq, fileCount, totalBytes }) => ({
          peerId,
          instanceId,
          url,
          seq,
          fileCount,
          totalBytes,
        }))
        .sort((a, b) => String(a.peerId).localeCompare(String(b.peerId)));
    const superpeer = strip((await client.peers()) as unknown as Array<Record<string, unknown>>);
    const views: unknown[] = [];
    for (const peer of net.peers) {
      const response = await fetch(`${peer.url}/api/peers`);
      const body = (await response.json()) as { peers: Array<Record<string, unknown>> };
      views.push(strip(body.peers));
    }
    return { superpeer, views };
  };

  const assertAllAlive = () => {
    assert.ok(net.superpeer.alive, `superpeer died; stderr: ${net.superpeer.stderr.join('\n')}`);
    for (const peer of net.peers)
      assert.ok(peer.process.alive, `${peer.process.name} died; stderr: ${peer.process.stderr.join('\n')}`);
  };

  const publish = (exchange: string, messages: Array<{ id: string; body: Buffer; signature?: string }>) =>
    withAmqp(async (channel) => {
      for (const message of messages) {
        channel.publish(exchange, '', message.body, {
          messageId: message.id,
          contentType: 'application/json',
          headers: message.signature === undefined ? {} : { [HEADERS.signature]: message.signature },
        });
      }
    });

  /**
   * A refused message published after the others: consumers settle in queue order, so once its copies are in
   * the dead-letter queue every earlier message has been settled (accepted or refused) too.
   */
  const fence = async (exchange: string, consumers: number, label: string): Promise<string> => {
    const id = `${tag}-fence-${label}`;
    ledger.expect(id, consumers);
    await publish(exchange, [{ id, body: Buffer.from(`fence ${label}`) }]);
    return id;
  };

  before(async () => {
    // A short rescan so the symlink test sees a full rescan as well as the watcher within its window.
    net = await startNetwork({ label: 'badin', peers: shares, env: { PEER_RESCAN_INTERVAL_MS: '500' } });
    names = topologyNames(net.namespace);
    client = await connectAmqpClient({
      amqpUrl: net.env.AMQP_URL!,
      namespace: net.namespace,
      timeoutMs: 3000,
      logger: createLogger({ service: 'test', level: 'error', format: 'json' }),
    });
    connection = await amqp.connect(AMQP_URL);
    ledger = new DeadLetterLedger(await connection.createChannel(), names.deadLetterQueue);
    // Everything indexed, and every peer's view complete, before anything is compared with it.
    await waitUntil(
      async () => {
        const state = await indexState();
        return (
          state.superpeer.length === 3 &&
          state.views.every((view) => (view as unknown[]).length === 3) &&
          (await client.search('guide', 10)).results.length === 3
        );
      },
      { timeoutMs: 15_000, intervalMs: 100, what: 'the three peers in the index and in every view' },
    );
  });

  after(async () => {
    await client?.close();
    await connection?.close().catch(() => undefined);
    await net?.stop();
  });

  test('malformed messages on N.events and N.network are each dead-lettered once per consumer, and nothing changes', async () => {
    const searchesBefore = await searchAll();
    const stateBefore = await indexState();
    const attacker = makeAttacker();
    const file = { name: 'intruder-file.txt', size: 5, sha256: sha('hello'), mtimeMs: 1_764_072_000_000 };
    const announce = {
      v: 1,
      type: 'peer.announce',
      peerId: attacker.peerId,
      instanceId: randomUUID(),
      url: 'http://127.0.0.1:9',
      seq: 1,
      publicKey: attacker.publicKeyDer,
      chunkIndex: 0,
      chunkCount: 1,
      files: [file],
    };
    const peerState = {
      v: 1,
      type: 'network.peer-state',
      superpeerId: 'sp-forged',
      peerId: announce.peerId,
      publicKey: attacker.publicKeyDer,
      instanceId: announce.instanceId,
      url: announce.url,
      seq: 1,
      chunkIndex: 0,
      chunkCount: 1,
      files: [file],
    };
    // The templates are valid: each corpus entry below differs from one of them by one defect.
    assert.ok(PeerEventSchema.safeParse(announce).success);
    assert.ok(NetworkMessageSchema.safeParse(peerState).success);

    const withFiles = (template: Record<string, unknown>, files: unknown[]) => ({ ...template, files });
    const withFile = (template: Record<string, unknown>, patch: Record<string, unknown>) =>
      withFiles(template, [{ ...file, ...patch }]);
    const without = (template: Record<string, unknown>, key: string) => {
      const copy = { ...template };
      delete copy[key];
      return copy;
    };
    const manyFiles = Array.from({ length: 2001 }, (_, i) => ({ ...file, name: `many/file-${i}.txt` }));
    const hostileNames: Record<string, string> = {
      'name-dotdot': '../../etc/passwd',
      'name-absolute': '/abs',
      'name-backslash': 'a\\b',
      'name-nul': 'a\u0000b',
      'name-control': 'a\u001bb\u007f',
      'name-newline': 'line\nbreak.txt',
      'name-hidden': '.hidden',
      'name-hidden-segment': 'dir/.hidden/x.txt',
      'name-double-slash': 'a//b',
      'name-trailing-slash': 'dir/',
      'name-dot-segment': 'a/./b',
      'name-empty': '',
      'name-2000-chars': 'n'.repeat(2000),
    };

    /** One defect per entry; the body is built from the exchange's template. */
    const corpus = (template: Record<string, unknown>): Array<[string, Buffer]> => [
      ['not-json', Buffer.from('this is { not json')],
      ['empty-body', Buffer.alloc(0)],
      ['json-array', json([template])],
      ['json-null', Buffer.from('null')],
      ['json-string', Buffer.from('"peer.announce"')],
      ['wrong-v', json({ ...template, v: 2 })],
      ['v-as-string', json({ ...template, v: '1' })],
      ['unknown-type', json({ ...template, type: 'peer.takeover' })],
      ['missing-type', json(without(template, 'type'))],
      ['missing-files', json(without(template, 'files'))],
      ['missing-peerId', json(without(template, 'peerId'))],
      ['seq-as-string', json({ ...template, seq: '1' })],
      ['seq-zero', json({ ...template, seq: 0 })],
      ['seq-fraction', json({ ...template, seq: 1.5 })],
      ['peerId-hostile', json({ ...template, peerId: '../../etc' })],
      ['peerId-not-of-key', json({ ...template, peerId: 'f'.repeat(40) })],
      ['url-credentials', json({ ...template, url: 'http://user:pass@127.0.0.1:9' })],
      ['url-javascript', json({ ...template, url: 'javascript:alert(1)' })],
      ['negative-size', json(withFile(template, { size: -1 }))],
      ['size-as-string', json(withFile(template, { size: '5' }))],
      ['sha256-short', json(withFile(template, { sha256: sha('hello').slice(1) }))],
      ['sha256-uppercase', json(withFile(template, { sha256: sha('hello').toUpperCase() }))],
      ['files-not-array', json({ ...template, files: file })],
      ...Object.entries(hostileNames).map(([label, name]): [string, Buffer] => [
        label,
        json(withFile(template, { name })),
      ]),
      ['2001-files', json(withFiles(template, manyFiles))],
      // Valid JSON of the right shape, just too large: refused before parsing.
      ['over-4-MiB', json({ ...template, padding: 'x'.repeat(4 * 1024 * 1024) })],
    ];

    type Outgoing = { id: string; body: Buffer; signature?: string };
    const signBy = (body: Buffer) => attacker.sign(body);
    const validAnnounce = json(announce);
    const events: Outgoing[] = corpus(announce).map(([label, body]) => ({
      id: `${tag}-events-${label}`,
      body,
      // Signed by the key inside: a signature never excuses a bad body.
      signature: signBy(body),
    }));
    const network: Outgoing[] = corpus(peerState).map(([label, body]) => ({
      id: `${tag}-network-${label}`,
      body,
    }));
    for (const exchangeMessages of [events, network]) {
      const prefix = exchangeMessages === events ? 'events' : 'network';
      // A valid-shaped, otherwise acceptable announce without a signature, and one whose signature is of
      // other bytes (well-formed, so only verification can refuse it).
      exchangeMessages.push({ id: `${tag}-${prefix}-announce-unsigned`, body: validAnnounce });
      exchangeMessages.push({
        id: `${tag}-${prefix}-announce-bad-signature`,
        body: validAnnounce,
        signature: signBy(json({ ...announce, seq: 2 })),
      });
      // The handler's own rule (not the schema's): a chunk past the end of its announce.
      const badChunk = json({ ...announce, chunkIndex: 3, chunkCount: 1 });
      exchangeMessages.push({
        id: `${tag}-${prefix}-chunk-past-end`,
        body: badChunk,
        signature: signBy(badChunk),
      });
    }
    const consumersOfNetwork = net.peers.length;
    for (const message of events) ledger.expect(message.id, 1);
    for (const message of network) ledger.expect(message.id, consumersOfNetwork);

    await publish(names.eventsExchange, events);
    await publish(names.networkExchange, network);
    const fences = [
      await fence(names.eventsExchange, 1, 'corpus-events'),
      await fence(names.networkExchange, consumersOfNetwork, 'corpus-network'),
    ];
    const ids = [...events, ...network].map((message) => message.id);
    await ledger.waitFor([...fences, ...ids], 20_000, 'every corpus message in the dead-letter queue');
    ledger.assertExact([...fences, ...ids]);
    // What the dead-letter queue keeps of a refused body: all of it up to 64 KiB, else its first 64 KiB and
    // the length it had (10,000 entries of the broker's largest bodies would otherwise fit there).
    for (const { id, body } of [...events, ...network]) {
      const kept = ledger.bodies.get(id) ?? [];
      assert.ok(kept.length > 0, `${id} kept`);
      for (const entry of kept) {
        if (body.length > DEAD_LETTER_BODY_BYTES) {
          assert.equal(entry.body.length, DEAD_LETTER_BODY_BYTES, `${id}: body cut`);
          assert.ok(entry.body.equals(body.subarray(0, DEAD_LETTER_BODY_BYTES)), `${id}: its first bytes`);
          assert.equal(entry.originalBytes, body.length, `${id}: ${HEADERS.originalBytes}`);
        } else {
          assert.ok(entry.body.equals(body), `${id}: body unchanged`);
          assert.equal(entry.originalBytes, undefined, `${id}: no ${HEADERS.originalBytes}`);
        }
      }
    }
    assert.ok(
      [...events, ...network].some(({ body }) => body.length > DEAD_LETTER_BODY_BYTES),
      'the corpus has a body over the cut',
    );
    const unsigned = ledger.reasons.get(`${tag}-events-announce-unsigned`) ?? [];
    assert.ok(unsigned.length > 0, 'the unsigned announce was refused');
    assert.ok(
      unsigned.every((r) => /unsigned/.test(r)),
      `unsigned announce refused for being unsigned: ${unsigned}`,
    );
    const badSignature = ledger.reasons.get(`${tag}-events-announce-bad-signature`) ?? [];
    assert.ok(badSignature.length > 0, 'the badly signed announce was refused');
    assert.ok(
      badSignature.every((r) => /signature/.test(r)),
      `bad signature refused for its signature: ${badSignature}`,
    );

    assertAllAlive();
    assert.deepEqual(await searchAll(), searchesBefore, 'search results are exactly those of before');
    assert.deepEqual(
      await indexState(),
      stateBefore,
      'the superpeer’s peer list and every peer’s view are unchanged',
    );
  });

  test('a message whose headers fill the 64 KiB AMQP table is still dead-lettered with its reason', async () => {
    // amqplib encodes a header table into a 64 KiB buffer. The refused message's own headers plus the three
    // x-p2p-* ones no longer fit, so the republish throws and only the nack fallback (x-death, no reason) is
    // left. Any client can send such headers; the reason should not be lost to them.
    const headers = { 'x-padding': 'h'.repeat(65_400) };
    const ids = { events: `${tag}-bigheaders-events`, network: `${tag}-bigheaders-network` };
    ledger.expect(ids.events, 1);
    ledger.expect(ids.network, net.peers.length);
    ledger.reasonCheckedElsewhere.add(ids.events);
    ledger.reasonCheckedElsewhere.add(ids.network);
    await withAmqp(async (channel) => {
      channel.publish(names.eventsExchange, '', Buffer.from('not json'), { messageId: ids.events, headers });
      channel.publish(names.networkExchange, '', Buffer.from('not json'), {
        messageId: ids.network,
        headers,
      });
    });
    const fences = [
      await fence(names.eventsExchange, 1, 'bigheaders-events'),
      await fence(names.networkExchange, net.peers.length, 'bigheaders-network'),
    ];
    const all = [...fences, ids.events, ids.network];
    await ledger.waitFor(all, 10_000, 'the big-header messages in the dead-letter queue');
    assertAllAlive();
    ledger.reasonCheckedElsewhere.clear();
    try {
      ledger.assertExact(all);
    } finally {
      ledger.reasonCheckedElsewhere.add(ids.events);
      ledger.reasonCheckedElsewhere.add(ids.network);
    }
  });

  test('events forged for a real peer id with another key are refused and change nothing', async () => {
    const victim = net.peers[1]!;
    const known = (await client.peers()).find((peer) => peer.peerId === victim.peerId);
    assert.ok(known, 'the victim is registered');
    const stateBefore = await indexState();
    const searchesBefore = await searchAll();
    const attacker = makeAttacker();
    const evil = { name: 'evil-upload.exe', size: 6, sha256: sha('virus!'), mtimeMs: 1_764_072_000_000 };
    const forged: Record<string, Buffer> = {
      delta: json({
        v: 1,
        type: 'peer.delta',
        peerId: victim.peerId,
        instanceId: known.instanceId,
        seq: known.seq + 1,
        upserted: [evil],
        removed: ['beta-notes.md', 'common/guide.bin'],
      }),
      leave: json({ v: 1, type: 'peer.leave', peerId: victim.peerId, instanceId: known.instanceId }),
      heartbeat: json({
        v: 1,
        type: 'peer.heartbeat',
        peerId: victim.peerId,
        instanceId: known.instanceId,
        seq: known.seq,
        fileCount: 1,
      }),
      // The attacker's own key and a signature that verifies with it: still not the key the id is bound to.
      announce: json({
        v: 1,
        type: 'peer.announce',
        peerId: victim.peerId,
        instanceId: randomUUID(),
        url: 'http://127.0.0.1:9',
        seq: 1,
        publicKey: attacker.publicKeyDer,
        chunkIndex: 0,
        chunkCount: 1,
        files: [evil],
      }),
    };
    const messages = Object.entries(forged).map(([label, body]) => ({
      id: `${tag}-forged-${label}`,
      body,
      signature: attacker.sign(body),
    }));
    for (const message of messages) {
      // The announce names the victim's id with the attacker's key: the id is not derived from that key.
      assert.equal(
        PeerEventSchema.safeParse(JSON.parse(message.body.toString())).success,
        !message.id.endsWith('-announce'),
        message.id,
      );
      ledger.expect(message.id, 1);
    }
    await publish(names.eventsExchange, messages);
    const fenceId = await fence(names.eventsExchange, 1, 'forged');
    const ids = [fenceId, ...messages.map((message) => message.id)];
    // Check the index before failing on the ledger, so a forgery that got through says what it did.
    const settled = await ledger.waitFor([fenceId], 10_000, 'the fence after the forged events').then(
      () => undefined,
      (err: Error) => err,
    );
    assert.equal(settled, undefined, settled?.message);

    const beta = (await client.search('beta notes', 10)).results;
    assert.deepEqual(
      beta.map((r) => [r.peerId, r.url]),
      [[victim.peerId, fileUrl(victim.url, 'beta-notes.md')]],
      'the victim’s file is still found, at the victim’s URL',
    );
    assert.deepEqual((await client.search('evil upload', 10)).results, [], 'the forged upsert is not found');
    assert.deepEqual(await searchAll(), searchesBefore);
    assert.deepEqual(await indexState(), stateBefore, 'peer list and views unchanged');
    ledger.assertExact(ids);
    assertAllAlive();
  });

  test('invalid RPC requests get a MESSAGE_INVALID error reply with their correlationId', async () => {
    const channel = await connection.createChannel();
    const replies = new Map<string, { body: Buffer; correlationId: unknown }>();
    try {
      await channel.consume(
        'amq.rabbitmq.reply-to',
        (message) => {
          if (message)
            replies.set(String(message.properties.correlationId), {
              body: message.content,
              correlationId: message.properties.correlationId,
            });
        },
        { noAck: true },
      );
      const requests: Record<string, Buffer> = {
        'not-json': Buffer.from('{{{ not json'),
        'unknown-type': json({ v: 1, type: 'rpc.shutdown' }),
        'empty-query': json({ v: 1, type: 'rpc.search', query: '' }),
        'blank-query': json({ v: 1, type: 'rpc.search', query: '   ' }),
        'limit-5000': json({ v: 1, type: 'rpc.search', query: 'guide', limit: 5000 }),
        'wrong-v': json({ v: 2, type: 'rpc.search', query: 'guide' }),
        // Valid JSON of a valid search, padded past the requests' 64 KiB: refused unparsed.
        'over-64-KiB': json({
          v: 1,
          type: 'rpc.search',
          query: 'guide',
          pad: 'x'.repeat(MAX_RPC_REQUEST_BYTES),
        }),
        // A valid search with a field nested 40 levels deep: refused before JSON.parse builds the levels.
        'nested-40': Buffer.from(
          `{"v":1,"type":"rpc.search","query":"guide","pad":${'['.repeat(40)}${']'.repeat(40)}}`,
        ),
      };
      const reasons: Record<string, RegExp> = {
        'over-64-KiB': new RegExp(`exceeds ${MAX_RPC_REQUEST_BYTES}`),
        'nested-40': /nesting deeper than 32 levels/,
      };
      const control = `${tag}-rpc-control`;
      const sent = Object.entries(requests).map(([label, body]) => ({ id: `${tag}-rpc-${label}`, body }));
      for (const { id } of sent) ledger.expect(id, 1);
      for (const { id, body } of [
        ...sent,
        { id: control, body: json({ v: 1, type: 'rpc.search', query: 'guide' }) },
      ]) {
        channel.sendToQueue(names.rpcQueue, body, {
          replyTo: 'amq.rabbitmq.reply-to',
          correlationId: id,
          messageId: id,
          expiration: '10000',
          contentType: 'application/json',
        });
      }
      await waitUntil(() => replies.size >= sent.length + 1, {
        timeoutMs: 10_000,
        what: `${sent.length + 1} RPC replies (got ${replies.size})`,
      });
      // The control request proves the harness: a valid request is answered normally.
      const controlReply = JSON.parse(replies.get(control)!.body.toString()) as {
        ok: boolean;
        results: unknown[];
      };
      assert.equal(controlReply.ok, true);
      assert.equal(controlReply.results.length, 3);
      for (const { id } of sent) {
        const reply = replies.get(id);
        assert.ok(reply, `a reply to ${id}`);
        assert.equal(reply.correlationId, id);
        const parsed = ErrorReplySchema.safeParse(JSON.parse(reply.body.toString()));
        assert.ok(parsed.success, `${id}: an error reply, got ${reply.body.toString()}`);
        assert.equal(parsed.data.ok, false);
        assert.equal(parsed.data.error.code, 'MESSAGE_INVALID', `${id}: ${parsed.data.error.message}`);
        assert.ok(parsed.data.error.message.length > 0);
        const reason = reasons[id.slice(`${tag}-rpc-`.length)];
        if (reason) assert.match(parsed.data.error.message, reason, id);
      }
      const ids = sent.map((request) => request.id);
      await ledger.waitFor(ids, 10_000, 'the invalid RPC requests in the dead-letter queue');
      ledger.assertExact(ids);
    } finally {
      await channel.close();
    }
    assertAllAlive();
  });

  test('hostile HTTP paths are refused with 4xx and leak nothing; ranges are exact', async () => {
    const peer = net.peers[0]!;
    const outside = await makeTempDir('outside');
    try {
      const secret = `OUTSIDE-SECRET-${randomBytes(8).toString('hex')}`;
      await fs.writeFile(path.join(outside, 'secret.txt'), secret);
      // Planted after the peer started; a canary file written after them shows when the share saw changes.
      await fs.symlink(path.join(outside, 'secret.txt'), path.join(peer.shareDir, 'leak.txt'));
      await fs.symlink(outside, path.join(peer.shareDir, 'leakdir'));
      await fs.symlink('/etc/passwd', path.join(peer.shareDir, 'passwd-link'));
      await fs.writeFile(path.join(peer.shareDir, 'watch-canary.txt'), 'canary');
      const plantedAt = Date.now();
      let canarySeen = false;
      const listed = new Set<string>();
      await waitUntil(
        async () => {
          const response = await fetch(`${peer.url}/files`);
          const { files } = (await response.json()) as { files: Array<{ name: string }> };
          for (const entry of files) listed.add(entry.name);
          canarySeen ||= files.some((entry) => entry.name === 'watch-canary.txt');
          return canarySeen && Date.now() - plantedAt >= 1500;
        },
        { timeoutMs: 10_000, intervalMs: 100, what: 'the canary in the listing, and 1.5 s of listings' },
      );
      const leaked = [...listed].filter((name) => /leak|passwd/.test(name));
      assert.deepEqual(leaked, [], 'no symlink is ever listed');

      const hostilePaths = [
        '/files/../../etc/passwd',
        '/files/..%2f..%2fetc%2fpasswd',
        '/files/%2e%2e/%2e%2e/etc/passwd',
        '/files/%2E%2E/%2E%2E/etc/passwd',
        '/files/%252e%252e%252fetc%252fpasswd',
        '/files/..\\..\\etc\\passwd',
        '/files/%5c..%5cetc',
        '/files/..%5c..%5cetc%5cpasswd',
        '/files//etc/passwd',
        '/files/%2fetc%2fpasswd',
        '/files/%00',
        '/files/a%00b',
        '/files/alpha-report.txt%00.jpg',
        '/files/%ZZ',
        '/files/%',
        '/files/.p2p/identity.json',
        '/files/.p2p%2fidentity.json',
        '/files/%2ep2p/identity.json',
        '/files/%2Ep2p%2Fidentity.json',
        '/files/./.p2p/identity.json',
        '/files/data/../.p2p/identity.json',
        '/files/leak.txt',
        '/files/leakdir/secret.txt',
        '/files/passwd-link',
        `/files/${'a'.repeat(5000)}`,
      ];
      const shareBefore = (await filesUnder(peer.shareDir)).sort();
      for (const method of ['PUT', 'POST', 'DELETE', 'PATCH']) {
        for (const rawPath of ['/files/uploaded.txt', '/files/alpha-report.txt', '/files/../../tmp/x']) {
          const response = await rawRequest(peer.url, rawPath, { 'Content-Type': 'text/plain' }, method);
          // Only GET and HEAD are routed: every other method finds no route.
          assert.equal(response.status, 404, `${method} ${rawPath} → ${response.status}`);
        }
      }
      assert.equal(
        (await rawRequest(peer.url, '/files/alpha-report.txt/')).status,
        404,
        'strict trailing slash',
      );
      for (const rawPath of hostilePaths) {
        const response = await rawRequest(peer.url, rawPath);
        const text = response.body.toString('latin1');
        const label = `${rawPath.slice(0, 60)} → ${response.status}`;
        assert.ok(response.status >= 400 && response.status < 500, `${label}: 4xx`);
        assert.ok(!text.includes(secret), `${label}: the outside file's content`);
        assert.ok(!text.includes('PRIVATE KEY'), `${label}: the identity's private key`);
        assert.ok(!/root:.*:0:0:/.test(text), `${label}: /etc/passwd`);
      }
      assert.ok(peer.process.alive);
      assert.equal((await fetch(`${peer.url}/healthz`)).status, 200, 'the peer still answers');
      assert.deepEqual(
        (await filesUnder(peer.shareDir)).sort(),
        shareBefore,
        'nothing written into the share',
      );
      assert.deepEqual((await client.search('leak', 10)).results, [], 'no symlink reached the index');
      assert.deepEqual((await client.search('secret', 10)).results, []);

      // Ranges on a real file.
      const target = new URL(fileUrl(peer.url, 'data/range-target.bin')).pathname;
      const size = rangeTarget.length;
      const head = await rawRequest(peer.url, target, { Range: 'bytes=0-9' });
      assert.equal(head.status, 206);
      assert.deepEqual(head.body, rangeTarget.subarray(0, 10));
      assert.equal(head.headers['content-range'], `bytes 0-9/${size}`);
      const tail = await rawRequest(peer.url, target, { Range: 'bytes=-5' });
      assert.equal(tail.status, 206);
      assert.deepEqual(tail.body, rangeTarget.subarray(size - 5));
      assert.equal(tail.headers['content-range'], `bytes ${size - 5}-${size - 1}/${size}`);
      const beyond = await rawRequest(peer.url, target, { Range: 'bytes=999999999-' });
      assert.equal(beyond.status, 416);
      assert.equal(beyond.headers['content-range'], `bytes */${size}`);
      for (const range of ['bytes=abc', 'bytes=5-2', 'items=0-1', 'bytes=--1', 'bytes=', 'bytes=-0']) {
        const response = await rawRequest(peer.url, target, { Range: range });
        assert.equal(response.status, 416, `Range: ${range}`);
        assert.equal(response.headers['content-range'], `bytes */${size}`, `Range: ${range}`);
        assert.ok(!response.body.includes(rangeTarget.subarray(0, 16)), `Range: ${range}: no file bytes`);
      }
      const whole = await rawRequest(peer.url, target);
      assert.equal(whole.status, 200);
      assert.deepEqual(whole.body, rangeTarget);
    } finally {
      for (const name of ['leak.txt', 'leakdir', 'passwd-link'])
        await fs.rm(path.join(peer.shareDir, name), { force: true });
      await fs.rm(outside, { recursive: true, force: true });
    }
    assertAllAlive();
  });

  test('bytes that fail the SHA-256 check never land under a final name', async () => {
    // An outsider joins properly (own id, own key) and announces files it serves wrong: garbage of the right
    // size, or a body cut short. Where a real peer has the same content, `p2p get` still ends verified.
    const attacker: Attacker = makeAttacker();
    const peerId = attacker.peerId;
    const instanceId = randomUUID();
    const garbageTruth = randomBytes(4096);
    const truncatedTruth = randomBytes(64 * 1024);
    const served: Record<string, { size: number; mode: 'garbage' | 'cut' }> = {
      '/files/mallory-garbage.bin': { size: garbageTruth.length, mode: 'garbage' },
      '/files/mallory-truncated.bin': { size: truncatedTruth.length, mode: 'cut' },
      '/files/common/guide.bin': { size: common.length, mode: 'garbage' },
    };
    const claims: Record<string, string> = {
      '/files/mallory-garbage.bin': sha(garbageTruth),
      '/files/mallory-truncated.bin': sha(truncatedTruth),
      '/files/common/guide.bin': sha(common),
    };
    const server = http.createServer((req, res) => {
      const path_ = (req.url ?? '').split('?')[0]!;
      const file = served[path_];
      if (!file) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, {
        'Content-Length': String(file.size),
        ETag: `"${claims[path_]}"`,
        'Accept-Ranges': 'none',
      });
      if (file.mode === 'garbage') res.end(randomBytes(file.size));
      else res.write(randomBytes(Math.floor(file.size / 2)), () => res.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const event = (body: Record<string, unknown>, label: string) => {
      const bytes = json({ v: 1, peerId, instanceId, ...body });
      return { id: `${tag}-mallory-${label}`, body: bytes, signature: attacker.sign(bytes) };
    };
    const heartbeat = () =>
      publish(names.eventsExchange, [
        event({ type: 'peer.heartbeat', seq: 1, fileCount: 3 }, `hb-${Date.now()}`),
      ]);
    // Kept alive past the superpeer's peer timeout in case this test runs long.
    const beat = setInterval(() => void heartbeat().catch(() => undefined), 1000);
    const outs: string[] = [];
    try {
      await publish(names.eventsExchange, [
        event(
          {
            type: 'peer.announce',
            url,
            seq: 1,
            publicKey: attacker.publicKeyDer,
            chunkIndex: 0,
            chunkCount: 1,
            files: Object.entries(served).map(([route, file]) => ({
              name: route.slice('/files/'.length),
              size: file.size,
              sha256: claims[route],
              mtimeMs: 1_764_072_000_000,
            })),
          },
          'announce',
        ),
      ]);
      await waitUntil(async () => (await client.search(sha(common), 10)).results.length === 4, {
        timeoutMs: 10_000,
        what: 'the outsider as a fourth holder of the common file',
      });

      for (const name of ['mallory-garbage.bin', 'mallory-truncated.bin']) {
        const out = await makeTempDir('get-bad');
        outs.push(out);
        const got = await runCli(['get', name, '--out', out], net.env);
        assert.equal(got.code, 4, `${name}: get must fail as a download failure; stdout ${got.stdout}`);
        // Nothing under a final name; at most the kept prefix a later `get` of the same file resumes from
        // (re-hashed then, and fetched again from byte 0 if it does not verify).
        const left = await filesUnder(out);
        assert.ok(
          left.every((file) => /^\.p2p-[0-9a-f]+\.(part|resume)$/.test(file)),
          `${name}: only a kept resume pair may be left, found ${left.join(', ')}`,
        );
      }
      const out = await makeTempDir('get-mixed');
      outs.push(out);
      const got = await runCli(['get', sha(common), '--out', out], net.env);
      assert.equal(got.code, 0, got.stderr);
      // `get` saves under the file's base name.
      assert.equal(sha(await fs.readFile(path.join(out, 'guide.bin'))), sha(common));
      assert.deepEqual(await filesUnder(out), ['guide.bin'], 'only the verified file');
    } finally {
      clearInterval(beat);
      await publish(names.eventsExchange, [event({ type: 'peer.leave' }, 'leave')]);
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      for (const out of outs) await fs.rm(out, { recursive: true, force: true });
    }
    await waitUntil(async () => (await client.search('mallory', 10)).results.length === 0, {
      timeoutMs: 5000,
      what: 'the outsider gone after its leave',
    });
    assertAllAlive();
  });

  test('heartbeats naming hundreds of unknown peers cost a few batched resync requests, not one each', async () => {
    const channel = await connection.createChannel();
    const { queue } = await channel.assertQueue('', { exclusive: true });
    await channel.bindQueue(queue, names.networkExchange, '');
    const requests: string[][] = [];
    await channel.consume(
      queue,
      (message) => {
        if (!message) return;
        const body = JSON.parse(message.content.toString()) as { type: string; peerIds?: string[] };
        if (body.type === 'network.resync-request' && body.peerIds) requests.push(body.peerIds);
      },
      { noAck: true },
    );
    const attacker = makeAttacker();
    const ids = Array.from({ length: 500 }, (_, i) => sha(`ghost-${tag}-${i}`).slice(0, 40));
    const ghosts = new Set(ids);
    const publisher = await connection.createConfirmChannel();
    for (const peerId of ids) {
      const body = json({
        v: 1,
        type: 'peer.heartbeat',
        peerId,
        instanceId: `${randomUUID()}`,
        seq: 1,
        fileCount: 0,
      });
      publisher.publish(names.eventsExchange, '', body, {
        messageId: `${tag}-ghost-${peerId}`,
        headers: { 'x-p2p-signature': attacker.sign(body) },
      });
    }
    await publisher.waitForConfirms();
    const asked = await waitUntil(
      () => {
        const all = new Set(requests.flat().filter((id) => ghosts.has(id)));
        return all.size === ids.length ? all : undefined;
      },
      { timeoutMs: 5000, what: 'a resync request for every ghost id' },
    );
    assert.equal(asked.size, 500);
    // The batcher sends at most one request per 100 ms and asks at most 250 peers a second, so 500 ids
    // take about 20 requests; one per id would be 500.
    assert.ok(requests.length <= 25, `${requests.length} resync broadcasts for 500 unknown ids`);
    assert.ok(net.superpeer.alive);
    await publisher.close();
    await channel.close();
  });

  test('afterwards: every service alive, the dead-letter queue accounted for, and a real download verifies', async () => {
    assertAllAlive();
    await ledger.drain();
    const ours = [...ledger.expected.keys()];
    ledger.assertExact(ours);
    // Nothing else was refused: no real peer's event, no superpeer broadcast.
    const stray = [...ledger.counts.keys()].filter((id) => !ledger.expected.has(id));
    assert.deepEqual(
      stray.map((id) => `${id}: ${ledger.reasons.get(id)?.join(' | ')}`),
      [],
      'no unexpected dead-lettered messages',
    );

    const out = await makeTempDir('get-final');
    try {
      const got = await runCli(['get', 'gamma-photo.jpg', '--out', out], net.env);
      assert.equal(got.code, 0, got.stderr);
      assert.equal(sha(await fs.readFile(path.join(out, 'gamma-photo.jpg'))), sha(photo));
      assert.deepEqual(await filesUnder(out), ['gamma-photo.jpg'], 'no dotfile or partial beside it');
    } finally {
      await fs.rm(out, { recursive: true, force: true });
    }
    const { results } = await client.search('guide', 10);
    assert.equal(results.length, 3);
    assertAllAlive();
  });
});
