import type { FileHandle } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';

/** Bytes per read and per socket write: few syscalls and callbacks per GiB. */
const BODY_CHUNK_BYTES = 1024 * 1024;

/** Thrown when the client went away before the body was out. */
export class ClientGoneError extends Error {
  readonly code = 'ERR_STREAM_PREMATURE_CLOSE';
  constructor() {
    super('client closed the connection');
  }
}

/**
 * Writes `length` bytes of `handle` from `start` as the body of `res` and ends it. Two buffers are reused
 * for the whole body (no allocation per chunk): the next chunk is read while the previous one is being
 * written, and a buffer is refilled only once the socket has taken it, which is also the backpressure.
 * `progress.sentBytes` counts bytes handed to the socket. Rejects if the client goes away, on a read
 * error, or if the file turns out shorter than `length` (the caller must then destroy `res`, so a short
 * body is never taken for a complete one).
 */
export async function sendFileBody(
  handle: FileHandle,
  res: ServerResponse,
  start: number,
  length: number,
  progress: { sentBytes: number },
): Promise<void> {
  const size = Math.min(BODY_CHUNK_BYTES, length);
  const buffers = [Buffer.allocUnsafe(size), Buffer.allocUnsafe(size)];
  const gone = new Promise<never>((_resolve, reject) => {
    res.once('close', () => reject(new ClientGoneError()));
  });
  gone.catch(() => undefined);
  let writing: Promise<void> = Promise.resolve();
  let offset = 0;
  for (let turn = 0; offset < length; turn++) {
    const buffer = buffers[turn % 2] as Buffer;
    const { bytesRead } = await handle.read(
      buffer,
      0,
      Math.min(buffer.length, length - offset),
      start + offset,
    );
    if (bytesRead === 0) throw new Error(`file shrank while being sent (${offset} of ${length} bytes)`);
    // The previous write must be done: its buffer is the one read into next.
    await Promise.race([writing, gone]);
    const chunk = bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead);
    writing = new Promise<void>((resolve, reject) => {
      res.write(chunk, (err) => (err ? reject(err) : resolve()));
    });
    writing.catch(() => undefined);
    offset += bytesRead;
    progress.sentBytes = offset;
  }
  await Promise.race([writing, gone]);
  await Promise.race([new Promise<void>((resolve) => res.end(resolve)), gone]);
}
