import { waitUntil } from './network.js';

/**
 * How long `probe` took to hold, in ms. It waits well past `goalMs` (three times the goal, at least 10 s more)
 * so that the caller can assert the measured figure against the goal: a wait that stopped at the goal could
 * only fail by the probe's own overshoot.
 */
export async function msUntil(
  probe: () => Promise<boolean> | boolean,
  options: { goalMs: number; what: string; intervalMs?: number; since?: number },
): Promise<number> {
  const since = options.since ?? Date.now();
  await waitUntil(probe, {
    timeoutMs: Math.max(3 * options.goalMs, options.goalMs + 10_000),
    intervalMs: options.intervalMs ?? 50,
    what: options.what,
  });
  return Date.now() - since;
}

/**
 * Counts the event loop's turns (check phases) from now until `stop()`: work that yields lets it count,
 * work done in one task does not.
 */
export function countLoopTurns(): { readonly turns: number; stop(): number } {
  let turns = 0;
  let running = true;
  const spin = () => {
    if (!running) return;
    turns++;
    setImmediate(spin);
  };
  setImmediate(spin);
  return {
    get turns() {
      return turns;
    },
    stop() {
      running = false;
      return turns;
    },
  };
}
