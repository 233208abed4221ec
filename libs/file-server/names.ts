import { FileNameSchema } from '../protocol/index.js';

export type RequestedName = { ok: true; name: string } | { ok: false; reason: string };

/**
 * Turns the already percent-decoded path segments of a request (express 5 decodes each segment of a splat
 * exactly once) into a share name, or says why the request cannot name a shared file.
 *
 * A `/` or `\` inside a decoded segment came from `%2f`/`%5c` (or a raw backslash): refused rather than
 * joined, so an encoded separator can never form a path the URL did not show. The rest (empty, `.`/`..` and
 * dotfile segments, control characters, length) is `FileNameSchema`, the same rule the share publishes by.
 */
export function nameFromSegments(segments: readonly string[]): RequestedName {
  if (segments.length === 0) return { ok: false, reason: 'empty name' };
  for (const segment of segments) {
    if (segment.includes('/')) return { ok: false, reason: 'encoded slash inside a segment' };
    if (segment.includes('\\')) return { ok: false, reason: 'backslash in name' };
  }
  const name = segments.join('/');
  const parsed = FileNameSchema.safeParse(name);
  if (!parsed.success) return { ok: false, reason: parsed.error.issues[0]?.message ?? 'invalid name' };
  return { ok: true, name };
}
