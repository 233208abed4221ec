/**
 * Pure checks of a source's answer: whether its status and headers can be taken for what was asked, and
 * why not. No I/O, so every hostile combination is a unit test.
 */
import { SourceFailure } from './download-failure.js';

/** The parts of an HTTP answer the checks look at. */
export interface AnswerHead {
  status: number;
  header(name: string): string | null;
}

/** When a 503 carries no usable Retry-After. */
export const DEFAULT_RETRY_AFTER_MS = 1_000;
/** A peer cannot park us longer than this with a large Retry-After. */
export const MAX_RETRY_AFTER_MS = 30_000;

export type WholeVerdict = { ok: true; bodyStart: number } | { ok: false; failure: SourceFailure };

/**
 * An answer to a request for the file from `resumeFrom` on (no Range when 0, else `Range: bytes=<from>-` +
 * `If-Range`): where its body starts (0 for the whole file, `resumeFrom` for the asked tail), or why it
 * cannot be taken.
 */
export function checkWholeAnswer(
  answer: AnswerHead,
  resumeFrom: number,
  size: number,
  expectedEtag: string,
): WholeVerdict {
  const refused = answerRefusal(answer, expectedEtag);
  if (refused !== undefined) return { ok: false, failure: refused };
  if (answer.status === 200) {
    const length = answer.header('content-length');
    if (length === null || Number(length) === size) return { ok: true, bodyStart: 0 };
    return {
      ok: false,
      failure: new SourceFailure('SIZE_MISMATCH', `Content-Length ${length} is not ${size}`),
    };
  }
  const contentRange = answer.header('content-range');
  const range = parseContentRange(contentRange);
  if (resumeFrom > 0 && range?.total !== undefined && range.total !== size)
    return {
      ok: false,
      failure: new SourceFailure('SIZE_MISMATCH', `Content-Range ${contentRange} is not for ${size} bytes`),
    };
  if (resumeFrom > 0 && range !== undefined && range.start === resumeFrom && range.end === size - 1)
    return { ok: true, bodyStart: resumeFrom };
  return {
    ok: false,
    failure: new SourceFailure(
      'BAD_RANGE',
      `206 with Content-Range ${String(contentRange).slice(0, 80)} for a request from byte ${resumeFrom}`,
    ),
  };
}

/** Why an answer to `Range: bytes=<first>-<last>` (+ `If-Range`) cannot be taken, or undefined when it can. */
export function checkRangeAnswer(
  answer: AnswerHead,
  first: number,
  last: number,
  size: number,
  expectedEtag: string,
): SourceFailure | undefined {
  const refused = answerRefusal(answer, expectedEtag);
  if (refused !== undefined) return refused;
  if (answer.status === 200)
    return new SourceFailure('BAD_RANGE', `the whole file (200) for a request of bytes ${first}-${last}`);
  const contentRange = answer.header('content-range');
  const range = parseContentRange(contentRange);
  if (range?.total !== undefined && range.total !== size)
    return new SourceFailure('SIZE_MISMATCH', `Content-Range ${contentRange} is not for ${size} bytes`);
  if (range === undefined || range.start !== first || range.end !== last)
    return new SourceFailure(
      'BAD_RANGE',
      `206 with Content-Range ${String(contentRange).slice(0, 80)} for bytes ${first}-${last}`,
    );
  return undefined;
}

/** What rules out any answer, whatever was asked: busy, an error status, an ETag naming other content. */
function answerRefusal(answer: AnswerHead, expectedEtag: string): SourceFailure | undefined {
  const status = answer.status;
  if (status === 503)
    return new SourceFailure('BUSY', 'HTTP 503 (busy)', parseRetryAfterMs(answer.header('retry-after')));
  if (status !== 200 && status !== 206) return new SourceFailure('HTTP_STATUS', `HTTP ${status}`);
  const etag = answer.header('etag');
  if (etag !== null && etag !== expectedEtag)
    return new SourceFailure('ETAG_MISMATCH', `ETag ${etag.slice(0, 80)} is not ${expectedEtag}`);
  return undefined;
}

/** `bytes <start>-<end>/<total|*>` (RFC 9110 §14.4); total undefined for `*`. */
export function parseContentRange(
  value: string | null,
): { start: number; end: number; total?: number } | undefined {
  const match = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(value?.trim() ?? '');
  if (!match) return undefined;
  const [, start, end, total] = match;
  return { start: Number(start), end: Number(end), total: total === '*' ? undefined : Number(total) };
}

/**
 * Retry-After is seconds or an HTTP date (RFC 9110 §10.2.3); clamped to [0, MAX_RETRY_AFTER_MS]; absent or
 * unreadable is DEFAULT_RETRY_AFTER_MS.
 */
export function parseRetryAfterMs(value: string | null, nowMs = Date.now()): number {
  if (value === null) return DEFAULT_RETRY_AFTER_MS;
  const trimmed = value.trim();
  const ms = /^\d+$/.test(trimmed) ? Number(trimmed) * 1000 : Date.parse(trimmed) - nowMs;
  if (Number.isNaN(ms)) return DEFAULT_RETRY_AFTER_MS;
  return Math.min(Math.max(ms, 0), MAX_RETRY_AFTER_MS);
}

/**
 * How long to wait before asking a busy source again: its Retry-After, but at least an exponential backoff
 * from its second busy answer on (1 s, 2 s, 4 s… up to MAX_RETRY_AFTER_MS), with ±20 % jitter so that many
 * waiting clients do not come back at the same instant.
 */
export function busyBackoffMs(retryAfterMs: number, busyTimes: number, random = Math.random): number {
  if (busyTimes <= 1) return retryAfterMs;
  const backoff = Math.min(MAX_RETRY_AFTER_MS, DEFAULT_RETRY_AFTER_MS * 2 ** (busyTimes - 2));
  const base = Math.max(retryAfterMs, backoff);
  return Math.round(Math.min(MAX_RETRY_AFTER_MS, base * (0.8 + 0.4 * random())));
}
