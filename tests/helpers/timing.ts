import type { PerformanceEntry } from 'node:perf_hooks';
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

/** What `longestLoopTurn` saw between two turns of the event loop. */
export interface LoopTurns {
  /** The longest stretch, by the clock. */
  longestMs: number;
  /**
   * The longest stretch counted as work of this thread: the lesser of its time by the clock and the
   * process's CPU time in it (so that time other processes held the CPU is left out, on a shared machine),
   * less the garbage collector's pauses in it.
   */
  longestWorkMs: number;
}

/**
 * Measures the stretches between the event loop's turns (check phases) from now until `stop()`: each is a
 * task that ran meanwhile, give or take a turn's own work. A test holding 100,000 objects sees scavenges of
 * tens of milliseconds whoever allocates, and a busy machine takes the CPU away for as long: see
 * `longestWorkMs`.
 */
export function longestLoopTurn(): { stop(): LoopTurns } {
  const gcs: Array<{ start: number; end: number }> = [];
  const collect = (entries: readonly PerformanceEntry[]) => {
    for (const entry of entries) gcs.push({ start: entry.startTime, end: entry.startTime + entry.duration });
  };
  const observer = new PerformanceObserver((list) => collect(list.getEntries()));
  observer.observe({ entryTypes: ['gc'] });
  const stretches: Array<{ start: number; end: number; cpuMs: number }> = [];
  const cpuMs = () => {
    const { user, system } = process.cpuUsage();
    return (user + system) / 1000;
  };
  let last = performance.now();
  let lastCpuMs = cpuMs();
  let running = true;
  const mark = () => {
    const now = performance.now();
    const cpu = cpuMs();
    if (now - last > 1) stretches.push({ start: last, end: now, cpuMs: cpu - lastCpuMs });
    last = now;
    lastCpuMs = cpu;
  };
  const spin = () => {
    if (!running) return;
    mark();
    setImmediate(spin);
  };
  setImmediate(spin);
  return {
    stop() {
      running = false;
      mark();
      collect(observer.takeRecords());
      observer.disconnect();
      let longestMs = 0;
      let longestWorkMs = 0;
      for (const { start, end, cpuMs: cpu } of stretches) {
        let gcMs = 0;
        for (const gc of gcs) gcMs += Math.max(0, Math.min(end, gc.end) - Math.max(start, gc.start));
        longestMs = Math.max(longestMs, end - start);
        longestWorkMs = Math.max(longestWorkMs, Math.min(end - start, cpu) - gcMs);
      }
      return { longestMs, longestWorkMs };
    },
  };
}
