/**
 * RFC 6455 §5.3: client-to-server payloads are XORed with a 4-byte masking key,
 * byte i with key[i mod 4]. Masking and unmasking are the same operation.
 *
 * A payload can reach us in many TCP chunks, so both functions take a `phase`: the index into
 * the key (0-3) of the first byte they are given, and return the phase for the next byte.
 *
 * Large spans are done a 32-bit word at a time through an Int32Array view, which needs the
 * absolute address to be 4-byte aligned: leading bytes are done one by one until it is.
 */

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Below this many bytes a plain byte loop beats creating a typed-array view. */
const WORD_LOOP_MIN_BYTES = 48;

/** The key rotated to start at `phase`, as a 32-bit word laid out like four bytes in memory. */
function keyWord(key: Uint8Array, phase: number): number {
  const b0 = key[phase & 3]!;
  const b1 = key[(phase + 1) & 3]!;
  const b2 = key[(phase + 2) & 3]!;
  const b3 = key[(phase + 3) & 3]!;
  return LITTLE_ENDIAN
    ? b0 | (b1 << 8) | (b2 << 16) | (b3 << 24)
    : (b0 << 24) | (b1 << 16) | (b2 << 8) | b3;
}

/**
 * XOR `data[start, end)` in place with `key`, where `data[start]` lines up with `key[phase]`.
 * Returns the phase of the byte after `end`.
 */
export function mask(
  data: Uint8Array,
  key: Uint8Array,
  phase = 0,
  start = 0,
  end = data.length,
): number {
  const nextPhase = (phase + (end - start)) & 3;
  let i = start;
  let p = phase & 3;
  if (end - i >= WORD_LOOP_MIN_BYTES) {
    while (((data.byteOffset + i) & 3) !== 0) {
      data[i++]! ^= key[p]!;
      p = (p + 1) & 3;
    }
    const words = (end - i) >>> 2;
    const view = new Int32Array(data.buffer, data.byteOffset + i, words);
    const k = keyWord(key, p);
    let w = 0;
    // Four words per iteration: fewer bound checks and loop branches per byte.
    for (const last = words - 3; w < last; w += 4) {
      view[w]! ^= k;
      view[w + 1]! ^= k;
      view[w + 2]! ^= k;
      view[w + 3]! ^= k;
    }
    for (; w < words; w++) view[w]! ^= k;
    // Whole words keep the phase where it was.
    i += words << 2;
  }
  for (; i < end; i++) {
    data[i]! ^= key[p]!;
    p = (p + 1) & 3;
  }
  return nextPhase;
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
