import { verifyBody } from '../../libs/identity/index.js';
import {
  decodeWithFileList,
  PackedFiles,
  type PeerEvent,
  PeerEventSchema,
  packFiles,
} from '../../libs/protocol/index.js';
import { VerifiedSignatures } from './verified-signatures.js';

/*
 * The work of the decoding threads (event-decoder.ts), as plain functions: parse, validate and check the
 * signature of one delivered event. The same functions run in the superpeer's thread whenever a decoding
 * thread is not there to do it, so a result never depends on where it was computed.
 */

/**
 * What a decoding thread found besides the event. It is a hint, never a verdict: the event is still
 * authenticated in its turn against the key registered then (peer-events.ts), which it passes without
 * a second Ed25519 verify only when `verifiedKey` is that key.
 */
export interface EventProof {
  /** The key that verified the signature header over these exact bytes (absent: none known, or it failed). */
  verifiedKey?: string;
  /**
   * An announce's files in columns with their JSON (see PackedFiles): read so from the body when written
   * canonically (decodeWithFileList), packed otherwise by a decoding thread. The thread that applies them
   * then neither parses them nor encodes them again for the rebroadcast. The event's own `files` is then
   * empty.
   */
  packed?: PackedFiles;
  /** An announce whose files' names are all distinct (checked here, off the applying thread). */
  distinctNames?: boolean;
}

export type EventDecoding = { ok: true; event: PeerEvent; proof: EventProof } | { ok: false; reason: string };

/**
 * A decoding whose objects are made when the event's turn comes (`open`), not while it waits behind up to
 * a prefetch of others: a thousand file entries held for a while get promoted and cost the old
 * generation's collector; their JSON is one string.
 */
export type DeferredDecoding =
  | { ok: true; open: () => { event: PeerEvent; proof: EventProof } }
  | { ok: false; reason: string };

export function deferred(decoding: EventDecoding): DeferredDecoding {
  if (!decoding.ok) return decoding;
  const { event, proof } = decoding;
  return { ok: true, open: () => ({ event, proof }) };
}

/** A heartbeat as read on arrival, before its turn (liveness.ts), with the key that verified it if any. */
export type ArrivalCheck =
  | { heartbeat: true; peerId: string; instanceId: string; beat?: number; verifiedKey?: string }
  | { heartbeat: false };

/** Peer keys learned from announces that verified, so later events of the peer can be verified too. */
export class PeerKeys {
  private readonly keys = new Map<string, string>();

  constructor(private readonly capacity = 20_000) {}

  get(peerId: string): string | undefined {
    return this.keys.get(peerId);
  }

  /** Remembers `key` for `peerId`; the least recently learned goes first when full. */
  set(peerId: string, key: string): void {
    this.keys.delete(peerId);
    this.keys.set(peerId, key);
    if (this.keys.size > this.capacity) {
      const oldest = this.keys.keys().next();
      if (!oldest.done) this.keys.delete(oldest.value);
    }
  }

  entries(): Array<[string, string]> {
    return [...this.keys];
  }

  get size(): number {
    return this.keys.size;
  }
}

/** What one decoding context keeps between events. */
export interface DecodingMemory {
  keys: PeerKeys;
  /** Small events verified once, so their second read is not verified again (see VerifiedSignatures). */
  verified: VerifiedSignatures;
}

export function decodingMemory(maxKeys?: number): DecodingMemory {
  return { keys: new PeerKeys(maxKeys), verified: new VerifiedSignatures() };
}

/**
 * One delivered event: the body parsed and validated with PeerEventSchema (same limits and reasons as
 * `decode`), then its signature header checked with the key it carries (an announce: its peer id is derived
 * from that key, which the schema checks) or the key learned for its peer id. A failed signature is not
 * a refusal here: the event's turn decides with the registered key, as it always did.
 */
export function decodeEvent(
  content: Buffer,
  signature: unknown,
  memory: DecodingMemory,
  spare?: (bytes: number) => ArrayBuffer | undefined,
): EventDecoding {
  // An announce's files written canonically are read into columns at once (no object per file).
  const decoded = decodeWithFileList(PeerEventSchema, content, spare ? { spare } : {});
  if (!decoded.ok) return decoded;
  const { value: event, packed, distinctNames } = decoded.value;
  const proof: EventProof = {};
  if (packed !== undefined) {
    proof.packed = packed;
    if (distinctNames === true) proof.distinctNames = true;
  } else if (event.type === 'peer.announce' && namesDistinct(event.files)) proof.distinctNames = true;
  if (typeof signature === 'string') {
    if (event.type === 'peer.announce') {
      if (verifyBody(event.publicKey, content, signature)) {
        proof.verifiedKey = event.publicKey;
        memory.keys.set(event.peerId, event.publicKey);
      }
    } else {
      const key = memory.keys.get(event.peerId);
      if (key !== undefined && verifiedBy(key, content, signature, memory, event.type === 'peer.heartbeat')) {
        proof.verifiedKey = key;
      }
    }
  }
  return { ok: true, event, proof };
}

/** Whether no two of `files` share a name. */
function namesDistinct(files: ReadonlyArray<{ name: string }>): boolean {
  const names = new Set<string>();
  for (const file of files) names.add(file.name);
  return names.size === files.length;
}

/**
 * A heartbeat is read twice, on arrival and in its turn, in either order: the first read verifies it and
 * leaves a record that the second uses up.
 */
function verifiedBy(
  key: string,
  content: Buffer,
  signature: string,
  memory: DecodingMemory,
  heartbeat: boolean,
): boolean {
  if (heartbeat && memory.verified.take(key, signature, content)) return true;
  if (!verifyBody(key, content, signature)) return false;
  if (heartbeat) memory.verified.remember(key, signature, content);
  return true;
}

