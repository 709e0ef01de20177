import { randomFillSync } from 'node:crypto';
import { isControlOpcode, MAX_CONTROL_PAYLOAD, Opcode } from './constants.js';
import { frameHeaderSize, writeFrameHeader } from './frame.js';
import { maskInto } from './mask.js';

/**
 * The frame writer: messages in, wire bytes out, no socket. It appends buffers to a list the
 * connection's write loop hands to the socket in one go.
 */

/**
 * RFC 6455 §5.3: "The masking key needs to be unpredictable; thus, the masking key MUST be derived
 * from a strong source of entropy", fresh for every frame. Drawing 4 random bytes per frame costs a
 * call into OpenSSL each time, so keys are taken from a pool refilled 1024 keys at a time.
 */
export class MaskKeySource {
  private pool = Buffer.allocUnsafe(0);
  private offset = 0;
  private readonly poolSize: number;

  constructor(poolSize = 4096) {
    // Whole keys only: a pool that ended mid-key would hand out a short key.
    this.poolSize = Math.max(4, Math.ceil(poolSize / 4) * 4);
  }

  /** Four fresh random bytes. The view stays valid: each pool is used once, then replaced. */
  next(): Uint8Array {
    if (this.offset + 4 > this.pool.length) {
      this.pool = Buffer.allocUnsafeSlow(this.poolSize);
      randomFillSync(this.pool);
      this.offset = 0;
    }
    const key = this.pool.subarray(this.offset, this.offset + 4);
    this.offset += 4;
    return key;
  }
}

/**
 * Payloads up to this size are copied behind their header into one buffer, so a burst of small
 * messages becomes a handful of buffers; larger ones are written as they are, after a separate
 * header, never copied (unless they must be masked).
 */
export const COPY_PAYLOAD_MAX = 16 * 1024;

/**
 * Append one frame to `out`. `maskKeys` set means a client frame: masked with a fresh key, and so
 * copied (an application's buffer is never modified). Returns the number of bytes appended.
 */
export function appendFrame(
  out: Buffer[],
  opcode: number,
  payload: Uint8Array,
  fin: boolean,
  rsv1: boolean,
  maskKeys: MaskKeySource | null,
): number {
  const length = payload.length;
  const maskKey = maskKeys === null ? null : maskKeys.next();
  const headerSize = frameHeaderSize(length, maskKey !== null);
  if (maskKey !== null || length <= COPY_PAYLOAD_MAX) {
    const frame = Buffer.allocUnsafe(headerSize + length);
    writeFrameHeader(frame, 0, opcode, length, fin, rsv1, maskKey);
    if (maskKey !== null) maskInto(payload, 0, length, frame, headerSize, maskKey, 0);
    else frame.set(payload, headerSize);
    out.push(frame);
  } else {
    const header = Buffer.allocUnsafe(headerSize);
    writeFrameHeader(header, 0, opcode, length, fin, rsv1, null);
    out.push(header, toBuffer(payload));
  }
  return headerSize + length;
}

/**
 * Append a whole message, split into frames of at most `fragmentSize` payload bytes when that is
 * set (RFC 6455 §5.4: the first frame carries the opcode and RSV1, the rest are continuations,
 * the last has FIN). Returns the number of bytes appended.
 */
export function appendMessage(
  out: Buffer[],
  opcode: number,
  payload: Uint8Array,
  rsv1: boolean,
  maskKeys: MaskKeySource | null,
  fragmentSize = 0,
): number {
  if (fragmentSize <= 0 || payload.length <= fragmentSize) {
    return appendFrame(out, opcode, payload, true, rsv1, maskKeys);
  }
  let written = 0;
  for (let start = 0; start < payload.length; start += fragmentSize) {
    const end = Math.min(start + fragmentSize, payload.length);
    const first = start === 0;
    written += appendFrame(
      out,
      first ? opcode : Opcode.Continuation,
      payload.subarray(start, end),
      end === payload.length,
      first && rsv1,
      maskKeys,
    );
  }
  return written;
}

/** A control frame (RFC 6455 §5.5): never fragmented, payload at most 125 bytes. */
export function appendControlFrame(out: Buffer[], opcode: number, payload: Uint8Array, maskKeys: MaskKeySource | null): number {
  if (!isControlOpcode(opcode)) throw new TypeError(`opcode ${opcode} is not a control opcode`);
  if (payload.length > MAX_CONTROL_PAYLOAD) {
    throw new RangeError(`control frame payload is ${payload.length} bytes; at most ${MAX_CONTROL_PAYLOAD} (RFC 6455 §5.5)`);
  }
  return appendFrame(out, opcode, payload, true, false, maskKeys);
}

export function toBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}
