import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type AnswerHead,
  busyBackoffMs,
  checkRangeAnswer,
  checkWholeAnswer,
  parseContentRange,
  parseRetryAfterMs,
  SegmentPlan,
  tempFileName,
} from '../../libs/transfer/index.js';

const SHA = 'a'.repeat(64);
const ETAG = `"${SHA}"`;

function answer(status: number, headers: Record<string, string> = {}): AnswerHead {
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  return { status, header: (name) => lower[name] ?? null };
}

describe('checkWholeAnswer (a request from byte 0, or a resume from byte n)', () => {
  test('takes a whole 200 of the right length, and a 206 for exactly the asked tail', () => {
    assert.deepEqual(checkWholeAnswer(answer(200, { 'content-length': '10', etag: ETAG }), 0, 10, ETAG), {
      ok: true,
      bodyStart: 0,
    });
    // A resume answered by the whole file: taken, from 0 (the caller starts over).
    assert.deepEqual(checkWholeAnswer(answer(200, { 'content-length': '10' }), 4, 10, ETAG), {
      ok: true,
      bodyStart: 0,
    });
    assert.deepEqual(checkWholeAnswer(answer(206, { 'content-range': 'bytes 4-9/10' }), 4, 10, ETAG), {
      ok: true,
      bodyStart: 4,
    });
  });

  test('refuses with a stable code: busy, status, etag, size, range', () => {
    const code = (a: AnswerHead, from = 0) => {
      const verdict = checkWholeAnswer(a, from, 10, ETAG);
      return verdict.ok ? 'ok' : verdict.failure.code;
    };
    assert.equal(code(answer(503, { 'retry-after': '3' })), 'BUSY');
    assert.equal(code(answer(404)), 'HTTP_STATUS');
    assert.equal(code(answer(302)), 'HTTP_STATUS');
    assert.equal(code(answer(200, { etag: '"other"' })), 'ETAG_MISMATCH');
    assert.equal(code(answer(200, { 'content-length': '11' })), 'SIZE_MISMATCH');
    assert.equal(code(answer(206, { 'content-range': 'bytes 0-9/10' })), 'BAD_RANGE');
    assert.equal(code(answer(206, { 'content-range': 'bytes 4-9/11' }), 4), 'SIZE_MISMATCH');
    assert.equal(code(answer(206, { 'content-range': 'bytes 5-9/10' }), 4), 'BAD_RANGE');
    assert.equal(code(answer(206, { 'content-range': 'garbage' }), 4), 'BAD_RANGE');
    const busy = checkWholeAnswer(answer(503, { 'retry-after': '3' }), 0, 10, ETAG);
    assert.equal(busy.ok ? undefined : busy.failure.retryAfterMs, 3000);
    assert.match(busy.ok ? '' : busy.failure.message, /busy/);
  });
});

describe('checkRangeAnswer (a request for bytes first-last)', () => {
  test('only a 206 for exactly those bytes of a file of the right size', () => {
    const code = (a: AnswerHead) => checkRangeAnswer(a, 2, 5, 10, ETAG)?.code ?? 'ok';
    assert.equal(code(answer(206, { 'content-range': 'bytes 2-5/10', etag: ETAG })), 'ok');
    assert.equal(code(answer(206, { 'content-range': 'bytes 2-5/*' })), 'ok');
    assert.equal(code(answer(200, { 'content-length': '10' })), 'BAD_RANGE');
    assert.equal(code(answer(206, { 'content-range': 'bytes 2-6/10' })), 'BAD_RANGE');
    assert.equal(code(answer(206, { 'content-range': 'bytes 2-5/12' })), 'SIZE_MISMATCH');
    assert.equal(code(answer(206, { 'content-range': 'bytes 2-5/10', etag: '"x"' })), 'ETAG_MISMATCH');
    assert.equal(code(answer(503)), 'BUSY');
    assert.equal(code(answer(500)), 'HTTP_STATUS');
  });
});

describe('header parsers and backoff', () => {
  test('Content-Range', () => {
    assert.deepEqual(parseContentRange('bytes 0-9/10'), { start: 0, end: 9, total: 10 });
    assert.deepEqual(parseContentRange('bytes 0-9/*'), { start: 0, end: 9, total: undefined });
    assert.equal(parseContentRange('bytes=0-9/10'), undefined);
    assert.equal(parseContentRange(null), undefined);
  });

  test('Retry-After: seconds or a date, clamped to 30 s; absent or unreadable is 1 s', () => {
    assert.equal(parseRetryAfterMs('2'), 2000);
    assert.equal(parseRetryAfterMs('0'), 0);
    assert.equal(parseRetryAfterMs('999999'), 30_000);
    assert.equal(parseRetryAfterMs(null), 1000);
    assert.equal(parseRetryAfterMs('soon'), 1000);
    const now = Date.parse('2026-01-01T00:00:00Z');
    assert.equal(parseRetryAfterMs('Thu, 01 Jan 2026 00:00:05 GMT', now), 5000);
    assert.equal(parseRetryAfterMs('Wed, 31 Dec 2025 23:00:00 GMT', now), 0);
  });

  test('busy backoff: Retry-After first, then at least 1, 2, 4… s with jitter, never over 30 s', () => {
    const mid = () => 0.5;
    assert.equal(busyBackoffMs(0, 1, mid), 0);
    assert.equal(busyBackoffMs(3000, 1, mid), 3000);
    assert.equal(busyBackoffMs(0, 2, mid), 1000);
    assert.equal(busyBackoffMs(0, 3, mid), 2000);
    assert.equal(busyBackoffMs(0, 4, mid), 4000);
    assert.equal(busyBackoffMs(5000, 3, mid), 5000);
    assert.equal(busyBackoffMs(0, 40, mid), 30_000);
    assert.equal(
      busyBackoffMs(0, 40, () => 1),
      30_000,
    );
    assert.equal(
      busyBackoffMs(0, 2, () => 0),
      800,
    );
  });
});

