/** What the superpeer holds about a peer it indexed: the key its events are signed with and when it was heard. */
export interface PeerBinding {
  publicKey: string;
  /** The display name the peer announced, if any. */
  name: string | undefined;
  instanceId: string;
  /** When a message of this peer last arrived (delivery time, not processing time). */
  lastSeenMs: number;
  /** The number (`beat`) of the last heartbeat of this run counted, once one carried a number. */
  lastBeat?: number;
}

/** Runs of one peer remembered as replaced: a peer restarts a few times, a replay names any of them. */
const MAX_REPLACED_RUNS_PER_PEER = 8;

/**
 * The peers the superpeer indexed, with their key and liveness, plus the runs it refused for being over
 * the file limit (so that it does not ask them again and again). Plain state: no timers, no broker.
 */
export class PeerRegistry {
  private readonly bindings = new Map<string, PeerBinding>();
  /** peerId → instanceId of a run whose state was refused as too large; bounded like the bindings. */
  private readonly overLimit = new Map<string, string>();
  /**
   * The last run of peers dropped (left or timed out), oldest first, bounded: a state of such a run announced
   * again (replayed, say) starts from its heartbeat count, so its old heartbeats do not count again; and its
   * key still verifies the peer's events, so the peer coming back is told apart from ids made up.
   */
  private readonly retired = new Map<string, { instanceId: string; publicKey: string; lastBeat?: number }>();
  /**
   * Runs another run of the same peer replaced here (the last few per peer, peers bounded like
   * `retired`), with the last beat counted of each: an announce of such a run, replayed, is stale,
   * until a heartbeat numbered past that beat shows the run is alive after all.
   */
  private readonly replacedRuns = new Map<string, Map<string, number | undefined>>();

  constructor(
    private readonly maxOverLimitRuns = 10_000,
    private readonly maxRetiredRuns = 20_000,
  ) {}

  get size(): number {
    return this.bindings.size;
  }

  get(peerId: string): PeerBinding | undefined {
    return this.bindings.get(peerId);
  }

  bind(peerId: string, binding: PeerBinding): void {
    // A new state of the same run keeps the run's heartbeat count: its old heartbeats stay used up.
    const previous = this.bindings.get(peerId) ?? this.retired.get(peerId);
    if (previous?.instanceId === binding.instanceId && binding.lastBeat === undefined)
      binding.lastBeat = previous.lastBeat;
    if (previous !== undefined && previous.instanceId !== binding.instanceId)
      this.replaced(peerId, previous.instanceId, previous.lastBeat);
    this.replacedRuns.get(peerId)?.delete(binding.instanceId);
    this.retired.delete(peerId);
    this.bindings.set(peerId, binding);
    this.overLimit.delete(peerId);
  }

  delete(peerId: string): void {
    const binding = this.bindings.get(peerId);
    if (binding !== undefined) {
      const { instanceId, publicKey, lastBeat } = binding;
      this.retired.delete(peerId);
      this.retired.set(peerId, { instanceId, publicKey, ...(lastBeat === undefined ? {} : { lastBeat }) });
      if (this.retired.size > this.maxRetiredRuns) {
        const oldest = this.retired.keys().next().value;
        if (oldest !== undefined) this.retired.delete(oldest);
      }
    }
    this.bindings.delete(peerId);
  }

  /**
   * The key of a peer registered or dropped not long ago (the last `maxRetiredRuns` dropped): its id is
   * derived from it, so every genuine event of that id is signed by it.
   */
  keyOf(peerId: string): string | undefined {
    return this.bindings.get(peerId)?.publicKey ?? this.retired.get(peerId)?.publicKey;
  }

  /** Records that a message of the peer's current run arrived at `nowMs`; other runs change nothing. */
  touch(peerId: string, instanceId: string, nowMs: number): boolean {
    const binding = this.bindings.get(peerId);
    if (!binding || binding.instanceId !== instanceId) return false;
    if (nowMs > binding.lastSeenMs) binding.lastSeenMs = nowMs;
    return true;
  }

