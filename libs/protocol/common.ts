import { createHash } from 'node:crypto';
import { z } from 'zod';

/** Version of the wire protocol; carried in every message body as `v`. */
export const PROTOCOL_VERSION = 1;

/** A message body larger than this is refused before parsing (bytes). */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/** File lists longer than this are split into several messages (chunks or consecutive deltas). */
export const MAX_FILES_PER_MESSAGE = 2000;

/**
 * A node's chosen name: a superpeer's id (`SUPERPEER_ID`) and a peer's display name (`PEER_NAME`). Names
 * are not unique and prove nothing; they are for people (tables, the web page, the management UI).
 */
export const NodeNameSchema = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/,
    'name: 1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit',
  );

/** Bytes of SHA-256 kept in a peer id (160 bits: a second key with the same id costs 2^160 tries). */
export const PEER_ID_HASH_BYTES = 20;

/**
 * A peer id is self-certifying: the lowercase hex of the first 20 bytes of SHA-256 over the peer's Ed25519
 * public key in DER (SPKI) form, the 44 bytes whose base64 the announce carries as `publicKey`. Only the
 * holder of the matching private key can sign events for it, on any superpeer, at any time.
 */
export const PeerIdSchema = z
  .string()
  .regex(/^[0-9a-f]{40}$/, 'peer id: 40 lowercase hex digits (SHA-256 of the public key, first 20 bytes)');

/** DER (SPKI) prefix of every Ed25519 public key: SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING (32 bytes) }. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const ED25519_SPKI_BYTES = ED25519_SPKI_PREFIX.length + 32;

/** An Ed25519 public key as the protocol carries it: canonical base64 of its 44-byte DER (SPKI) form. */
export const PublicKeySchema = z
  .string()
  .length(60)
  .refine(
    (value) => ed25519PublicKeyBytes(value) !== undefined,
    'publicKey: base64 of an Ed25519 DER (SPKI) key',
  );

/** p = 2^255 - 19, little-endian, without its top bit (where an encoded point keeps the sign of x). */
const FIELD_PRIME = Buffer.from('edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', 'hex');

/**
 * The y of every Ed25519 point of small order (libsodium's list; the sign bit aside), and p, p + 1 (y = 0,
 * y = 1 written past p). For such a key one signature (R = the identity, S = 0) verifies many bodies, all
 * of them for the identity: a peer id derived from one would be anyone's.
 */
const SMALL_ORDER_Y = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
].map((hex) => Buffer.from(hex, 'hex'));

/** Whether an encoded point's y (its 32 bytes without the sign bit) is below p: one point, one spelling. */
function canonicalY(y: Buffer): boolean {
  for (let i = 31; i >= 0; i--) {
    if (y[i] !== FIELD_PRIME[i]) return y[i]! < FIELD_PRIME[i]!;
  }
  return false; // y = p
}

/**
 * The DER bytes of a canonical base64 Ed25519 SPKI key, or undefined when it is anything else: another
 * kind of key, another spelling of the bytes, a point written past p, or a point of small order.
 */
export function ed25519PublicKeyBytes(publicKeyB64: string): Buffer | undefined {
  if (typeof publicKeyB64 !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(publicKeyB64)) return undefined;
  const der = Buffer.from(publicKeyB64, 'base64');
  // Buffer.from skips what it cannot decode: insist on the canonical form, so one key has one spelling.
  if (der.length !== ED25519_SPKI_BYTES || der.toString('base64') !== publicKeyB64) return undefined;
  if (!der.subarray(0, ED25519_SPKI_PREFIX.length).equals(ED25519_SPKI_PREFIX)) return undefined;
  const y = Buffer.from(der.subarray(ED25519_SPKI_PREFIX.length));
  y[31]! &= 0x7f;
  if (!canonicalY(y) || SMALL_ORDER_Y.some((weak) => weak.equals(y))) return undefined;
  return der;
}

/** The peer id that belongs to a public key (base64 DER SPKI), or undefined when the key is malformed. */
export function peerIdFromPublicKey(publicKeyB64: string): string | undefined {
  const der = ed25519PublicKeyBytes(publicKeyB64);
  if (!der) return undefined;
  return createHash('sha256').update(der).digest().subarray(0, PEER_ID_HASH_BYTES).toString('hex');
}

