import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { describeError } from '../../libs/errors/index.js';
import type { Log } from '../../libs/logging/index.js';
import {
  type ArrivalCheck,
  type DecoderJob,
  type DecoderReply,
  type DecoderRequest,
  type DecodingMemory,
  type DeferredDecoding,
  decodeEvent,
  decodingMemory,
  deferred,
  deferredReply,
  MAX_ARRIVAL_BODY_BYTES,
} from './event-decoding.js';

/** Packed lists' buffers held for the threads, at most, and handed to a thread with one request. */
const MAX_SPARES = 32;
const SPARES_PER_REQUEST = 4;
/**
 * Requests' buffers handed back by the threads and kept to copy the next bodies into, at most. A fresh
 * buffer of 150 KB and its copy cost 35-88 µs an announce against 3 µs into one already in use, and each
 * new one counts toward the external memory that makes V8 collect.
 */
const MAX_INPUTS = 8;
/**
 * A request's buffer from this size up to `MAX_KEPT_INPUT_BYTES` is made a power of two (a later, slightly
 * larger batch fits) and kept when handed back; smaller and larger ones are made to size and not kept (a
 * client sending large bodies must not leave the superpeer holding eight of them).
 */
const ROUNDED_INPUT_BYTES = 64 * 1024;
const MAX_KEPT_INPUT_BYTES = 1024 * 1024;

/** A buffer for `bytes` bytes: to size, or the next power of two for one worth keeping. */
function inputBytes(bytes: number): number {
  return bytes < ROUNDED_INPUT_BYTES || bytes > MAX_KEPT_INPUT_BYTES
    ? bytes
    : 2 ** Math.ceil(Math.log2(bytes));
}

export interface EventDecoderOptions {
  /** Decoding threads (at least 1; a superpeer that wants none does not build a decoder). */
  workers: number;
  logger: Log;
  /** Events sent to one thread and not answered yet, at most; past it an event is decoded here. Default 256. */
  maxJobsPerWorker?: number;
  /** Heartbeats sent to be checked on arrival and not answered yet, at most; past it `checkArrival` says 'busy'. Default 1024. */
  maxArrivalsInFlight?: number;
  /** A thread that has not answered its oldest request for this long is stopped (and replaced). Default 30_000. */
  jobTimeoutMs?: number;
  /** Peer keys each thread remembers (see PeerKeys). Default 20_000. */
  maxKeys?: number;
  /** Threads restarted per slot within a minute, at most; past it the slot's work is done here. Default 5. */
  maxRestartsPerMinute?: number;
  /** The thread's script. Default: `decode-worker.js` beside this module (tests swap in a failing one). */
  script?: URL;
}

/**
 * The signature a header holds: a string, or none. The sender chooses the header's type (amqplib decodes
 * tables, arrays nested thousands deep, bytes…); whatever is not a string is no signature for
 * `decodeEvent`/`checkArrival` either, and it must not be cloned to a thread: a deep enough array makes
 * `postMessage` throw.
 */
function signatureOf(header: unknown): string | undefined {
  return typeof header === 'string' ? header : undefined;
}

/** Decoding threads for a machine with `cores` cores: one core is the superpeer's own thread. */
export function defaultDecodeWorkers(cores: number = availableParallelism()): number {
  return Math.max(1, Math.min(4, cores - 1));
}

type Pending =
  | {
      kind: 'event';
      startedMs: number;
      content: Buffer;
      signature: string | undefined;
      resolve: (d: DeferredDecoding) => void;
    }
  | {
      kind: 'arrival';
      startedMs: number;
      content: Buffer;
      signature: string | undefined;
      resolve: (check: ArrivalCheck | 'busy') => void;
    };

interface Slot {
  index: number;
  worker: Worker | undefined;
  /** Requests sent to `worker` (or about to be) and not answered, oldest first. */
  pending: Map<number, Pending>;
  /**
   * Events among `pending`. Its own count: heartbeats on arrival (anyone can send a flood of them) must
   * not fill the events' bound and move the events' decoding to the superpeer's thread.
   */
  events: number;
  /** Requests to send at the end of this task, in one message (each message costs more than its bytes). */
  outbox: Array<{ job: DecoderJob; content: Buffer }>;
  restartsMs: number[];
  gaveUp: boolean;
}

