import v8 from 'node:v8';

/*
 * How much V8 lets the old generation grow past what a full collection left alive, in percent: 200 = a
 * limit of three times the live size.
 *
 * V8 counts the external memory allocated since the last full collection (ArrayBuffer backing stores:
 * every socket read, every message body, every buffer handed to or from a thread) against the old
 * generation's limit, but picks the limit's factor from the speed of on-heap allocation alone. Both
 * services keep their network in typed arrays and allocate little on their heap (16-20 MB live), while a
 * join of 1000 × 1000 brings them about 150 MB of message bodies: with V8's own factors they ran a full
 * mark-compact every few MB of messages, each a pause plus marking on V8's helper threads.
 *
 * `heap_growing_percent` is read each time V8 computes the limit, so setting it at run time takes effect
 * from the next collection; each service's composition root sets it, so that every way of starting one
 * (bin/p2p.js, compose, `npm run network`) gets it (NODE_OPTIONS does not take this flag). Node documents
 * flags set at run time as undefined behaviour; nothing else in the process depends on it.
 */

/**
 * The superpeer's. Measured with bench:swarm (load average 3-4): full collections in the join 8-10 with
 * 300-400, 14-19 with 200, 60 with 100; V8's helper threads 0.3 CPU-s each instead of 0.75-0.8. The price
 * is memory: dead buffers wait longer to be freed. Superpeer RSS high-water mark with the real peers:
 * 358 MB with 200, 400 MB with 300 (the goal is 400), 340 MB without.
 */
export const SUPERPEER_OLD_GENERATION_GROWING_PERCENT = 200;

/**
 * A peer's, which follows the join's broadcasts (a state of 1000 files is about 150 KB). Measured with
 * bench:swarm on 2026-12-01, the first real peer (it follows the whole join): full collections in the
 * join 31-37 without (one every ~100 ms: marking ran through most of the join), 7 with 200, 4 with 300;
 * its CPU in the join 2.1-2.6 s without (5 runs), 1.5-2.0 with 200 (6 runs), 1.3-2.0 with 300 (16 runs).
 * Its RSS high-water mark: 194-201 MB with 300, 194-200 with 200, 184-198 without (4 runs); the goal is
 * 200.
 * In three runs alternated with three without, the whole join (first announce to all indexed) took
 * 5.5-5.7 s against 5.6-6.6 s.
 */
export const PEER_OLD_GENERATION_GROWING_PERCENT = 300;

export function growOldGenerationForExternalMemory(percent: number): void {
  v8.setFlagsFromString(`--heap-growing-percent=${percent}`);
}
