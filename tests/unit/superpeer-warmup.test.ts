import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isP2PError } from '../../libs/errors/index.js';
import {
  type PeersReply,
  PeersReplySchema,
  type PeersRequest,
  PROTOCOL_VERSION,
} from '../../libs/protocol/index.js';
import {
  SIBLING_REFRESH_MS,
  type WarmupProbe,
  type WarmupTimes,
  warmUp,
} from '../../services/superpeer/warmup.js';
import { answeringRpcClient } from '../helpers/rpc-fake.js';
import { files, peer, superpeer } from './superpeer-fake.js';

/** Milliseconds from now until `sp.serving` holds, polled every 10 ms up to `limitMs`. */
async function msUntilServing(sp: { serving: boolean }, limitMs: number): Promise<number> {
  const started = performance.now();
  while (!sp.serving && performance.now() - started < limitMs) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return performance.now() - started;
}

describe("a superpeer's warm-up", () => {
  it('waits the first-announce window while no announce came, not the short quiet window', async () => {
    const { sp } = await superpeer({ warmupQuietMs: 50, warmupFirstAnnounceMs: 600, warmupMaxMs: 5000 });
    const waited = await msUntilServing(sp, 5000);
    assert.equal(sp.serving, true);
    // The peers answer a resync request after a random delay: 50 ms of silence says nothing yet.
    assert.ok(waited >= 500, `served ${waited.toFixed(0)} ms after the start`);
    await sp.close();
  });

  it('once an announce came, serves after the quiet window, well before the first-announce window', async () => {
    const { sp, transport } = await superpeer({
      warmupQuietMs: 100,
      warmupFirstAnnounceMs: 4000,
      warmupMaxMs: 8000,
    });
    for (const [body, signature] of peer('alice').announces(files(3)))
      await transport.deliver(body, signature);
    const waited = await msUntilServing(sp, 8000);
    assert.equal(sp.serving, true);
    assert.ok(waited < 3000, `served ${waited.toFixed(0)} ms after the announce`);
    assert.equal(sp.index.peerCount, 1);
    await sp.close();
  });

  it('with a sibling serving, waits past the quiet window until every peer the sibling lists is indexed', async () => {
    const bob = peer('bob');
    const { sp, transport } = await aliceBeside([bob.peerId]);
    // Alone it would serve after 200 ms at most; bob is not in yet.
    await new Promise((resolve) => setTimeout(resolve, 700));
    assert.equal(sp.serving, false, 'serving while a peer the sibling knows is missing');
    for (const [body, signature] of bob.announces(files(2))) await transport.deliver(body, signature);
    const waited = await msUntilServing(sp, 2000);
    assert.equal(sp.serving, true);
    assert.ok(waited < 1000, `served ${waited.toFixed(0)} ms after the last peer came`);
    assert.equal(sp.index.peerCount, 2);
    await sp.close();
  });

  it('stops waiting for a peer the sibling no longer lists, or when the sibling stops answering', async () => {
    for (const after of ['listed no more', 'sibling gone'] as const) {
      const { sp, transport, alice } = await aliceBeside([peer('ghost').peerId]);
      await new Promise((resolve) => setTimeout(resolve, 400));
      assert.equal(sp.serving, false, after);
      // The ghost died: the sibling drops it at its timeout (or the sibling itself is gone).
      transport.sibling = after === 'listed no more' ? siblingListing([alice.peerId]) : undefined;
      const waited = await msUntilServing(sp, SIBLING_REFRESH_MS + 2000);
      assert.equal(sp.serving, true, after);
      assert.ok(waited <= SIBLING_REFRESH_MS + 500, `${after}: served ${waited.toFixed(0)} ms later`);
      await sp.close();
    }
  });

  it("waits for a sibling's peers at most warmupSiblingMaxMs, and reads every page of its list", async () => {
    const listed = Array.from({ length: 5 }, (_, i) => peer(`p${i}`).peerId).sort();
    const pages: Array<string | undefined> = [];
    const { sp } = await superpeer(
      { warmupQuietMs: 50, warmupFirstAnnounceMs: 100, warmupMaxMs: 200, warmupSiblingMaxMs: 900 },
      (request) => {
        pages.push(request.cursor?.peerId);
        return siblingListing(listed, 2)(request);
      },
    );
    const waited = await msUntilServing(sp, 5000);
    assert.equal(sp.serving, true);
    assert.ok(waited >= 800 && waited < 2500, `served ${waited.toFixed(0)} ms after the start`);
    // Pages of two: from the start, then from the third and the fifth id.
    assert.deepEqual(pages.slice(0, 3), [undefined, listed[2], listed[4]]);
    await sp.close();
  });

  it("stops reading a sibling's list when its cursor does not move forward", async () => {
    const alice = peer('alice');
    let pages = 0;
    const { sp } = await superpeer({ warmupMaxMs: 0, warmupSiblingMaxMs: 300 }, (request) => {
      pages++;
      // Always the same page, always pointing back at itself.
      return { ...siblingListing([alice.peerId])(request), next: { peerId: alice.peerId } };
    });
    await msUntilServing(sp, 2000);
    assert.equal(sp.serving, true);
    await sp.close();
    // The first page (no cursor), then the one its cursor names; that one points nowhere new.
    assert.equal(pages, 2);
  });

  it('serves as without a sibling when asking one fails', async () => {
    const { sp } = await superpeer(
      { warmupQuietMs: 50, warmupFirstAnnounceMs: 300, warmupMaxMs: 5000 },
      () => {
        throw new Error('the broker refused the request');
      },
    );
    const waited = await msUntilServing(sp, 5000);
    assert.equal(sp.serving, true);
    assert.ok(waited < 1500, `served ${waited.toFixed(0)} ms after the start`);
    await sp.close();
  });

  it('asks for a sibling once, and serves as before when none answers', async () => {
    const { sp, transport } = await superpeer({
      warmupQuietMs: 50,
      warmupFirstAnnounceMs: 300,
      warmupMaxMs: 5000,
    });
    const waited = await msUntilServing(sp, 5000);
    assert.equal(sp.serving, true);
    assert.ok(waited < 1500, `served ${waited.toFixed(0)} ms after the start`);
    assert.equal(transport.siblingRequests, 1);
    await sp.close();
  });

  it("reads at most 100 pages of a sibling's list whose cursor keeps moving forward", async () => {
    let pages = 0;
    const outcome = await warmUp(
      probe(async (request) => {
        pages++;
        // Past 1000 pages the sibling is gone: without the bound the warm-up still ends, with no list.
        if (pages > 1000) return undefined;
        const at = request.cursor ? Number.parseInt(request.cursor.peerId, 16) : 0;
        return peersReply([hexId(at)], hexId(at + 1));
      }),
      AT_ONCE,
    );
    assert.equal(pages, 100);
    assert.deepEqual(outcome.sibling, { peers: 100, missing: 100 });
  });

  it('keeps at most 100,000 of the peer ids a sibling lists', async () => {
    // 120,000 peers in 30 pages: nothing in the reply's schema caps a page at the usual 1000.
    const pageSize = 4000;
    const listed = 120_000;
    let lookedUp = 0;
    const outcome = await warmUp(
      probe(
        async (request) => {
          const at = request.cursor ? Number.parseInt(request.cursor.peerId, 16) : 0;
          const ids = Array.from({ length: Math.min(pageSize, listed - at) }, (_, i) => hexId(at + i));
          return peersReply(ids, at + pageSize < listed ? hexId(at + pageSize) : undefined);
        },
        () => {
          lookedUp++;
          return false;
        },
      ),
      AT_ONCE,
    );
    assert.deepEqual(outcome.sibling, { peers: 100_000, missing: 100_000 });
    assert.equal(lookedUp, 100_000, 'ids looked up in the index');
  });

  it("goes by what it sees alone when a sibling's reply to rpc.peers is malformed", async () => {
    const page = peersReply([hexId(1)]);
    for (const [what, reply] of [
      ['not JSON', Buffer.from('{"v":1,"type":"rpc.peers",')],
      ['not a page', Buffer.from(JSON.stringify({ ...page, peers: [{ peerId: 'not-an-id' }] }))],
      ['peers not a list', Buffer.from(JSON.stringify({ ...page, peers: null }))],
      ['a valid page', Buffer.from(JSON.stringify(page))],
    ] as const) {
      // The transport's client: a real RpcClient, its broker answering every request with `reply`.
      const client = await answeringRpcClient(() => reply);
      const askSiblings: WarmupProbe['askSiblings'] = (request, timeoutMs) =>
        client.call(request, PeersReplySchema, { timeoutMs });
      const outcome = await warmUp(probe(askSiblings), AT_ONCE);
      if (what === 'a valid page') {
        assert.deepEqual(outcome, { sibling: { peers: 1, missing: 1 } }, 'the fake answers as a sibling');
        continue;
      }
      assert.deepEqual(outcome, {}, `${what}: as without a sibling`);
      // The request rejected, as RpcClient.call does on a bad reply; the warm-up did not.
      await assert.rejects(
        askSiblings({ v: PROTOCOL_VERSION, type: 'rpc.peers' }, 1000),
        (err) => isP2PError(err, 'RPC_ERROR'),
        what,
      );
    }
  });
});

