/**
 * Property (b): no input makes push() throw. Arbitrary bytes, random frame headers and mutated
 * valid streams only ever end in one onError with a ProtocolError (1002, 1007 or 1009), and nothing
 * is reported after it (or after a close).
 */
import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { MAX_CONTROL_PAYLOAD } from '../src/protocol/constants.js';
import { ProtocolError, ProtocolViolation } from '../src/protocol/errors.js';
import { Receiver, type ReceiverOptions, type Role } from '../src/protocol/receiver.js';
import {
  Recorder,
  chunkPlan,
  cutChunks,
  encodeFrames,
  encoding,
  modelFrames,
  runs,
  streamModel,
  type ChunkPlan,
} from './streams.js';
import { receiverOptions } from '../spec-tests/helpers/core.js';

const role = fc.constantFrom<Role>('server', 'client');

/** Independent of src/protocol/constants.ts: RFC 6455 §7.4.1 and the IANA registry (1012-1014), 3000-4999. */
const sendableCloseCode = (code: number): boolean =>
  (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
/** RFC 6455 §5.2: the defined opcodes. */
const DEFINED_OPCODES = [0x0, 0x1, 0x2, 0x8, 0x9, 0xa];

const limits: fc.Arbitrary<Partial<Omit<ReceiverOptions, 'role'>>> = fc.oneof(
  fc.constant({}),
  fc.record({ maxMessageSize: fc.integer({ min: 0, max: 600 }) }),
  fc.record({ maxMessageSize: fc.integer({ min: 0, max: 600 }), maxFramePayload: fc.integer({ min: 0, max: 300 }) }),
);

/** MASK as the receiving role expects it (server: set), most of the time, so parsing goes deeper. */
const maskFor = (r: Role): fc.Arbitrary<boolean> =>
  fc.oneof({ weight: 4, arbitrary: fc.constant(r === 'server') }, { weight: 1, arbitrary: fc.boolean() });

/** One frame with every header field random: any opcode, RSV bits, MASK, any length code and extended length. */
const randomFrame = (r: Role): fc.Arbitrary<Uint8Array> =>
  fc
    .record({
      byte0: fc.integer({ min: 0, max: 255 }),
      masked: maskFor(r),
      length: fc.oneof(
        fc.integer({ min: 0, max: 125 }).map((n) => ({ code: n, ext: [] as number[] })),
        fc.integer({ min: 0, max: 0xffff }).map((n) => ({ code: 126, ext: [n >>> 8, n & 0xff] })),
        fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 8, maxLength: 8 }).map((ext) => ({ code: 127, ext })),
        fc
          .array(fc.integer({ min: 0, max: 3 }), { minLength: 8, maxLength: 8 })
          .map((ext) => ({ code: 127, ext: [0, 0, 0, 0, 0, ...ext.slice(5)] })),
      ),
      key: fc.uint8Array({ minLength: 4, maxLength: 4 }),
      payload: fc.uint8Array({ maxLength: 140 }),
    })
    .map(({ byte0, masked, length, key, payload }) =>
      Uint8Array.from([byte0, (masked ? 0x80 : 0) | length.code, ...length.ext, ...(masked ? key : []), ...payload]),
    );

/** Frames that are mostly well formed: a plausible first byte (FIN plus a known opcode) more often than not. */
const plausibleFrame = (r: Role): fc.Arbitrary<Uint8Array> =>
  fc
    .tuple(randomFrame(r), fc.constantFrom(0x81, 0x82, 0x01, 0x02, 0x00, 0x80, 0x88, 0x89, 0x8a), fc.boolean())
    .map(([frame, byte0, keep]) => {
      if (!keep && frame.length > 0) frame[0] = byte0;
      return frame;
    });

/** Close frames with codes at every boundary of the valid ranges and reasons that may or may not be UTF-8. */
const closeFrame = (r: Role): fc.Arbitrary<Uint8Array> =>
  fc
    .record({
      code: fc.oneof(
        fc.constantFrom(0, 999, 1000, 1003, 1004, 1005, 1006, 1007, 1014, 1015, 1016, 2999, 3000, 4999, 5000, 65535),
        fc.integer({ min: 0, max: 65535 }),
      ),
      reason: fc.oneof(
        fc.string({ unit: 'binary', maxLength: 10 }).map((t) => Buffer.from(t)),
        fc.uint8Array({ maxLength: 6 }),
      ),
      empty: fc.boolean(),
      masked: maskFor(r),
      key: fc.uint8Array({ minLength: 4, maxLength: 4 }),
    })
    .map(({ code, reason, empty, masked, key }) => {
      const payload = empty
        ? Buffer.alloc(0)
        : Buffer.concat([Buffer.from([code >>> 8, code & 0xff]), reason]).subarray(0, 125);
      const body = masked ? payload.map((b, i) => b ^ key[i & 3]!) : payload;
      return Uint8Array.from([0x88, (masked ? 0x80 : 0) | payload.length, ...(masked ? key : []), ...body]);
    });

type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; value: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; count: number }
  | { kind: 'truncate'; at: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({
    kind: fc.constant('insert' as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 12 }),
  }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 12 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
);

