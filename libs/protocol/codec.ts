import type { z } from 'zod';
import { MAX_MESSAGE_BYTES } from './common.js';
import { MAX_JSON_DEPTH, nestsDeeperThan } from './json-depth.js';

export type DecodeResult<T> = { ok: true; value: T } | { ok: false; reason: string };

/**
 * Parses a message body against its schema. Never throws: a bad body from a remote party is an expected
 * input, and the caller dead-letters it with `reason`.
 */
export function decode<S extends z.ZodType>(
  schema: S,
  body: Buffer,
  maxBytes: number = MAX_MESSAGE_BYTES,
): DecodeResult<z.output<S>> {
  if (body.length > maxBytes)
    return { ok: false, reason: `body of ${body.length} bytes exceeds ${maxBytes}` };
  const text = body.toString('utf8');
  if (nestsDeeperThan(text)) return { ok: false, reason: `nesting deeper than ${MAX_JSON_DEPTH} levels` };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'body is not JSON' };
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues
      .slice(0, 3)
      .map((issue) => `${issue.path.join('.') || '(body)'}: ${issue.message}`)
      .join('; ');
    return { ok: false, reason: `schema: ${issues}`.slice(0, 500) };
  }
  return { ok: true, value: parsed.data };
}

export function encode(message: unknown): Buffer {
  return Buffer.from(JSON.stringify(message), 'utf8');
}

/**
 * `encode(message)` when the JSON of its last field is at hand already (a file list encoded by another
 * thread, as text or as its UTF-8 bytes): the same bytes, without encoding that field again. `field` must
 * be the message's last key and `fieldJson` must be `JSON.stringify(message[field])`.
 */
export function encodeWithField<M extends object>(
  message: M,
  field: keyof M & string,
  fieldJson: string | Uint8Array,
): Buffer {
  const head = JSON.stringify({ ...message, [field]: undefined });
  const prefix = `${head === '{}' ? '{' : `${head.slice(0, -1)},`}${JSON.stringify(field)}:`;
  if (typeof fieldJson === 'string') return Buffer.from(`${prefix}${fieldJson}}`, 'utf8');
  return Buffer.concat([Buffer.from(prefix, 'utf8'), fieldJson, CLOSING_BRACE]);
}

const CLOSING_BRACE = Buffer.from('}');
