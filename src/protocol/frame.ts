import { maskInto } from './mask.js';

/**
 * RFC 6455 §5.2, the base framing protocol:
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-------+-+-------------+-------------------------------+
 *   |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
 *   |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
 *   |N|V|V|V|       |S|             |   (if payload len==126/127)   |
 *   | |1|2|3|       |K|             |                               |
 *   +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
 *   |     Extended payload length continued, if payload len == 127  |
 *   + - - - - - - - - - - - - - - - +-------------------------------+
 *   |                               |Masking-key, if MASK set to 1  |
 *   +-------------------------------+-------------------------------+
 *   | Masking-key (continued)       |          Payload Data         |
 *   +-------------------------------- - - - - - - - - - - - - - - - +
 */

/** The fixed first two bytes of a header, decoded. */
export interface FrameHeaderStart {
  fin: boolean;
  rsv1: boolean;
  rsv2: boolean;
  rsv3: boolean;
  opcode: number;
  masked: boolean;
  /** The 7-bit length field: the length itself (0-125), or 126 / 127 for a 16 / 64-bit extension. */
  lengthCode: number;
}

export function decodeHeaderStart(byte0: number, byte1: number, into: FrameHeaderStart): void {
  into.fin = (byte0 & 0x80) !== 0;
  into.rsv1 = (byte0 & 0x40) !== 0;
  into.rsv2 = (byte0 & 0x20) !== 0;
  into.rsv3 = (byte0 & 0x10) !== 0;
  into.opcode = byte0 & 0x0f;
  into.masked = (byte1 & 0x80) !== 0;
  into.lengthCode = byte1 & 0x7f;
}

/** Bytes of extended payload length that follow the first two bytes (§5.2: 0, 2 or 8). */
export function extendedLengthSize(lengthCode: number): number {
  return lengthCode < 126 ? 0 : lengthCode === 126 ? 2 : 8;
}

/**
 * Read a 16- or 64-bit extended payload length in network byte order. Returns -1 when the most
 * significant bit of a 64-bit length is set, which §5.2 forbids. Lengths above 2^53 lose
 * precision, which is harmless: every size limit is far below that.
 * Non-minimal encodings (say, 5 in 16 bits) are accepted: §5.2 says the minimal number of bytes
 * MUST be used to encode the length, but does not ask receivers to police it, and being strict
 * here would fail peers over something that has no effect on meaning.
 */
export function readExtendedLength(bytes: Uint8Array, offset: number, size: number): number {
  if (size === 2) return (bytes[offset]! << 8) | bytes[offset + 1]!;
  const high =
    ((bytes[offset]! << 24) | (bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!) >>> 0;
  if (high >= 0x80000000) return -1;
  const low =
    ((bytes[offset + 4]! << 24) | (bytes[offset + 5]! << 16) | (bytes[offset + 6]! << 8) | bytes[offset + 7]!) >>> 0;
  return high * 0x100000000 + low;
}

/** The size of a header carrying `payloadLength` bytes, with the minimal length encoding. */
export function frameHeaderSize(payloadLength: number, masked: boolean): number {
  const base = payloadLength < 126 ? 2 : payloadLength <= 0xffff ? 4 : 10;
  return masked ? base + 4 : base;
}

/**
 * Write a frame header into `target` at `offset`, using the minimal length encoding (§5.2:
 * "the minimal number of bytes MUST be used"). `maskKey` set means the MASK bit and the key
 * are written. Returns the offset just past the header.
 */
export function writeFrameHeader(
  target: Uint8Array,
  offset: number,
  opcode: number,
  payloadLength: number,
  fin: boolean,
  rsv1: boolean,
  maskKey: Uint8Array | null,
): number {
  target[offset++] = (fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode;
  const maskBit = maskKey === null ? 0 : 0x80;
  if (payloadLength < 126) {
    target[offset++] = maskBit | payloadLength;
  } else if (payloadLength <= 0xffff) {
    target[offset++] = maskBit | 126;
    target[offset++] = payloadLength >>> 8;
    target[offset++] = payloadLength & 0xff;
  } else {
    target[offset++] = maskBit | 127;
    const high = Math.floor(payloadLength / 0x100000000);
    const low = payloadLength >>> 0;
    target[offset++] = high >>> 24;
    target[offset++] = (high >>> 16) & 0xff;
    target[offset++] = (high >>> 8) & 0xff;
    target[offset++] = high & 0xff;
    target[offset++] = low >>> 24;
    target[offset++] = (low >>> 16) & 0xff;
    target[offset++] = (low >>> 8) & 0xff;
    target[offset++] = low & 0xff;
  }
  if (maskKey !== null) {
    target[offset++] = maskKey[0]!;
    target[offset++] = maskKey[1]!;
    target[offset++] = maskKey[2]!;
    target[offset++] = maskKey[3]!;
  }
  return offset;
}

/** A frame to encode. */
export interface FrameToWrite {
  opcode: number;
  payload: Uint8Array;
  /** Default true: the last (or only) frame of a message. */
  fin?: boolean;
  /** RSV1: set by permessage-deflate on the first frame of a compressed message (RFC 7692 §6). */
  rsv1?: boolean;
  /** When set, the payload is masked with it (a client's frames, §5.3). The payload is not modified. */
  maskKey?: Uint8Array | null;
}

/**
 * Encode a whole frame, header and payload, into one new buffer. The payload is copied (and
 * masked on the way when a key is given). Right for control frames and small messages; the
 * connection's writer avoids the copy for large unmasked payloads by writing them separately.
 */
export function encodeFrame(frame: FrameToWrite): Buffer {
  const maskKey = frame.maskKey ?? null;
  const out = Buffer.allocUnsafe(frameHeaderSize(frame.payload.length, maskKey !== null) + frame.payload.length);
  writeFrame(out, 0, frame.opcode, frame.payload, frame.fin ?? true, frame.rsv1 ?? false, maskKey);
  return out;
}

/**
 * Write a whole frame, header then payload (masked on the way when a key is given, leaving the
 * payload untouched), into `target` at `offset`. Returns the offset just past it.
 */
export function writeFrame(
  target: Uint8Array,
  offset: number,
  opcode: number,
  payload: Uint8Array,
  fin: boolean,
  rsv1: boolean,
  maskKey: Uint8Array | null,
): number {
  const at = writeFrameHeader(target, offset, opcode, payload.length, fin, rsv1, maskKey);
  if (maskKey === null) {
    // A byte loop beats the native copy's call overhead for the smallest payloads.
    if (payload.length < 32) for (let i = 0; i < payload.length; i++) target[at + i] = payload[i]!;
    else target.set(payload, at);
  } else {
    maskInto(payload, 0, payload.length, target, at, maskKey, 0);
  }
  return at + payload.length;
}
