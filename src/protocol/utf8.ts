import { isUtf8 } from 'node:buffer';

/**
 * Incremental, fail-fast UTF-8 validation (RFC 6455 §8.1, RFC 3629 §4).
 *
 * A text message may arrive in many frames and each frame in many TCP chunks, and a code point
 * may be split anywhere. The validator keeps the state of a partial code point between calls and
 * reports the first byte that proves the input invalid as soon as it is seen, so a connection
 * can be failed in the middle of a frame (what Autobahn case group 6.4 checks).
 *
 * Well-formed sequences (The Unicode Standard, Table 3-7):
 *
 *   00..7F
 *   C2..DF  80..BF
 *   E0      A0..BF  80..BF      (E0 80..9F would be an overlong form)
 *   E1..EC  80..BF  80..BF
 *   ED      80..9F  80..BF      (ED A0..BF would encode a surrogate, U+D800..U+DFFF)
 *   EE..EF  80..BF  80..BF
 *   F0      90..BF  80..BF 80..BF   (F0 80..8F would be overlong)
 *   F1..F3  80..BF  80..BF 80..BF
 *   F4      80..8F  80..BF 80..BF   (F4 90.. would be above U+10FFFF)
 *
 * C0, C1 and F5..FF never appear. The state is "how many continuation bytes are still needed,
 * and the allowed range of the next one", the same shape as the WHATWG Encoding Standard's
 * decoder, so the failing position agrees with `TextDecoder` in fatal mode.
 */
export class Utf8Validator {
  /** Continuation bytes still needed to finish the current code point (0 to 3). */
  private needed = 0;
  /** Allowed range of the next continuation byte; narrower than 80..BF only right after a lead byte. */
  private lower = 0x80;
  private upper = 0xbf;
  private failed = false;

  /**
   * Validate `data[start, end)` as the continuation of everything written so far.
   * Returns -1 when no invalid byte has been seen yet, otherwise the index (in `data`) of the
   * first byte that makes the input invalid. Once failed, it stays failed.
   */
  write(data: Uint8Array, start = 0, end = data.length): number {
    if (this.failed) return start;
    let i = start;
    // Finish a code point left incomplete by the previous call.
    while (this.needed !== 0 && i < end) {
      const byte = data[i]!;
      if (byte < this.lower || byte > this.upper) return this.fail(i);
      this.lower = 0x80;
      this.upper = 0xbf;
      this.needed--;
      i++;
    }
    if (end - i >= NATIVE_MIN_BYTES) {
      // Fast path: Node's native validator over everything up to a possibly incomplete last
      // code point. It only says yes or no, so on "no" the byte loop below finds the position.
      const tail = incompleteTailStart(data, i, end);
      if (tail > i && isUtf8(data.subarray(i, tail))) i = tail;
    }
    return this.scan(data, i, end);
  }

  /** True when the input so far ends on a code point boundary: a complete text message must. */
  get complete(): boolean {
    return this.needed === 0 && !this.failed;
  }

  reset(): void {
    this.needed = 0;
    this.lower = 0x80;
    this.upper = 0xbf;
    this.failed = false;
  }

  private scan(data: Uint8Array, start: number, end: number): number {
    let needed = this.needed;
    let lower = this.lower;
    let upper = this.upper;
    let i = start;
    // ASCII, four bytes per test, as long as no code point is open (most text is mostly ASCII).
    if (needed === 0) i = asciiPrefixEnd(data, i, end);
    for (; i < end; i++) {
      const byte = data[i]!;
      if (needed === 0) {
        if (byte < 0x80) continue;
        if (byte >= 0xc2 && byte <= 0xdf) {
          needed = 1;
        } else if (byte >= 0xe0 && byte <= 0xef) {
          if (byte === 0xe0) lower = 0xa0;
          else if (byte === 0xed) upper = 0x9f;
          needed = 2;
        } else if (byte >= 0xf0 && byte <= 0xf4) {
          if (byte === 0xf0) lower = 0x90;
          else if (byte === 0xf4) upper = 0x8f;
          needed = 3;
        } else {
          return this.fail(i);
        }
      } else {
        if (byte < lower || byte > upper) return this.fail(i);
        lower = 0x80;
        upper = 0xbf;
        needed--;
      }
    }
    this.needed = needed;
    this.lower = lower;
    this.upper = upper;
    return -1;
  }

