import { type PeersReply, type PeersRequest, PROTOCOL_VERSION } from '../../libs/protocol/index.js';

/**
 * How long a superpeer waits for a sibling's page of `rpc.peers` before it goes by what it sees alone. Alone,
 * its warm-up lasts this long at least (the request is asked at its start): well inside the usual one.
 */
export const SIBLING_PAGE_TIMEOUT_MS = 500;
/** How often the sibling's list is asked for again while some of its peers are missing here. */
export const SIBLING_REFRESH_MS = 2000;
/** Pages of a sibling's list read at most (1,000 peers a page), and peer ids kept of it. */
const MAX_SIBLING_PAGES = 100;
const MAX_SIBLING_PEERS = 100_000;
/** How often the conditions are looked at. */
const POLL_MS = 50;

export interface WarmupTimes {
  /** Serve once no announce came for this long… */
  quietMs: number;
  /** …counted from the first announce; before it, for this long from the start… */
  firstAnnounceMs: number;
  /** …or at most this long. */
  maxMs: number;
  /**
   * With a sibling serving meanwhile: then also until every peer the sibling lists is in the index, at most
   * this long from the start.
   */
  siblingMaxMs: number;
}

export interface WarmupProbe {
  /** When the last announce was handled (ms since the epoch; 0 for none). */
  lastAnnounceMs(): number;
  closed(): boolean;
  hasPeer(peerId: string): boolean;
  /** One page of `rpc.peers` from a sibling superpeer, or undefined when none answered in time. */
  askSiblings(request: PeersRequest, timeoutMs: number): Promise<PeersReply | undefined>;
}

export interface WarmupOutcome {
  /** A sibling answered: how many peers its last list had, and how many of them were still missing here. */
  sibling?: { peers: number; missing: number };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Resolves when a superpeer that has just (re)started may answer searches, so that its first answers are
 * whole. Alone, it can only guess from the peers' re-announces: until they stop coming for a moment (or
 * at most `maxMs`). With a sibling superpeer serving meanwhile there is no hurry and no need to guess: the
 * sibling's list of peers (`rpc.peers`, asked on the superpeers' queue, which this one does not consume yet)
 * says whom to wait for, and the warm-up lasts until each of them is in the index, or until the sibling
 * no longer answers (then nobody else serves), or `siblingMaxMs`. The list is asked for again every
 * SIBLING_REFRESH_MS, so a peer that died meanwhile (the sibling drops it at its timeout) is not waited for.
 */
export async function warmUp(probe: WarmupProbe, times: WarmupTimes): Promise<WarmupOutcome> {
  const started = Date.now();
  // Asked at once, answered while the re-announces come in.
  const firstList = siblingPeers(probe);
  for (;;) {
    const now = Date.now();
    const last = probe.lastAnnounceMs();
    // No announce yet: the peers may still be waiting out their random delay.
    const quiet = last < started ? now - started >= times.firstAnnounceMs : now - last >= times.quietMs;
    if (probe.closed() || quiet || now - started >= times.maxMs) break;
    await sleep(POLL_MS);
  }
  let listed = await firstList;
  if (listed === undefined) return {};
  let missing = countMissing(probe, listed);
  let askedAt = Date.now();
  while (missing > 0 && !probe.closed() && Date.now() - started < times.siblingMaxMs) {
    await sleep(POLL_MS);
    if (Date.now() - askedAt >= SIBLING_REFRESH_MS) {
      askedAt = Date.now();
      const again = await siblingPeers(probe);
      if (again === undefined) break; // the sibling is gone: this superpeer is the one to serve now
      listed = again;
    }
    missing = countMissing(probe, listed);
  }
  return { sibling: { peers: listed.size, missing } };
}

/** The peer ids a sibling superpeer lists, all its pages; undefined when a page did not come. */
async function siblingPeers(probe: WarmupProbe): Promise<Set<string> | undefined> {
  const peers = new Set<string>();
  let cursor: PeersRequest['cursor'];
  for (let page = 0; page < MAX_SIBLING_PAGES; page++) {
    const reply = await probe
      .askSiblings(
        { v: PROTOCOL_VERSION, type: 'rpc.peers', ...(cursor ? { cursor } : {}) },
        SIBLING_PAGE_TIMEOUT_MS,
      )
      .catch(() => undefined); // the warm-up then goes by what it sees alone, as without a sibling
    if (reply === undefined) return undefined;
    for (const peer of reply.peers) {
      if (peers.size >= MAX_SIBLING_PEERS) return peers;
      peers.add(peer.peerId);
    }
    // A page's cursor must move forward, or a sibling (or whoever answers) could keep this loop going.
    if (reply.next === undefined || (cursor !== undefined && reply.next.peerId <= cursor.peerId)) break;
    cursor = reply.next;
  }
  return peers;
}

function countMissing(probe: WarmupProbe, listed: ReadonlySet<string>): number {
  let missing = 0;
  for (const peerId of listed) if (!probe.hasPeer(peerId)) missing++;
  return missing;
}
