import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  decode,
  decodeWithFileList,
  decodeWithFileLists,
  EACH_PEERS_FILES,
  type FileEntry,
  type FileListOptions,
  MAX_FILES_PER_MESSAGE,
  MAX_MESSAGE_BYTES,
  NetworkMessageSchema,
  PeerEventSchema,
  SnapshotReplySchema,
} from '../../libs/protocol/index.js';
import { prng } from '../helpers/prng.js';

// The key of docs/protocol.md's example, and the peer id derived from it.
const PUBLIC_KEY = 'MCowBQYDK2VwAyEAiojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w=';
const PEER_ID = 'fd110d301d2f077de1414b8f99f441b1403fab20';
const SHA = (i: number) => i.toString(16).padStart(64, '0');

function files(count: number, name = (i: number) => `music/alpha-${i}.dat`): FileEntry[] {
  return Array.from({ length: count }, (_, i) => ({
    name: name(i),
    size: i * 37,
    sha256: SHA(i),
    mtimeMs: 1_700_000_000_000 + i,
  }));
}

function announce(list: unknown, extra: Record<string, unknown> = {}) {
  return {
    v: 1,
    type: 'peer.announce',
    peerId: PEER_ID,
    name: 'peer1',
    instanceId: '0b7c9d1e-5a4f-4e0b-9c55-2f8f0f6d1a22',
    url: 'http://127.0.0.1:8080',
    seq: 1,
    publicKey: PUBLIC_KEY,
    chunkIndex: 0,
    chunkCount: 1,
    files: list,
    ...extra,
  };
}

/**
 * Both ways of reading `body`: the same verdict (and the same reason when refused), the same message, and
 * when the list was read into columns, its JSON is what JSON.stringify gives of the general path's list.
 */
function bothWays(
  body: Buffer,
  schema: typeof PeerEventSchema | typeof NetworkMessageSchema = PeerEventSchema,
  options: FileListOptions = {},
) {
  const general = decode(schema, body);
  const fast = decodeWithFileList(schema, body, options);
  assert.equal(fast.ok, general.ok, `verdict for ${body.toString().slice(0, 200)}`);
  if (!fast.ok || !general.ok) {
    if (!fast.ok && !general.ok) assert.equal(fast.reason, general.reason);
    return { general, fast, packed: undefined };
  }
  const { value, packed } = fast.value;
  if (packed === undefined) {
    assert.deepEqual(value, general.value);
    return { general, fast, packed };
  }
  const generalFiles = (general.value as { files: FileEntry[] }).files;
  assert.deepEqual({ ...value, files: packed.entries() }, general.value);
  assert.deepEqual((value as { files: FileEntry[] }).files, []);
  assert.equal(packed.json.toString('utf8'), JSON.stringify(generalFiles));
  const names = new Set(generalFiles.map((file) => file.name));
  assert.equal(fast.value.distinctNames, names.size === generalFiles.length);
  return { general, fast, packed };
}

const bodyOf = (message: unknown) => Buffer.from(JSON.stringify(message));

