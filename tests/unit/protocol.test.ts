import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { test } from 'node:test';
import { z } from 'zod';
import {
  chunk,
  decode,
  encode,
  FileEntrySchema,
  FileNameSchema,
  fileUrl,
  MAX_MESSAGE_BYTES,
  MAX_PEERS_PER_PAGE,
  NetworkMessageSchema,
  nestsDeeperThan,
  PeerEventSchema,
  PeerIdSchema,
  PeersReplySchema,
  peerIdFromPublicKey,
  peerIdMatchesKey,
  RpcRequestSchema,
  SnapshotReplySchema,
} from '../../libs/protocol/index.js';
import { STREAMS } from '../../libs/protocol/streams.js';

const sha = 'a'.repeat(64);

test('file names: relative paths only, no tricks', () => {
  for (const good of ['a.txt', 'music/Holiday Song.mp3', 'ünïcödé/ファイル.bin', 'a..b', 'x/y/z']) {
    assert.ok(FileNameSchema.safeParse(good).success, good);
  }
  for (const bad of [
    '',
    '/abs',
    '../up',
    'a/../b',
    'a/./b',
    './a',
    'a//b',
    'a/',
    '.hidden',
    'd/.git/config',
    'a\\b',
    'nul\u0000',
    'tab\tname',
    'x'.repeat(1025),
  ]) {
    assert.ok(!FileNameSchema.safeParse(bad).success, JSON.stringify(bad));
  }
});

test('decode refuses oversize, non-JSON and wrong shapes with a reason, and never throws', () => {
  const tooBig = Buffer.alloc(MAX_MESSAGE_BYTES + 1, 0x20);
  assert.deepEqual(decode(PeerEventSchema, tooBig), {
    ok: false,
    reason: `body of ${tooBig.length} bytes exceeds ${MAX_MESSAGE_BYTES}`,
  });
  assert.deepEqual(decode(PeerEventSchema, Buffer.from('{nope')), { ok: false, reason: 'body is not JSON' });
  const wrong = decode(PeerEventSchema, encode({ v: 1, type: 'peer.delta', peerId: 'p1' }));
  assert.equal(wrong.ok, false);
  assert.match(wrong.ok ? '' : wrong.reason, /^schema: /);
  const unknown = decode(NetworkMessageSchema, encode({ v: 1, type: 'network.nope', superpeerId: 's' }));
  assert.equal(unknown.ok, false);
});

test('a valid delta decodes; a hostile name inside it does not', () => {
  const delta = {
    v: 1,
    type: 'peer.delta',
    peerId: 'a'.repeat(40),
    instanceId: '12345678-aaaa',
    seq: 2,
    upserted: [{ name: 'ok.txt', size: 1, sha256: sha, mtimeMs: 1 }],
    removed: [],
  };
  const decoded = decode(PeerEventSchema, encode(delta));
  assert.ok(decoded.ok);
  assert.equal(decoded.value.type, 'peer.delta');
  const hostile = { ...delta, upserted: [{ name: '../../etc/passwd', size: 1, sha256: sha, mtimeMs: 1 }] };
  assert.equal(decode(PeerEventSchema, encode(hostile)).ok, false);
  const upperSha = { ...delta, upserted: [{ name: 'x', size: 1, sha256: sha.toUpperCase(), mtimeMs: 1 }] };
  assert.equal(decode(PeerEventSchema, encode(upperSha)).ok, false);
  // A lone surrogate, written as a JSON escape (the wire's UTF-8 cannot carry one otherwise), in a name
  // upserted or removed: U+FFFD in UTF-8, it would be another name's bytes.
  for (const body of [
    encode(delta).toString().replace('ok.txt', 'ok\\ud840.txt'),
    encode({ ...delta, removed: ['ok.txt'] })
      .toString()
      .replace('"ok.txt"]', '"ok\\udc00.txt"]'),
  ]) {
    assert.match(body, /\\ud[8c]/);
    assert.equal(decode(PeerEventSchema, Buffer.from(body)).ok, false, body);
  }
});

test('search requests: limit defaults to 50 and is bounded', () => {
  const parsed = decode(RpcRequestSchema, encode({ v: 1, type: 'rpc.search', query: 'x' }));
  assert.ok(parsed.ok && parsed.value.type === 'rpc.search' && parsed.value.limit === 50);
  assert.equal(
    decode(RpcRequestSchema, encode({ v: 1, type: 'rpc.search', query: 'x', limit: 1001 })).ok,
    false,
  );
  assert.equal(decode(RpcRequestSchema, encode({ v: 1, type: 'rpc.search', query: '   ' })).ok, false);
});