/**
 * A superpeer (quiet window 50 ms, at most 200 ms alone) beside a sibling listing alice and `others`, once
 * alice's announce is in.
 */
async function aliceBeside(others: string[]) {
  const alice = peer('alice');
  const { sp, transport } = await superpeer(
    { warmupQuietMs: 50, warmupFirstAnnounceMs: 100, warmupMaxMs: 200, warmupSiblingMaxMs: 20_000 },
    siblingListing([alice.peerId, ...others]),
  );
  for (const [body, signature] of alice.announces(files(3))) await transport.deliver(body, signature);
  return { sp, transport, alice };
}

/** A sibling superpeer listing `peerIds` (sorted) in `rpc.peers` pages of `pageSize`. */
function siblingListing(peerIds: string[], pageSize = 1000): (request: PeersRequest) => PeersReply {
  const sorted = [...peerIds].sort();
  return (request) => {
    const start = request.cursor ? sorted.findIndex((id) => id >= request.cursor!.peerId) : 0;
    return peersReply(sorted.slice(start, start + pageSize), sorted[start + pageSize]);
  };
}

/** A sibling's page of `rpc.peers` listing `peerIds`, pointing at `next` when given. */
function peersReply(peerIds: string[], next?: string): PeersReply {
  return {
    v: PROTOCOL_VERSION,
    type: 'rpc.peers',
    ok: true,
    superpeerId: 'sp-sibling',
    peers: peerIds.map((peerId) => ({
      peerId,
      instanceId: 'inst-sibling',
      url: 'http://sibling.test',
      seq: 1,
      fileCount: 1,
      totalBytes: 1,
      lastSeenAgoMs: 0,
    })),
    ...(next === undefined ? {} : { next: { peerId: next } }),
  };
}

/** The peer id written as `n` in 40 hex digits: ids in the order of their numbers. */
const hexId = (n: number) => n.toString(16).padStart(40, '0');

/** No waiting alone: the warm-up ends once the sibling's first list is read (and looked up once). */
const AT_ONCE: WarmupTimes = { quietMs: 0, firstAnnounceMs: 0, maxMs: 0, siblingMaxMs: 0 };

/** A superpeer that has no peer and no announce yet, asking its siblings with `askSiblings`. */
function probe(
  askSiblings: WarmupProbe['askSiblings'],
  hasPeer: (peerId: string) => boolean = () => false,
): WarmupProbe {
  return { lastAnnounceMs: () => 0, closed: () => false, hasPeer, askSiblings };
}
