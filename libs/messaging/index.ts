export type { BrokerOptions, PublishOptions } from './broker.js';
export { Broker, BrokerSession, redactUrl } from './broker.js';
export type { ConsumeOptions, DeadLetterTarget } from './consumer.js';
export { consumeValidated } from './consumer.js';
export type { RpcCallOptions, RpcServerOptions } from './rpc.js';
export { RpcClient, serveRpc } from './rpc.js';
