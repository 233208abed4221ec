import v8 from 'node:v8';

/**
 * Keeps V8's young generation at the size it has now instead of letting it double up to its ceiling
 * (32 MB) as the peer allocates; `bin/p2p.js` calls it for `p2p peer` before the peer's modules load, so
 * the young generation stays at its initial 1 MB (loading the modules alone grew it to 16 MB). The young
 * generation is resident memory, and V8 grows it whenever as many bytes survived a collection as it
 * holds, which a stream of peer states of a few hundred KB does at nearly every collection.
 *
 * A peer reads states and snapshot pages straight into columns (canonical-files.ts), so few objects per
 * message live on its heap and a small young generation costs it little. Measured with bench:swarm at
 * 1000 × 1000 (2026-12-01): both real peers' RSS high-water mark 166-170 MB held from the start,
 * 181-199 MB held from after start-up (16 MB); before snapshot pages were read into columns, holding it
 * at 1 MB made the peer that loads a snapshot promote the parsed pages (old generation 50 MB, 195-200 MB).
 *
 * A V8 flag set at run time (`semi_space_growth_factor` is read each time the space would grow), which
 * Node documents as undefined behaviour; nothing else in the process depends on it.
 */
export function holdYoungGeneration(): void {
  v8.setFlagsFromString('--semi-space-growth-factor=1');
}
