/**
 * The mutator: libFuzzer's repertoire of byte-level mutations (erase, insert, change a bit or a byte,
 * shuffle, copy a part, change an integer written in ASCII or in binary, cross over with another
 * input, insert a dictionary word), stacked a few at a time. Dictionary words come from the target
 * (the tokens of its grammar) and from the comparisons the instrumented code made and failed.
 */

/** xoshiro128**: 32-bit words, a period of 2^128 - 1, seeded through splitmix32. */
export class Random {
  private readonly s = new Uint32Array(4);

  constructor(seed: number) {
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    if (this.s.every((word) => word === 0)) this.s[0] = 1;
  }

  /** 32 random bits, as an unsigned integer. */
  next(): number {
    const s = this.s;
    const rotl = (x: number, k: number): number => (x << k) | (x >>> (32 - k));
    const result = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
    const t = s[1]! << 9;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** An integer in [0, n). */
  below(n: number): number {
    return n <= 1 ? 0 : this.next() % n;
  }

  chance(oneIn: number): boolean {
    return this.below(oneIn) === 0;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)]!;
  }
}

export interface MutationContext {
  random: Random;
  maxLength: number;
  /** The target's dictionary, as bytes. */
  dictionary: readonly Buffer[];
  /** Recently compared strings (changes as the target runs). */
  compares: readonly string[];
  /** Another input of the corpus, for cross-over. */
  other: () => Buffer;
}

type Mutator = (data: Buffer, context: MutationContext) => Buffer | null;

const INTERESTING_8 = [0, 1, 0x7e, 0x7f, 0x80, 0x81, 0xfe, 0xff, 0x20, 0x0d, 0x0a, 0x09, 0x3a, 0x2c, 0x3b, 0x3d, 0x22];
const INTERESTING_16 = [0, 125, 126, 127, 128, 255, 256, 1000, 1001, 1005, 1006, 1015, 3000, 4999, 0x7fff, 0xffff];

function splice(data: Buffer, at: number, remove: number, insert: Buffer): Buffer {
  return Buffer.concat([data.subarray(0, at), insert, data.subarray(at + remove)]);
}

function word(context: MutationContext): Buffer | null {
  const { random, dictionary, compares } = context;
  if (compares.length > 0 && (dictionary.length === 0 || random.chance(2))) {
    return Buffer.from(random.pick(compares), 'latin1');
  }
  return dictionary.length === 0 ? null : random.pick(dictionary);
}

const eraseBytes: Mutator = (data, { random }) => {
  if (data.length <= 1) return null;
  const count = 1 + random.below(Math.min(data.length - 1, random.chance(4) ? data.length : 16));
  const at = random.below(data.length - count + 1);
  return splice(data, at, count, Buffer.alloc(0));
};

const insertBytes: Mutator = (data, { random, maxLength }) => {
  if (data.length >= maxLength) return null;
  const count = random.chance(3) ? 1 + random.below(Math.min(128, maxLength - data.length)) : 1;
  const fill = random.chance(2) ? random.pick(INTERESTING_8) : random.below(256);
  const bytes = random.chance(2)
    ? Buffer.alloc(count, fill)
    : Buffer.from(Array.from({ length: count }, () => random.below(256)));
  return splice(data, random.below(data.length + 1), 0, bytes);
};

const changeByte: Mutator = (data, { random }) => {
  if (data.length === 0) return null;
  const out = Buffer.from(data);
  out[random.below(out.length)] = random.chance(2) ? random.pick(INTERESTING_8) : random.below(256);
  return out;
};

const changeBit: Mutator = (data, { random }) => {
  if (data.length === 0) return null;
  const out = Buffer.from(data);
  out[random.below(out.length)]! ^= 1 << random.below(8);
  return out;
};

const shuffleBytes: Mutator = (data, { random }) => {
  if (data.length < 2) return null;
  const out = Buffer.from(data);
  const count = 2 + random.below(Math.min(8, out.length - 1));
  const at = random.below(out.length - count + 1);
  for (let i = count - 1; i > 0; i--) {
    const j = random.below(i + 1);
    const t = out[at + i]!;
    out[at + i] = out[at + j]!;
    out[at + j] = t;
  }
  return out;
};

