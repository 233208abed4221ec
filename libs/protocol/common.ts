import { z } from 'zod';

/** Version of the wire protocol; carried in every message body as `v`. */
export const PROTOCOL_VERSION = 1;

/** A message body larger than this is refused before parsing (bytes). */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/** File lists longer than this are split into several messages (chunks or consecutive deltas). */
export const MAX_FILES_PER_MESSAGE = 2000;

export const PeerIdSchema = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/,
    'peer id: 1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit',
  );

/** Random id of one run of a process; a new one means the sender restarted and its sequence began again. */
export const InstanceIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9-]{8,64}$/, 'instance id: 8-64 of A-Z a-z 0-9 -');

export const Sha256Schema = z.string().regex(/^[0-9a-f]{64}$/, 'sha256: 64 lowercase hex digits');

/** Per-sender sequence number: 1 for the first full state of an instance, +1 for every change after it. */
export const SeqSchema = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);

// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

/**
 * Characters that make a name display as something else: C1 controls, line/paragraph separators, and every
 * invisible format character (Unicode Cf: bidi embeddings, overrides and isolates such as U+202E, marks,
 * zero-width spaces, BOM, word joiner, soft hyphen, tags…), except ZWNJ/ZWJ (U+200C/U+200D), which scripts
 * and emoji sequences need.
 */
const SPOOFING_CHARS = /[\u0080-\u009f\u2028\u2029]|(?![\u200c\u200d])\p{Cf}/u;

/**
 * A shared file's name: its path relative to the share, with `/` between segments. No empty, `.` or `..`
 * segment, no backslash, no control character (C0, C1), no bidi or other invisible format character
 * (see SPOOFING_CHARS), no dotfile segment (dotfiles are never shared).
 */
export const FileNameSchema = z
  .string()
  .min(1)
  .max(1024)
  .refine((name) => !CONTROL_CHARS.test(name), 'file name: no control characters')
  .refine(
    (name) => !SPOOFING_CHARS.test(name),
    'file name: no C1 control, bidi or invisible format character',
  )
  .refine((name) => !name.includes('\\'), 'file name: no backslash')
  .refine(
    (name) => name.split('/').every((segment) => segment.length > 0 && !segment.startsWith('.')),
    'file name: relative path without empty, dot or dotfile segments',
  );

export const FileEntrySchema = z.object({
  name: FileNameSchema,
  /** Bytes. */
  size: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  sha256: Sha256Schema,
  /** Last modification time, milliseconds since the epoch. */
  mtimeMs: z.number().min(0),
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

/** Direct download URL of a file on a peer whose HTTP base URL is `baseUrl`. */
export function fileUrl(baseUrl: string, name: string): string {
  const base = baseUrl.endsWith('/') ? baseUrl.slice(0, -1) : baseUrl;
  return `${base}/files/${name.split('/').map(encodeURIComponent).join('/')}`;
}

/** Splits a list into pieces of at most `size` items; an empty list gives one empty piece. */
export function chunk<T>(items: readonly T[], size: number = MAX_FILES_PER_MESSAGE): T[][] {
  if (items.length === 0) return [[]];
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
