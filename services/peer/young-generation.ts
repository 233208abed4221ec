import v8 from 'node:v8';

/**
 * Keeps V8's young generation at the size it has now (what start-up grew it to: 16 MB here) instead of
 * letting it double up to its ceiling (32 MB) under the stream of peer states. Every state message is
 * a few hundred KB of short-lived objects, and V8 doubles the young generation each time as many bytes
 * have survived a collection as it holds: with a message in flight at nearly every collection it always
 * does, and the young generation is resident memory. Measured with bench:swarm at 1000 × 1000: a real
 * peer's RSS high-water mark 188-190 MB without, 173-189 MB with (five runs; new space 32 → 16 MB), same
 * longest task. A V8 flag set at run time (`semi_space_growth_factor` is read each time the space would grow),
 * here so that every way of starting a peer (bin/p2p.js, compose, `npm run network`) gets it; nothing
 * else in the process depends on it.
 */
export function holdYoungGeneration(): void {
  v8.setFlagsFromString('--semi-space-growth-factor=1');
}