/**
 * Parses, validates and verifies the superpeer's peer events in worker threads, off the thread that
 * applies them. Each call resolves on its own (callers keep their order: the consumer awaits the
 * decodings in delivery order); a call never rejects and never waits unbounded: a thread that dies or
 * stops answering is replaced, and what it had in hand is decoded in this thread, like everything past
 * the bounds. The threads learn the peers' keys from the announces they verify, so they can verify the
 * peers' other events too; the key that verified an event travels with it as a hint for its turn.
 */
export class EventDecoder {
  private readonly slots: Slot[] = [];
  private nextId = 1;
  private arrivalsInFlight = 0;
  private closed = false;
  private watchdog: NodeJS.Timeout | undefined;
  /** Keys learned by any thread, to teach the others and the ones that replace them; and for in-thread work. */
  private readonly memory: DecodingMemory;
  private readonly maxJobsPerWorker: number;
  private readonly maxArrivalsInFlight: number;
  private readonly jobTimeoutMs: number;
  private readonly maxRestartsPerMinute: number;
  /** Packed lists' buffers handed back (`recycle`), going to the threads with their next jobs. */
  private readonly spares: ArrayBuffer[] = [];
  /** Requests' buffers handed back by the threads (`MAX_INPUTS`), to copy the next bodies into. */
  private readonly inputs: ArrayBuffer[] = [];

  constructor(private readonly options: EventDecoderOptions) {
    this.maxJobsPerWorker = options.maxJobsPerWorker ?? 256;
    this.maxArrivalsInFlight = options.maxArrivalsInFlight ?? 1024;
    this.jobTimeoutMs = options.jobTimeoutMs ?? 30_000;
    this.maxRestartsPerMinute = options.maxRestartsPerMinute ?? 5;
    this.memory = decodingMemory(options.maxKeys);
    for (let index = 0; index < Math.max(1, options.workers); index++) {
      this.slots.push({
        index,
        worker: undefined,
        pending: new Map(),
        events: 0,
        outbox: [],
        restartsMs: [],
        gaveUp: false,
      });
    }
  }

  start(): void {
    if (this.closed || this.watchdog) return;
    for (const slot of this.slots) this.spawn(slot);
    this.watchdog = setInterval(() => this.checkTimeouts(), Math.min(1000, this.jobTimeoutMs));
    this.watchdog.unref();
  }

  /** Stops the threads; what they had in hand is decoded here. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.watchdog) clearInterval(this.watchdog);
    await Promise.all(
      this.slots.map(async (slot) => {
        const worker = slot.worker;
        slot.worker = undefined;
        this.takeOver(slot);
        await worker?.terminate();
      }),
    );
  }

  /** Requests sent to the threads and not answered yet. */
  get inFlight(): number {
    return this.slots.reduce((sum, slot) => sum + slot.pending.size, 0);
  }

  /** Requests' buffers handed back and kept for the next bodies (for tests and metrics). */
  get inputsHeld(): number {
    return this.inputs.length;
  }

  /** Threads running now. */
  get runningWorkers(): number {
    return this.slots.filter((slot) => slot.worker !== undefined).length;
  }

  /**
   * One delivered event (see `decodeEvent`). `header`: its signature header as amqplib decoded it, any
   * AMQP field value the sender chose; only a string is a signature (see `signatureOf`).
   */
  decodeEvent(content: Buffer, header: unknown): Promise<DeferredDecoding> {
    const signature = signatureOf(header);
    // A heartbeat whose copy a thread verified on arrival: read here, the record spares the verify, and a
    // round trip to a thread costs more than parsing 300 bytes. Only its very bytes: anything else under
    // its signature (sent by anyone) would be verified here, and a delta or an announce does not use the
    // record up.
    if (
      signature !== undefined &&
      content.length <= MAX_ARRIVAL_BODY_BYTES &&
      this.memory.verified.holds(signature, content)
    ) {
      return Promise.resolve(deferred(decodeEvent(content, signature, this.memory)));
    }
    const slot = this.pick(this.maxJobsPerWorker);
    if (slot === undefined) return Promise.resolve(deferred(decodeEvent(content, signature, this.memory)));
    slot.events++;
    return new Promise((resolve) => {
      const id = this.nextId++;
      slot.pending.set(id, { kind: 'event', startedMs: Date.now(), content, signature, resolve });
      this.send(slot, { kind: 'event', id, offset: 0, length: content.length, signature }, content);
    });
  }

