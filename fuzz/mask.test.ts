/**
 * Property (d): masking (RFC 6455 §5.3) at any offset, phase and length, at any alignment of the
 * underlying memory: mask() equals a naive byte loop, masking twice is the identity, and maskInto()
 * equals mask() applied to a copy.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { mask, maskInto } from '../src/protocol/mask.js';
import { runs } from './streams.js';

function naive(data: Uint8Array, key: Uint8Array, phase: number): Uint8Array {
  return data.map((b, i) => b ^ key[(phase + i) & 3]!);
}

/** `content` placed `byteOffset` bytes into a larger ArrayBuffer, guard bytes around it. */
function placed(content: Uint8Array, byteOffset: number): Uint8Array {
  const backing = new Uint8Array(byteOffset + content.length + 8).fill(0xa5);
  const view = backing.subarray(byteOffset, byteOffset + content.length);
  view.set(content);
  return view;
}

function guardsIntact(view: Uint8Array): boolean {
  const backing = new Uint8Array(view.buffer);
  return (
    backing.subarray(0, view.byteOffset).every((b) => b === 0xa5) &&
    backing.subarray(view.byteOffset + view.length).every((b) => b === 0xa5)
  );
}

/**
 * Lengths around the 48-byte 32-bit loop, 192-byte copy and 1024-byte 64-bit loop thresholds are
 * the interesting ones.
 */
const data = fc.oneof(
  fc.uint8Array({ maxLength: 60 }),
  fc.uint8Array({ minLength: 40, maxLength: 60 }),
  fc.uint8Array({ minLength: 180, maxLength: 210 }),
  fc.uint8Array({ minLength: 1010, maxLength: 1050 }),
  fc.uint8Array({ maxLength: 2500 }),
);
const key = fc.uint8Array({ minLength: 4, maxLength: 4 });
const phase = fc.integer({ min: 0, max: 7 });
const byteOffset = fc.integer({ min: 0, max: 7 });

/** A [start, end) range inside `length` bytes. */
function range(length: number): fc.Arbitrary<[number, number]> {
  return fc
    .tuple(fc.integer({ min: 0, max: length }), fc.integer({ min: 0, max: length }))
    .map(([a, b]) => (a <= b ? [a, b] : [b, a]));
}

describe('fuzz: masking', () => {
  it('mask() equals a naive byte loop, returns the next phase, touches nothing outside [start, end), and masking twice is the identity', () => {
    fc.assert(
      fc.property(
        data.chain((d) => fc.tuple(fc.constant(d), range(d.length))),
        key,
        phase,
        byteOffset,
        ([original, [start, end]], k, p, offset) => {
          const view = placed(original, offset);
          const next = mask(view, k, p, start, end);
          assert.equal(next, (p + end - start) & 3, 'next phase');
          assert.deepEqual(view.subarray(start, end), naive(original.subarray(start, end), k, p & 3));
          assert.deepEqual(view.subarray(0, start), original.subarray(0, start));
          assert.deepEqual(view.subarray(end), original.subarray(end));
          assert.ok(guardsIntact(view), 'bytes around the view untouched');
          assert.equal(mask(view, k, p, start, end), next);
          assert.deepEqual(view, original, 'masking twice is the identity');
        },
      ),
      { numRuns: runs },
    );
  });

  it('masking in pieces, carrying the phase, equals masking in one go', () => {
    fc.assert(
      fc.property(
        data,
        key,
        phase,
        fc.array(fc.nat(), { maxLength: 8 }),
        byteOffset,
        (original, k, p, points, offset) => {
          const whole = placed(original, offset);
          mask(whole, k, p);
          const pieces = placed(original, offset);
          const cuts = [...new Set(points.map((c) => c % (original.length + 1)))].sort((a, b) => a - b);
          let phaseNow = p;
          let start = 0;
          for (const end of [...cuts, original.length]) {
            if (end < start) continue;
            phaseNow = mask(pieces.subarray(start, end), k, phaseNow);
            start = end;
          }
          assert.deepEqual(pieces, whole);
        },
      ),
      { numRuns: runs },
    );
  });

  it('maskInto() equals mask() applied to a copy, leaves the source alone and writes nothing outside the target range', () => {
    fc.assert(
      fc.property(
        data.chain((d) => fc.tuple(fc.constant(d), range(d.length))),
        key,
        phase,
        byteOffset,
        byteOffset,
        fc.integer({ min: 0, max: 9 }),
        ([source, [start, end]], k, p, sourceOffset, targetByteOffset, targetOffset) => {
          const length = end - start;
          const src = placed(source, sourceOffset);
          const target = placed(new Uint8Array(targetOffset + length + 5).fill(0x3c), targetByteOffset);
          const next = maskInto(src, start, end, target, targetOffset, k, p);

          const copy = source.slice(start, end);
          const expectedPhase = mask(copy, k, p);
          assert.equal(next, expectedPhase, 'same next phase as mask()');
          assert.deepEqual(target.subarray(targetOffset, targetOffset + length), copy);
          assert.ok(
            target.subarray(0, targetOffset).every((b) => b === 0x3c),
            'target before the range untouched',
          );
          assert.ok(
            target.subarray(targetOffset + length).every((b) => b === 0x3c),
            'target after the range untouched',
          );
          assert.ok(guardsIntact(target), 'bytes around the target view untouched');
          assert.deepEqual(src, source, 'source untouched');
          assert.ok(guardsIntact(src), 'guardsIntact(src)');
        },
      ),
      { numRuns: runs },
    );
  });
});
