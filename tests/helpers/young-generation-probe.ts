/*
 * Run by tests/unit/young-generation.test.ts in a process of its own: after `holdYoungGeneration()`
 * (or not, with the argument `free`) once the young generation has grown a little, allocates like a peer receiving states (messages of a few hundred KB,
 * the last few alive) and prints the young generation's size before and after, in MB, as JSON.
 */
import v8 from 'node:v8';
import { holdYoungGeneration } from '../../services/young-generation.js';

const newSpaceMb = () =>
  v8.getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')!.space_size / 2 ** 20;

const body = JSON.stringify(
  Array.from({ length: 1000 }, (_, i) => ({
    name: `dir/file ${i}.dat`,
    size: i,
    sha256: i.toString(16).padStart(64, '0'),
  })),
);
const inFlight: unknown[] = [];
async function receive(messages: number): Promise<void> {
  for (let i = 0; i < messages; i++) {
    inFlight.push(JSON.parse(body));
    if (inFlight.length > 3) inFlight.shift();
    if (i % 100 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
}
// As a peer starts: the young generation grows some way before the hold (to 4 MB here).
while (newSpaceMb() < 4) await receive(10);
if (process.argv[2] !== 'free') holdYoungGeneration();
const before = newSpaceMb();
await receive(2000);
process.stdout.write(`${JSON.stringify({ before, after: newSpaceMb() })}\n`);
