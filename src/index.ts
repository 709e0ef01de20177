/**
 * wsrfc: a WebSocket (RFC 6455) server and client for Node.js, straight on node:net, no dependencies.
 *
 * The protocol core (no sockets, no timers) is exported too, for tools and tests that want to
 * speak the protocol over something else.
 */
export { WebSocketServer, createServer, SERVER_DEFAULTS } from './server.js';
export type { ServerOptions, UpgradeRequest, VerifyResult, WebSocketServerEventMap } from './server.js';
export {
  WebSocket,
  ReadyState,
  CONNECTION_DEFAULTS,
  InvalidStateError,
  ConnectionTimeoutError,
} from './websocket.js';
export type { ConnectionOptions, SendOptions, SendCallback, Data, Message, WebSocketEventMap } from './websocket.js';

// The protocol core.
export { CloseCode, Opcode, isValidWireCloseCode } from './constants.js';
export { ProtocolError, ProtocolViolation } from './errors.js';
export { Receiver, DEFAULT_MAX_MESSAGE_SIZE } from './receiver.js';
export type { Frame, ReceiverHandler, ReceiverOptions, Role, MessageInflater } from './receiver.js';
export { encodeFrame, writeFrameHeader, frameHeaderSize } from './frame.js';
export { appendFrame, appendMessage, appendControlFrame, MaskKeySource } from './writer.js';
export { mask, maskInto } from './mask.js';
export { Utf8Validator, isValidUtf8 } from './utf8.js';
export { parseClosePayload, buildClosePayload } from './close.js';
export { acceptKey, generateKey, HandshakeError } from './handshake.js';
export { HttpError } from './http1.js';
export { formatFrame } from './trace.js';
export type { TracedFrame, FrameTracer } from './trace.js';
export { connect, openClient, parseWebSocketUrl, CLIENT_DEFAULTS } from './client.js';
export type { ClientOptions } from './client.js';
export { parseExtensions, formatExtension, ExtensionHeaderError } from './extensions.js';
export type { ExtensionOffer } from './extensions.js';
export { PerMessageDeflate, acceptDeflateOffer, deflateOffer, acceptDeflateResponse, DEFLATE_DEFAULTS } from './permessage-deflate.js';
export { inflateBudget, InflateBudget, DEFAULT_INFLATE_BUDGET } from './inflate-budget.js';
export type { PerMessageDeflateOptions, DeflateParams } from './permessage-deflate.js';
