/*
 * Run by tests/unit/protocol-retention.test.ts in a process of its own (`node --expose-gc`): decodes the same
 * big message many times with each schema that carries a file list and prints, as JSON, how much the old
 * generation grew meanwhile. A decoded message the caller dropped must die young: when something keeps it
 * through a second young-generation collection, V8 promotes it and the old generation fills with dead file
 * lists (a peer receiving a million files grew its heap by tens of MB that way).
 */
import { generateKeyPairSync } from 'node:crypto';
import v8 from 'node:v8';
import type { z } from 'zod';
import {
  decode,
  encode,
  NetworkMessageSchema,
  PeerEventSchema,
  PROTOCOL_VERSION,
  peerIdFromPublicKey,
  SnapshotReplySchema,
} from '../../libs/protocol/index.js';

const FILES = 2000;
const ROUNDS = 40;

const publicKey = generateKeyPairSync('ed25519')
  .publicKey.export({ type: 'spki', format: 'der' })
  .toString('base64');
const peerId = peerIdFromPublicKey(publicKey);
const files = Array.from({ length: FILES }, (_, i) => ({
  name: `dir ${i % 7}/file ${i}.dat`,
  size: i,
  sha256: i.toString(16).padStart(64, '0'),
  mtimeMs: 1,
}));
const peer = { peerId, instanceId: 'instance-1', url: 'http://127.0.0.1:1', seq: 1, publicKey };
const chunkFields = { chunkIndex: 0, chunkCount: 1, files };
const messages: Array<[string, z.ZodType, Buffer]> = [
  [
    'peer.announce',
    PeerEventSchema,
    encode({ v: PROTOCOL_VERSION, type: 'peer.announce', ...peer, ...chunkFields }),
  ],
  [
    'network.peer-state',
    NetworkMessageSchema,
    encode({ v: PROTOCOL_VERSION, type: 'network.peer-state', superpeerId: 'sp-1', ...peer, ...chunkFields }),
  ],
  [
    'rpc.snapshot',
    SnapshotReplySchema,
    encode({
      v: PROTOCOL_VERSION,
      type: 'rpc.snapshot',
      ok: true,
      superpeerId: 'sp-1',
      peers: [{ ...peer, fileOffset: 0, fileTotal: FILES, files }],
    }),
  ],
];

const gc = (globalThis as { gc?: () => void }).gc ?? fail('run with --expose-gc');
const oldSpaceBytes = () =>
  v8.getHeapSpaceStatistics().find((s) => s.space_name === 'old_space')!.space_used_size;
const grownMb: Record<string, number> = {};
for (const [type, schema, body] of messages) {
  for (let i = 0; i < 5; i++) decode(schema, body); // warm: compiled code and its feedback are old anyway
  gc();
  const before = oldSpaceBytes();
  for (let i = 0; i < ROUNDS; i++) if (!decode(schema, body).ok) fail(`${type} refused`);
  grownMb[type] = (oldSpaceBytes() - before) / 2 ** 20;
}
process.stdout.write(`${JSON.stringify(grownMb)}\n`);

function fail(message: string): never {
  throw new Error(message);
}
