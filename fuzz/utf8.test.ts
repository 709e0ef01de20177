/**
 * Property (c): Utf8Validator agrees with `new TextDecoder('utf-8', { fatal: true })` on arbitrary
 * byte strings cut into arbitrary chunks, including the index at which the input becomes invalid;
 * and so do isValidUtf8 and isUtf8Payload (what a text message to send is checked with) on whole strings.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Utf8Validator, isUtf8Payload, isValidUtf8 } from '../src/protocol/utf8.js';
import { runs } from './streams.js';

/** A code point encoded as UTF-8, of any sequence length (surrogates excluded). */
const validCodePoint: fc.Arbitrary<number[]> = fc
  .oneof(
    fc.integer({ min: 0, max: 0x7f }),
    fc.integer({ min: 0x80, max: 0x7ff }),
    fc.integer({ min: 0x800, max: 0xffff }).filter((c) => c < 0xd800 || c > 0xdfff),
    fc.integer({ min: 0x10000, max: 0x10ffff }),
    fc.constantFrom(0x80, 0x7ff, 0x800, 0xd7ff, 0xe000, 0xfffd, 0xffff, 0x10000, 0x10ffff),
  )
  .map((c) => [...Buffer.from(String.fromCodePoint(c), 'utf8')]);

const byteIn = (min: number, max: number) => fc.integer({ min, max });

/** The pieces inputs are made of: mostly valid code points, and every kind of trouble. */
const token: fc.Arbitrary<number[]> = fc.oneof(
  { weight: 12, arbitrary: validCodePoint },
  // Runs of ASCII (the validators check those four bytes at a time): trouble may follow at any offset.
  { weight: 3, arbitrary: fc.array(byteIn(0x00, 0x7f), { minLength: 1, maxLength: 13 }) },
  { weight: 3, arbitrary: byteIn(0x80, 0xff).map((b) => [b]) },
  { weight: 1, arbitrary: byteIn(0x00, 0xff).map((b) => [b]) },
  // A valid multi-byte sequence cut short.
  {
    weight: 2,
    arbitrary: validCodePoint
      .filter((s) => s.length > 1)
      .chain((s) => fc.integer({ min: 1, max: s.length - 1 }).map((n) => s.slice(0, n))),
  },
  // Second bytes just outside the narrowed ranges: overlong, surrogate, above U+10FFFF.
  { weight: 1, arbitrary: fc.tuple(fc.constant(0xe0), byteIn(0x80, 0x9f), byteIn(0x80, 0xbf)).map((t) => [...t]) },
  { weight: 1, arbitrary: fc.tuple(fc.constant(0xed), byteIn(0xa0, 0xbf), byteIn(0x80, 0xbf)).map((t) => [...t]) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constant(0xf0), byteIn(0x80, 0x8f), byteIn(0x80, 0xbf), byteIn(0x80, 0xbf))
      .map((t) => [...t]),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constant(0xf4), byteIn(0x90, 0xbf), byteIn(0x80, 0xbf), byteIn(0x80, 0xbf))
      .map((t) => [...t]),
  },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(0xc0, 0xc1), byteIn(0x80, 0xbf)).map((t) => [...t]) },
  { weight: 1, arbitrary: byteIn(0xf5, 0xff).map((b) => [b, 0x80, 0x80]) },
);

/** Runs of valid text long enough to reach the validator's native path (256 bytes and more). */
const filler: fc.Arbitrary<number[]> = fc
  .tuple(fc.array(validCodePoint, { minLength: 1, maxLength: 6 }), fc.integer({ min: 0, max: 700 }))
  .map(([cps, target]) => {
    const unit = cps.flat();
    const out: number[] = [];
    while (out.length < target) out.push(...unit);
    return out;
  });

const input: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 3, arbitrary: fc.array(token, { maxLength: 40 }).map((ts) => Uint8Array.from(ts.flat())) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(filler, fc.array(token, { maxLength: 12 }), filler, fc.array(token, { maxLength: 4 }))
      .map(([a, ts, b, tail]) => Uint8Array.from([...a, ...ts.flat(), ...b, ...tail.flat()])),
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }) },
);

/** How the input is handed to write(): fresh subarrays, or ranges of the whole array. */
const writeMode = fc.constantFrom<'subarray' | 'range'>('subarray', 'range');

/** Cut points; a big or empty list gives a single chunk, which exercises the native fast path. */
const cuts = fc.oneof(
  fc.constant<number[]>([]),
  fc.array(fc.nat(), { maxLength: 6 }),
  fc.array(fc.nat(), { maxLength: 60 }),
);

function throwsOnPrefix(bytes: Uint8Array, k: number): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, k), { stream: true });
    return false;
  } catch {
    return true;
  }
}

/**
 * The reference: the smallest k such that decoding bytes[0..k] with { stream: true } throws (the
 * failing byte is k-1); when no prefix throws, the final non-stream decode decides.
 */
function reference(bytes: Uint8Array): { index: number; complete: boolean } {
  if (throwsOnPrefix(bytes, bytes.length)) {
    // Throwing is monotone in k: binary search the smallest k that throws.
    let lo = 1;
    let hi = bytes.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (throwsOnPrefix(bytes, mid)) hi = mid;
      else lo = mid + 1;
    }
    return { index: lo - 1, complete: false };
  }
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return { index: -1, complete: true };
  } catch {
    return { index: -1, complete: false };
  }
}

function splitPoints(length: number, points: number[]): number[] {
  return [...new Set(points.map((p) => p % (length + 1)))].filter((p) => p > 0 && p < length).sort((a, b) => a - b);
}

describe('fuzz: Utf8Validator agrees with TextDecoder (fatal)', () => {
  it('on validity, completeness and the index of the first invalid byte, under any chunking', () => {
    fc.assert(
      fc.property(input, cuts, writeMode, (bytes, points, mode) => {
        const want = reference(bytes);
        const validator = new Utf8Validator();
        let index = -1;
        let start = 0;
        for (const end of [...splitPoints(bytes.length, points), bytes.length]) {
          const r =
            mode === 'subarray' ? validator.write(bytes.subarray(start, end)) : validator.write(bytes, start, end);
          if (r !== -1) {
            index = mode === 'subarray' ? start + r : r;
            assert.ok(index >= start && index < end, `index ${index} outside the chunk [${start}, ${end})`);
            // Once failed, it stays failed.
            assert.equal(validator.write(bytes, 0, bytes.length), 0);
            assert.equal(validator.complete, false);
            break;
          }
          start = end;
        }
        assert.equal(index, want.index, `first invalid byte of ${Buffer.from(bytes).toString('hex')}`);
        if (index === -1) assert.equal(validator.complete, want.complete, 'complete');
        assert.equal(isValidUtf8(bytes), want.index === -1 && want.complete, 'isValidUtf8');
        assert.equal(isUtf8Payload(bytes), want.index === -1 && want.complete, 'isUtf8Payload');
      }),
      { numRuns: runs },
    );
  });

  it('the generator reaches inputs over 256 bytes (the native fast path) and both outcomes', () => {
    const sample = fc.sample(input, { numRuns: 400, seed: 42 });
    assert.ok(sample.filter((b) => b.length > 256).length > 40, 'long inputs');
    const outcomes = sample.map((b) => reference(b));
    assert.ok(outcomes.filter((o) => o.index === -1 && o.complete).length > 20, 'valid inputs');
    assert.ok(outcomes.filter((o) => o.index > 256).length > 5, 'invalid bytes deep in long inputs');
  });
});
