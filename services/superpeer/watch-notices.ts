import { type FileEntry, fileUrl, PROTOCOL_VERSION, type WatchNotice } from '../../libs/protocol/index.js';

/** The peer a change comes from, as the index holds it. */
export interface ChangedPeer {
  peerId: string;
  /** The display name the peer announced, if any. */
  name?: string | undefined;
  instanceId: string;
  url: string;
  seq: number;
}

/** One notice for one watcher queue. */
export interface Outgoing {
  queue: string;
  notice: WatchNotice;
}

/** The watch a notice is for: its queue and id. */
interface Addressee {
  queue: string;
  watchId: string;
}

/** The notices a superpeer sends to watchers (see docs/protocol.md, standing searches). */
export class WatchNotices {
  constructor(private readonly superpeerId: string) {}

  accepted(to: Addressee, leaseMs: number): Outgoing {
    return this.to(to, { type: 'watch.accepted', leaseMs });
  }

  refused(to: Addressee, code: string, message: string): Outgoing {
    return this.to(to, { type: 'watch.refused', error: { code, message } });
  }

  overflow(to: Addressee, dropped: number): Outgoing {
    return this.to(to, { type: 'watch.overflow', dropped });
  }

  match(to: Addressee, peer: ChangedPeer, event: 'added' | 'removed', file: FileEntry): Outgoing {
    return this.to(to, {
      type: 'watch.match',
      event,
      file: {
        name: file.name,
        size: file.size,
        sha256: file.sha256,
        peerId: peer.peerId,
        ...(peer.name !== undefined ? { peerName: peer.name } : {}),
        url: fileUrl(peer.url, file.name),
      },
      instanceId: peer.instanceId,
      seq: peer.seq,
    });
  }

  private to(
    { queue, watchId }: Addressee,
    fields: DistributiveOmit<WatchNotice, 'v' | 'superpeerId' | 'watchId'>,
  ): Outgoing {
    const notice = { v: PROTOCOL_VERSION, superpeerId: this.superpeerId, watchId, ...fields } as WatchNotice;
    return { queue, notice };
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
