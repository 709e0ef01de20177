import { CloseCode } from './constants.js';

/**
 * Every way a peer can break the protocol, each with the close code the RFC says to answer it
 * with. One table, so a reader can check the whole policy at a glance.
 */
export const ProtocolViolation = {
  // RFC 6455 §5.2: "MUST be 0 unless an extension is negotiated that defines meanings for non-zero values".
  ReservedBits: CloseCode.ProtocolError,
  // RFC 6455 §5.2: "If an unknown opcode is received, the receiving endpoint MUST _Fail the WebSocket Connection_."
  ReservedOpcode: CloseCode.ProtocolError,
  // RFC 6455 §5.5: "All control frames MUST have a payload length of 125 bytes or less".
  ControlFrameTooLong: CloseCode.ProtocolError,
  // RFC 6455 §5.5: "... and MUST NOT be fragmented."
  ControlFrameFragmented: CloseCode.ProtocolError,
  // RFC 6455 §5.4: a continuation frame belongs to a message that a text or binary frame opened.
  UnexpectedContinuation: CloseCode.ProtocolError,
  // RFC 6455 §5.4: "fragments of one message MUST NOT be interleaved between the fragments of another".
  ExpectedContinuation: CloseCode.ProtocolError,
  // RFC 6455 §5.2: "the most significant bit MUST be 0" in a 64-bit payload length.
  LengthTopBitSet: CloseCode.ProtocolError,
  // RFC 6455 §5.1: "The server MUST close the connection upon receiving a frame that is not masked."
  UnmaskedFrame: CloseCode.ProtocolError,
  // RFC 6455 §5.1: "A client MUST close a connection if it detects a masked frame."
  MaskedFrame: CloseCode.ProtocolError,
  // RFC 6455 §5.5.1: a close payload is empty or starts with a 2-byte code.
  CloseFrameTooShort: CloseCode.ProtocolError,
  // RFC 6455 §7.4: a close code that is reserved, unassigned or out of range.
  InvalidCloseCode: CloseCode.ProtocolError,
  // RFC 6455 §5.5.1: the close reason "is not guaranteed to be human readable" but MUST be UTF-8.
  InvalidCloseReason: CloseCode.InvalidPayload,
  // RFC 6455 §8.1: "When an endpoint is to interpret a byte stream as UTF-8 but finds that the byte stream
  // is not, in fact, a valid UTF-8 stream, that endpoint MUST _Fail the WebSocket Connection_."
  InvalidUtf8: CloseCode.InvalidPayload,
  // RFC 6455 §10.4: implementations SHOULD impose limits on frame and message sizes; 1009 says "too big".
  FrameTooBig: CloseCode.MessageTooBig,
  MessageTooBig: CloseCode.MessageTooBig,
  // RFC 7692 §6: permessage-deflate data that does not inflate is a protocol error ...
  InvalidCompressedData: CloseCode.ProtocolError,
  // ... and an inflated message past the size limit is too big, like any other.
  InflatedMessageTooBig: CloseCode.MessageTooBig,
  // Not the peer breaking a rule: the process-wide budget for inflated data in unfinished messages
  // is spent (src/protocol/inflate-budget.ts, RFC 6455 §10.4). 1013 Try Again Later (IANA registry) says so.
  InflateMemoryExhausted: CloseCode.TryAgainLater,
} as const;
export type ProtocolViolation = keyof typeof ProtocolViolation;

/**
 * A peer broke the protocol. Carries the close code to send (RFC 6455 §7.1.7 "Fail the WebSocket
 * Connection"); the connection layer is the one place that turns it into a close frame.
 * Peer input never makes the library throw: this error is reported, not thrown, to applications.
 */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  /**
   * The close code to send to the peer: 1002, 1007 or 1009 for the peer's fault, 1013 when the
   * process-wide inflate budget is spent (the table above).
   */
  readonly closeCode: number;

  constructor(
    readonly violation: ProtocolViolation,
    message: string,
  ) {
    super(message);
    this.closeCode = ProtocolViolation[violation];
  }
}

/** Why a connection was dropped without a clean close: a deadline passed. */
export class ConnectionTimeoutError extends Error {
  override readonly name = 'ConnectionTimeoutError';
  constructor(
    /**
     * Which deadline: no frame for `pongTimeout`, no write progress for `writeTimeout`, no close
     * handshake within `closeTimeout`.
     */
    readonly reason: 'pong' | 'write' | 'close',
    message: string,
  ) {
    super(message);
  }
}

/** Thrown for `send()` and friends used while the connection is still connecting (as in the browser API). */
export class InvalidStateError extends Error {
  override readonly name = 'InvalidStateError';
}

/**
 * A message being received as a stream (`streamMessages`) will never end: the peer closed the
 * connection, or the connection was lost, in its middle. (A protocol violation ends it with the
 * ProtocolError instead.)
 */
export class MessageAbortedError extends Error {
  override readonly name = 'MessageAbortedError';
}
