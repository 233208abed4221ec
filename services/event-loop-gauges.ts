import { closeSync, openSync, readSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { collectDefaultMetrics, Gauge, type Registry } from 'prom-client';

/**
 * prom-client's default metrics that list every libuv handle, request or resource at each scrape: a peer
 * watches each shared file, so with 20,000 files one scrape of these took 40-70 ms of the event loop.
 */
const PER_HANDLE_METRICS = [
  'nodejs_active_handles',
  'nodejs_active_handles_total',
  'nodejs_active_requests',
  'nodejs_active_requests_total',
  'nodejs_active_resources',
  'nodejs_active_resources_total',
];

/**
 * The runtime's metrics under `prefix`: prom-client's defaults (CPU, memory, heap, GC, file descriptors)
 * without those whose cost grows with the process's handles, and the event-loop gauges below. Returns
 * what stops the gauges' monitors.
 */
export function registerRuntimeMetrics(registry: Registry, prefix: string): { close(): void } {
  collectDefaultMetrics({ register: registry, prefix });
  for (const name of PER_HANDLE_METRICS) registry.removeSingleMetric(`${prefix}${name}`);
  return registerEventLoopGauges(registry, prefix);
}

/**
 * Two gauges of how long the event loop was blocked, read (and reset) at each scrape, registered under
 * `<prefix>event_loop_max_ms` and `<prefix>longest_task_cpu_ms`: no task of a service should run longer
 * than 50 ms. Returns what stops their monitors.
 */
export function registerEventLoopGauges(registry: Registry, prefix: string): { close(): void } {
  // The longest a timer waited for the event loop since the last scrape: the longest task, within 10 ms.
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  new Gauge({
    name: `${prefix}event_loop_max_ms`,
    help: 'Longest event-loop delay since the previous scrape (ms): no task should run longer than 50 ms',
    registers: [registry],
    collect() {
      this.set(loopDelay.max / 1e6);
      loopDelay.reset();
    },
  });
  const longestTask = new TaskCpuMonitor();
  new Gauge({
    name: `${prefix}longest_task_cpu_ms`,
    help:
      "CPU time the event loop's thread (the process, where unknown) spent between two ticks of a 10 ms timer, longest since the previous scrape (ms): " +
      'the longest task, without the time a loaded machine did not run the process at all',
    registers: [registry],
    collect() {
      this.set(longestTask.takeMaxMs());
    },
  });
  return {
    close() {
      loopDelay.disable();
      longestTask.close();
    },
  };
}

/**
 * The event-loop delay counts the time the operating system did not run the process, which on a loaded
 * machine dwarfs any task; the CPU time used between two ticks of a short timer does not: a task that
 * blocked the loop for 300 ms used about 300 ms of CPU, a process waiting for a core used none.
 * The CPU time is this thread's where Linux tells it (/proc/thread-self/schedstat, nanoseconds on a CPU):
 * the process's would count the decoding threads and the garbage collector's helpers, busy beside the loop.
 * Elsewhere it is the process's, an upper bound.
 */
class TaskCpuMonitor {
  private threadStat: number | undefined = openThreadStat();
  private readonly buffer = Buffer.alloc(128);
  private last: number;
  private maxMicros = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(intervalMs = 10) {
    this.last = this.cpuMicros();
    this.timer = setInterval(() => {
      const now = this.cpuMicros();
      const used = now - this.last;
      this.last = now;
      if (used > this.maxMicros) this.maxMicros = used;
    }, intervalMs);
    this.timer.unref();
  }

  private cpuMicros(): number {
    if (this.threadStat !== undefined) {
      try {
        const length = readSync(this.threadStat, this.buffer, 0, this.buffer.length, 0);
        const nanos = Number.parseInt(this.buffer.toString('latin1', 0, length), 10);
        if (Number.isFinite(nanos)) return nanos / 1000;
      } catch {
        // fall through to the process's time
      }
    }
    const usage = process.cpuUsage();
    return usage.user + usage.system;
  }

  takeMaxMs(): number {
    const ms = this.maxMicros / 1000;
    this.maxMicros = 0;
    return ms;
  }

  close(): void {
    clearInterval(this.timer);
    if (this.threadStat !== undefined) closeSync(this.threadStat);
    this.threadStat = undefined;
  }
}

/** This thread's scheduler statistics (Linux), or undefined where there are none. */
function openThreadStat(): number | undefined {
  try {
    return openSync('/proc/thread-self/schedstat', 'r');
  } catch {
    return undefined;
  }
}
