import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { z } from 'zod';
import { CONFIG_KEYS } from '../../libs/config/index.js';
import {
  FileEntrySchema,
  NetworkMessageSchema,
  PeerEventSchema,
  RpcRequestSchema,
  SearchResultSchema,
  SnapshotPeerSchema,
  topologyNames,
} from '../../libs/protocol/index.js';
import { writeDemoFiles } from '../../libs/share/index.js';
import { REPO_ROOT } from '../helpers/network.js';

const doc = fs.readFileSync(path.join(REPO_ROOT, 'docs/protocol.md'), 'utf8');

function objectsOf(union: z.ZodDiscriminatedUnion): z.ZodObject[] {
  return union.options as unknown as z.ZodObject[];
}

test('every message type of the schemas is documented, with every field', () => {
  const objects = [
    ...objectsOf(PeerEventSchema as unknown as z.ZodDiscriminatedUnion),
    ...objectsOf(NetworkMessageSchema as unknown as z.ZodDiscriminatedUnion),
    ...objectsOf(RpcRequestSchema as unknown as z.ZodDiscriminatedUnion),
    FileEntrySchema,
    SearchResultSchema,
    SnapshotPeerSchema,
  ];
  for (const schema of objects) {
    const shape = schema.shape as Record<string, z.ZodType>;
    const typeField = shape.type as unknown as { value?: string } | undefined;
    const label = typeField?.value ?? Object.keys(shape).join(',');
    if (typeField?.value)
      assert.ok(doc.includes(`\`${typeField.value}\``), `${typeField.value} is documented`);
    for (const key of Object.keys(shape)) {
      assert.ok(doc.includes(`"${key}"`), `field ${key} of ${label} appears in docs/protocol.md`);
    }
  }
});

test('every exchange and queue name pattern is documented', () => {
  const names = topologyNames('N');
  for (const name of [
    names.eventsExchange,
    names.networkExchange,
    names.deadLetterExchange,
    names.rpcQueue,
  ]) {
    assert.ok(doc.includes(`\`${name}\``), `${name} is documented`);
  }
  assert.ok(doc.includes('`N.superpeer.<superpeerId>.<instance>`'));
  assert.ok(doc.includes('`N.peer.<peerId>.<instance>`'));
});

test('the README’s search-by-SHA-256 example is the demo guide every peer shares', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'p2p-demo-'));
  try {
    await writeDemoFiles(dir, 'readme-check');
    const sha = createHash('sha256')
      .update(await readFile(path.join(dir, 'common/network-guide.txt')))
      .digest('hex');
    const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
    assert.ok(readme.includes(`npx p2p search ${sha}`), `README searches for the guide's sha256 ${sha}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('every setting the README and docs name is a key the services read', () => {
  const known = new Set<string>(Object.values(CONFIG_KEYS).flat());
  for (const file of ['README.md', 'docs/protocol.md', 'docs/reliability.md']) {
    const text = fs.readFileSync(path.join(REPO_ROOT, file), 'utf8');
    const named = new Set(text.match(/\b(?:AMQP_URL|(?:P2P|PEER|SUPERPEER|LOG)_[A-Z_]+[A-Z])\b/g) ?? []);
    for (const key of named) assert.ok(known.has(key), `${file} names ${key}, which no service reads`);
  }
});
