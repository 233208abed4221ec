import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import {
  checkArrival,
  type DecoderJob,
  type DecoderReply,
  type DecoderRequest,
  decodeEvent,
  decodingMemory,
  eventReply,
} from './event-decoding.js';

/** Longest run of jobs before the thread reads its port again (where heartbeats to check may wait). */
const DRAIN_SLICE_MS = 5;
/** Buffers handed back for packing that the thread keeps, at most. */
const MAX_SPARE_BUFFERS = 16;
/** A new packing buffer is at least this large, so that it fits the next lists too. */
const MIN_PACKING_BYTES = 256 * 1024;

/**
 * A decoding thread behind `EventDecoder`: parses, validates and verifies the events it is sent, and
 * answers each by its id. Heartbeats read on arrival go first: they must not wait behind a prefetch of
 * announces. Its only input is the `EventDecoder` that started it, so a request it does not know is a bug
 * there: it throws, the thread dies, and the decoder decodes that thread's events itself.
 */
if (!isMainThread && parentPort !== null) {
  const port = parentPort;
  const { maxKeys } = (workerData ?? {}) as { maxKeys?: number };
  const memory = decodingMemory(maxKeys);
  /** A request's bytes and how many of its jobs are not read yet: they go back once all are. */
  type Batch = { bytes: ArrayBuffer; left: number };
  type Queued = { job: DecoderJob; content: Buffer; batch: Batch };
  const events: Queued[] = [];
  const arrivals: Queued[] = [];
  let scheduled = false;
  /**
   * Packed lists' buffers the superpeer's thread read and handed back: packing into them again makes no
   * new memory outside the heap in either thread (a new 200 KiB buffer per announce made both collect
   * more often).
   */
  const spares: ArrayBuffer[] = [];
  const spare = (bytes: number): ArrayBuffer => {
    const at = spares.findIndex((buffer) => buffer.byteLength >= bytes);
    if (at >= 0) return spares.splice(at, 1)[0]!;
    return new ArrayBuffer(Math.max(bytes, MIN_PACKING_BYTES));
  };

  const drain = (): void => {
    scheduled = false;
    const replies: DecoderReply[] = [];
    const transfer: ArrayBuffer[] = [];
    // Nothing read from a request's bytes is kept (replies hold strings and packed lists of their own), so
    // once its last job is read they go back to the superpeer's thread, which copies its next bodies into
    // them rather than into new memory.
    const read = ({ batch }: Queued): void => {
      if (--batch.left > 0) return;
      replies.push({ kind: 'input', bytes: batch.bytes });
      transfer.push(batch.bytes);
    };
    const started = performance.now();
    while (performance.now() - started < DRAIN_SLICE_MS) {
      const arrival = arrivals.shift();
      if (arrival !== undefined) {
        const check = checkArrival(arrival.content, arrival.job.signature, memory);
        replies.push({ kind: 'arrival', id: arrival.job.id, check });
        read(arrival);
        continue;
      }
      const event = events.shift();
      if (event === undefined) break;
      replies.push(
        eventReply(event.job.id, decodeEvent(event.content, event.job.signature, memory, spare), spare),
      );
      read(event);
    }
    if (replies.length > 0) {
      for (const reply of replies)
        if (reply.kind === 'event' && reply.ok && reply.packed) transfer.push(reply.packed);
      port.postMessage(replies, transfer);
    }
    schedule();
  };

  const schedule = (): void => {
    if (scheduled || arrivals.length + events.length === 0) return;
    scheduled = true;
    setImmediate(drain);
  };

  port.on('message', (request: DecoderRequest) => {
    switch (request.kind) {
      case 'jobs': {
        for (const buffer of request.spare ?? []) if (spares.length < MAX_SPARE_BUFFERS) spares.push(buffer);
        const batch: Batch = { bytes: request.bytes, left: request.jobs.length };
        for (const job of request.jobs) {
          const content = Buffer.from(request.bytes, job.offset, job.length);
          (job.kind === 'arrival' ? arrivals : events).push({ job, content, batch });
        }
        schedule();
        return;
      }
      case 'learn':
        for (const [peerId, key] of request.keys) memory.keys.set(peerId, key);
        return;
      default:
        throw new Error(`decode thread: unknown request ${JSON.stringify(request)}`);
    }
  });
}
