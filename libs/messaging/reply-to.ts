/**
 * Cheap checks of a request's `reply_to` before anything is published to it. RabbitMQ up to 3.11 decodes
 * the direct reply-to suffix with `binary_to_term` and a malformed one crashes the publishing channel's
 * process, which the broker answers by closing the whole connection (541 INTERNAL_ERROR). Newer brokers
 * refuse it cleanly, and their suffix is not an Erlang term: what does not look like one passes, and the
 * reply path's own isolation (a separate connection) covers what no check foresees.
 */
const DIRECT_REPLY_PREFIX = 'amq.rabbitmq.reply-to.';
/** AMQP short strings: a routing key is at most 255 bytes. */
const MAX_NAME_BYTES = 255;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** Why `replyTo` cannot be answered, or undefined when it may be. */
export function replyToProblem(replyTo: unknown): string | undefined {
  if (typeof replyTo !== 'string' || replyTo.length === 0) return 'no reply_to';
  if (Buffer.byteLength(replyTo) > MAX_NAME_BYTES) return 'reply_to longer than 255 bytes';
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (/[\u0000-\u001f\u007f]/.test(replyTo)) return 'reply_to has control characters';
  // The bare pseudo-queue is rewritten by the broker for a requester that consumes it; left as is, the
  // requester did not, and publishing to it would close the reply channel (406).
  if (replyTo === DIRECT_REPLY_PREFIX.slice(0, -1)) return 'reply_to is the bare direct reply-to name';
  if (!replyTo.startsWith(DIRECT_REPLY_PREFIX)) return undefined; // a named queue: unroutable costs nothing
  const parts = replyTo.slice(DIRECT_REPLY_PREFIX.length).split('.');
  if (parts.length !== 2 || !parts.every((part) => BASE64.test(part))) {
    return 'reply_to is not a direct reply-to name (<base64>.<base64>)';
  }
  const encoded = Buffer.from(parts[0]!, 'base64');
  // 131 starts Erlang's external term format: the 3.x suffix, which must then be exactly one pid.
  if (encoded[0] === 131 && !isPidTerm(encoded)) return 'reply_to names no process (malformed pid)';
  return undefined;
}

/** True when `bytes` is exactly one Erlang pid in external term format (PID_EXT or NEW_PID_EXT). */
function isPidTerm(bytes: Buffer): boolean {
  const tag = bytes[1];
  if (tag !== 103 && tag !== 88) return false;
  const nodeEnd = atomEnd(bytes, 2);
  if (nodeEnd === undefined) return false;
  // id (4) + serial (4) + creation (1 for PID_EXT, 4 for NEW_PID_EXT)
  return bytes.length === nodeEnd + (tag === 103 ? 9 : 12);
}

/** Where the atom starting at `offset` ends, or undefined when there is none. */
function atomEnd(bytes: Buffer, offset: number): number | undefined {
  const tag = bytes[offset];
  let length: number;
  let header: number;
  if (tag === 100 || tag === 118) {
    // ATOM_EXT, ATOM_UTF8_EXT: 2-byte length
    if (bytes.length < offset + 3) return undefined;
    length = bytes.readUInt16BE(offset + 1);
    header = 3;
  } else if (tag === 115 || tag === 119) {
    // SMALL_ATOM_EXT, SMALL_ATOM_UTF8_EXT: 1-byte length
    if (bytes.length < offset + 2) return undefined;
    length = bytes[offset + 1]!;
    header = 2;
  } else {
    return undefined;
  }
  const end = offset + header + length;
  if (length === 0 || end > bytes.length) return undefined;
  return end;
}
