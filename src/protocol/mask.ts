/**
 * RFC 6455 §5.3: client-to-server payloads are XORed with a 4-byte masking key,
 * byte i with key[i mod 4]. Masking and unmasking are the same operation.
 *
 * A payload can reach us in many TCP chunks, so both functions take a `phase`: the index into
 * the key (0-3) of the first byte they are given, and return the phase for the next byte.
 *
 * Spans of some size are done a word at a time through a typed-array view, which needs the
 * absolute address aligned to the word: leading bytes are done one by one until it is. Medium
 * spans use 32-bit words (an Int32Array); large ones 64-bit words (a BigUint64Array), which V8
 * compiles to plain 64-bit XORs once the loop is hot: about three times the speed of the 32-bit
 * loop on 64 KiB payloads, though still short of native SIMD (bench/RESULTS.md).
 */

/** Below this many bytes a plain byte loop beats creating a typed-array view. */
const WORD_LOOP_MIN_BYTES = 48;

/**
 * From this many bytes the 64-bit loop wins, its set-up included (on Node 20: slower at 512 bytes,
 * even at 768, 5-10 % faster at 1 KiB, 1.4x at 2 KiB, 1.6x at 4 KiB, 2.4x at 64 KiB).
 */
const WIDE_LOOP_MIN_BYTES = 1024;

/**
 * The key rotated to the current phase, twice over: written as bytes, read back as one 32- or
 * 64-bit word. Laid out in memory like the payload, it needs no byte-order logic, and the 64-bit
 * word no BigInt arithmetic (which Node 20's V8 does not always keep unboxed: building the key
 * with shifts cost ~200 ns per call).
 */
const KEY_SCRATCH = new ArrayBuffer(8);
const KEY_BYTES = new Uint8Array(KEY_SCRATCH);
const KEY_WORD = new Int32Array(KEY_SCRATCH);
const KEY_WIDE = new BigUint64Array(KEY_SCRATCH);

/**
 * XOR `data[start, end)` in place with `key`, where `data[start]` lines up with `key[phase]`.
 * Returns the phase of the byte after `end`.
 */
export function mask(data: Uint8Array, key: Uint8Array, phase = 0, start = 0, end = data.length): number {
  if (end - start < WORD_LOOP_MIN_BYTES) return maskShort(data, key, phase, start, end);
  const nextPhase = (phase + (end - start)) & 3;
  let i = start;
  let p = phase & 3;
  if (end - i >= WORD_LOOP_MIN_BYTES) {
    const wide = end - i >= WIDE_LOOP_MIN_BYTES;
    const alignment = wide ? 7 : 3;
    while (((data.byteOffset + i) & alignment) !== 0) {
      data[i++]! ^= key[p]!;
      p = (p + 1) & 3;
    }
    // A word of payload lines up with the key from phase p on (twice over, in 64 bits).
    KEY_BYTES[0] = KEY_BYTES[4] = key[p]!;
    KEY_BYTES[1] = KEY_BYTES[5] = key[(p + 1) & 3]!;
    KEY_BYTES[2] = KEY_BYTES[6] = key[(p + 2) & 3]!;
    KEY_BYTES[3] = KEY_BYTES[7] = key[(p + 3) & 3]!;
    // Whole words keep the phase where it was.
    if (wide) {
      const words = (end - i) >>> 3;
      const view = new BigUint64Array(data.buffer, data.byteOffset + i, words);
      const k = KEY_WIDE[0]!;
      // Sixteen words per iteration, up to a bound that is a multiple of sixteen: fewer loop
      // branches per byte, and a loop V8 compiles tighter (15 GB/s against 12 for eight words
      // with a `words - 7` bound, on 64 KiB).
      const unrolled = words & ~15;
      for (let w = 0; w < unrolled; w += 16) {
        view[w]! ^= k;
        view[w + 1]! ^= k;
        view[w + 2]! ^= k;
        view[w + 3]! ^= k;
        view[w + 4]! ^= k;
        view[w + 5]! ^= k;
        view[w + 6]! ^= k;
        view[w + 7]! ^= k;
        view[w + 8]! ^= k;
        view[w + 9]! ^= k;
        view[w + 10]! ^= k;
        view[w + 11]! ^= k;
        view[w + 12]! ^= k;
        view[w + 13]! ^= k;
        view[w + 14]! ^= k;
        view[w + 15]! ^= k;
      }
      for (let w = unrolled; w < words; w++) view[w]! ^= k;
      i += words << 3;
    } else {
      const words = (end - i) >>> 2;
      const view = new Int32Array(data.buffer, data.byteOffset + i, words);
      const k = KEY_WORD[0]!;
      // Four words per iteration: fewer bound checks and loop branches per byte.
      const unrolled = words & ~3;
      for (let w = 0; w < unrolled; w += 4) {
        view[w]! ^= k;
        view[w + 1]! ^= k;
        view[w + 2]! ^= k;
        view[w + 3]! ^= k;
      }
      for (let w = unrolled; w < words; w++) view[w]! ^= k;
      i += words << 2;
    }
  }
  for (; i < end; i++) {
    data[i]! ^= key[p]!;
    p = (p + 1) & 3;
  }
  return nextPhase;
}

/**
 * Short spans (the small messages of chat-like traffic): four bytes per iteration with the key's
 * bytes in locals, so no key lookup or phase update per byte (about 3x the plain byte loop on 32 B).
 */
function maskShort(data: Uint8Array, key: Uint8Array, phase: number, start: number, end: number): number {
  const k0 = key[phase & 3]!;
  const k1 = key[(phase + 1) & 3]!;
  const k2 = key[(phase + 2) & 3]!;
  const k3 = key[(phase + 3) & 3]!;
  let i = start;
  for (const stop = end - 3; i < stop; i += 4) {
    data[i]! ^= k0;
    data[i + 1]! ^= k1;
    data[i + 2]! ^= k2;
    data[i + 3]! ^= k3;
  }
  if (i < end) {
    data[i++]! ^= k0;
    if (i < end) {
      data[i++]! ^= k1;
      if (i < end) data[i]! ^= k2;
    }
  }
  return (phase + (end - start)) & 3;
}

/**
 * Copy `source[start, end)` into `target` at `targetOffset`, XORing with `key` on the way
 * (one pass instead of a copy and then a mask). The source is left untouched, so an application's
 * buffer can be sent masked without being modified. Returns the next phase.
 */
export function maskInto(
  source: Uint8Array,
  start: number,
  end: number,
  target: Uint8Array,
  targetOffset: number,
  key: Uint8Array,
  phase = 0,
): number {
  const length = end - start;
  if (length >= WORD_LOOP_MIN_BYTES * 4) {
    // Native memcpy then an in-place word loop beats a byte-by-byte copy loop in JS.
    target.set(source.subarray(start, end), targetOffset);
    return mask(target, key, phase, targetOffset, targetOffset + length);
  }
  let p = phase & 3;
  for (let i = 0; i < length; i++) {
    target[targetOffset + i] = source[start + i]! ^ key[p]!;
    p = (p + 1) & 3;
  }
  return p;
}