test('an rpc.peers page holds at most 1000 peers, as docs/protocol.md says', () => {
  const summary = (i: number) => ({
    peerId: i.toString(16).padStart(40, '0'),
    instanceId: '0b7c9d1e-5a4f-4e0b-9c55-2f8f0f6d1a22',
    url: 'http://127.0.0.1:8080',
    seq: 1,
    fileCount: 0,
    totalBytes: 0,
    lastSeenAgoMs: 5,
  });
  const page = (count: number) =>
    encode({
      v: 1,
      type: 'rpc.peers',
      ok: true,
      superpeerId: 'sp-1',
      peers: Array.from({ length: count }, (_, i) => summary(i)),
    });
  assert.equal(decode(PeersReplySchema, page(MAX_PEERS_PER_PAGE)).ok, true);
  assert.equal(decode(PeersReplySchema, page(MAX_PEERS_PER_PAGE + 1)).ok, false);
});

test('fileUrl encodes each segment; chunk splits lists', () => {
  assert.equal(fileUrl('http://h:1/', 'a b/c#d?.txt'), 'http://h:1/files/a%20b/c%23d%3F.txt');
  // A name's own `%` (even one spelling `%2F`) stays encoded, and only its slashes separate segments.
  for (const name of [
    '100%2Fdone/x%2f.txt',
    'déjà vu/ünï©ødé +&=;,.txt',
    "a/b/c/it's (1) [x]{y}.bin",
    '%/%25/%%',
  ]) {
    const bySegment = name.split('/').map(encodeURIComponent).join('/');
    assert.equal(fileUrl('http://h:1', name), `http://h:1/files/${bySegment}`);
    assert.equal(
      decodeURIComponent(new URL(fileUrl('http://h:1', name)).pathname.slice('/files/'.length)),
      name,
    );
  }
  assert.deepEqual(chunk([], 2), [[]]);
  assert.deepEqual(chunk([1, 2, 3, 4, 5], 2), [[1, 2], [3, 4], [5]]);
});

/** The Ed25519 key whose 32-byte seed is all 0x01 (the example in docs/protocol.md, "Identity"). */
const SEED_ONES_PUBLIC_KEY = 'MCowBQYDK2VwAyEAiojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w=';
const SEED_ONES_PEER_ID = 'fd110d301d2f077de1414b8f99f441b1403fab20';

test('peer ids are derived from the public key: the documented example, and any key', () => {
  const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), Buffer.alloc(32, 1)]);
  const key = createPublicKey(createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }));
  assert.equal(key.export({ type: 'spki', format: 'der' }).toString('base64'), SEED_ONES_PUBLIC_KEY);
  assert.equal(peerIdFromPublicKey(SEED_ONES_PUBLIC_KEY), SEED_ONES_PEER_ID);
  assert.ok(PeerIdSchema.safeParse(SEED_ONES_PEER_ID).success);

  const other = generateKeyPairSync('ed25519')
    .publicKey.export({ type: 'spki', format: 'der' })
    .toString('base64');
  const otherId = peerIdFromPublicKey(other);
  assert.match(otherId ?? '', /^[0-9a-f]{40}$/);
  assert.notEqual(otherId, SEED_ONES_PEER_ID);
  assert.ok(peerIdMatchesKey(otherId!, other));
  assert.ok(!peerIdMatchesKey(SEED_ONES_PEER_ID, other));
});

test('malformed keys have no peer id: not base64, not canonical, not Ed25519, wrong length', () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 })
    .publicKey.export({ type: 'spki', format: 'der' })
    .toString('base64');
  const x25519 = generateKeyPairSync('x25519')
    .publicKey.export({ type: 'spki', format: 'der' })
    .toString('base64');
  for (const bad of [
    '',
    'not base64 at all!',
    SEED_ONES_PUBLIC_KEY.slice(0, -4),
    `${SEED_ONES_PUBLIC_KEY.slice(0, -2)}x=`, // last character carries bits past the key: not canonical
    ` ${SEED_ONES_PUBLIC_KEY}`,
    rsa,
    x25519,
  ]) {
    assert.equal(peerIdFromPublicKey(bad), undefined, JSON.stringify(bad));
  }
  for (const bad of ['peer1', 'A'.repeat(40), 'a'.repeat(39), 'a'.repeat(41), `${'a'.repeat(39)}g`]) {
    assert.ok(!PeerIdSchema.safeParse(bad).success, bad);
  }
});