  /**
   * A delivery read on arrival (see `checkArrival`), ahead of the events waiting in the threads. 'busy':
   * too many in flight, or no thread: the caller checks it itself.
   */
  checkArrival(content: Buffer, header: unknown): Promise<ArrivalCheck | 'busy'> {
    const signature = signatureOf(header);
    const slot =
      this.arrivalsInFlight < this.maxArrivalsInFlight ? this.pick(Number.POSITIVE_INFINITY) : undefined;
    if (slot === undefined) return Promise.resolve('busy');
    this.arrivalsInFlight++;
    return new Promise((resolve) => {
      const id = this.nextId++;
      slot.pending.set(id, { kind: 'arrival', startedMs: Date.now(), content, signature, resolve });
      this.send(slot, { kind: 'arrival', id, offset: 0, length: content.length, signature }, content);
    });
  }

  /**
   * Takes back the buffer of a list a thread packed, once read: it goes back to a thread with its next
   * jobs, to be packed into again (see decode-worker.ts).
   */
  recycle(buffer: ArrayBuffer): void {
    if (this.spares.length < MAX_SPARES && buffer.byteLength > 0 && !this.spares.includes(buffer))
      this.spares.push(buffer);
  }

  /** A buffer handed back that holds `bytes`, or a new one. */
  private input(bytes: number): ArrayBuffer {
    const at = this.inputs.findIndex((buffer) => buffer.byteLength >= bytes);
    return at >= 0 ? this.inputs.splice(at, 1)[0]! : new ArrayBuffer(inputBytes(bytes));
  }

  /** The running thread with the fewest requests in hand, among those with fewer than `maxEvents` events. */
  private pick(maxEvents: number): Slot | undefined {
    let best: Slot | undefined;
    for (const slot of this.slots) {
      if (slot.worker === undefined && !this.respawn(slot)) continue;
      if (slot.events >= maxEvents) continue;
      if (best === undefined || slot.pending.size < best.pending.size) best = slot;
    }
    return best;
  }

  private send(slot: Slot, job: DecoderJob, content: Buffer): void {
    if (slot.pending.size === 1) slot.worker!.ref();
    slot.outbox.push({ job, content });
    // Sent once this turn's input is read (deliveries from every connection, replies of the threads), not
    // after each callback: a message to a thread has a fixed cost (serializing it, waking the thread), and
    // heartbeats come a few at a time from several sockets.
    if (slot.outbox.length === 1) setImmediate(() => this.flush(slot));
  }

  /** Sends what this turn queued for `slot`: the bodies copied into one buffer, transferred (not cloned). */
  private flush(slot: Slot): void {
    const queued = slot.outbox.splice(0);
    const worker = slot.worker;
    if (worker === undefined || queued.length === 0) return; // its thread died: `takeOver` has them
    const bytes = this.input(queued.reduce((sum, { content }) => sum + content.length, 0));
    const view = new Uint8Array(bytes);
    let offset = 0;
    const jobs = queued.map(({ job, content }) => {
      view.set(content, offset);
      const placed = { ...job, offset };
      offset += content.length;
      return placed;
    });
    const spare = this.spares.splice(0, SPARES_PER_REQUEST);
    const request: DecoderRequest = { kind: 'jobs', bytes, jobs, ...(spare.length > 0 ? { spare } : {}) };
    try {
      worker.postMessage(request, [bytes, ...spare]);
    } catch (err) {
      // Only strings and bytes cross, so this is not expected; but a throw here would be uncaught (this
      // runs in a microtask) and end the process: the thread is treated as failed instead.
      this.onDeath(slot, worker, `could not be sent its jobs: ${describeError(err)}`);
      void worker.terminate();
    }
  }

  private spawn(slot: Slot): void {
    const worker = new Worker(this.options.script ?? new URL('./decode-worker.js', import.meta.url), {
      // Only the profiler's flags are passed on (a profile of the superpeer then covers its decoders).
      execArgv: process.execArgv.filter((arg) => arg.startsWith('--cpu-prof')),
      workerData: { maxKeys: this.options.maxKeys },
      resourceLimits: { maxYoungGenerationSizeMb: 8, maxOldGenerationSizeMb: 128 },
    });
    worker.unref();
    slot.worker = worker;
    worker.on('message', (replies: DecoderReply[]) => {
      for (const reply of replies) this.onReply(slot, worker, reply);
    });
    worker.on('error', (err) => this.onDeath(slot, worker, `failed: ${err.message}`));
    worker.on('exit', (code) => this.onDeath(slot, worker, `exited with code ${code}`));
    const keys = this.memory.keys.entries();
    if (keys.length > 0) worker.postMessage({ kind: 'learn', keys } satisfies DecoderRequest);
  }

