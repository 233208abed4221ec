import v8 from 'node:v8';

/**
 * Keeps V8's young generation at the size it has now instead of letting it double up to its ceiling
 * (32 MB) as the process allocates. The young generation is resident memory, and V8 grows it whenever as
 * many bytes survived a collection as it holds, which a stream of messages of a few hundred KB does at
 * nearly every collection. Each service reads its messages into columns, so few objects per message live
 * on its heap and a smaller young generation costs it little.
 *
 * - `p2p peer`: `bin/p2p.js` holds it before the peer's modules load, so it stays at its initial 1 MB
 *   (loading the modules alone grew it to 16 MB). Measured with bench:swarm at 1000 × 1000 (2026-12-01):
 *   both real peers' RSS high-water mark 166-170 MB held from the start, 181-199 MB held from after
 *   start-up; before snapshot pages were read into columns, holding it at 1 MB made the peer that loads a
 *   snapshot promote the parsed pages (old generation 50 MB, 195-200 MB).
 * - `p2p superpeer`: its composition root holds it once the superpeer has started, at the 16 MB that
 *   start-up leaves. Held at 1 MB from the start, a join promoted what was in flight (the high-water mark
 *   433 MB with a word of its own in every name, no lower than not held, and the join slower). Measured
 *   with bench:swarm at 1000 × 1000 (the night of 2026-12-01, one sitting): with a word of its own in every name the
 *   superpeer's high-water mark 388-392 MB held, 423-427 not (384 against 427-432 with one real peer); with
 *   the default names 313 against 339 MB; its main thread's CPU in the join unchanged (6.8 against 7.1 s,
 *   4.3 against 4.2).
 *
 * A V8 flag set at run time (`semi_space_growth_factor` is read each time the space would grow), which
 * Node documents as undefined behaviour; nothing else in the process depends on it.
 */
export function holdYoungGeneration(): void {
  v8.setFlagsFromString('--semi-space-growth-factor=1');
}
