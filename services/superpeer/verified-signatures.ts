/**
 * Signatures already checked, so one message read twice is verified once. The superpeer reads every event
 * twice: on arrival (a heartbeat counts at once, see liveness.ts) and in its turn. An Ed25519 verify costs
 * ~0.15 ms here, and at 1,000 peers heartbeats are most of the events: remembering the pair skips the second.
 *
 * A record matches only the same key, the same signature and byte-identical content, so a hit is exactly a
 * verify that already succeeded. Bounded: the oldest record goes first; a record is used once.
 */
export class VerifiedSignatures {
  private readonly records = new Map<string, { key: string; content: Buffer }>();

  constructor(private readonly capacity = 4096) {}

  /**
   * `content` is copied: a delivery's bytes may be a view of a whole socket read or of a batch sent to a
   * thread, which a record that is never used up would keep alive until it is pushed out.
   */
  remember(key: string, signature: string, content: Buffer): void {
    this.records.delete(signature);
    this.records.set(signature, { key, content: Buffer.from(content) });
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
    return this.records.get(signature)?.content.equals(content) === true;
  }

  /** Whether this exact (key, signature, content) was verified before; the record is used up. */
  take(key: string, signature: string, content: Buffer): boolean {
    const record = this.records.get(signature);
    if (record === undefined) return false;
    this.records.delete(signature);
    return record.key === key && record.content.equals(content);
  }

  get size(): number {
    return this.records.size;
  }
}
