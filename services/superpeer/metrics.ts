import { closeSync, openSync, readSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export interface SuperpeerMetrics {
  registry: Registry;
  eventsReceived: Counter<'type'>;
  messagesRefused: Counter<'queue'>;
  indexedPeers: Gauge;
  indexedFiles: Gauge;
  rpcSeconds: Histogram<'type'>;
  pendingAnnounces: Gauge;
  /** Stops the event-loop delay monitor. */
  close(): void;
}

export function createSuperpeerMetrics(): SuperpeerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'p2p_superpeer_' });
  // The longest a timer waited for the event loop since the last scrape: the longest task, within 10 ms.
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  new Gauge({
    name: 'p2p_superpeer_event_loop_max_ms',
    help: 'Longest event-loop delay since the previous scrape (ms): no task should run longer than 50 ms',
    registers: [registry],
    collect() {
      this.set(loopDelay.max / 1e6);
      loopDelay.reset();
    },
  });
  const longestTask = new TaskCpuMonitor();
  new Gauge({
    name: 'p2p_superpeer_longest_task_cpu_ms',
    help:
      "CPU time the event loop's thread (the process, where unknown) spent between two ticks of a 10 ms timer, longest since the previous scrape (ms): " +
      'the longest task, without the time a loaded machine did not run the process at all',
    registers: [registry],
    collect() {
      this.set(longestTask.takeMaxMs());
    },
  });
  return {
    close: () => {
      loopDelay.disable();
      longestTask.close();
    },
    pendingAnnounces: new Gauge({
      name: 'p2p_superpeer_pending_announces',
      help: 'Chunked announces being assembled',
      registers: [registry],
    }),
    registry,
    eventsReceived: new Counter({
      name: 'p2p_superpeer_events_received_total',
      help: 'Valid peer events consumed, by type',
      labelNames: ['type'],
      registers: [registry],
    }),
    messagesRefused: new Counter({
      name: 'p2p_superpeer_messages_refused_total',
      help: 'Messages refused (dead-lettered), by queue',
      labelNames: ['queue'],
      registers: [registry],
    }),
    indexedPeers: new Gauge({
      name: 'p2p_superpeer_indexed_peers',
      help: 'Peers in the index',
      registers: [registry],
    }),
    indexedFiles: new Gauge({
      name: 'p2p_superpeer_indexed_files',
      help: 'Files in the index',
      registers: [registry],
    }),
    rpcSeconds: new Histogram({
      name: 'p2p_superpeer_rpc_seconds',
      help: 'Time to serve an RPC request inside the superpeer, by type',
      labelNames: ['type'],
      buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25],
      registers: [registry],
    }),
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
