import { CloseCode, MAX_CLOSE_REASON_BYTES, isValidWireCloseCode } from './constants.js';
import { ProtocolError } from './errors.js';
import { isValidUtf8 } from './utf8.js';

/** What a close frame said, as reported to the application (RFC 6455 §7.1.5, §7.1.6). */
export interface ClosePayload {
  /** The status code; 1005 (NoStatusReceived) when the frame had no payload. */
  code: number;
  /** The reason, decoded; empty when absent. */
  reason: string;
}

/**
 * RFC 6455 §5.5.1: parse the payload of a received close frame.
 * - empty: no code; the application sees 1005 (§7.1.5).
 * - otherwise the first two bytes are a code in network byte order, and the rest a UTF-8 reason.
 * Throws a ProtocolError with the close code to fail the connection with; the receiver catches
 * it, so it never reaches an application.
 */
export function parseClosePayload(payload: Uint8Array): ClosePayload {
  if (payload.length === 0) return { code: CloseCode.NoStatusReceived, reason: '' };
  if (payload.length === 1) {
    throw new ProtocolError('CloseFrameTooShort', 'close frame payload of 1 byte: a code needs 2');
  }
  const code = (payload[0]! << 8) | payload[1]!;
  // RFC 6455 §7.4: codes the RFC reserves, leaves unassigned or forbids on the wire.
  if (!isValidWireCloseCode(code)) {
    throw new ProtocolError('InvalidCloseCode', `invalid close code ${code}`);
  }
  const reasonBytes = payload.subarray(2);
  if (!isValidUtf8(reasonBytes)) {
    throw new ProtocolError('InvalidCloseReason', 'close reason is not valid UTF-8');
  }
  return { code, reason: Buffer.from(reasonBytes.buffer, reasonBytes.byteOffset, reasonBytes.length).toString('utf8') };
}

/**
 * RFC 6455 §5.5.1: build the payload of a close frame to send. Code 1005 (or no code) means
 * an empty payload: 1005 itself must never be sent on the wire (§7.4.1).
 * Throws (a programming error, not peer input) for a code that may not be sent or a reason
 * longer than 123 bytes once encoded.
 */
export function buildClosePayload(code?: number, reason = ''): Buffer {
  if (code === undefined || code === CloseCode.NoStatusReceived) {
    if (reason !== '') throw new TypeError('a close reason needs a close code');
    return Buffer.alloc(0);
  }
  if (!Number.isInteger(code) || !isValidWireCloseCode(code)) {
    throw new RangeError(`close code ${code} may not be sent (RFC 6455 §7.4)`);
  }
  const reasonLength = Buffer.byteLength(reason);
  if (reasonLength > MAX_CLOSE_REASON_BYTES) {
    throw new RangeError(
      `close reason is ${reasonLength} bytes; at most ${MAX_CLOSE_REASON_BYTES} fit in a control frame`,
    );
  }
  const payload = Buffer.allocUnsafe(2 + reasonLength);
  payload.writeUInt16BE(code, 0);
  payload.write(reason, 2, 'utf8');
  return payload;
}

/**
 * Cut a string to at most `maxBytes` of UTF-8 without splitting a character (a reason that came
 * from an error message must still fit a close frame, §5.5: 123 bytes after the code).
 */
export function truncateUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text;
  let result = '';
  let bytes = 0;
  for (const char of text) {
    const size = Buffer.byteLength(char);
    if (bytes + size > maxBytes) break;
    result += char;
    bytes += size;
  }
  return result;
}