describe('temp file names', () => {
  test('short and ASCII whatever the final name: they fit NAME_MAX (255 bytes) with room to spare', () => {
    const name = tempFileName('0123456789abcdef'.repeat(4), 'a1b2c3d4e5f6');
    assert.equal(name, '.p2p-0123456789abcdef-a1b2c3d4e5f6.part');
    assert.ok(Buffer.byteLength(name) < 64);
  });
});

describe('SegmentPlan work stealing by rate', () => {
  /** A plan with a clock the test moves. */
  const planAt = (sizeBytes: number, segmentBytes: number, minStealBytes: number) => {
    const clock = { ms: 0 };
    const plan = new SegmentPlan({ sizeBytes, segmentBytes, minStealBytes, now: () => clock.ms });
    return { plan, clock };
  };
  const finish = (plan: SegmentPlan, segment: ReturnType<SegmentPlan['take']>) => {
    assert.ok(segment);
    plan.wrote(segment, plan.claim(segment, segment.end - segment.next));
    plan.release(segment);
  };

  test('a source far slower than the idle one loses its whole rest (cut off), however small', () => {
    const { plan, clock } = planAt(3000, 1000, 100);
    const fast0 = plan.take('fast');
    const slow = plan.take('slow');
    assert.ok(slow);
    finish(plan, fast0);
    clock.ms = 10;
    finish(plan, plan.take('fast')); // fast: 2000 bytes in 10 ms
    plan.wrote(slow, plan.claim(slow, 10)); // slow: 10 bytes
    clock.ms = 1000;
    const taken = plan.take('fast');
    assert.ok(taken);
    assert.equal(taken.revoked, slow);
    assert.deepEqual([taken.start, taken.end, slow.end], [1010, 2000, 1010]);
    finish(plan, taken);
    plan.release(slow);
    assert.equal(plan.complete, true);
    assert.deepEqual(
      plan.pieces.map((p) => [p.peerId, p.start, p.end]),
      [
        ['fast', 0, 1000],
        ['fast', 2000, 3000],
        ['fast', 1010, 2000],
        ['slow', 1000, 1010],
      ],
    );
  });

  test('a small rest of a source that is not far slower is raced; the first to have it all wins', () => {
    const { plan, clock } = planAt(2000, 1000, 400);
    const a = plan.take('a');
    const b = plan.take('b');
    assert.ok(a && b);
    clock.ms = 1000;
    finish(plan, b); // b: 1000 bytes in 1000 ms
    plan.wrote(a, plan.claim(a, 700)); // a: 700 bytes in 1000 ms, 300 left (< 2 × 400)
    // Not raced before a has been judged (here it has), and only when b would clearly finish first: a's
    // 300 bytes take 430 ms at its rate, b's 300 ms; not twice as fast, so no race yet.
    assert.equal(plan.take('b'), undefined);
    clock.ms = 4000; // a stalls: its rate falls to 700 / 4000
    const race = plan.take('b');
    assert.ok(race);
    assert.equal(race.racing, a);
    assert.deepEqual([race.start, race.end], [700, 1000]);
    assert.deepEqual(plan.racesOn(a), [race]);
    assert.equal(plan.take('c'), undefined, 'one race per segment');
    plan.wrote(a, plan.claim(a, 50)); // a moves on meanwhile
    assert.equal(plan.winRace(race), 750);
    assert.deepEqual([a.end, race.start, race.end], [750, 750, 1000]);
    finish(plan, race);
    plan.release(a);
    assert.equal(plan.complete, true);
    assert.equal(plan.contiguousBytes, 2000);
  });

  test('a race that loses owns nothing', () => {
    const { plan, clock } = planAt(1000, 1000, 400);
    const a = plan.take('a');
    assert.ok(a);
    plan.wrote(a, plan.claim(a, 500));
    clock.ms = 1000;
    const race = plan.take('b');
    assert.ok(race?.racing === a);
    finish(plan, a);
    assert.equal(plan.winRace(race), undefined);
    plan.release(race);
    assert.equal(plan.complete, true);
    assert.deepEqual(plan.contributors, ['a']);
  });
});