test('an announce, a network peer-state and a snapshot page are refused unless the id is the key’s', () => {
  const file = { name: 'a.txt', size: 1, sha256: sha, mtimeMs: 1 };
  const announce = {
    v: 1,
    type: 'peer.announce',
    peerId: SEED_ONES_PEER_ID,
    name: 'peer1',
    instanceId: '12345678-aaaa',
    url: 'http://127.0.0.1:1',
    seq: 1,
    publicKey: SEED_ONES_PUBLIC_KEY,
    chunkIndex: 0,
    chunkCount: 1,
    files: [file],
  };
  const state = { ...announce, type: 'network.peer-state', superpeerId: 'sp-1' };
  const page = {
    v: 1,
    ok: true,
    type: 'rpc.snapshot',
    superpeerId: 'sp-1',
    peers: [
      {
        peerId: SEED_ONES_PEER_ID,
        publicKey: SEED_ONES_PUBLIC_KEY,
        instanceId: '12345678-aaaa',
        url: 'http://127.0.0.1:1',
        seq: 1,
        fileOffset: 0,
        fileTotal: 1,
        files: [file],
      },
    ],
  };
  assert.ok(decode(PeerEventSchema, encode(announce)).ok);
  assert.ok(decode(NetworkMessageSchema, encode(state)).ok);
  assert.ok(SnapshotReplySchema.safeParse(page).success);

  const stolen = 'b'.repeat(40); // a well-formed id that belongs to some other key
  const refused = decode(PeerEventSchema, encode({ ...announce, peerId: stolen }));
  assert.equal(refused.ok, false);
  assert.match(refused.ok ? '' : refused.reason, /peerId: peer id: not derived from publicKey/);
  assert.equal(decode(NetworkMessageSchema, encode({ ...state, peerId: stolen })).ok, false);
  assert.equal(
    SnapshotReplySchema.safeParse({ ...page, peers: [{ ...page.peers[0], peerId: stolen }] }).success,
    false,
  );
  // The name is display only: any valid name, or none, with the same id.
  assert.ok(decode(PeerEventSchema, encode({ ...announce, name: 'someone-else' })).ok);
  const { name: _omitted, ...unnamed } = announce;
  assert.ok(decode(PeerEventSchema, encode(unnamed)).ok);
  assert.equal(decode(PeerEventSchema, encode({ ...announce, name: '../x' })).ok, false);
});

test('a file entry is checked by the rules it always stated, written as a chain of zod checks', () => {
  // The entry as it was declared before its rules became one check.
  const reference = z.object({
    name: FileNameSchema,
    size: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    mtimeMs: z.number().min(0),
  });
  const pick = <T>(values: readonly T[], i: number): T => values[i % values.length]!;
  const names: unknown[] = [
    'a.txt',
    'dir/b c.txt',
    '.hidden',
    'a//b',
    '',
    'x\\y',
    'rtl-\u202etxt',
    'é.txt',
    7,
    null,
  ];
  const sizes: unknown[] = [
    0,
    1,
    1.5,
    -1,
    2 ** 53 - 1,
    2 ** 53,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    '5',
    null,
  ];
  const shas: unknown[] = [sha, 'A'.repeat(64), 'a'.repeat(63), 'g'.repeat(64), `${sha} `, 5];
  const mtimes: unknown[] = [
    0,
    1_700_000_000_000.5,
    -0.5,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    '1',
    undefined,
  ];
  const entries: unknown[] = [null, 'entry', [], 42];
  for (let i = 0; i < 4000; i++) {
    entries.push({
      name: pick(names, i),
      size: pick(sizes, Math.floor(i / 3)),
      sha256: pick(shas, Math.floor(i / 7)),
      mtimeMs: pick(mtimes, Math.floor(i / 11)),
      ...(i % 13 === 0 ? { extra: true } : {}),
    });
  }
  for (const entry of entries) {
    const expected = reference.safeParse(entry);
    const actual = FileEntrySchema.safeParse(entry);
    assert.equal(actual.success, expected.success, JSON.stringify(entry));
    if (expected.success) assert.deepEqual(actual.data, expected.data);
    else {
      // Each field named is one the chain found wrong (a field of the wrong type stops the rest).
      const paths = (issues: ReadonlyArray<{ path: PropertyKey[] }>) =>
        issues.map((issue) => issue.path.join('.'));
      const named = paths(actual.error!.issues);
      assert.ok(named.length > 0, JSON.stringify(entry));
      for (const field of named)
        assert.ok(paths(expected.error.issues).includes(field), JSON.stringify(entry));
    }
  }
});