function mutate(input: Uint8Array, mutations: Mutation[]): Uint8Array {
  let bytes = Uint8Array.from(input);
  for (const m of mutations) {
    const at = bytes.length === 0 ? 0 : m.at % (bytes.length + (m.kind === 'insert' ? 1 : 0));
    switch (m.kind) {
      case 'flip':
        if (bytes.length > 0) bytes[at]! ^= 1 << m.bit;
        break;
      case 'set':
        if (bytes.length > 0) bytes[at] = m.value;
        break;
      case 'insert':
        bytes = Buffer.concat([bytes.subarray(0, at), m.bytes, bytes.subarray(at)]);
        break;
      case 'delete':
        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + m.count)]);
        break;
      case 'truncate':
        bytes = bytes.subarray(0, at);
        break;
    }
  }
  return bytes;
}

/** Push `input` and check every invariant that must hold for any input at all. */
function checkAnyInput(
  r: Role,
  options: Partial<Omit<ReceiverOptions, 'role'>>,
  input: Uint8Array,
  plan: ChunkPlan,
): void {
  const recorder = new Recorder(true);
  const receiver = new Receiver(receiverOptions(r, options), recorder);
  const maxMessageSize = receiver.maxMessageSize;
  for (const chunk of cutChunks(input, plan)) {
    try {
      receiver.push(chunk);
    } catch (error) {
      assert.fail(`push() threw: ${(error as Error)?.stack ?? String(error)}`);
    }
  }
  const events = recorder.events;
  const endAt = events.findIndex((e) => e.type === 'error' || e.type === 'close');
  if (endAt !== -1) {
    assert.equal(
      endAt,
      events.length - 1,
      `events after the ${events[endAt]!.type}: ${events.slice(endAt + 1).map((e) => e.type)}`,
    );
    assert.equal(receiver.finished, true);
    // More input, even valid-looking, changes nothing.
    for (const chunk of cutChunks(input, { kind: 'fixed', size: 7 })) receiver.push(chunk);
    receiver.push(Buffer.from([0x81, 0x80, 0, 0, 0, 0]));
    receiver.push(Buffer.from([0x81, 0x00]));
    assert.equal(events.length, endAt + 1, 'nothing reported after the end');
  } else {
    assert.equal(receiver.finished, false);
  }
  for (const e of events) {
    switch (e.type) {
      case 'error':
        assert.ok(e.error instanceof ProtocolError, 'onError gets a ProtocolError');
        assert.ok([1002, 1007, 1009].includes(e.error.closeCode), `close code ${e.error.closeCode}`);
        assert.equal(e.error.closeCode, ProtocolViolation[e.error.violation]);
        break;
      case 'message':
        assert.ok(e.data.length <= maxMessageSize, 'message within the size limit');
        if (!e.isBinary) assert.ok(isUtf8(e.data), 'text messages are valid UTF-8');
        break;
      case 'ping':
      case 'pong':
        assert.ok(e.data.length <= MAX_CONTROL_PAYLOAD, 'e.data.length <= MAX_CONTROL_PAYLOAD');
        break;
      case 'close':
        assert.ok(e.code === 1005 || sendableCloseCode(e.code), `close code ${e.code}`);
        break;
      case 'frame':
        assert.equal(e.rsv1 || e.rsv2 || e.rsv3, false, 'no RSV bit without an extension');
        assert.equal(e.masked, r === 'server');
        assert.ok(DEFINED_OPCODES.includes(e.opcode), `frame with opcode ${e.opcode}`);
        if (e.opcode >= 0x8)
          assert.ok(e.fin && e.payload.length <= MAX_CONTROL_PAYLOAD, 'control frames are final and short');
        break;
    }
  }
  assert.equal(recorder.corrupted(), -1, 'a delivered buffer was modified after delivery');
}

describe('fuzz: push() never throws, and fails at most once', () => {
  it('arbitrary bytes', () => {
    fc.assert(
      fc.property(role, limits, fc.uint8Array({ maxLength: 300 }), chunkPlan, (r, options, input, plan) => {
        checkAnyInput(r, options, input, plan);
      }),
      { numRuns: runs },
    );
  });

  it('sequences of frames with random header fields', () => {
    fc.assert(
      fc.property(
        role.chain((r) =>
          fc.tuple(
            fc.constant(r),
            fc.array(fc.oneof(randomFrame(r), plausibleFrame(r), closeFrame(r)), { maxLength: 8 }),
          ),
        ),
        limits,
        chunkPlan,
        ([r, frames], options, plan) => {
          checkAnyInput(r, options, Buffer.concat(frames), plan);
        },
      ),
      { numRuns: runs },
    );
  });

  it('arbitrary mutations of valid streams', () => {
    fc.assert(
      fc.property(
        streamModel,
        encoding,
        limits,
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        chunkPlan,
        (model, enc, options, mutations, plan) => {
          const { bytes } = encodeFrames(modelFrames(model), enc);
          const input = bytes.length > 20_000 ? bytes.subarray(0, 20_000) : bytes;
          checkAnyInput(enc.role, options, mutate(input, mutations), plan);
        },
      ),
      { numRuns: runs },
    );
  });
});