/** True when `peerId` is the id derived from `publicKeyB64`. */
export function peerIdMatchesKey(peerId: string, publicKeyB64: string): boolean {
  return peerIdFromPublicKey(publicKeyB64) === peerId;
}

/**
 * Zod refinement for a message carrying both `peerId` and `publicKey`: `schema.refine(...refinePeerKey)`.
 * A `refine`, not a `superRefine`: zod's superRefine hangs a closure over the parsed value on each parse,
 * and V8 kept every parsed message alive through a second young-generation collection and promoted it
 * (96% of what survived one, against none with `refine`), a peer receiving states filling its old
 * generation with dead file lists.
 */
export const refinePeerKey: [
  (value: { peerId: string; publicKey: string }) => boolean,
  { path: PropertyKey[]; message: string },
] = [
  (value) => peerIdMatchesKey(value.peerId, value.publicKey),
  {
    path: ['peerId'],
    message: 'peer id: not derived from publicKey (hex of SHA-256 of the DER key, first 20 bytes)',
  },
];

/** Random id of one run of a process; a new one means the sender restarted and its sequence began again. */
export const InstanceIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9-]{8,64}$/, 'instance id: 8-64 of A-Z a-z 0-9 -');

export const Sha256Schema = z.string().regex(/^[0-9a-f]{64}$/, 'sha256: 64 lowercase hex digits');

/** Per-sender sequence number: 1 for the first full state of an instance, +1 for every change after it. */
export const SeqSchema = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);

/**
 * Characters that make a name display as something else: C1 controls, line/paragraph separators, and every
 * invisible format character (Unicode Cf: bidi embeddings, overrides and isolates such as U+202E, marks,
 * zero-width spaces, BOM, word joiner, soft hyphen, tags…), except ZWNJ/ZWJ (U+200C/U+200D), which scripts
 * and emoji sequences need.
 */
const SPOOFING_CHARS = /[\u0080-\u009f\u2028\u2029]|(?![\u200c\u200d])\p{Cf}/u;

/** Longest file name, in UTF-16 code units. */
export const MAX_FILE_NAME_LENGTH = 1024;

/**
 * Why `name` is not a shared file's name, or undefined when it is one (see FileNameSchema). One pass over
 * its code units (a million names arrive in a join, each checked by the superpeer and by every peer); the
 * spoofing characters are only looked for in a name with a non-ASCII unit.
 */
export function fileNameProblem(name: string): string | undefined {
  if (name.length < 1 || name.length > MAX_FILE_NAME_LENGTH) return 'file name: 1 to 1024 characters';
  let segmentStart = true;
  let ascii = true;
  for (let i = 0; i < name.length; i++) {
    const unit = name.charCodeAt(i);
    if (unit < 0x20 || unit === 0x7f) return 'file name: no control characters';
    if (unit === 0x5c) return 'file name: no backslash';
    if (unit === 0x2f) {
      if (segmentStart) return SEGMENTS_PROBLEM;
      segmentStart = true;
      continue;
    }
    if (segmentStart && unit === 0x2e) return SEGMENTS_PROBLEM;
    segmentStart = false;
    if (unit < 0x80) continue;
    ascii = false;
    if (unit >= 0xd800 && unit <= 0xdfff) {
      // A lone surrogate (a JSON escape can write one) is no character: UTF-8 (the index, the wire, a
      // disk, a URL) writes it as U+FFFD, so names that differ only there would be one name.
      const next = name.charCodeAt(i + 1);
      if (unit >= 0xdc00 || !(next >= 0xdc00 && next <= 0xdfff)) return LONE_SURROGATE_PROBLEM;
      i++;
    }
  }
  if (segmentStart) return SEGMENTS_PROBLEM;
  if (!ascii && SPOOFING_CHARS.test(name))
    return 'file name: no C1 control, bidi or invisible format character';
  return undefined;
}

const SEGMENTS_PROBLEM = 'file name: relative path without empty, dot or dotfile segments';
const LONE_SURROGATE_PROBLEM = 'file name: well-formed Unicode (no lone surrogate)';

