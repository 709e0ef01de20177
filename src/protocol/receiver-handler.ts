import type { ProtocolError } from './errors.js';
import type { FrameHeaderStart } from './frame.js';
import type { InflateBudget } from './inflate-budget.js';

/**
 * What the receiver (src/protocol/receiver.ts) is built with and what it reports: its options, the
 * handler it calls for every message, ping, pong, close and violation, the frames it reports for
 * tracing, and the inflations it asks its owner to run.
 */

export type Role = 'server' | 'client';

/** A decoded frame, reported to `onFrame` for tracing and tests: its header's bits, then the rest. */
export interface Frame extends Omit<FrameHeaderStart, 'lengthCode'> {
  /** The masking key, or null for an unmasked frame. */
  maskKey: Uint8Array | null;
  /** The payload, unmasked (for a compressed frame: the compressed bytes). */
  payload: Buffer;
  /** Which form carried the payload length on the wire (§5.2: 7 bits, 7+16 or 7+64). */
  lengthBits?: 7 | 16 | 64;
}

export interface ReceiverHandler {
  /** A complete text (isBinary false, valid UTF-8) or binary message, reassembled and decompressed. */
  onMessage(data: Buffer, isBinary: boolean): void;
  /** Streaming: a message begins (its first frame's header is read). */
  onMessageStart?(isBinary: boolean): void;
  /** Streaming: the next piece of the message (decompressed; text: whole code points, valid so far). */
  onMessageData?(data: Buffer): void;
  /** Streaming: the message ended, complete and valid. */
  onMessageEnd?(): void;
  onPing(data: Buffer): void;
  onPong(data: Buffer): void;
  /** A valid close frame. Nothing is parsed after it (RFC 6455 §5.5.1). */
  onClose(code: number, reason: string): void;
  /** The first protocol violation. Nothing is parsed after it. */
  onError(error: ProtocolError): void;
  /** Every frame, as it completes. Optional: costs a copy per fragmented data frame when set. */
  onFrame?(frame: Frame): void;
}

/**
 * One frame's payload of a compressed message (RFC 7692 §7.2.2) to inflate (a streamed message:
 * each piece of it as it arrives). The receiver stops parsing until its owner runs the job (zlib is
 * asynchronous, and no business of the core) and hands the output back: `inflated(data)` for each
 * piece, in order, then `inflateDone(error)`.
 */
export interface InflateJob {
  /** The payload as received (without the tail §7.2.2 appends at the message's end). */
  payload: Buffer;
  /** The message's last frame: append the tail, and (without context takeover) reset afterwards. */
  fin: boolean;
}

export interface ReceiverOptions {
  /** A server requires masked frames, a client unmasked ones (RFC 6455 §5.1). */
  role: Role;
  /** Largest message, after reassembly and decompression (options.ts has the defaults). */
  maxMessageSize: number;
  /** Largest single frame payload; at most `maxMessageSize`. */
  maxFramePayload: number;
  /** permessage-deflate was negotiated: RSV1 then marks a compressed message (RFC 7692 §6). */
  compressed?: boolean;
  /**
   * Inflated bytes not yet delivered count against this budget, shared with other receivers (a
   * process-wide one, say: src/protocol/inflate-budget.ts); a message that would cross it fails with 1013.
   * Default: none, each message is bounded by `maxMessageSize` alone.
   */
  budget?: InflateBudget | null;
  /** Hand data messages on as they arrive (ReceiverHandler's onMessageStart/Data/End). Default false. */
  streaming?: boolean;
  /**
   * Largest streamed message, after decompression (it bounds no memory: nothing of it is held). Its
   * frames are checked against it, not against `maxFramePayload`. Default: 2^53 - 1.
   */
  maxStreamedMessageSize?: number;
}
