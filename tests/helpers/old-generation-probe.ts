/*
 * Run by tests/unit/old-generation.test.ts in a process of its own, with --expose-gc and
 * --trace-gc-verbose: keeps ~15 MB alive, calls `growOldGenerationForExternalMemory(percent)` (or not,
 * without an argument) and runs full collections; V8 prints the old generation's limit and the factor it
 * used after each one.
 */
import { growOldGenerationForExternalMemory } from '../../services/old-generation.js';

const collect = (globalThis as unknown as { gc: () => void }).gc;
const live = Array.from({ length: 300_000 }, (_, i) => ({ i }));
collect();
if (process.argv[2] !== undefined) growOldGenerationForExternalMemory(Number(process.argv[2]));
for (let round = 0; round < 3; round++) {
  live.push({ i: round });
  collect();
}
process.stdout.write(`${live.length}\n`);