/**
 * A shared file's name: its path relative to the share, with `/` between segments, 1 to 1024 characters. No
 * empty, `.` or `..` segment, no backslash, no control character (C0, C1), no bidi or other invisible format
 * character (see SPOOFING_CHARS), no dotfile segment (dotfiles are never shared), no lone surrogate. One check
 * (`fileNameProblem`) rather than a chain of refinements: each step of a chain costs about 0.1 µs, and
 * a join checks a million names.
 */
export const FileNameSchema = z.string().check((ctx) => {
  const problem = fileNameProblem(ctx.value);
  if (problem !== undefined) ctx.issues.push({ code: 'custom', message: problem, input: ctx.value });
});

const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * One file of a share: `name` (FileNameSchema's rule), `size` in bytes (an integer from 0 to 2^53−1),
 * `sha256` (64 lowercase hex digits), `mtimeMs` (last modification, milliseconds since the epoch, ≥ 0).
 * Zod reads the types; one check then applies every rule to the entry (each step of a chain of zod checks
 * costs about 0.1 µs, and a join checks a million entries on the superpeer and again on every peer). The
 * messages name the field, as the chain's did.
 */
export const FileEntrySchema = z
  .object({
    name: z.string(),
    size: z.number(),
    sha256: z.string(),
    mtimeMs: z.number(),
  })
  .check((ctx) => {
    const { name, size, sha256, mtimeMs } = ctx.value;
    const problem = fileNameProblem(name);
    if (problem !== undefined)
      ctx.issues.push({ code: 'custom', path: ['name'], message: problem, input: name });
    if (!Number.isSafeInteger(size) || size < 0) {
      ctx.issues.push({
        code: 'custom',
        path: ['size'],
        message: 'size: an integer from 0 to 2^53-1',
        input: size,
      });
    }
    if (!SHA256_HEX.test(sha256)) {
      ctx.issues.push({
        code: 'custom',
        path: ['sha256'],
        message: 'sha256: 64 lowercase hex digits',
        input: sha256,
      });
    }
    if (!(mtimeMs >= 0)) {
      ctx.issues.push({ code: 'custom', path: ['mtimeMs'], message: 'mtimeMs: 0 or more', input: mtimeMs });
    }
  });
export type FileEntry = z.infer<typeof FileEntrySchema>;

export const HttpUrlSchema = z
  .string()
  .max(2048)
  .refine((value) => {
    try {
      const url = new URL(value);
      return (
        (url.protocol === 'http:' || url.protocol === 'https:') && url.username === '' && url.password === ''
      );
    } catch {
      return false;
    }
  }, 'url: an http(s) URL without credentials');

/**
 * Direct download URL of a file on a peer whose HTTP base URL is `baseUrl`: each segment of `name`
 * percent-encoded (encoding the whole name and putting its slashes back is the same, in one pass: a `%`
 * of the name itself becomes `%25`, so every `%2F` left is an encoded slash).
 */
export function fileUrl(baseUrl: string, name: string): string {
  const base = baseUrl.endsWith('/') ? baseUrl.slice(0, -1) : baseUrl;
  return `${base}/files/${encodeURIComponent(name).replaceAll('%2F', '/')}`;
}

/** `v` of every message body: the protocol version this code speaks. */
export const VersionSchema = z.literal(PROTOCOL_VERSION);

/**
 * The schema of one message type: the protocol version `v`, the literal `type`, then the message's own
 * `fields`. Every message but an error reply (which has no type) is declared through this.
 */
export function messageSchema<const T extends string, F extends z.ZodRawShape>(type: T, fields: F) {
  return z.object({ v: VersionSchema, type: z.literal(type), ...fields });
}

/** A file list of one message (announce chunk, delta, network state). */
export const FileListSchema = z.array(FileEntrySchema).max(MAX_FILES_PER_MESSAGE);

/** The names a delta removes. */
export const FileNameListSchema = z.array(FileNameSchema).max(MAX_FILES_PER_MESSAGE);

/** What a refusal says: a stable code and one line for a person. */
export const ErrorBodySchema = z.object({ code: z.string().max(64), message: z.string().max(1000) });

/** Splits a list into pieces of at most `size` items; an empty list gives one empty piece. */
export function chunk<T>(items: readonly T[], size: number = MAX_FILES_PER_MESSAGE): T[][] {
  if (items.length === 0) return [[]];
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
