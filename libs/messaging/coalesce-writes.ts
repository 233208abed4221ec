import type { ChannelModel } from 'amqplib';

/** The parts of amqplib's (2.x) connection used here; not its public API, so each is checked before use. */
interface ConnectionInternals {
  stream?: { cork?: () => void; uncork?: () => void };
  muxer?: { _readIncoming?: () => void };
}

/**
 * amqplib's multiplexer writes each frame its channels queued with a write of its own: one system call per
 * frame (a publish, an ack), which on loopback also runs the receiver's TCP path, tens of microseconds on a
 * busy machine. Here the socket is corked while the multiplexer writes out one turn's frames, so they leave
 * in one `writev`: a superpeer answering many requests at once sends its replies, and its acks, a turn at a
 * time. Nothing waits longer: uncorking happens before the multiplexer returns.
 *
 * Reaches into amqplib's connection (`connection.muxer._readIncoming`, `connection.stream`); returns false
 * and changes nothing when they are not there (another amqplib version), so writes stay correct, only not
 * coalesced.
 */
export function coalesceWrites(model: ChannelModel): boolean {
  const connection = (model as unknown as { connection?: ConnectionInternals }).connection;
  const muxer = connection?.muxer;
  const stream = connection?.stream;
  const writeOut = muxer?._readIncoming;
  const { cork, uncork } = stream ?? {};
  if (!muxer || !stream || typeof writeOut !== 'function') return false;
  if (typeof cork !== 'function' || typeof uncork !== 'function') return false;
  muxer._readIncoming = () => {
    cork.call(stream);
    try {
      writeOut.call(muxer);
    } finally {
      uncork.call(stream);
    }
  };
  return true;
}