const copyPart: Mutator = (data, { random, maxLength }) => {
  if (data.length === 0) return null;
  const count = 1 + random.below(Math.min(data.length, 64));
  const from = random.below(data.length - count + 1);
  const part = Buffer.from(data.subarray(from, from + count));
  if (random.chance(2) || data.length + count > maxLength) {
    const out = Buffer.from(data);
    part.copy(out, random.below(data.length - count + 1));
    return out;
  }
  return splice(data, random.below(data.length + 1), 0, part);
};

/** A decimal number in the input, changed: lengths, window bits, status codes, close codes. */
const changeAsciiInteger: Mutator = (data, { random }) => {
  const start = random.below(data.length);
  let at = -1;
  for (let i = 0; i < data.length; i++) {
    const j = (start + i) % data.length;
    if (data[j]! >= 0x30 && data[j]! <= 0x39) {
      at = j;
      break;
    }
  }
  if (at < 0) return null;
  let begin = at;
  let end = at;
  while (begin > 0 && data[begin - 1]! >= 0x30 && data[begin - 1]! <= 0x39) begin--;
  while (end < data.length && data[end]! >= 0x30 && data[end]! <= 0x39) end++;
  const value = Number(data.subarray(begin, end).toString('latin1'));
  const choices = [value + 1, value - 1, value * 2, Math.floor(value / 2), random.below(70000), 0, 8, 15, 16, 13];
  const next = Math.max(0, random.pick(choices));
  return splice(data, begin, end - begin, Buffer.from(String(next), 'latin1'));
};

/** A big-endian 8- or 16-bit field set to an interesting value: frame lengths, close codes. */
const changeBinaryInteger: Mutator = (data, { random }) => {
  if (data.length < 2) return null;
  const out = Buffer.from(data);
  const at = random.below(out.length - 1);
  const value = random.chance(2) ? random.pick(INTERESTING_16) : random.pick(INTERESTING_16) + random.below(5) - 2;
  out.writeUInt16BE(value & 0xffff, at);
  return out;
};

const crossOver: Mutator = (data, context) => {
  const other = context.other();
  if (other.length === 0) return null;
  const { random } = context;
  const keep = random.below(data.length + 1);
  const from = random.below(other.length);
  const take = 1 + random.below(other.length - from);
  const out = Buffer.concat([data.subarray(0, keep), other.subarray(from, from + take)]);
  return out.length > context.maxLength ? out.subarray(0, context.maxLength) : out;
};

const insertWord: Mutator = (data, context) => {
  const bytes = word(context);
  if (bytes === null || data.length + bytes.length > context.maxLength) return null;
  return splice(data, context.random.below(data.length + 1), 0, bytes);
};

const overwriteWord: Mutator = (data, context) => {
  const bytes = word(context);
  if (bytes === null || bytes.length > data.length) return null;
  const out = Buffer.from(data);
  bytes.copy(out, context.random.below(data.length - bytes.length + 1));
  return out;
};

/** Replace a run of printable text (a token between separators) with a dictionary word. */
const replaceToken: Mutator = (data, context) => {
  const bytes = word(context);
  if (bytes === null || data.length === 0) return null;
  const isText = (b: number): boolean =>
    (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a);
  let begin = context.random.below(data.length);
  let end = begin;
  while (begin > 0 && isText(data[begin - 1]!)) begin--;
  while (end < data.length && isText(data[end]!)) end++;
  const out = splice(data, begin, end - begin, bytes);
  return out.length > context.maxLength ? null : out;
};

const MUTATORS: readonly Mutator[] = [
  eraseBytes,
  insertBytes,
  changeByte,
  changeBit,
  shuffleBytes,
  copyPart,
  changeAsciiInteger,
  changeBinaryInteger,
  crossOver,
  insertWord,
  overwriteWord,
  replaceToken,
];

/** One to five stacked mutations of `data` (libFuzzer's default depth), within `maxLength`. */
export function mutate(data: Buffer, context: MutationContext): Buffer {
  let out = data;
  const depth = 1 + context.random.below(5);
  for (let i = 0, tries = 0; i < depth && tries < 20; tries++) {
    const next = context.random.pick(MUTATORS)(out, context);
    if (next === null) continue;
    out = next.length > context.maxLength ? next.subarray(0, context.maxLength) : next;
    i++;
  }
  return out === data ? Buffer.from(data) : out;
}
