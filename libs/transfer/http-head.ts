/**
 * A pure parser of an HTTP/1.x response head (status line and header fields, RFC 9112 §4-5), for the raw
 * socket path of `SourceRequest`: bounded in size, no I/O, so every hostile head is a unit test.
 */

/** Node's own default limit for a head (`--max-http-header-size`). */
export const MAX_HEAD_BYTES = 16 * 1024;

export interface ResponseHead {
  status: number;
  /** Lower-case names; repeated fields joined with ', ' (as node:http does for most). */
  headers: Map<string, string>;
  /** Bytes of the head, blank line included: the body starts there. */
  headBytes: number;
}

export type HeadParse =
  | { kind: 'incomplete' }
  | { kind: 'head'; head: ResponseHead }
  | { kind: 'bad'; reason: string };

const BLANK_LINE = Buffer.from('\r\n\r\n', 'latin1');
const STATUS_LINE = /^HTTP\/1\.[01] ([1-9]\d\d)(?: [\t -~\x80-\xff]*)?$/;
/** A field name is a token (RFC 9110 §5.1). */
const FIELD_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/**
 * A field value's characters. Tested alone, after the whitespace around it is cut off by hand: one regex
 * for name, whitespace and value backtracked in cubic time on a run of spaces before a bad byte (2,000
 * spaces: 2.8 s of the receiving thread, frozen; 4,000: 22 s; a head's 16 KiB, by that curve, 20 minutes).
 */
const FIELD_VALUE = /^[\t -~\x80-\xff]*$/;

/**
 * Parses `bytes[0, length)`, the first bytes of a response: 'incomplete' while the blank line ending the
 * head has not arrived (and `length` is under `MAX_HEAD_BYTES`), 'bad' with a reason for anything that is
 * not a well-formed HTTP/1.x head within that bound.
 */
export function parseResponseHead(bytes: Uint8Array, length = bytes.length): HeadParse {
  const end = headEnd(bytes, Math.min(length, MAX_HEAD_BYTES));
  if (end === undefined)
    return length >= MAX_HEAD_BYTES
      ? { kind: 'bad', reason: `response head over ${MAX_HEAD_BYTES} bytes` }
      : { kind: 'incomplete' };
  // latin1: one char per byte, so a hostile byte can neither throw nor change a length.
  const lines = Buffer.from(bytes.buffer, bytes.byteOffset, end.textEnd).toString('latin1').split('\r\n');
  const status = STATUS_LINE.exec(lines[0] ?? '');
  if (status === null) return { kind: 'bad', reason: `bad status line ${quote(lines[0] ?? '')}` };
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const field = splitField(line);
    if (field === undefined) return { kind: 'bad', reason: `bad header line ${quote(line)}` };
    const { name, value } = field;
    const before = headers.get(name);
    headers.set(name, before === undefined ? value : `${before}, ${value}`);
  }
  return { kind: 'head', head: { status: Number(status[1]), headers, headBytes: end.headBytes } };
}

/**
 * The body's length as the head frames it: a number from Content-Length, 'until-close' when the head has
 * none, 'unsupported' for a Transfer-Encoding (chunked and the like: left to node:http), or a reason why
 * the framing cannot be trusted (RFC 9112 §6.3: differing lengths are an error).
 */
export function bodyFraming(head: ResponseHead): number | 'until-close' | 'unsupported' | { bad: string } {
  if (head.headers.has('transfer-encoding')) return 'unsupported';
  const raw = head.headers.get('content-length');
  if (raw === undefined) return 'until-close';
  const values = new Set(raw.split(',').map((value) => value.trim()));
  const [only] = values;
  if (values.size !== 1 || only === undefined || !/^\d{1,15}$/.test(only))
    return { bad: `bad Content-Length ${quote(raw)}` };
  return Number(only);
}

/** `name: value` with the name lower-cased and the value without the spaces and tabs around it, if well-formed. */
function splitField(line: string): { name: string; value: string } | undefined {
  const colon = line.indexOf(':');
  const name = line.slice(0, colon);
  if (colon < 1 || !FIELD_NAME.test(name)) return undefined;
  let start = colon + 1;
  let end = line.length;
  while (start < end && isBlank(line.charCodeAt(start))) start++;
  while (end > start && isBlank(line.charCodeAt(end - 1))) end--;
  const value = line.slice(start, end);
  return FIELD_VALUE.test(value) ? { name: name.toLowerCase(), value } : undefined;
}

/** SP or HTAB. */
function isBlank(code: number): boolean {
  return code === 0x20 || code === 0x09;
}

/** Where the head's blank line is: the text before it, and the head's length with it. */
function headEnd(bytes: Uint8Array, length: number): { textEnd: number; headBytes: number } | undefined {
  const at = Buffer.from(bytes.buffer, bytes.byteOffset, length).indexOf(BLANK_LINE);
  return at === -1 ? undefined : { textEnd: at, headBytes: at + BLANK_LINE.length };
}

function quote(text: string): string {
  return JSON.stringify(text.slice(0, 80));
}
