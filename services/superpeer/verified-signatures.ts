import { createHash } from 'node:crypto';

/**
 * Records held by default: a heartbeat's two reads are as far apart as the superpeer's backlog of events,
 * and at 1,000 peers beating every 2 s, 16,384 records cover a backlog of 30 s (4,096 covered 8 s: a longer
 * join verified every heartbeat twice). A record is about 200 bytes.
 */
export const DEFAULT_VERIFIED_CAPACITY = 16_384;

/**
 * Signatures already checked, so one message read twice is verified once. The superpeer reads every event
 * twice: on arrival (a heartbeat counts at once, see liveness.ts) and in its turn. An Ed25519 verify costs
 * 0.15-0.3 ms here, and at 1,000 peers heartbeats are most of the events: remembering the pair skips the
 * second.
 *
 * A record matches only the same key, the same signature and byte-identical content (by its SHA-256, so a
 * record holds 32 bytes of it and never the buffer it was read from), so a hit is exactly a verify that
 * already succeeded. Bounded: the oldest record goes first; a record is used once.
 */
export class VerifiedSignatures {
  private readonly records = new Map<string, { key: string; digest: string }>();

  constructor(private readonly capacity = DEFAULT_VERIFIED_CAPACITY) {}

  remember(key: string, signature: string, content: Buffer): void {
    this.records.delete(signature);
    this.records.set(signature, { key, digest: digestOf(content) });
    if (this.records.size > this.capacity) {
      const oldest = this.records.keys().next();
      if (!oldest.done) this.records.delete(oldest.value);
    }
  }

  /**
   * Whether a record of these exact bytes under `signature` is held (unused; the key is matched by `take`).
   * The bytes count: a signature is no secret (every superpeer and anyone who sent it has it), and other
   * bytes under it would be verified, not matched, by whoever takes them for the record's.
   */
  holds(signature: string, content: Buffer): boolean {
    const record = this.records.get(signature);
    return record !== undefined && record.digest === digestOf(content);
  }

  /** Whether this exact (key, signature, content) was verified before; the record is used up. */
  take(key: string, signature: string, content: Buffer): boolean {
    const record = this.records.get(signature);
    if (record === undefined) return false;
    this.records.delete(signature);
    return record.key === key && record.digest === digestOf(content);
  }

  get size(): number {
    return this.records.size;
  }
}

/** The SHA-256 of `content`, in base64. */
function digestOf(content: Buffer): string {
  return createHash('sha256').update(content).digest('base64');
}
