import { describeError } from '../../libs/errors/index.js';
import type { Log } from '../../libs/logging/index.js';
import type { FileEntry } from '../../libs/protocol/index.js';
import { NetworkIndex, type PeerDeltaInput, type SliceOptions } from '../../libs/search/index.js';

/**
 * This peer's own files as a searchable index (local results come first in a search). Every update runs in
 * slices that yield to the event loop, one after another in call order: a share of 20,000 files loaded in
 * one task held the loop for about 240 ms, and a change of that many files for 120 ms, while the peer's
 * HTTP serving, heartbeats and network messages waited. A search between two slices sees the files
 * applied so far.
 */
export class OwnFiles {
  readonly index = new NetworkIndex();
  private last: Promise<void> = Promise.resolve();

  constructor(
    private readonly logger: Log,
    private readonly slices: SliceOptions = {},
  ) {}

  /** Replaces the whole state (at start); resolves once it is in the index. */
  load(state: { peerId: string; instanceId: string; url: string; seq: number; files: readonly FileEntry[] }) {
    return this.track(this.index.applyFullAsync(state, this.slices));
  }

  /** Queues one change (a share change, numbered `seq`); it is applied after those queued before it. */
  change(delta: PeerDeltaInput): void {
    void this.track(this.index.applyDeltaAsync(delta, this.slices));
  }

  /** Resolves once every update asked for so far is in the index. */
  settled(): Promise<void> {
    return this.last;
  }

  private track(update: Promise<unknown>): Promise<void> {
    const done = update.then(
      () => undefined,
      (err: unknown) => {
        this.logger.warn('could not update the index of own files', { reason: describeError(err) });
      },
    );
    this.last = done;
    return done;
  }
}