describe('file lists read canonically (decodeWithFileList)', () => {
  it('reads a list as JSON.stringify writes it into columns, with the same message as the general path', () => {
    for (const count of [0, 1, 2, 1000, MAX_FILES_PER_MESSAGE]) {
      const { packed } = bothWays(bodyOf(announce(files(count))));
      assert.equal(packed?.length, count, `${count} files read into columns`);
    }
    const state = { ...announce(files(3)), type: 'network.peer-state', superpeerId: 'sp-1' };
    assert.equal(bothWays(bodyOf(state), NetworkMessageSchema).packed?.length, 3);
    // A peer neither rebroadcasts nor needs to know the names distinct.
    const lean = decodeWithFileList(NetworkMessageSchema, bodyOf(state), {
      json: false,
      distinctNames: false,
    });
    assert.ok(lean.ok && lean.value.packed);
    assert.equal(lean.value.packed.json.length, 0);
    assert.equal(lean.value.distinctNames, undefined);
    assert.deepEqual(lean.value.packed.entries(), files(3));
  });

  it('reads names beyond ASCII, every number form String() writes, and repeated names', () => {
    const odd: FileEntry[] = [
      { name: 'photos/été/Ünïcode 😀.jpg', size: 0, sha256: SHA(1), mtimeMs: 0 },
      { name: 'a', size: Number.MAX_SAFE_INTEGER, sha256: SHA(2), mtimeMs: 1_700_000_000_000.25 },
      { name: 'x/y/z/w.txt', size: 1234567890123456, sha256: SHA(3), mtimeMs: 1e21 },
      { name: 'ZWJ\u200dname', size: 5, sha256: `${'abcdef'.repeat(10)}0123`, mtimeMs: 5e-7 },
      { name: 'a', size: 1, sha256: SHA(4), mtimeMs: 1 },
    ];
    const { packed, fast } = bothWays(bodyOf(announce(odd)));
    assert.equal(packed?.length, odd.length);
    assert.equal(fast.ok && fast.value.distinctNames, false);
    assert.equal(bothWays(bodyOf(announce(odd.slice(0, 4)))).fast.ok, true);
  });

  it('reads a list written with white space between its tokens, its JSON kept without it', () => {
    const list = [
      ...files(3),
      { name: 'docs/a guide  with spaces.md', size: 9, sha256: SHA(7), mtimeMs: 2.5 },
    ];
    const message = announce(list);
    const compact = JSON.stringify(message);
    // Python's json.dumps by default: a space after every `,` and `:` outside strings.
    const pythonStyle = compact.replace(/"(?:[^"\\]|\\.)*"|[,:]/g, (token) =>
      token === ',' || token === ':' ? `${token} ` : token,
    );
    for (const text of [
      pythonStyle,
      JSON.stringify(message, null, 2),
      JSON.stringify(message, null, '\t').replace(/\n/g, '\r\n'),
      compact.replace('"files":[', '"files" :\n [ ').replace(/}]/, '} \n]'),
    ]) {
      const { packed } = bothWays(Buffer.from(text));
      assert.equal(packed?.length, list.length, `read into columns: ${text.slice(0, 80)}`);
      assert.equal(packed.json.toString('utf8'), JSON.stringify(list));
    }
  });

  it('passes over a "files" that is not a list key, and decides as the general path when the key is not a list', () => {
    // A display name "files" before the list: the list is still read into columns.
    const named = bothWays(bodyOf({ ...announce(files(2)), name: 'files' }));
    assert.equal(named.packed?.length, 2);
    // The key with no list after it: read the general way (which refuses it), both ways alike.
    const noList = JSON.stringify(announce(files(2))).replace(/"files":\[.*\]/, '"files" : null');
    const { general, packed } = bothWays(Buffer.from(noList));
    assert.equal(general.ok, false);
    assert.equal(packed, undefined);
  });

  it('leaves every other writing to the general path, which decides as before', () => {
    const one = files(2);
    const canonical = bodyOf(announce(one)).toString();
    const declined = [
      canonical.replace('{"name":"music/alpha-0.dat","size":0', '{"size":0,"name":"music/alpha-0.dat"'),
      canonical.replace('alpha-0', 'alph\\u0061-0'), // an escape that decodes to the same name
      canonical.replace('"size":37', '"size":37.0'),
      canonical.replace('"size":37', '"size":3.7e1'),
      canonical.replace('"mtimeMs":1700000000001', '"mtimeMs":1.700000000001e12'),
      canonical.replace('"mtimeMs":1700000000001', '"mtimeMs":1700000000001.50'),
      canonical.replace('"size":37,', '"size":37,"extra":1,'), // the schema drops the key
      canonical.replace('"size":37', '"size":-0'), // JSON.stringify writes 0
      canonical.replace(SHA(1), SHA(1).toUpperCase().replace(/0/g, 'A')),
      bodyOf(announce([{ name: 'say "hi".txt', size: 1, sha256: SHA(1), mtimeMs: 1 }])).toString(),
    ];
    for (const text of declined) {
      assert.equal(bothWays(Buffer.from(text)).packed, undefined, `not canonical: ${text.slice(150, 320)}`);
    }
  });

  it('refuses what the general path refuses, with its reason', () => {
    const bad = [
      '../up.txt',
      'a/./b',
      '.hidden',
      'dir/',
      '/abs',
      'a//b',
      'tab\there',
      'del\u007f',
      'c1\u0085',
      'bidi\u202egnp.exe',
      'x'.repeat(1025),
      'é'.repeat(1025),
    ];
    for (const name of bad) {
      const { general } = bothWays(bodyOf(announce([{ name, size: 1, sha256: SHA(1), mtimeMs: 1 }])));
      assert.equal(general.ok, false, name);
    }
    const canonical = bodyOf(announce(files(1))).toString();
    for (const text of [
      canonical.replace('"size":0', '"size":01'),
      canonical.replace('"size":0', '"size":-1'),
      canonical.replace('"size":0', '"size":9007199254740992'),
      canonical.replace('"mtimeMs":1700000000000', '"mtimeMs":-1'),
      canonical.replace(SHA(0), SHA(0).slice(1)),
      canonical.replace(SHA(0), `${SHA(0)}0`),
      bodyOf(announce(files(MAX_FILES_PER_MESSAGE + 1))).toString(),
    ]) {
      assert.equal(bothWays(Buffer.from(text)).general.ok, false, text.slice(150, 400));
    }
    // Not UTF-8: the general path reads U+FFFD there and accepts it; the bytes are not that name.
    const invalid = Buffer.from(bodyOf(announce(files(1))));
    invalid[invalid.indexOf('alpha')] = 0xff;
    assert.equal(bothWays(invalid).packed, undefined);
  });

  it('reads only the list that counts: not a nested one, nor one a later key of the same name replaces', () => {
    const real = files(2);
    const decoy = files(3, (i) => `decoy/${i}.txt`);
    const cases = [
      // A list of the same shape nested in another field, before the real one (the schema drops the field).
      `{"meta":{"files":${JSON.stringify(decoy)}},${bodyOf(announce(real)).toString().slice(1)}`,
      // Two top-level `files`: JSON.parse keeps the last.
      bodyOf(announce(decoy))
        .toString()
        .replace(/}$/, `,"files":${JSON.stringify(real)}}`),
      bodyOf(announce(real))
        .toString()
        .replace(/}$/, `,"fil\\u0065s":${JSON.stringify(decoy)}}`),
      // The key written with an escape, after a nested list of the real shape.
      `{"meta":{"files":${JSON.stringify(decoy)}},${bodyOf(announce(real)).toString().slice(1).replace('"files"', '"fil\\u0065s"')}`,
      // A key that ends with the same characters.
      bodyOf(announce(real))
        .toString()
        .replace(/}$/, `,"x\\"files":${JSON.stringify(decoy)}}`),
    ];
    for (const text of cases) {
      const { general, packed } = bothWays(Buffer.from(text));
      assert.equal(general.ok, true, text.slice(0, 120));
      if (packed !== undefined)
        assert.equal(packed.name(0), (general.value as { files: FileEntry[] }).files[0]!.name);
    }
  });

  it('decides as the general path on random damage to a canonical body', () => {
    const random = prng(20261201);
    const base = bodyOf(
      announce([
        ...files(6),
        { name: 'photos/été 😀.jpg', size: 12, sha256: SHA(9), mtimeMs: 1_700_000_000_000.5 },
      ]),
    );
    const alphabet = Buffer.from('{}[]",:.\\/-+eE0123456789abcdefxyz \u00e9');
    let readInColumns = 0;
    for (let round = 0; round < 3000; round++) {
      const bytes = [...base];
      const edits = 1 + Math.floor(random() * 3);
      for (let e = 0; e < edits; e++) {
        const at = Math.floor(random() * bytes.length);
        const byte = alphabet[Math.floor(random() * alphabet.length)]!;
        const kind = random();
        if (kind < 0.4) bytes[at] = byte;
        else if (kind < 0.7) bytes.splice(at, 0, byte);
        else bytes.splice(at, 1);
      }
      if (bothWays(Buffer.from(bytes)).packed !== undefined) readInColumns++;
    }
    // Damage to the envelope (not the list) leaves the list canonical: some are read in columns.
    assert.ok(readInColumns > 100, `${readInColumns} of 3000 read in columns`);
  });
  it('declines a name of megabytes after one look, and decides as the general path', () => {
    for (const name of ['a'.repeat(3 * 2 ** 20), 'é'.repeat(1.5 * 2 ** 20)]) {
      const body = bodyOf(announce([{ name, size: 1, sha256: SHA(1), mtimeMs: 1 }]));
      assert.ok(body.length > 3 * 2 ** 20 && body.length <= MAX_MESSAGE_BYTES, 'inside the body cap');
      const { general, fast } = bothWays(body);
      assert.equal(general.ok, false);
      assert.equal(fast.ok, false);
      // The reader's look, then the general path's parse: each a pass or two over 3 MiB, so the fast path
      // costs a small multiple of the general one (a look that rescanned the name would cost thousands).
      const fastestOf = (run: () => unknown) => {
        let best = Number.POSITIVE_INFINITY;
        for (let i = 0; i < 3; i++) {
          const started = performance.now();
          run();
          best = Math.min(best, performance.now() - started);
        }
        return best;
      };
      const fastMs = fastestOf(() => decodeWithFileList(PeerEventSchema, body));
      const generalMs = fastestOf(() => decode(PeerEventSchema, body));
      assert.ok(fastMs < 5 * generalMs, `${fastMs.toFixed(1)} ms against ${generalMs.toFixed(1)} ms`);
    }
  });

  it('packs into a spare buffer: a list read and then declined leaves no trace in the next one read there', () => {
    // The hardest supplier: the same buffer every time, larger than asked, and full of bytes that are wrong
    // in every column (a name's ASCII flag among them) before anything is packed into it.
    const buffer = new ArrayBuffer(64 * 1024);
    new Uint8Array(buffer).fill(1);
    let taken = 0;
    const spare = (bytes: number) => {
      taken++;
      return bytes <= buffer.byteLength ? buffer : undefined;
    };
    const first = files(2);
    // Differs from `first` in every column, with the same count: the columns start where they did.
    const next: FileEntry[] = [
      { name: 'photos/été.jpg', size: 5, sha256: 'e'.repeat(64), mtimeMs: 1.5 },
      { name: 'ü', size: 9_000_000_000, sha256: 'f'.repeat(64), mtimeMs: 2 },
    ];
    const canonical = bodyOf(announce(first)).toString();
    const declined = [
      // Two top-level `files`: the list read is not the one that counts.
      canonical.replace(/}$/, `,"files":${JSON.stringify(next)}}`),
      // The list is canonical; the message around it fails the schema, or is not JSON.
      bodyOf(announce(first, { seq: -1 })).toString(),
      `${canonical}x`,
    ];
    for (const text of declined) {
      const before = taken;
      const { packed } = bothWays(Buffer.from(text), PeerEventSchema, { spare });
      assert.equal(packed, undefined, text.slice(-120));
      assert.ok(taken > before, 'the list was packed into the spare before the reader declined');
      // The next list goes over the declined one in the same buffer.
      const read = bothWays(bodyOf(announce(next)), PeerEventSchema, { spare }).packed;
      assert.ok(read);
      assert.equal(read.buffer, buffer, 'packed into the spare');
      assert.deepEqual(read.entries(), next);
      assert.equal(read.json.toString('utf8'), JSON.stringify(next));
    }
  });
});

