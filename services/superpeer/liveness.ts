import type { ConsumeMessage } from 'amqplib';
import { verifyBody } from '../../libs/identity/index.js';
import { HEADERS } from '../../libs/protocol/index.js';
import { type ArrivalCheck, checkArrival, decodingMemory } from './event-decoding.js';
import type { PeerRegistry } from './registry.js';
import type { VerifiedSignatures } from './verified-signatures.js';

/** Reading a heartbeat here needs no memory of keys: the registered key is the one that counts. */
const NO_KEYS = decodingMemory(0);

/**
 * Liveness on arrival: a heartbeat counts when it reaches the superpeer, not when its turn comes behind a
 * backlog of announces. Only a heartbeat of a registered run signed by its key counts; anything else (and
 * the heartbeat itself, for its `seq`) is handled in its turn. `arrival`: what a decoding thread read of
 * the message (its verify counts only if made with the registered key); without it the message is read
 * here. Returns whether it counted.
 */
export function countHeartbeatOnArrival(
  registry: PeerRegistry,
  message: ConsumeMessage,
  nowMs: number,
  verified?: VerifiedSignatures,
  arrival?: ArrivalCheck,
): boolean {
  const signature = message.properties.headers?.[HEADERS.signature];
  const check = arrival ?? checkArrival(message.content, signature, NO_KEYS);
  if (!check.heartbeat) return false;
  const binding = registry.get(check.peerId);
  if (!binding || binding.instanceId !== check.instanceId) return false;
  if (check.verifiedKey !== binding.publicKey) {
    if (typeof signature !== 'string' || !verifyBody(binding.publicKey, message.content, signature))
      return false;
    verified?.remember(binding.publicKey, signature, message.content);
  }
  return registry.heartbeat(check.peerId, check.instanceId, check.beat, nowMs);
}
