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
