/**
 * wsrfc: a WebSocket (RFC 6455) server and client for Node.js, straight on node:net, no dependencies.
 * What is exported here is the documented API (the README's tables); the protocol core in src/
 * (protocol.ts, receiver.ts, sender.ts, frame.ts, ...) is meant to be read, not imported.
 */
export { WebSocketServer, createServer, SERVER_DEFAULTS } from './server.js';
export type { ServerOptions, VerifyResult, WebSocketServerEventMap, ClientSet } from './server.js';
export type { Http2Options } from './http2.js';
export type { UpgradeRequest } from './handshake.js';
export { WebSocket, connect, openClient } from './websocket.js';
export type { WebSocketEventMap, Message } from './websocket.js';
export { CLIENT_DEFAULTS } from './client.js';
export type { ClientOptions } from './client.js';
export { CONNECTION_DEFAULTS } from './options.js';
export type { ConnectionOptions, SendOptions, Data } from './options.js';
export type { SendCallback } from './sender.js';
export type { PerMessageDeflateOptions } from './permessage-deflate.js';
export { CloseCode, Opcode, ReadyState } from './constants.js';
export { ProtocolError, ProtocolViolation, ConnectionTimeoutError, InvalidStateError } from './errors.js';
export { HandshakeError } from './handshake.js';
export { formatFrame } from './trace.js';
export type { TracedFrame, FrameTracer } from './trace.js';
export { inflateBudget, InflateBudget, DEFAULT_INFLATE_BUDGET } from './inflate-budget.js';
export type { PublishOptions } from './topics.js';
export { LocalBroker } from './broker.js';
export type { Broker, BrokerHost } from './broker.js';
export { ClusterBroker } from './broker-cluster.js';
export { runWorkers, WorkerPool } from './workers.js';
export type { WorkersOptions, WorkerContext, StartWorker, WorkerPoolEventMap } from './workers.js';
