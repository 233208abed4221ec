/*
 * Run by tests/unit/old-generation.test.ts in a process of its own, with --expose-gc and
 * --trace-gc-verbose: keeps ~15 MB alive, calls `growOldGenerationForExternalMemory` with the argument (a
 * percent, or `superpeer` / `peer` for that service's setting, applied over a first setting of 50%) or not
 * at all without one, and runs full collections; V8 prints the old generation's limit and the factor it
 * used after each one.
 */
import {
  growOldGenerationForExternalMemory,
  PEER_OLD_GENERATION_GROWING_PERCENT,
  SUPERPEER_OLD_GENERATION_GROWING_PERCENT,
} from '../../services/old-generation.js';

const collect = (globalThis as unknown as { gc: () => void }).gc;
const live = Array.from({ length: 300_000 }, (_, i) => ({ i }));
collect();
const service: Record<string, number> = {
  superpeer: SUPERPEER_OLD_GENERATION_GROWING_PERCENT,
  peer: PEER_OLD_GENERATION_GROWING_PERCENT,
};
const wanted = process.argv[2];
if (wanted !== undefined) {
  if (wanted in service) {
    growOldGenerationForExternalMemory(50);
    growOldGenerationForExternalMemory(service[wanted]!);
  } else growOldGenerationForExternalMemory(Number(wanted));
}
for (let round = 0; round < 3; round++) {
  live.push({ i: round });
  collect();
}
process.stdout.write(`${live.length}\n`);
