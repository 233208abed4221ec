/**
 * The id of the `index`-th simulated peer of a swarm. One function, so that the swarm follows the network's
 * rule for peer ids: when ids are derived from the public key, this becomes that derivation.
 */
export function swarmPeerId(_publicKeyDer: string, index: number): string {
  return `sim-${String(index).padStart(6, '0')}`;
}