describe('snapshot pages read canonically (decodeWithFileLists, a list per peer)', () => {
  /** A page of `lists.length` entries of the same peer (the key's), each holding one of `lists`. */
  function snapshotPage(lists: FileEntry[][]) {
    return {
      v: 1,
      type: 'rpc.snapshot',
      ok: true,
      superpeerId: 'sp-1',
      peers: lists.map((list, k) => ({
        peerId: PEER_ID,
        name: `peer${k}`,
        instanceId: '0b7c9d1e-5a4f-4e0b-9c55-2f8f0f6d1a22',
        url: `http://127.0.0.1:${8080 + k}`,
        seq: 1,
        publicKey: PUBLIC_KEY,
        fileOffset: 0,
        fileTotal: list.length,
        files: list,
      })),
    };
  }

  /** Both ways: the same verdict and page, each list (when read in columns) its peer's. */
  function pageBothWays(body: Buffer) {
    const general = decode(SnapshotReplySchema, body);
    const fast = decodeWithFileLists(SnapshotReplySchema, body, EACH_PEERS_FILES, { json: false });
    assert.equal(fast.ok, general.ok);
    if (!fast.ok || !general.ok) {
      if (!fast.ok && !general.ok) assert.equal(fast.reason, general.reason);
      return undefined;
    }
    const { value, packed } = fast.value;
    if (packed === undefined) {
      assert.deepEqual(value, general.value);
      return undefined;
    }
    assert.equal(packed.length, value.peers.length);
    const restored = {
      ...value,
      peers: value.peers.map((peer, k) => ({ ...peer, files: packed[k]!.entries() })),
    };
    assert.deepEqual(restored, general.value);
    for (const peer of value.peers) assert.deepEqual(peer.files, []);
    return packed;
  }

  it("reads each peer's list into its own columns, with the same page as the general path", () => {
    const lists = [files(3), [], files(1000, (i) => `b/${i}.txt`), files(2, (i) => `c/été ${i}.txt`)];
    const packed = pageBothWays(bodyOf(snapshotPage(lists)));
    assert.deepEqual(
      packed?.map((list) => list.length),
      lists.map((list) => list.length),
    );
    // With a cursor after the peers (the page's other keys are read the general way).
    const paged = { ...snapshotPage([files(2)]), next: { peerId: PEER_ID, fileOffset: 2 } };
    assert.equal(pageBothWays(bodyOf(paged))?.length, 1);
  });

  it('reads the page the general way when any list is not canonical, or a list is not where a peer holds it', () => {
    const canonical = bodyOf(snapshotPage([files(2), files(2, (i) => `b/${i}.txt`)])).toString();
    const cases = [
      // The second list's keys in another order: the first alone is not the page.
      canonical.replace('{"name":"b/0.txt","size":0', '{"size":0,"name":"b/0.txt"'),
      // A list of the same shape outside the peers (the schema is strict: refused both ways).
      canonical.replace(/}$/, `,"files":${JSON.stringify(files(1))}}`),
      // Two lists in one peer: JSON.parse keeps the last.
      canonical.replace(
        '"fileTotal":2,"files":[{"name":"b/0.txt"',
        `"fileTotal":2,"files":${JSON.stringify(files(1))},"files":[{"name":"b/0.txt"`,
      ),
      // A page that is not a snapshot reply, with lists where the peers would have them.
      canonical.replace('"peers":', '"others":'),
    ];
    for (const text of cases) assert.equal(pageBothWays(Buffer.from(text)), undefined, text.slice(0, 200));
  });

  it('reads a page of more lists than a page of 1000 files needs the general way (no buffer per empty list)', () => {
    const many = Array.from({ length: 1025 }, () => [] as FileEntry[]);
    let taken = 0;
    const spare = () => {
      taken++;
      return undefined;
    };
    const body = bodyOf(snapshotPage(many));
    const read = decodeWithFileLists(SnapshotReplySchema, body, EACH_PEERS_FILES, { json: false, spare });
    assert.ok(read.ok);
    assert.equal(read.value.packed, undefined);
    assert.equal(read.value.value.peers.length, 1025);
    assert.ok(taken <= 1024, `${taken} buffers asked for`);
    assert.equal(pageBothWays(bodyOf(snapshotPage(many.slice(0, 1024))))?.length, 1024);
  });
});
