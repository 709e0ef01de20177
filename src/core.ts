/**
 * `wsrfc/core`: the protocol core on its own, for readers who want to drive it themselves (see
 * examples/core-echo.ts): the connection state machine (bytes in, events and bytes out, no socket,
 * no timer, no clock) and the pure opening-handshake functions. `wsrfc` itself wraps all of this in
 * a driver with backpressure and deadlines (src/driver/connection.ts); prefer it for real servers.
 */
export { Protocol } from './protocol/protocol.js';
export type { ProtocolHandler, ProtocolSetup, CloseReport } from './protocol/protocol.js';
export { resolveConnectionOptions, CONNECTION_DEFAULTS } from './protocol/options.js';
export type { ConnectionOptions, ResolvedConnectionOptions } from './protocol/options.js';
export { acceptKey, switchingProtocolsResponse, validateUpgradeRequest } from './protocol/handshake.js';
export type { UpgradeFields } from './protocol/handshake.js';
export { HeadReader, HttpError, errorResponse, parseRequestHead } from './protocol/http1.js';
export type { RequestHead } from './protocol/http1.js';
export { CloseCode, Opcode, ReadyState } from './protocol/constants.js';
export type { Role } from './protocol/receiver.js';
