/*
 * Run by tests/unit/give-back-memory.test.ts in a process of its own: fills 200 MB of mapped arrays (as
 * the superpeer's index holds its large columns), drops them, and prints the RSS in MB with them, dropped,
 * and after `fullCollection()`'s collection (or, with the argument `idle`, after a second idle), as JSON.
 */
import { uint8s } from '../../libs/search/big-arrays.js';
import { rssMb } from '../../scripts/support/proc-stats.js';
import { fullCollection } from '../../services/give-back-memory.js';

const rss = () => rssMb(process.pid).rss;
const collect = fullCollection();
const holder: { arrays?: Uint8Array[] } = {
  arrays: Array.from({ length: 100 }, () => uint8s(2 * 2 ** 20).fill(1)),
};
const held = rss();
delete holder.arrays;
const dropped = rss();
if (process.argv[2] === 'idle') {
  // Nothing to wait for: whether V8 collects on its own within a second.
  await new Promise((resolve) => setTimeout(resolve, 1000));
} else {
  await collect();
  // The collection frees the arrays' memory on V8's own threads just after: until it is gone, 5 s at most.
  const deadline = Date.now() + 5000;
  while (held - rss() < 150 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
}
process.stdout.write(`${JSON.stringify({ held, dropped, after: rss() })}\n`);
