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
  ErrorReplySchema,
  FileEntrySchema,
  NetworkMessageSchema,
  PeerEventSchema,
  PeerSummarySchema,
  PeersReplySchema,
  RpcRequestSchema,
  SearchReplySchema,
  SearchResultSchema,
  SnapshotPeerSchema,
  SnapshotReplySchema,
  topologyNames,
} from '../../libs/protocol/index.js';
import { writeDemoFiles } from '../../libs/share/index.js';
import { REPO_ROOT } from '../helpers/network.js';

const doc = fs.readFileSync(path.join(REPO_ROOT, 'docs/protocol.md'), 'utf8');

function objectsOf(union: z.ZodDiscriminatedUnion): z.ZodObject[] {
  return union.options as unknown as z.ZodObject[];
}

/** The part of the doc under the heading that names `title` (in backquotes, or as the whole heading), up to the next heading. */
function sectionOf(title: string): string {
  const lines = doc.split('\n');
  const start = lines.findIndex(
    (line) => /^#{2,4} /.test(line) && (line.includes(`\`${title}\``) || line.replace(/^#+ /, '') === title),
  );
  assert.ok(start >= 0, `docs/protocol.md has a section for \`${title}\``);
  const length = lines.slice(start + 1).findIndex((line) => /^#{2,4} /.test(line));
  return lines.slice(start, length < 0 ? undefined : start + 1 + length).join('\n');
}

function typeOf(schema: z.ZodObject): string | undefined {
  return (schema.shape.type as unknown as { value?: string } | undefined)?.value;
}

function assertFieldsIn(section: string, title: string, schema: z.ZodObject): void {
  for (const key of Object.keys(schema.shape)) {
    assert.ok(section.includes(`"${key}"`), `field "${key}" is documented in the section of \`${title}\``);
  }
}

test('every message type of the schemas is documented in its own section, with every field', () => {
  const messages = [
    ...objectsOf(PeerEventSchema as unknown as z.ZodDiscriminatedUnion),
    ...objectsOf(NetworkMessageSchema as unknown as z.ZodDiscriminatedUnion),
    ...objectsOf(RpcRequestSchema as unknown as z.ZodDiscriminatedUnion),
    SearchReplySchema,
    PeersReplySchema,
    SnapshotReplySchema,
  ];
  for (const schema of messages) {
    const type = typeOf(schema);
    assert.ok(type, 'a message schema has a literal type');
    assertFieldsIn(sectionOf(type), type, schema);
  }
  // Objects nested in messages are documented where they first appear.
  assertFieldsIn(sectionOf('peer.announce'), 'peer.announce', FileEntrySchema);
  assertFieldsIn(sectionOf('rpc.search'), 'rpc.search', SearchResultSchema);
  assertFieldsIn(sectionOf('rpc.peers'), 'rpc.peers', PeerSummarySchema);
  assertFieldsIn(sectionOf('rpc.snapshot'), 'rpc.snapshot', SnapshotPeerSchema);
  assertFieldsIn(sectionOf('Errors'), 'Errors', ErrorReplySchema);
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
  assert.ok(doc.includes('`N.peer.<peerId>.<secret>`'));
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
  for (const file of ['README.md', 'docs/protocol.md', 'docs/reliability.md', 'docs/performance.md']) {
    const text = fs.readFileSync(path.join(REPO_ROOT, file), 'utf8');
    const named = new Set(text.match(/\b(?:AMQP_URL|(?:P2P|PEER|SUPERPEER|LOG)_[A-Z_]+[A-Z])\b/g) ?? []);
    for (const key of named) assert.ok(known.has(key), `${file} names ${key}, which no service reads`);
  }
});