/** Heartbeats are judged on arrival only when this small (a heartbeat is ~300 bytes). */
export const MAX_ARRIVAL_BODY_BYTES = 2048;

/**
 * A delivery read on arrival: whether it is a heartbeat, whose, and whether the key learned for that peer
 * signed it. Only what liveness needs is read (the whole event is validated in its turn).
 */
export function checkArrival(content: Buffer, signature: unknown, memory: DecodingMemory): ArrivalCheck {
  if (content.length > MAX_ARRIVAL_BODY_BYTES) return { heartbeat: false };
  let body: unknown;
  try {
    body = JSON.parse(content.toString('utf8'));
  } catch {
    return { heartbeat: false }; // refused in its turn
  }
  if (typeof body !== 'object' || body === null) return { heartbeat: false };
  const { type, peerId, instanceId, beat } = body as Record<string, unknown>;
  if (type !== 'peer.heartbeat' || typeof peerId !== 'string' || typeof instanceId !== 'string') {
    return { heartbeat: false };
  }
  // A number that is not a heartbeat's number is refused in its turn.
  if (beat !== undefined && !(Number.isSafeInteger(beat) && (beat as number) >= 1))
    return { heartbeat: false };
  const numbered = beat === undefined ? {} : { beat: beat as number };
  const key = memory.keys.get(peerId);
  if (
    key === undefined ||
    typeof signature !== 'string' ||
    !verifiedBy(key, content, signature, memory, true)
  ) {
    return { heartbeat: true, peerId, instanceId, ...numbered };
  }
  return { heartbeat: true, peerId, instanceId, ...numbered, verifiedKey: key };
}

// ---- between the superpeer's thread and a decoding thread ------------------------------------------------

/** One delivery to decode: its body is `bytes[offset, offset + length)` of the batch it came in. */
export interface DecoderJob {
  kind: 'event' | 'arrival';
  id: number;
  offset: number;
  length: number;
  /** The signature header when it is a string; any other header value means unsigned and never crosses. */
  signature: string | undefined;
}

export type DecoderRequest =
  /** Deliveries to decode, their bodies copied one after another into `bytes` (transferred). */
  | {
      kind: 'jobs';
      bytes: ArrayBuffer;
      jobs: DecoderJob[];
      /** Packed lists' buffers read and handed back, for the thread to pack into again (transferred). */
      spare?: ArrayBuffer[];
    }
  /** Keys learned elsewhere (another thread, or before this one restarted). */
  | { kind: 'learn'; keys: Array<[string, string]> };

/** A thread answers with arrays of these. */
export type DecoderReply =
  | {
      kind: 'event';
      id: number;
      ok: true;
      /** The event as JSON; an announce's files are in `packed` (its `files` here is empty). */
      eventJson: string;
      /** An announce's files, packed (`PackedFiles`), transferred with the reply. */
      packed?: ArrayBuffer;
      /** See `EventProof.distinctNames`. */
      distinctNames?: boolean;
      verifiedKey?: string;
      /** The peer id of an announce that `verifiedKey` verified (the key is that peer's). */
      announcedBy?: string;
    }
  | { kind: 'event'; id: number; ok: false; reason: string }
  | { kind: 'arrival'; id: number; check: ArrivalCheck }
  /** A request's `bytes`, every job in it read: handed back to be filled again (transferred). */
  | { kind: 'input'; bytes: ArrayBuffer };

/**
 * The reply for a decoded event. JSON, not the objects: the receiving thread parses it faster than it
 * would read a structured clone of a thousand file entries; an announce's files go packed in columns
 * (`PackedFiles`, with their JSON for the rebroadcast), which it reads without parsing. Both are of the
 * validated event (what the schema kept), so reading them gives that event back.
 */
export function eventReply(
  id: number,
  decoding: EventDecoding,
  spare?: (bytes: number) => ArrayBuffer | undefined,
): DecoderReply {
  if (!decoding.ok) return { kind: 'event', id, ok: false, reason: decoding.reason };
  const { event, proof } = decoding;
  const reply: DecoderReply = { kind: 'event', id, ok: true, eventJson: '' };
  if (event.type === 'peer.announce') {
    reply.eventJson = JSON.stringify({ ...event, files: [] });
    reply.packed = (proof.packed ?? packFiles(event.files, JSON.stringify(event.files), spare)).buffer;
    if (proof.distinctNames === true) reply.distinctNames = true;
  } else {
    reply.eventJson = JSON.stringify(event);
  }
  if (proof.verifiedKey !== undefined) {
    reply.verifiedKey = proof.verifiedKey;
    if (event.type === 'peer.announce') reply.announcedBy = event.peerId;
  }
  return reply;
}

/** The decoding a reply carries (the inverse of `eventReply`), parsed when opened. */
export function deferredReply(reply: Extract<DecoderReply, { kind: 'event' }>): DeferredDecoding {
  if (!reply.ok) return { ok: false, reason: reply.reason };
  return {
    ok: true,
    open: () => {
      const event = JSON.parse(reply.eventJson) as PeerEvent;
      const proof: EventProof = {};
      if (reply.packed !== undefined && event.type === 'peer.announce') {
        proof.packed = PackedFiles.from(reply.packed);
        if (reply.distinctNames === true) proof.distinctNames = true;
      }
      if (reply.verifiedKey !== undefined) proof.verifiedKey = reply.verifiedKey;
      return { event, proof };
    },
  };
}