  /**
   * Counts a heartbeat of the peer's current run numbered `beat` (undefined: the sender numbers none) as
   * heard at `nowMs`, unless that number was counted already or is below one that was: a heartbeat copied
   * and replayed later keeps nobody alive. A run that numbered a heartbeat must number all. Returns
   * whether it counted.
   */
  heartbeat(peerId: string, instanceId: string, beat: number | undefined, nowMs: number): boolean {
    const binding = this.bindings.get(peerId);
    if (!binding || binding.instanceId !== instanceId) return false;
    if (binding.lastBeat !== undefined && (beat === undefined || beat <= binding.lastBeat)) return false;
    if (beat !== undefined) binding.lastBeat = beat;
    return this.touch(peerId, instanceId, nowMs);
  }

  /** Whether run `instanceId` of the peer was replaced here by another (and not heard from since). */
  wasReplaced(peerId: string, instanceId: string): boolean {
    return this.replacedRuns.get(peerId)?.has(instanceId) === true;
  }

  /**
   * A heartbeat of a run that was replaced: numbered past the last beat counted of it (or the run never
   * numbered one), the run is alive after all, and may announce again.
   */
  heardReplaced(peerId: string, instanceId: string, beat: number | undefined): void {
    const runs = this.replacedRuns.get(peerId);
    if (runs === undefined || !runs.has(instanceId)) return;
    const lastBeat = runs.get(instanceId);
    if (lastBeat === undefined || (beat !== undefined && beat > lastBeat)) runs.delete(instanceId);
  }

  private replaced(peerId: string, instanceId: string, lastBeat: number | undefined): void {
    const runs = this.replacedRuns.get(peerId) ?? new Map<string, number | undefined>();
    this.replacedRuns.delete(peerId);
    this.replacedRuns.set(peerId, runs);
    runs.set(instanceId, lastBeat);
    if (runs.size > MAX_REPLACED_RUNS_PER_PEER) runs.delete(runs.keys().next().value as string);
    if (this.replacedRuns.size > this.maxRetiredRuns)
      this.replacedRuns.delete(this.replacedRuns.keys().next().value as string);
  }

  /** Every peer counts as heard at `nowMs` (after our own outage or stall: their silence was ours). */
  refreshAll(nowMs: number): void {
    for (const binding of this.bindings.values()) binding.lastSeenMs = nowMs;
  }

  /** Peers not heard since `deadlineMs`, at most `limit` of them. */
  overdue(deadlineMs: number, limit: number): Array<{ peerId: string; instanceId: string }> {
    const out: Array<{ peerId: string; instanceId: string }> = [];
    for (const [peerId, binding] of this.bindings) {
      if (binding.lastSeenMs >= deadlineMs) continue;
      out.push({ peerId, instanceId: binding.instanceId });
      if (out.length >= limit) break;
    }
    return out;
  }

  /** `{ name }` when the peer announced a name, else nothing (the field is optional on the wire). */
  nameOf(peerId: string): { name?: string } {
    const name = this.bindings.get(peerId)?.name;
    return name === undefined ? {} : { name };
  }

  lastSeenAgoMs(peerId: string, nowMs: number): number {
    return Math.max(0, nowMs - (this.bindings.get(peerId)?.lastSeenMs ?? nowMs));
  }

  markOverLimit(peerId: string, instanceId: string): void {
    if (this.overLimit.size >= this.maxOverLimitRuns && !this.overLimit.has(peerId)) {
      const oldest = this.overLimit.keys().next().value;
      if (oldest !== undefined) this.overLimit.delete(oldest);
    }
    this.overLimit.set(peerId, instanceId);
  }

  isOverLimit(peerId: string, instanceId: string): boolean {
    return this.overLimit.get(peerId) === instanceId;
  }
}
