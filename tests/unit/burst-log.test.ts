import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BurstLog, type Log } from '../../libs/logging/index.js';

/** A Log that keeps each line as `level message`, with its meta. */
function recording() {
  const lines: Array<{ level: string; message: string; meta: Record<string, unknown> | undefined }> = [];
  const at =
    (level: string) =>
    (message: string, meta?: object): void => {
      lines.push({ level, message, meta: meta as Record<string, unknown> | undefined });
    };
  const log: Log = { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') };
  const infos = () => lines.filter((line) => line.level === 'info');
  return { log, lines, infos };
}

test('BurstLog: a few events are each logged; a burst logs the first of its window and then one count', async (t) => {
  let nowMs = 1_000;
  const { log, lines, infos } = recording();
  const burst = new BurstLog(log, {
    message: 'peer joined',
    summary: 'more peers joined',
    perWindow: 3,
    windowMs: 10_000,
    now: () => nowMs,
  });
  t.after(() => burst.flush());

  for (let i = 0; i < 2; i++) burst.record({ peer: i });
  assert.deepEqual(
    infos().map((line) => [line.message, line.meta?.peer]),
    [
      ['peer joined', 0],
      ['peer joined', 1],
    ],
  );

  // A thousand in the same window: one more line each for the third, the rest counted.
  for (let i = 2; i < 1000; i++) burst.record({ peer: i });
  assert.equal(infos().length, 3, 'only perWindow lines at info in one window');
  assert.equal(lines.filter((line) => line.level === 'debug').length, 997, 'every other event at debug');

  // The next window begins with a count of the last one's, then logs one by one again.
  nowMs += 10_000;
  burst.record({ peer: 'later' });
  assert.deepEqual(
    infos()
      .slice(3)
      .map((line) => [line.message, line.meta]),
    [
      ['more peers joined', { count: 997, logged: 3, windowMs: 10_000 }],
      ['peer joined', { peer: 'later' }],
    ],
  );

  // flush() (a superpeer closing) writes a pending count at once, and only once.
  for (let i = 0; i < 5; i++) burst.record({ peer: i });
  burst.flush();
  burst.flush();
  const counts = infos().filter((line) => line.message === 'more peers joined');
  assert.deepEqual(
    counts.map((line) => line.meta?.count),
    [997, 3],
  );
});

test('BurstLog: the count of a window is written when the window ends, without another event', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { log, infos } = recording();
  // The window's clock stands still between the events (on the real clock, a busy machine could let a
  // millisecond pass between two of them and shorten the timer).
  const burst = new BurstLog(log, {
    message: 'peer left',
    summary: 'more peers left',
    perWindow: 1,
    windowMs: 50,
    now: () => 1_000,
  });
  burst.record({ peer: 'a' });
  burst.record({ peer: 'b' });
  burst.record({ peer: 'c' });
  t.mock.timers.tick(49);
  assert.equal(infos().length, 1, 'no count before the window ends');
  t.mock.timers.tick(1);
  assert.deepEqual(
    infos().map((line) => [line.message, line.meta]),
    [
      ['peer left', { peer: 'a' }],
      ['more peers left', { count: 2, logged: 1, windowMs: 50 }],
    ],
  );
});
