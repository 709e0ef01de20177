/**
 * wsrfc: a WebSocket (RFC 6455) server and client for Node.js, straight on node:net, no dependencies.
 * What is exported here is the documented API (the README's tables). The protocol core
 * (src/protocol/: the state machine and the pure handshake functions, no socket, no timer) has its
 * own entry point, `wsrfc/core` (src/core.ts), for those who drive it themselves; the rest of
 * src/protocol/ (receiver.ts, sender.ts, frame.ts, ...) is there to be read, not imported.
 */
export { WebSocketServer, createServer, SERVER_DEFAULTS } from './websocket/server.js';
export type { ServerOptions, VerifyResult, WebSocketServerEventMap, ClientSet } from './websocket/server.js';
export type { ConnectionObserver, ObservedHandshake, HttpRequestInfo, HttpResponseInfo } from './websocket/hooks.js';
export type { Http2Options } from './websocket/http2.js';
export type { UpgradeRequest } from './protocol/handshake.js';
export { WebSocket, connect, openClient } from './websocket/websocket.js';
export type { WebSocketEventMap, Message } from './websocket/websocket.js';
export { CLIENT_DEFAULTS } from './websocket/client.js';
export type { ClientOptions } from './websocket/client.js';
export { CONNECTION_DEFAULTS } from './protocol/options.js';
export type { ConnectionOptions, SendOptions, Data } from './protocol/options.js';
export type { SendCallback } from './protocol/sender.js';
export type { PerMessageDeflateOptions } from './protocol/permessage-deflate.js';
export { CloseCode, Opcode, ReadyState } from './protocol/constants.js';
export {
  ProtocolError,
  ProtocolViolation,
  ConnectionTimeoutError,
  InvalidStateError,
  MessageAbortedError,
} from './protocol/errors.js';
export { MessageStream } from './driver/streams.js';
export type { MessageSourceData } from './driver/streams.js';
export { HandshakeError } from './protocol/handshake.js';
export { formatFrame } from './protocol/trace.js';
export type { TracedFrame, FrameTracer } from './protocol/trace.js';
export { inflateBudget, InflateBudget, DEFAULT_INFLATE_BUDGET } from './protocol/inflate-budget.js';
export type { PublishOptions } from './websocket/topics.js';
export { LocalBroker } from './websocket/broker.js';
export type { Broker, BrokerHost } from './websocket/broker.js';
export { ClusterBroker } from './scale/broker-cluster.js';
export { runWorkers, WorkerPool } from './scale/workers.js';
export type { WorkersOptions, WorkerContext, StartWorker, WorkerPoolEventMap } from './scale/workers.js';
