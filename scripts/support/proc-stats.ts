/** What the benches read of processes and of the machine, from Linux's /proc, and a probe of its speed. */
import { readdirSync, readFileSync } from 'node:fs';

const CLOCK_TICKS_PER_SECOND = 100;

/** RSS and its high-water mark of process `pid`, in MiB. */
export function rssMb(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) / 1024;
  return { rss: field('VmRSS'), peak: field('VmHWM') };
}

/** CPU seconds (user + system) of process `pid`, or of its thread `tid`; NaN once it is gone. */
export function cpuSeconds(pid: number, tid?: number): number {
  try {
    const stat = readFileSync(
      tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`,
      'utf8',
    );
    // The fields after the command name (which may hold spaces) start at state, field 3.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return Number.NaN;
  }
}

/** The whole machine's busy CPU seconds (every core), from /proc/stat. */
export function machineBusySeconds(): number {
  const [, ...ticks] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
  const [user, nice, system, , , irq, softirq, steal] = ticks.map(Number);
  return (user! + nice! + system! + irq! + softirq! + steal!) / CLOCK_TICKS_PER_SECOND;
}

/** The RabbitMQ node's process on this machine (beam.smp), if it runs here. */
export function brokerPid(): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes('beam.smp')) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

/**
 * How fast this machine is at what indexing costs, so that runs on different machines (or days) can be
 * compared: a dependent random read over 256 MiB (a cache and TLB miss each, like a hash chain's link at a
 * million files) and a step of a tight integer loop, in ns, each the median of five timed rounds after a
 * warm-up (so both run optimized). Takes about two seconds; run it before the services start.
 */
export function machineSpeed(): { randomReadNs: number; loopStepNs: number } {
  const size = 1 << 26;
  const cells = new Uint32Array(size);
  for (let i = 0; i < size; i++) cells[i] = Math.imul(i, 2654435761) >>> 6;
  return {
    randomReadNs: nsPerStep((n) => randomReads(cells, n), 1 << 20),
    loopStepNs: nsPerStep(loopSteps, 5e7),
  };
}

/** Where the probe's loops leave what they computed, so that they cannot be optimized away. */
export let probeResult = 0;

function nsPerStep(run: (steps: number) => number, steps: number): number {
  for (let i = 0; i < 20; i++) probeResult ^= run(10_000);
  const rounds: number[] = [];
  for (let round = 0; round < 5; round++) {
    const started = performance.now();
    probeResult ^= run(steps);
    rounds.push(((performance.now() - started) * 1e6) / steps);
  }
  return rounds.sort((a, b) => a - b)[2]!;
}

function randomReads(cells: Uint32Array, steps: number): number {
  const mask = cells.length - 1;
  let at = 1;
  for (let i = 0; i < steps; i++) at = cells[(at + i) & mask]!;
  return at;
}

function loopSteps(steps: number): number {
  let x = 0;
  for (let i = 0; i < steps; i++) x = (x + i * 7) | 0;
  return x;
}
