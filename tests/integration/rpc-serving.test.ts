import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { z } from 'zod';
import type { Log } from '../../libs/logging/index.js';
import { Broker, serveRpc } from '../../libs/messaging/index.js';
import { AMQP_URL, testNamespace, waitUntil } from '../helpers/network.js';

const RequestSchema = z.object({ n: z.number().int() });
const ReplySchema = z.object({ doubled: z.number().int() });

/**
 * A logger that counts the per-request debug lines and says whether it writes debug lines at all; its
 * children are itself (winston's inherit `isDebugEnabled` from their parent).
 */
function countingLog(debugOn: boolean): Log & { isDebugEnabled: () => boolean; served: number } {
  const log = {
    served: 0,
    isDebugEnabled: () => debugOn,
    child: () => log,
    error() {},
    warn() {},
    info() {},
    debug(message: string) {
      if (message === 'served a request') log.served++;
    },
  };
  return log;
}

describe('serveRpc', () => {
  const brokers: Broker[] = [];
  after(async () => {
    for (const broker of brokers) await broker.close();
  });

  for (const debugOn of [false, true]) {
    test(`answers every request; the per-request debug line only when debug is on (${debugOn})`, async () => {
      const queue = `${testNamespace('rpc-serving')}.rpc`;
      const log = countingLog(debugOn);
      const server = new Broker({
        url: AMQP_URL,
        connectionName: 'rpc-serving test server',
        logger: log,
        setup: async (session) => {
          const channel = await session.createChannel('declare');
          await channel.assertQueue(queue, { durable: false, exclusive: false, autoDelete: true });
          await serveRpc(session, {
            queue,
            schema: RequestSchema,
            prefetch: 16,
            deadLetter: { exchange: '', rejectedBy: 'test' },
            handle: (request) => ({ doubled: request.n * 2 }),
            errorReply: (code, message) => ({ error: { code, message } }),
          });
        },
      });
      brokers.push(server);
      await server.start();
      const clientBroker = new Broker({
        url: AMQP_URL,
        connectionName: 'rpc-serving test client',
        logger: log,
      });
      brokers.push(clientBroker);
      const client = clientBroker.createRpcClient(queue);
      await clientBroker.start();
      // Many at once (replies and acks coalesced per turn), each answered to its own caller.
      const replies = await Promise.all(
        Array.from({ length: 50 }, (_, n) => client.call({ n }, ReplySchema, { timeoutMs: 10_000 })),
      );
      assert.deepEqual(
        replies.map((reply) => reply.doubled),
        Array.from({ length: 50 }, (_, n) => n * 2),
      );
      // A request's line is written once its reply has gone out, so it may follow the reply: one more
      // round trip lets the 50 lines be written (or not) before they are counted, and its own is awaited.
      await client.call({ n: 50 }, ReplySchema, { timeoutMs: 10_000 });
      if (debugOn)
        await waitUntil(() => log.served === 51, { timeoutMs: 5000, what: '51 "served a request" lines' });
      assert.equal(log.served, debugOn ? 51 : 0);
      client.close();
    });
  }
});
