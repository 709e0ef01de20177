/**
 * Test data: a small deterministic PRNG and generators of compressible text, random valid UTF-8
 * and random bytes, for reproducible permessage-deflate tests and fuzz properties.
 */
/** A small deterministic PRNG (xorshift32), for reproducible content. */
export function prng(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

export function randomBuffer(n: number, rng: () => number): Buffer {
  const out = Buffer.allocUnsafe(n);
  let i = 0;
  for (; i + 4 <= n; i += 4) out.writeUInt32LE(rng(), i);
  for (; i < n; i++) out[i] = rng() & 0xff;
  return out;
}

const WORDS = [
  'the',
  'quick',
  'brown',
  'fox',
  'jumps',
  'over',
  'lazy',
  'dog',
  'héllo',
  'wörld',
  '€uro',
  '日本語',
  'κόσμε',
  '😀',
  'deflate',
  'window',
  'frame',
];

/** Cut valid UTF-8 to at most n bytes on a character boundary, then pad with ASCII to exactly n. */
function toExactUtf8(text: Buffer, n: number): Buffer {
  let end = Math.min(n, text.length);
  while (end > 0 && end < text.length && (text[end]! & 0xc0) === 0x80) end--;
  const out = Buffer.alloc(n, 0x61);
  text.copy(out, 0, 0, end);
  return out;
}

/**
 * Compressible content of exactly n bytes, valid UTF-8: words, plus blocks of random letters
 * repeated at distances from ~200 B to ~20 KiB, so every window size matters.
 */
export function compressible(n: number, rng: () => number): Buffer {
  const letters = (size: number): string => {
    let s = '';
    for (let i = 0; i < size; i++) s += String.fromCharCode(97 + (rng() % 26));
    return s;
  };
  const blocks = [200, 700, 3000, 20000].map(letters);
  const parts: string[] = [];
  let bytes = 0;
  while (bytes < n) {
    const pick = rng() % 6;
    const piece = pick < 4 ? blocks[pick]! : WORDS[rng() % WORDS.length]! + ' ';
    parts.push(piece);
    bytes += Buffer.byteLength(piece);
  }
  return toExactUtf8(Buffer.from(parts.join('')), n);
}

/** Random valid UTF-8 of exactly n bytes (1- to 4-byte characters, no surrogates). */
export function randomText(n: number, rng: () => number): Buffer {
  const out = Buffer.alloc(n);
  let at = 0;
  while (at < n) {
    const room = n - at;
    const size = Math.min(room, 1 + (rng() % 4));
    let cp: number;
    if (size === 1) cp = rng() % 0x80;
    else if (size === 2) cp = 0x80 + (rng() % (0x800 - 0x80));
    else if (size === 3) {
      cp = 0x800 + (rng() % (0x10000 - 0x800));
      if (cp >= 0xd800 && cp <= 0xdfff) cp -= 0x800;
    } else cp = 0x10000 + (rng() % (0x110000 - 0x10000));
    at += out.write(String.fromCodePoint(cp), at);
  }
  return out;
}
