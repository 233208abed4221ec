import type { ChannelModel } from 'amqplib';

/** An AMQP frame: type (1 byte), channel (2), payload size (4), the payload, then the frame-end byte. */
const FRAME_HEADER_BYTES = 7;
const FRAME_END_BYTES = 1;

/** The parts of amqplib's (2.x) connection used here; not its public API, so each is checked before use. */
interface ConnectionInternals {
  rest?: unknown;
  maxFrameSize?: unknown;
  recvSinceLastCheck?: boolean;
  stream?: { read?: () => Buffer | null };
  recvFrame?: () => unknown;
}

/**
 * amqplib reads a frame that is not whole in its buffer by concatenating that buffer with the socket's next
 * chunk: a frame of 128 kB arriving in chunks of 8 kB is copied sixteen times over, growing. A busy
 * process reads small chunks (a superpeer in a join: 26 kB a read on average), and the cost grows with the
 * frame's size over the chunk's: reading 134 MB of such frames took amqplib 94-132 ms in chunks of 26 kB and
 * 246-292 ms in chunks of 8 kB, against 70-78 and 99-111 ms here (docs/performance.md, "Frames read in
 * place").
 *
 * Here the socket's chunks wait in a queue beside amqplib's buffer, and amqplib is given one whole frame at
 * a time: a chunk's frames are read where they are (amqplib takes each as a view of the chunk), and only a
 * frame split between chunks is copied, once, into a buffer of its size. amqplib's own reader still parses
 * and checks every frame (size limit, frame-end byte): it finds a whole frame at the start of its buffer,
 * or, with nothing whole to read, none, and then an empty socket, as it would have.
 *
 * Reaches into amqplib's connection (`connection.recvFrame`, `.rest`, `.stream`, `.maxFrameSize`); returns
 * false and changes nothing when they are not there (another amqplib version), so frames are read as before.
 */
export function readFramesInPlace(model: ChannelModel): boolean {
  const connection = (model as unknown as { connection?: ConnectionInternals }).connection;
  const stream = connection?.stream;
  const readFrame = connection?.recvFrame;
  if (!connection || !Buffer.isBuffer(connection.rest)) return false;
  if (typeof stream?.read !== 'function' || typeof readFrame !== 'function') return false;
  const read = stream.read;
  /** Chunks read from the socket, after amqplib's buffer (`rest`), in order. */
  const queued: Buffer[] = [];
  let queuedBytes = 0;

  /** Moves the first `bytes` of the queue after `rest` into one new buffer. */
  const gather = (rest: Buffer, bytes: number): Buffer => {
    const whole = Buffer.allocUnsafe(bytes);
    let filled = rest.copy(whole, 0);
    while (filled < bytes) {
      const chunk = queued[0]!;
      const take = Math.min(chunk.length, bytes - filled);
      chunk.copy(whole, filled, 0, take);
      filled += take;
      if (take === chunk.length) queued.shift();
      else queued[0] = chunk.subarray(take);
      queuedBytes -= take;
    }
    return whole;
  };

  connection.recvFrame = function recvFrame(this: ConnectionInternals) {
    for (let chunk = read.call(stream); chunk !== null; chunk = read.call(stream)) {
      queued.push(chunk);
      queuedBytes += chunk.length;
      this.recvSinceLastCheck = true;
    }
    let rest = this.rest as Buffer;
    if (rest.length === 0 && queued.length > 0) {
      rest = queued.shift()!;
      queuedBytes -= rest.length;
      this.rest = rest;
    }
    const buffered = rest.length + queuedBytes;
    if (rest.length < FRAME_HEADER_BYTES && buffered >= FRAME_HEADER_BYTES) {
      // The header is split between chunks: its seven bytes are put together, so that the size can be read.
      rest = gather(rest, FRAME_HEADER_BYTES);
      this.rest = rest;
    }
    if (rest.length >= FRAME_HEADER_BYTES) {
      const size = rest.readUInt32BE(3);
      const max = typeof this.maxFrameSize === 'number' ? this.maxFrameSize : 0;
      const frameBytes = FRAME_HEADER_BYTES + size + FRAME_END_BYTES;
      // An oversized frame goes to amqplib as it is, which refuses it; a whole one is copied once.
      if (rest.length < frameBytes && buffered >= frameBytes && !(max > 0 && size > max)) {
        this.rest = gather(rest, frameBytes);
      }
    }
    // amqplib finds a whole frame at the start of its buffer, or none and then an empty socket.
    return readFrame.call(this);
  };
  return true;
}
