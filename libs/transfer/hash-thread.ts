import { createHash, type Hash } from 'node:crypto';
import { isMainThread, parentPort } from 'node:worker_threads';
import type { HashReply, HashRequest } from './hash-worker.js';

/**
 * The hashing thread behind `HashWorker`: one SHA-256 over every chunk it is sent, in order. Its only
 * input is the `HashWorker` that started it, so a message it does not know is a bug there: it throws, the
 * thread dies and `HashWorker` turns that into a typed error.
 */
if (!isMainThread && parentPort !== null) {
  const port = parentPort;
  let hash: Hash = createHash('sha256');
  port.on('message', (request: HashRequest) => {
    switch (request.type) {
      case 'update': {
        let bytes = 0;
        const pooled: ArrayBuffer[] = [];
        for (const chunk of request.chunks) {
          hash.update(new Uint8Array(chunk.buffer, 0, chunk.length));
          bytes += chunk.length;
          if (chunk.pooled) pooled.push(chunk.buffer);
        }
        const reply: HashReply = { type: 'hashed', bytes, pooled };
        port.postMessage(reply, pooled);
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
