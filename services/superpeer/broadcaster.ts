import type { Log } from '../../libs/logging/index.js';
import type { NetworkMessage } from '../../libs/protocol/index.js';
import type { SuperpeerTransport } from './transport.js';

/**
 * Publishes the superpeer's network changes. `publishInOrder` does not wait for the broker's confirm (the
 * publisher keeps the order of what it is given), so the next event is handled meanwhile; `settle` bounds
 * how many may be outstanding.
 */
export class Broadcaster {
  private unconfirmed = 0;
  private readonly waiters: Array<() => void> = [];
  private closing = false;

  constructor(
    private readonly transport: SuperpeerTransport,
    private readonly logger: Log,
    /** Broadcasts awaiting their confirm before `settle` waits. */
    private readonly maxUnconfirmed = 256,
  ) {}

  /** `body`: `encode(message)`, when the caller has it already. */
  publishInOrder(message: NetworkMessage, body?: Buffer): void {
    this.unconfirmed++;
    void this.publish(message, body).finally(() => {
      this.unconfirmed--;
      this.waiters.shift()?.();
    });
  }

  /** Resolves once fewer than the bound are awaiting their confirm. */
  async settle(): Promise<void> {
    while (this.unconfirmed >= this.maxUnconfirmed) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /**
   * The superpeer is stopping: what fails to publish from now on is expected (the connection is closing
   * under it, typically while the peers that got the same Ctrl-C say their leave), and logged at debug.
   */
  close(): void {
    this.closing = true;
  }

  /** Publishes and waits for the confirm; a failure is logged, not thrown. */
  async publish(message: NetworkMessage, body?: Buffer): Promise<void> {
    try {
      await this.transport.publishNetwork(message, body === undefined ? {} : { body });
    } catch (err) {
      // Peers repair missed changes from sequence gaps and snapshots; a lost broadcast is not fatal.
      const fields = { type: message.type, reason: err instanceof Error ? err.message : String(err) };
      if (this.closing) this.logger.debug('network change not published: the superpeer is stopping', fields);
      else this.logger.warn('could not publish a network change', fields);
    }
  }
}