  private fail(index: number): number {
    this.failed = true;
    return index;
  }
}

/**
 * Where the run of ASCII bytes from `start` ends, to a multiple of four bytes: the byte loop
 * takes it from there. ASCII is valid UTF-8 on its own, whatever came before or comes after.
 */
function asciiPrefixEnd(data: Uint8Array, start: number, end: number): number {
  let i = start;
  for (const stop = end - 3; i < stop; i += 4) {
    if (((data[i]! | data[i + 1]! | data[i + 2]! | data[i + 3]!) & 0x80) !== 0) break;
  }
  return i;
}

/**
 * A complete text payload about to be sent (RFC 6455 §5.6): valid UTF-8? Small mostly-ASCII
 * payloads are settled in JS, cheaper than the call into native code that `isUtf8` is.
 */
export function isUtf8Payload(data: Uint8Array): boolean {
  if (data.length < NATIVE_MIN_BYTES) {
    const ascii = asciiPrefixEnd(data, 0, data.length);
    let i = ascii;
    while (i < data.length && data[i]! < 0x80) i++;
    if (i === data.length) return true;
  }
  return isUtf8(data);
}

/** Below this size the JS loop is cheaper than a call into native code plus a subarray. */
const NATIVE_MIN_BYTES = 256;

/**
 * Where a code point that may be cut off at `end` starts: the index of a lead byte among the last
 * three bytes whose sequence runs past `end`, or `end` when the data ends on a boundary (as far
 * as a quick look can tell; anything odd is left to the exact byte loop).
 */
function incompleteTailStart(data: Uint8Array, start: number, end: number): number {
  const stop = Math.max(start, end - 3);
  let j = end - 1;
  while (j >= stop && (data[j]! & 0xc0) === 0x80) j--;
  if (j < start) return end;
  const lead = data[j]!;
  const length = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  return j + length > end ? j : end;
}

/** Validate a complete byte string (a close reason, say) in one go. */
export function isValidUtf8(data: Uint8Array): boolean {
  const validator = new Utf8Validator();
  return validator.write(data) === -1 && validator.complete;
}

/**
 * Valid UTF-8 handed on in pieces (a text message streamed to the application), cut on code point
 * boundaries so that every piece decodes on its own: an unfinished sequence at the end of a piece
 * (at most 3 bytes) is held back and goes first in the next.
 */
export class Utf8Cutter {
  private tail: Buffer | null = null;

  /** The whole code points of what came so far and `piece` (validated already), not yet handed on. */
  cut(piece: Buffer): Buffer {
    let data = piece;
    const tail = this.tail;
    if (tail !== null) {
      this.tail = null;
      data = Buffer.concat([tail, piece], tail.length + piece.length);
    }
    const end = lastBoundary(data);
    if (end === data.length) return data;
    this.tail = Buffer.from(data.subarray(end));
    return data.subarray(0, end);
  }

  reset(): void {
    this.tail = null;
  }
}

/**
 * Where the last whole code point ends in `data`, UTF-8 valid so far and starting on a code point
 * boundary: `data.length`, or the start of an unfinished sequence (at most 3 bytes) at its end.
 */
function lastBoundary(data: Uint8Array): number {
  const end = data.length;
  let j = end - 1;
  const stop = Math.max(0, end - 3);
  while (j >= stop && (data[j]! & 0xc0) === 0x80) j--;
  if (j < 0) return end;
  const lead = data[j]!;
  const length = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  return j + length > end ? j : end;
}
