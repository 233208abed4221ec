import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { PassThrough } from 'node:stream';
import type { ConsumeMessage } from 'amqplib';
import { signBody } from '../../libs/identity/index.js';
import { createLogger } from '../../libs/logging/index.js';
import {
  chunk,
  decode,
  decodeWithFileList,
  encode,
  type FileEntry,
  HEADERS,
  type NetworkMessage,
  type PackedFiles,
  type PeerEvent,
  PeerEventSchema,
  type PeersReply,
  type PeersRequest,
  peerIdFromPublicKey,
  type RpcRequest,
} from '../../libs/protocol/index.js';
import type { DeferredDecoding } from '../../services/superpeer/event-decoding.js';
import { Superpeer, type SuperpeerOptions } from '../../services/superpeer/superpeer.js';
import type { SuperpeerTransport, TransportHandlers } from '../../services/superpeer/transport.js';

/** Helpers of the superpeer's unit tests: an in-memory broker, signed peers, file lists. */

/** The superpeer's broker, in memory: events go in as deliveries, broadcasts are recorded. */
export class FakeTransport implements SuperpeerTransport {
  handlers: TransportHandlers | undefined;
  connected = true;
  published: NetworkMessage[] = [];
  backlog = 0;
  async start(handlers: TransportHandlers) {
    this.handlers = handlers;
    handlers.onConnected();
  }
  async close() {}
  async serveRpc() {}
  async publishNetwork(message: NetworkMessage, options: { body?: Buffer } = {}) {
    // A body given with the message is what goes on the wire (an announce's JSON copied in): recorded so.
    this.published.push(options.body ? (JSON.parse(options.body.toString()) as NetworkMessage) : message);
  }
  async eventBacklog() {
    return this.backlog;
  }
  async repairTopology() {}
  /** A sibling superpeer answering `rpc.peers`, when a test sets one; none by default. */
  sibling: ((request: PeersRequest) => PeersReply | undefined) | undefined;
  siblingRequests = 0;
  async askSiblings(request: PeersRequest): Promise<PeersReply | undefined> {
    this.siblingRequests++;
    return this.sibling?.(request);
  }
  /** Delivers one message: arrival hook, then (like the real consumer) decode and handle. */
  async deliver(content: Buffer, signature: string): Promise<void> {
    await this.deliverRead(content, signature, false);
  }
  /** Packed lists handed back by the superpeer (`recycle`), in order. */
  recycled: ArrayBuffer[] = [];
  recycle(buffer: ArrayBuffer): void {
    this.recycled.push(buffer);
  }
  /**
   * `deliver`, with an announce's files read into columns as a decoding thread would (the event's own list
   * empty); resolves with those columns.
   */
  deliverPacked(content: Buffer, signature: string): Promise<PackedFiles | undefined> {
    return this.deliverRead(content, signature, true);
  }
  private async deliverRead(content: Buffer, signature: string, packFiles: boolean) {
    const message = {
      content,
      properties: { headers: { [HEADERS.signature]: signature } },
      fields: {},
    } as unknown as ConsumeMessage;
    this.handlers!.onDelivery(message);
    const decoded = packFiles
      ? decodeWithFileList(PeerEventSchema, content)
      : decode(PeerEventSchema, content);
    if (!decoded.ok) throw new Error(decoded.reason);
    const { value, packed } = packFiles
      ? (decoded.value as { value: PeerEvent; packed?: PackedFiles })
      : { value: decoded.value as PeerEvent, packed: undefined };
    await this.handlers!.onEvent(value, message, packed ? { packed } : undefined);
    return packed;
  }
  /** One RPC request from `client` (its reply address); resolves with the reply body. */
  async rpc(request: RpcRequest, client = 'client-1') {
    return (await this.handlers!.onRpc(request, client)) as { ok: true; [key: string]: unknown };
  }
}

/** A peer with a key of its own; its id is derived from the key unless it claims another's (`claimedId`). */
export function peer(label: string, claimedId?: string) {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const publicKeyDer = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  const peerId = claimedId ?? peerIdFromPublicKey(publicKeyDer)!;
  const instanceId = `inst-${label}`.padEnd(12, '0');
  return {
    peerId,
    instanceId,
    publicKeyDer,
    signed(event: Record<string, unknown>): [Buffer, string] {
      const body = encode({ v: 1, peerId, instanceId, ...event } as PeerEvent);
      return [body, signBody(privateKey, body)];
    },
    announces(files: FileEntry[], seq = 1, chunkFiles?: number): Array<[Buffer, string]> {
      const pieces = chunk(files, chunkFiles);
      return pieces.map((piece, chunkIndex) =>
        this.signed({
          type: 'peer.announce',
          url: `http://${label}.test`,
          seq,
          publicKey: publicKeyDer,
          chunkIndex,
          chunkCount: pieces.length,
          files: piece,
        }),
      );
    },
  };
}

export const files = (count: number, prefix = 'file'): FileEntry[] =>
  Array.from({ length: count }, (_, i) => ({
    name: `${prefix}-${i}.txt`,
    size: i,
    sha256: 'b'.repeat(64),
    mtimeMs: 0,
  }));

export async function superpeer(options: Partial<SuperpeerOptions> = {}, sibling?: FakeTransport['sibling']) {
  // Sweeps run when a test calls them.
  const transport = new FakeTransport();
  transport.sibling = sibling;
  const sp = new Superpeer({
    amqpUrl: 'amqp://unused',
    namespace: 'unit',
    superpeerId: 'sp-unit',
    logger: createLogger({ service: 'superpeer', level: 'error', format: 'json', stream: new PassThrough() }),
    warmupMaxMs: 0,
    sweepIntervalMs: 3_600_000,
    transport,
    ...options,
  });
  await sp.start();
  return { sp, transport };
}

/** An opened decoding, an announce's files packed by a thread given back to the event as entries. */
export function opened(decoding: DeferredDecoding) {
  if (!decoding.ok) return decoding;
  const { event, proof } = decoding.open();
  if (proof.packed === undefined || event.type !== 'peer.announce')
    return { ok: true as const, event, proof };
  assert.deepEqual(event.files, [], 'packed files are not parsed into the event too');
  return { ok: true as const, event: { ...event, files: proof.packed.entries() }, proof };
}
