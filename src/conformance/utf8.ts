import { isAscii } from 'node:buffer';

/**
 * The engine's own UTF-8 check (RFC 6455 §8.1: a text message is valid UTF-8, RFC 3629), written
 * from the syntax in RFC 3629 §4 and carried across chunks, so a message can be checked as its
 * fragments arrive and an invalid one is caught at its first bad byte:
 *
 *   UTF8-2 = %xC2-DF tail
 *   UTF8-3 = %xE0 %xA0-BF tail / %xE1-EC 2tail / %xED %x80-9F tail / %xEE-EF 2tail
 *   UTF8-4 = %xF0 %x90-BF 2tail / %xF1-F3 3tail / %xF4 %x80-8F 2tail
 *   tail   = %x80-BF
 *
 * (The narrowed second bytes exclude overlong forms, the UTF-16 surrogates D800-DFFF and code
 * points above 10FFFF.)
 */
export class Utf8Validator {
  /** Continuation bytes still needed by the sequence in progress. */
  private need = 0;
  /** The range the next continuation byte must fall in. */
  private lo = 0x80;
  private hi = 0xbf;
  private failed = false;
  /** Bytes accepted so far. */
  private offset = 0;

  /** Feed the next bytes. Returns the index (from the start of everything fed) of the first invalid byte, or -1. */
  feed(bytes: Uint8Array): number {
    if (this.failed) return this.offset;
    // Most text is ASCII: a native scan settles a whole chunk of it at once.
    if (this.need === 0 && isAscii(bytes)) {
      this.offset += bytes.length;
      return -1;
    }
    let need = this.need;
    let lo = this.lo;
    let hi = this.hi;
    const n = bytes.length;
    for (let i = 0; i < n; i++) {
      const b = bytes[i]!;
      if (need === 0) {
        if (b < 0x80) continue;
        if (b >= 0xc2 && b <= 0xdf) {
          need = 1;
          lo = 0x80;
          hi = 0xbf;
        } else if (b === 0xe0) {
          need = 2;
          lo = 0xa0;
          hi = 0xbf;
        } else if ((b >= 0xe1 && b <= 0xec) || b === 0xee || b === 0xef) {
          need = 2;
          lo = 0x80;
          hi = 0xbf;
        } else if (b === 0xed) {
          need = 2;
          lo = 0x80;
          hi = 0x9f;
        } else if (b === 0xf0) {
          need = 3;
          lo = 0x90;
          hi = 0xbf;
        } else if (b >= 0xf1 && b <= 0xf3) {
          need = 3;
          lo = 0x80;
          hi = 0xbf;
        } else if (b === 0xf4) {
          need = 3;
          lo = 0x80;
          hi = 0x8f;
        } else return this.fail(i);
      } else {
        if (b < lo || b > hi) return this.fail(i);
        need--;
        lo = 0x80;
        hi = 0xbf;
      }
    }
    this.need = need;
    this.lo = lo;
    this.hi = hi;
    this.offset += n;
    return -1;
  }

  /** True when everything fed is valid and ends on a code point boundary. */
  get complete(): boolean {
    return !this.failed && this.need === 0;
  }

  private fail(index: number): number {
    this.failed = true;
    this.offset += index;
    return this.offset;
  }
}

/** Whether `bytes` is, as a whole, valid UTF-8. */
export function isValidUtf8(bytes: Uint8Array): boolean {
  const validator = new Utf8Validator();
  return validator.feed(bytes) === -1 && validator.complete;
}
