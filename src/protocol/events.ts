import type { InflateBudget } from './inflate-budget.js';
import type { SendCallback, SenderCompression } from './sender.js';

/**
 * What the protocol core (src/protocol/protocol.ts) tells its driver: the events for the
 * application, in order, what the close reports, and what a connection is set up with.
 */

/** What the connection tells its application, in order (`nextEvent()`). */
export type ProtocolEvent =
  /** A complete message (text is valid UTF-8). */
  | { type: 'message'; data: Buffer; isBinary: boolean }
  /**
   * `streamMessages`: a message begins; its payload follows as `messageData` events, in order, as
   * it arrives (text: valid so far, whole code points), then `messageEnd`, or `messageAbort` when
   * it will never end (the error says why: a ProtocolError for a violation, else a MessageAbortedError).
   */
  | { type: 'messageStart'; isBinary: boolean }
  | { type: 'messageData'; data: Buffer }
  | { type: 'messageEnd' }
  | { type: 'messageAbort'; error: Error }
  /** A ping (already answered when `autoPong` is on) or a pong. */
  | { type: 'ping'; data: Buffer }
  | { type: 'pong'; data: Buffer }
  /** What went wrong (a protocol error, a deadline, zlib), for the application to hear of. */
  | { type: 'error'; error: Error }
  /** Messages accepted by `send()` that will never be written: their callbacks are to fail. */
  | { type: 'sendFailed'; callbacks: SendCallback[] };

/** What the close event reports (RFC 6455 §7.1.4-§7.1.6). */
export interface CloseReport {
  code: number;
  reason: string;
  /** Close frames went both ways before TCP ended (§7.1.4: "closed cleanly"). */
  wasClean: boolean;
}

/** What the handshake agreed on, and what the connection shares with others. */
export interface ProtocolSetup {
  /** permessage-deflate (RFC 7692), when negotiated: RSV1 means compressed, and which messages to compress. */
  compression?: SenderCompression | null;
  /** The budget of inflated bytes shared with other connections (src/protocol/inflate-budget.ts). */
  inflateBudget?: InflateBudget | null;
}

/** The closing handshake's details, made when it starts (an idle connection needs none). */
export interface Closing {
  /** When to give up waiting for the peer's close and the end of TCP; 0 for never. */
  deadline: number;
  /** The peer's close frame, once received (§7.1.5, §7.1.6). */
  peerCode: number;
  peerReason: string;
  /** The code we failed the connection with (§7.1.7), when we did. */
  failCode: number;
  failReason: string;
}