  /** Starts a thread in a slot whose thread died, if its restarts allow. */
  private respawn(slot: Slot): boolean {
    if (this.closed) return false;
    const now = Date.now();
    slot.restartsMs = slot.restartsMs.filter((at) => now - at < 60_000);
    if (slot.restartsMs.length >= this.maxRestartsPerMinute) {
      if (!slot.gaveUp) {
        slot.gaveUp = true;
        this.options.logger.error(
          'a decoding thread keeps dying; its share of events is decoded in the main thread',
          {
            slot: slot.index,
            restartsPerMinute: slot.restartsMs.length,
          },
        );
      }
      return false;
    }
    slot.gaveUp = false;
    slot.restartsMs.push(now);
    this.spawn(slot);
    return true;
  }

  private onReply(slot: Slot, worker: Worker, reply: DecoderReply): void {
    if (slot.worker !== worker) return;
    if (reply.kind === 'input') {
      // Only announces' buffers are worth keeping: a batch of heartbeats is a few KB.
      const size = reply.bytes.byteLength;
      if (this.inputs.length < MAX_INPUTS && size >= ROUNDED_INPUT_BYTES && size <= MAX_KEPT_INPUT_BYTES)
        this.inputs.push(reply.bytes);
      return;
    }
    const pending = slot.pending.get(reply.id);
    if (pending === undefined) return;
    slot.pending.delete(reply.id);
    if (slot.pending.size === 0) worker.unref();
    // A reply of the wrong kind (a bug in the thread) still settles the request: here, as a takeover would.
    if (pending.kind === 'arrival') {
      this.arrivalsInFlight--;
      if (reply.kind !== 'arrival') {
        pending.resolve('busy');
        return;
      }
      const { check } = reply;
      // Its copy in the events queue is then read in this thread (see `decodeEvent`).
      if (check.heartbeat && check.verifiedKey !== undefined && pending.signature !== undefined)
        this.memory.verified.remember(check.verifiedKey, pending.signature, pending.content);
      pending.resolve(check);
      return;
    }
    slot.events--;
    if (reply.kind !== 'event') {
      pending.resolve(deferred(decodeEvent(pending.content, pending.signature, this.memory)));
      return;
    }
    if (reply.ok && reply.announcedBy !== undefined && reply.verifiedKey !== undefined) {
      this.learned(slot, reply.announcedBy, reply.verifiedKey);
    }
    pending.resolve(deferredReply(reply));
  }

  private learned(from: Slot, peerId: string, key: string): void {
    if (this.memory.keys.get(peerId) === key) return;
    this.memory.keys.set(peerId, key);
    for (const slot of this.slots) {
      if (slot !== from)
        slot.worker?.postMessage({ kind: 'learn', keys: [[peerId, key]] } satisfies DecoderRequest);
    }
  }

  private onDeath(slot: Slot, worker: Worker, how: string): void {
    if (slot.worker !== worker) return;
    slot.worker = undefined;
    if (this.closed) return;
    this.options.logger.error('a decoding thread stopped; its events are decoded in the main thread', {
      slot: slot.index,
      reason: how,
      inFlight: slot.pending.size,
    });
    this.takeOver(slot);
    this.respawn(slot);
  }

  /** What a stopped thread had in hand: events decoded here (one per task), heartbeats left to the caller. */
  private takeOver(slot: Slot): void {
    const pending = [...slot.pending.values()];
    slot.pending.clear();
    slot.events = 0;
    slot.outbox.length = 0;
    for (const job of pending) {
      if (job.kind === 'arrival') {
        this.arrivalsInFlight--;
        job.resolve('busy');
      } else {
        setImmediate(() => job.resolve(deferred(decodeEvent(job.content, job.signature, this.memory))));
      }
    }
  }

  private checkTimeouts(): void {
    const now = Date.now();
    for (const slot of this.slots) {
      const oldest = slot.pending.values().next();
      if (oldest.done || now - oldest.value.startedMs < this.jobTimeoutMs) continue;
      const worker = slot.worker;
      if (worker === undefined) continue;
      this.onDeath(slot, worker, `did not answer within ${this.jobTimeoutMs} ms`);
      void worker.terminate();
    }
  }
}
