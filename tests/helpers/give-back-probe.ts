/*
 * Run by tests/unit/give-back-memory.test.ts in a process of its own: fills 200 MB of mapped arrays (as
 * the superpeer's index holds its large columns), drops them, and prints the RSS in MB with them, dropped,
 * and after `fullCollection()`'s collection (or, with the argument `idle`, after as long idle), as JSON.
 */
import fs from 'node:fs';
import { uint8s } from '../../libs/search/big-arrays.js';
import { fullCollection } from '../../services/give-back-memory.js';

const rssMb = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))![1]) / 1024;
const collect = fullCollection();
const holder: { arrays?: Uint8Array[] } = {
  arrays: Array.from({ length: 100 }, () => uint8s(2 * 2 ** 20).fill(1)),
};
const held = rssMb();
delete holder.arrays;
const dropped = rssMb();
if (process.argv[2] !== 'idle') collect();
await new Promise((resolve) => setTimeout(resolve, 1000));
process.stdout.write(`${JSON.stringify({ held, dropped, after: rssMb() })}\n`);
