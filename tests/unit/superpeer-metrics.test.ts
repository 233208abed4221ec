import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { createPeerMetrics } from '../../services/peer/metrics.js';
import { createSuperpeerMetrics } from '../../services/superpeer/metrics.js';

async function longestTaskMs(metrics: ReturnType<typeof createSuperpeerMetrics>): Promise<number> {
  const metric = await metrics.registry.getSingleMetric('p2p_superpeer_longest_task_cpu_ms')!.get();
  return metric.values[0]!.value;
}

const spin = (ms: number) => {
  const until = performance.now() + ms;
  while (performance.now() < until);
};

test('the longest task is the event loop thread’s CPU time, not that of threads busy beside it', {
  skip: !existsSync('/proc/thread-self/schedstat') && 'needs Linux scheduler statistics',
}, async () => {
  const metrics = createSuperpeerMetrics();
  try {
    const worker = new Worker('const until = Date.now() + 400; while (Date.now() < until);', { eval: true });
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    await new Promise((resolve) => worker.once('online', resolve));
    await longestTaskMs(metrics); // a new period, with the thread running
    const before = process.cpuUsage();
    await exited; // the loop idles (its timer ticks) while the thread spins
    const processMs = (process.cpuUsage(before).user + process.cpuUsage(before).system) / 1000;
    const idle = await longestTaskMs(metrics);
    assert.ok(
      idle < 10,
      `a thread busy beside an idle loop is no task of it: ${idle} ms (process ${processMs} ms)`,
    );
    spin(80);
    // The gauge's 10 ms timer fell due during the spin: timers run in the order they fell due, so it has
    // run once this one (due later) runs.
    await new Promise((resolve) => setTimeout(resolve, 0));
    // Wall time is not CPU time on a loaded machine: the 80 ms spin counts for at least part of it.
    const busy = await longestTaskMs(metrics);
    assert.ok(busy >= 20, `a task of the loop counts: ${busy} ms`);
  } finally {
    metrics.close();
  }
});

test('a scrape lists no handles: a peer watching each of 20,000 shared files made that a 40-70 ms task', async () => {
  const superpeer = createSuperpeerMetrics();
  const peer = createPeerMetrics();
  try {
    for (const [prefix, text] of [
      ['p2p_superpeer_', await superpeer.registry.metrics()],
      ['p2p_peer_', await peer.registry.metrics()],
    ] as const) {
      assert.match(text, new RegExp(`^${prefix}process_cpu_seconds_total `, 'm'), 'the runtime metrics stay');
      assert.match(text, new RegExp(`^${prefix}longest_task_cpu_ms `, 'm'));
      assert.doesNotMatch(text, /nodejs_active_(handles|requests|resources)/);
    }
  } finally {
    superpeer.close();
    peer.close();
  }
});
