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
      'CPU time the process spent between two ticks of a 10 ms timer, longest since the previous scrape (ms): ' +
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
 * (Process-wide CPU: the garbage collector's helper threads count too, so this is an upper bound.)
 */
class TaskCpuMonitor {
  private last = process.cpuUsage();
  private maxMicros = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(intervalMs = 10) {
    this.timer = setInterval(() => {
      const now = process.cpuUsage();
      const used = now.user - this.last.user + (now.system - this.last.system);
      this.last = now;
      if (used > this.maxMicros) this.maxMicros = used;
    }, intervalMs);
    this.timer.unref();
  }

  takeMaxMs(): number {
    const ms = this.maxMicros / 1000;
    this.maxMicros = 0;
    return ms;
  }

  close(): void {
    clearInterval(this.timer);
  }
}
