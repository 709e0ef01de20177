/**
 * Numbers defined by RFC 6455, in one place, each next to the section it comes from.
 */

/** RFC 6455 §1.3: appended to Sec-WebSocket-Key before hashing to make Sec-WebSocket-Accept. */
export const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** RFC 6455 §4.1, §4.2.1: the only protocol version this implementation (and the RFC) speaks. */
export const WEBSOCKET_VERSION = 13;

/** RFC 6455 §5.2 and §11.8: frame opcodes. 0x3-0x7 and 0xB-0xF are reserved. */
export const Opcode = {
  Continuation: 0x0,
  Text: 0x1,
  Binary: 0x2,
  Close: 0x8,
  Ping: 0x9,
  Pong: 0xa,
} as const;
export type Opcode = (typeof Opcode)[keyof typeof Opcode];

/** RFC 6455 §5.5: control frames have opcodes with the most significant bit set. */
export function isControlOpcode(opcode: number): boolean {
  return (opcode & 0x8) !== 0;
}

/** RFC 6455 §5.2: opcodes with a defined meaning; all others are reserved. */
export function isKnownOpcode(opcode: number): boolean {
  return opcode <= 0x2 || (opcode >= 0x8 && opcode <= 0xa);
}

/** RFC 6455 §5.5: all control frames MUST have a payload length of 125 bytes or less. */
export const MAX_CONTROL_PAYLOAD = 125;

/** RFC 6455 §5.5.1: a close payload is a 2-byte code then a UTF-8 reason, so the reason has at most 123 bytes. */
export const MAX_CLOSE_REASON_BYTES = MAX_CONTROL_PAYLOAD - 2;

/** RFC 6455 §7.4.1 and the IANA "WebSocket Close Code Number Registry" (§11.7). */
export const CloseCode = {
  /** The purpose for which the connection was established has been fulfilled. */
  Normal: 1000,
  /** An endpoint is going away: a server going down, a browser leaving a page. */
  GoingAway: 1001,
  /** The endpoint received something that breaks the protocol. */
  ProtocolError: 1002,
  /** The endpoint received a type of data it cannot accept (say, binary where it only takes text). */
  UnsupportedData: 1003,
  /** Reserved: never sent on the wire. */
  Reserved: 1004,
  /** Reserved: "no status code was present" — reported to the application, never sent (§7.4.1). */
  NoStatusReceived: 1005,
  /** Reserved: "closed abnormally, without a close frame" — reported to the application, never sent. */
  Abnormal: 1006,
  /** A message's data was not consistent with its type (invalid UTF-8 in a text message, §8.1). */
  InvalidPayload: 1007,
  /** A message violates the endpoint's policy (generic code when nothing more specific fits). */
  PolicyViolation: 1008,
  /** A message is too big to process. */
  MessageTooBig: 1009,
  /** The client expected the server to negotiate an extension it did not. */
  MandatoryExtension: 1010,
  /** The server met an unexpected condition that prevented it from fulfilling the request. */
  InternalError: 1011,
  /** IANA: the service is restarting. */
  ServiceRestart: 1012,
  /** IANA: try again later. */
  TryAgainLater: 1013,
  /** IANA: the server acting as a gateway got an invalid response. */
  BadGateway: 1014,
  /** Reserved: TLS handshake failure — reported to the application, never sent. */
  TlsHandshake: 1015,
} as const;

/**
 * RFC 6455 §7.4.1, §7.4.2: may this code appear in a close frame on the wire?
 * 1000-1003 and 1007-1011 are defined by the RFC, 1012-1014 registered with IANA since;
 * 3000-3999 are for libraries and frameworks, 4000-4999 for private use. Everything
 * else (0-999 unused, 1004-1006 and 1015 reserved, 1016-2999 unassigned, 5000+) is not.
 */
export function isValidWireCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

/**
 * What an application may pass to close(): 1000, or 3000-4999. Codes 1001-1014 describe
 * conditions the library itself detects; `ws` and the browser API restrict applications the same way
 * except for 1000. We allow the whole wire-valid set so servers can say 1001 or 1012 themselves.
 */
export function isValidApplicationCloseCode(code: number): boolean {
  return Number.isInteger(code) && isValidWireCloseCode(code);
}

/**
 * A connection's states, as the WebSocket API numbers them (and RFC 6455 names them: §4.1 "CONNECTING",
 * §4.2.2 "OPEN", §7.1.3 "CLOSING", §7.1.4 "CLOSED").
 */
export const ReadyState = { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 } as const;
export type ReadyState = (typeof ReadyState)[keyof typeof ReadyState];
