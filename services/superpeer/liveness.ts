import type { ConsumeMessage } from 'amqplib';
import { verifyBody } from '../../libs/identity/index.js';
import { HEADERS } from '../../libs/protocol/index.js';
import type { PeerRegistry } from './registry.js';
import type { VerifiedSignatures } from './verified-signatures.js';

/** Heartbeats are judged on arrival only when this small (a heartbeat is ~300 bytes). */
const MAX_ARRIVAL_BODY_BYTES = 2048;

/**
 * Liveness on arrival: a heartbeat counts when it reaches the superpeer, not when its turn comes behind a
 * backlog of announces. Only a heartbeat of a registered run signed by its key counts; anything else (and
 * the heartbeat itself, for its `seq`) is handled in its turn. Returns whether it counted.
 */
export function countHeartbeatOnArrival(
  registry: PeerRegistry,
  message: ConsumeMessage,
  nowMs: number,
  verified?: VerifiedSignatures,
): boolean {
  if (message.content.length > MAX_ARRIVAL_BODY_BYTES) return false;
  let body: unknown;
  try {
    body = JSON.parse(message.content.toString('utf8'));
  } catch {
    return false; // refused in its turn
  }
  if (typeof body !== 'object' || body === null) return false;
  const { type, peerId, instanceId } = body as Record<string, unknown>;
  if (type !== 'peer.heartbeat' || typeof peerId !== 'string' || typeof instanceId !== 'string') return false;
  const binding = registry.get(peerId);
  if (!binding || binding.instanceId !== instanceId) return false;
  const signature = message.properties.headers?.[HEADERS.signature];
  if (typeof signature !== 'string' || !verifyBody(binding.publicKey, message.content, signature))
    return false;
  verified?.remember(binding.publicKey, signature, message.content);
  return registry.touch(peerId, instanceId, nowMs);
}
