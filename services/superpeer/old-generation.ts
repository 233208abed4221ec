import v8 from 'node:v8';

/**
 * How much V8 lets the old generation grow past what a full collection left alive, in percent:
 * 200 = a limit of three times the live size.
 *
 * V8 counts the external memory allocated since the last full collection (ArrayBuffer backing stores:
 * every socket read, every message body and every buffer a decoding thread hands over) against the old
 * generation's limit, but picks the limit's factor from the speed of on-heap allocation alone. The
 * superpeer allocates little on its heap (its index lives in typed arrays) and a great deal outside it
 * during a join, so V8 picked factors of 1.3-1.4 over a 16 MB heap and ran a full mark-compact every
 * 8 MB or so of announces: 79-90 in the join of 1000 × 1000, each a pause plus marking on V8's helper
 * threads. Measured with bench:swarm (load average 3-4): full collections in the join 8-10 with 300-400,
 * 14-19 with 200, 60 with 100; V8's helper threads 0.3 CPU-s each instead of 0.75-0.8. The price is
 * memory: dead buffers wait longer to be freed. Superpeer RSS high-water mark with the real peers: 358 MB
 * with 200, 400 MB with 300 (the goal is 400), 340 MB without.
 *
 * `heap_growing_percent` is read each time V8 computes the limit, so setting it at run time takes effect
 * from the next collection; here so that every way of starting a superpeer (bin/p2p.js, compose,
 * `npm run network`) gets it (NODE_OPTIONS does not take this flag). Node documents flags set at run
 * time as undefined behaviour; nothing else in the process depends on it.
 */
export const OLD_GENERATION_GROWING_PERCENT = 200;

export function growOldGenerationForExternalMemory(percent = OLD_GENERATION_GROWING_PERCENT): void {
  v8.setFlagsFromString(`--heap-growing-percent=${percent}`);
}