test('the compiled stream unions give the runtime parser’s verdict, data and issues, valid input or not', () => {
  const { publicKey } = generateKeyPairSync('ed25519');
  const key = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  const peerId = peerIdFromPublicKey(key)!;
  const file = { name: 'music/Holiday Song.mp3', size: 5, sha256: sha, mtimeMs: 1 };
  const announce = {
    v: 1,
    type: 'peer.announce',
    peerId,
    instanceId: 'instance-0001',
    url: 'http://127.0.0.1:9',
    seq: 1,
    publicKey: key,
    chunkIndex: 0,
    chunkCount: 1,
    files: [file, { ...file, name: 'b.txt' }],
  };
  const state = { ...announce, type: 'network.peer-state', superpeerId: 'sp-1' };
  const badFiles: unknown[] = [
    { ...file, sha256: sha.toUpperCase() },
    { ...file, size: -1 },
    { ...file, size: 1.5 },
    { ...file, mtimeMs: Number.NaN },
    { ...file, name: '../up' },
    { ...file, name: 'rtl-\u202etxt.exe' },
    { ...file, name: 7 },
    { ...file, extra: 'dropped' },
    { name: file.name },
    null,
    'a.txt',
  ];
  const variants = (base: Record<string, unknown>): unknown[] => [
    base,
    { ...base, extra: 'dropped' },
    { ...base, v: 2 },
    { ...base, type: 'peer.nope' },
    { ...base, seq: 0 },
    { ...base, seq: '1' },
    { ...base, peerId: 'f'.repeat(40) },
    { ...base, chunkCount: 0 },
    { ...base, files: [] },
    { ...base, files: 'none' },
    ...badFiles.map((bad) => ({ ...base, files: [file, bad] })),
    [],
    null,
  ];
  const heartbeat = {
    v: 1,
    type: 'peer.heartbeat',
    peerId,
    instanceId: 'instance-0001',
    seq: 1,
    fileCount: 2,
  };
  const cases: Array<[z.ZodType, z.ZodType, unknown[]]> = [
    [
      PeerEventSchema,
      z.discriminatedUnion('type', STREAMS.peerEvents),
      [...variants(announce), heartbeat, { ...heartbeat, beat: 0 }, { ...heartbeat, beat: 3 }],
    ],
    [NetworkMessageSchema, z.discriminatedUnion('type', STREAMS.network), variants(state)],
  ];
  let valid = 0;
  for (const [compiled, runtime, inputs] of cases) {
    for (const input of inputs) {
      const got = compiled.safeParse(input);
      const want = runtime.safeParse(input);
      assert.equal(got.success, want.success, JSON.stringify(input));
      if (got.success && want.success) {
        valid++;
        assert.deepEqual(got.data, want.data);
      } else {
        assert.deepEqual(got.error?.issues, want.error?.issues, JSON.stringify(input));
      }
    }
  }
  assert.ok(valid >= 6, `${valid} of the inputs were valid`);
});

test('decode refuses a body nested deeper than 32 levels before parsing it; brackets in strings do not count', () => {
  const deep = (levels: number) =>
    Buffer.from(`{"v":1,"type":"peer.leave","peerId":"p","pad":${'['.repeat(levels)}${']'.repeat(levels)}}`);
  assert.deepEqual(decode(PeerEventSchema, deep(40)), { ok: false, reason: 'nesting deeper than 32 levels' });
  // 31 levels inside the body's own object: within the bound, so the schema decides (it refuses `pad`-less
  // shapes for its own reasons, never the nesting).
  const within = decode(PeerEventSchema, deep(31));
  assert.equal(within.ok ? '' : within.reason.startsWith('nesting'), false);
  assert.equal(nestsDeeperThan(`{"a":"${'['.repeat(100)}\\"${'{'.repeat(100)}"}`, 32), false);
  assert.equal(nestsDeeperThan('[[["]"]]]', 2), true);
  // The 4 MiB body of nested arrays an attacker sent: refused in one pass, without JSON.parse building it.
  const hostile = Buffer.from(`{"pad":${'['.repeat(2_000_000)}${']'.repeat(2_000_000)}}`);
  const started = performance.now();
  assert.equal(decode(PeerEventSchema, hostile).ok, false);
  const refusedMs = performance.now() - started;
  const flat = Buffer.from(`{"pad":[${'0,'.repeat(1_999_999)}0]}`);
  const flatStarted = performance.now();
  decode(PeerEventSchema, flat);
  const flatMs = performance.now() - flatStarted;
  assert.ok(
    refusedMs < flatMs * 2,
    `refused in ${refusedMs.toFixed(1)} ms; a flat body as long: ${flatMs.toFixed(1)} ms`,
  );
});
