/**
 * `wsrfc/core`: the protocol core on its own, for those who drive it themselves (see
 * examples/core-echo.ts and examples/core-client.ts): the connection state machine (bytes in,
 * events and bytes out, every decision returned as data; no socket, no timer, no clock) and the
 * pure opening-handshake functions. `wsrfc` itself drives all of this with backpressure and
 * deadlines (src/driver/connection.ts); prefer it for real servers and clients.
 */
export { Protocol } from './protocol/protocol.js';
export type { ProtocolEvent, ProtocolSetup, CloseReport } from './protocol/protocol.js';
export type { InflateJob } from './protocol/receiver.js';
export type { DeflateJob, OutgoingMessage } from './protocol/sender.js';
export { resolveConnectionOptions, CONNECTION_DEFAULTS } from './protocol/options.js';
export type { ConnectionOptions, ResolvedConnectionOptions } from './protocol/options.js';
export {
  acceptKey,
  switchingProtocolsResponse,
  validateUpgradeRequest,
  generateKey,
  upgradeRequest,
  validateUpgradeResponse,
  HandshakeError,
} from './protocol/handshake.js';
export type { UpgradeFields, ClientRequestOptions, ValidatedResponse } from './protocol/handshake.js';
export { HeadReader, HttpError, errorResponse, parseRequestHead, parseResponseHead } from './protocol/http1.js';
export type { RequestHead, ResponseHead } from './protocol/http1.js';
export { CloseCode, Opcode, ReadyState } from './protocol/constants.js';
export type { Role } from './protocol/receiver.js';
