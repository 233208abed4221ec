import type { Channel, ConsumeMessage } from 'amqplib';
import { type Broker, type BrokerSession, RpcClient } from '../../libs/messaging/index.js';

/**
 * A real RpcClient on a fake broker that answers every request at once with `reply(request)`: the bytes
 * as they would come off the wire, valid or not. No connection, no timers left behind. `deliver` hands the
 * reply over (at once by default).
 */
export async function answeringRpcClient(
  reply: (request: Buffer) => Buffer,
  deliver: (handOver: () => void) => void = queueMicrotask,
): Promise<RpcClient> {
  let onReply: (message: ConsumeMessage | null) => void = () => undefined;
  const channel = {
    consume: async (_queue: string, onMessage: typeof onReply) => {
      onReply = onMessage;
      return { consumerTag: 'fake' };
    },
    sendToQueue: (_queue: string, content: Buffer, options: { correlationId: string }) => {
      const message = { content: reply(content), properties: { correlationId: options.correlationId } };
      deliver(() => onReply(message as unknown as ConsumeMessage));
      return true;
    },
  } as unknown as Channel;
  const session = { createChannel: async () => channel } as unknown as BrokerSession;
  const broker = { currentSession: async () => session } as unknown as Broker;
  const client = new RpcClient(broker, 'unit.rpc');
  await client.setup(session);
  return client;
}
