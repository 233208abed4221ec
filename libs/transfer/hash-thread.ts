import { createHash, type Hash } from 'node:crypto';
import { readSync, writeSync } from 'node:fs';
import { isMainThread, parentPort } from 'node:worker_threads';
import type { HashReply, HashRequest } from './hash-worker.js';

/** Read size when hashing a range of a file. */
const READ_BYTES = 1024 * 1024;
/** Largest single write: each is hashed right after, while its bytes are still in this core's cache. */
const WRITE_BYTES = 64 * 1024;

/**
 * The hashing thread behind `HashWorker`: one SHA-256 over every chunk it is sent or told to read, in order,
 * and the writes whose bytes it hashes (written first, hashed while still in this core's cache). Every
 * request but `reset` is answered once, in order. Its only input is the `HashWorker` that started it, so a
 * message it does not know is a bug there: it throws, the thread dies and `HashWorker` turns that into a
 * typed error. A failed write or read is not: it is answered with the error, and the thread goes on.
 */
if (!isMainThread && parentPort !== null) {
  const port = parentPort;
  let hash: Hash = createHash('sha256');
  let readBuffer: Buffer | undefined;
  const done = (bytes: number, pooled: ArrayBuffer[], error?: unknown): void => {
    const reply: HashReply =
      error === undefined
        ? { type: 'done', bytes, pooled }
        : { type: 'done', bytes, pooled, error: describe(error) };
    port.postMessage(reply, pooled);
  };
  port.on('message', (request: HashRequest) => {
    switch (request.type) {
      case 'update':
      case 'write': {
        const views = request.chunks.map((chunk) => new Uint8Array(chunk.buffer, chunk.offset, chunk.length));
        const pooled: ArrayBuffer[] = [];
        for (const chunk of request.chunks)
          if (chunk.pooled && chunk.buffer instanceof ArrayBuffer) pooled.push(chunk.buffer);
        const bytes = views.reduce((sum, view) => sum + view.length, 0);
        if (request.type === 'write') {
          // In small writes, each hashed right after it: still in this core's cache (one writev of a 256 KiB
          // batch was measured to cost the kernel's copy twice the CPU time of 64 KiB writes).
          let at = request.position;
          for (const view of views) {
            for (let from = 0; from < view.length; from += WRITE_BYTES) {
              const slice = view.subarray(from, from + WRITE_BYTES);
              try {
                writeAll(request.fd, slice, at);
              } catch (err) {
                done(bytes, pooled, err);
                return;
              }
              if (request.hash) hash.update(slice);
              at += slice.length;
            }
          }
          done(bytes, pooled);
          return;
        }
        for (const view of views) hash.update(view);
        done(bytes, pooled);
        return;
      }
      case 'hash-range': {
        readBuffer ??= Buffer.allocUnsafe(READ_BYTES);
        try {
          for (let at = 0; at < request.length; ) {
            const want = Math.min(readBuffer.length, request.length - at);
            const read = readSync(request.fd, readBuffer, 0, want, request.position + at);
            if (read === 0) throw new Error(`unexpected end of file at byte ${request.position + at}`);
            hash.update(readBuffer.subarray(0, read));
            at += read;
          }
        } catch (err) {
          done(0, [], err);
          return;
        }
        done(0, []);
        return;
      }
      case 'digest': {
        const reply: HashReply = { type: 'digest', hex: hash.digest('hex') };
        hash = createHash('sha256');
        port.postMessage(reply);
        return;
      }
      case 'reset':
        hash = createHash('sha256');
        return;
      default:
        throw new Error(`hash thread: unknown request ${JSON.stringify(request)}`);
    }
  });
}

/** Every byte of `view` at `position` (a short write goes on where it stopped). */
function writeAll(fd: number, view: Uint8Array, position: number): void {
  for (let done = 0; done < view.length; ) {
    const written = writeSync(fd, view, done, view.length - done, position + done);
    if (written === 0) throw new Error(`no byte written at ${position + done}`);
    done += written;
  }
}

function describe(err: unknown): { message: string; code?: string } {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const message = (err as Error | undefined)?.message ?? String(err);
  return code === undefined ? { message } : { message, code };
}
