import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CloseCode, Opcode, isControlOpcode, isKnownOpcode } from '../src/protocol/constants.js';
import {
  decodeHeaderStart,
  encodeFrame,
  extendedLengthSize,
  frameHeaderSize,
  readExtendedLength,
  writeFrameHeader,
  type FrameHeaderStart,
} from '../src/protocol/frame.js';
import type { Frame } from '../src/protocol/receiver.js';
import {
  ROLES,
  assertFailed,
  bytes,
  clientFrame,
  concat,
  expectViolation,
  frameFor,
  makeReceiver,
  onlyMessage,
  rawFrame,
  serverFrame,
  text,
  types,
  utf8,
} from './helpers/core.js';

const PROTOCOL_ERROR = CloseCode.ProtocolError;

function decode(byte0: number, byte1: number): FrameHeaderStart {
  const into: FrameHeaderStart = {
    fin: false,
    rsv1: false,
    rsv2: false,
    rsv3: false,
    opcode: 0,
    masked: false,
    lengthCode: 0,
  };
  decodeHeaderStart(byte0, byte1, into);
  return into;
}

function header(opcode: number, length: number, fin = true, rsv1 = false, key: Uint8Array | null = null): Buffer {
  const out = Buffer.alloc(14, 0xee);
  const end = writeFrameHeader(out, 0, opcode, length, fin, rsv1, key);
  assert.equal(end, frameHeaderSize(length, key !== null), 'writeFrameHeader returns frameHeaderSize');
  return out.subarray(0, end);
}

function payloadOf(n: number): Buffer {
  const out = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) out[i] = (i * 7 + 3) & 0xff;
  return out;
}

describe('RFC 6455 §5.2 Base framing protocol: header fields', () => {
  it('FIN is the most significant bit of byte 0', () => {
    assert.equal(decode(0x80, 0).fin, true);
    assert.equal(decode(0x7f, 0).fin, false);
  });

  it('RSV1, RSV2 and RSV3 are bits 1, 2 and 3 of byte 0, each decoded on its own', () => {
    assert.deepEqual([decode(0x40, 0).rsv1, decode(0x40, 0).rsv2, decode(0x40, 0).rsv3], [true, false, false]);
    assert.deepEqual([decode(0x20, 0).rsv1, decode(0x20, 0).rsv2, decode(0x20, 0).rsv3], [false, true, false]);
    assert.deepEqual([decode(0x10, 0).rsv1, decode(0x10, 0).rsv2, decode(0x10, 0).rsv3], [false, false, true]);
    assert.deepEqual([decode(0x8f, 0).rsv1, decode(0x8f, 0).rsv2, decode(0x8f, 0).rsv3], [false, false, false]);
  });

  it('the opcode is the low 4 bits of byte 0, for all 16 values', () => {
    for (let op = 0; op < 16; op++) {
      assert.equal(decode(0xf0 | op, 0).opcode, op);
      assert.equal(decode(op, 0xff).opcode, op);
    }
  });

  it('MASK is the most significant bit of byte 1 and the 7-bit payload length its low 7 bits', () => {
    for (let len = 0; len < 128; len++) {
      assert.deepEqual([decode(0, 0x80 | len).masked, decode(0, 0x80 | len).lengthCode], [true, len]);
      assert.deepEqual([decode(0xff, len).masked, decode(0xff, len).lengthCode], [false, len]);
    }
  });

  it('opcodes 0x0-0x2 and 0x8-0xA are defined, all others reserved; 0x8-0xF are control opcodes', () => {
    for (let op = 0; op < 16; op++) {
      assert.equal(isKnownOpcode(op), op <= 2 || (op >= 8 && op <= 10), `isKnownOpcode(${op})`);
      assert.equal(isControlOpcode(op), op >= 8, `isControlOpcode(${op})`);
    }
  });

  it('payload length codes 126 and 127 announce a 16-bit and a 64-bit extended length', () => {
    for (let code = 0; code < 126; code++) assert.equal(extendedLengthSize(code), 0);
    assert.equal(extendedLengthSize(126), 2);
    assert.equal(extendedLengthSize(127), 8);
  });

  it('extended lengths are read in network byte order', () => {
    assert.equal(readExtendedLength(bytes(0x01, 0x02), 0, 2), 0x0102);
    assert.equal(readExtendedLength(bytes(0xff, 0xff), 0, 2), 0xffff);
    assert.equal(readExtendedLength(bytes(9, 9, 0x80, 0x00), 2, 2), 0x8000);
    assert.equal(readExtendedLength(bytes(0, 0, 0, 0, 0, 1, 0, 0), 0, 8), 65536);
    assert.equal(readExtendedLength(bytes(0, 0, 0, 1, 0, 0, 0, 5), 0, 8), 2 ** 32 + 5);
    assert.equal(readExtendedLength(bytes(0, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), 0, 8), Number.MAX_SAFE_INTEGER);
    assert.equal(readExtendedLength(bytes(0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), 0, 8) > 2 ** 62, true);
  });

  it('the most significant bit of a 64-bit length MUST be 0: readExtendedLength flags it with -1', () => {
    assert.equal(readExtendedLength(bytes(0x80, 0, 0, 0, 0, 0, 0, 0), 0, 8), -1);
    assert.equal(readExtendedLength(bytes(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), 0, 8), -1);
    assert.equal(readExtendedLength(bytes(0x80, 0, 0, 0, 0, 0, 0, 5), 0, 8), -1);
  });
});

describe('RFC 6455 §5.2 Payload length: the writer uses the minimal encoding', () => {
  it('lengths 0-125 are written in the 7-bit field, with no extended length', () => {
    for (let len = 0; len <= 125; len++) {
      assert.deepEqual([...header(Opcode.Binary, len)], [0x82, len]);
    }
  });

  it('lengths 126-65535 are written as 126 and a 16-bit length', () => {
    for (const len of [126, 127, 255, 256, 1000, 0x7fff, 0x8000, 65535]) {
      assert.deepEqual([...header(Opcode.Binary, len)], [0x82, 126, len >>> 8, len & 0xff]);
    }
  });

  it('lengths of 65536 and more are written as 127 and a 64-bit length', () => {
    assert.deepEqual([...header(Opcode.Binary, 65536)], [0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
    assert.deepEqual([...header(Opcode.Binary, 0xffffffff)], [0x82, 127, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
    assert.deepEqual([...header(Opcode.Binary, 2 ** 32)], [0x82, 127, 0, 0, 0, 1, 0, 0, 0, 0]);
    assert.deepEqual([...header(Opcode.Binary, 2 ** 32 + 0x01020304)], [0x82, 127, 0, 0, 0, 1, 1, 2, 3, 4]);
    assert.deepEqual(
      [...header(Opcode.Binary, Number.MAX_SAFE_INTEGER)],
      [0x82, 127, 0, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    );
  });

  it('frameHeaderSize is 2, 4 or 10 bytes, plus 4 for a masking key', () => {
    const cases: [number, number][] = [
      [0, 2],
      [125, 2],
      [126, 4],
      [65535, 4],
      [65536, 10],
      [2 ** 40, 10],
    ];
    for (const [len, size] of cases) {
      assert.equal(frameHeaderSize(len, false), size, `unmasked ${len}`);
      assert.equal(frameHeaderSize(len, true), size + 4, `masked ${len}`);
    }
  });

  it('writeFrameHeader sets FIN, RSV1, the opcode, MASK and writes the key after the length', () => {
    const key = bytes(1, 2, 3, 4);
    assert.deepEqual([...header(Opcode.Text, 5, true, false, null)], [0x81, 5]);
    assert.deepEqual([...header(Opcode.Text, 5, false, false, null)], [0x01, 5]);
    assert.deepEqual([...header(Opcode.Text, 5, true, true, null)], [0xc1, 5]);
    assert.deepEqual([...header(Opcode.Continuation, 5, true, false, null)], [0x80, 5]);
    assert.deepEqual([...header(Opcode.Ping, 0, true, false, key)], [0x89, 0x80, 1, 2, 3, 4]);
    assert.deepEqual([...header(Opcode.Binary, 300, true, false, key)], [0x82, 0xfe, 1, 44, 1, 2, 3, 4]);
    assert.deepEqual(
      [...header(Opcode.Binary, 70000, false, false, key)],
      [0x02, 0xff, 0, 0, 0, 0, 0, 1, 0x11, 0x70, 1, 2, 3, 4],
    );
  });

  it('writeFrameHeader writes at the given offset and leaves the bytes around untouched', () => {
    const out = Buffer.alloc(12, 0xaa);
    const end = writeFrameHeader(out, 3, Opcode.Binary, 126, true, false, null);
    assert.equal(end, 7);
    assert.deepEqual([...out], [0xaa, 0xaa, 0xaa, 0x82, 126, 0, 126, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa]);
  });

  it('encodeFrame defaults to FIN set, RSV1 clear, unmasked, and copies the payload after the header', () => {
    const payload = utf8('abc');
    assert.deepEqual([...encodeFrame({ opcode: Opcode.Text, payload })], [0x81, 3, 0x61, 0x62, 0x63]);
    assert.deepEqual([...encodeFrame({ opcode: Opcode.Text, payload, fin: false })], [0x01, 3, 0x61, 0x62, 0x63]);
    assert.deepEqual([...encodeFrame({ opcode: Opcode.Binary, payload, rsv1: true })], [0xc2, 3, 0x61, 0x62, 0x63]);
    assert.deepEqual([...encodeFrame({ opcode: Opcode.Binary, payload, maskKey: null })], [0x82, 3, 0x61, 0x62, 0x63]);
  });

  it('encodeFrame matches an independent encoder for every length-encoding boundary, masked and not', () => {
    const key = bytes(0x11, 0x22, 0x33, 0x44);
    for (const len of [0, 1, 125, 126, 127, 65535, 65536, 70001]) {
      const payload = payloadOf(len);
      assert.deepEqual(
        encodeFrame({ opcode: Opcode.Binary, payload }),
        rawFrame({ opcode: Opcode.Binary, payload, maskKey: null }),
        `unmasked ${len}`,
      );
      assert.deepEqual(
        encodeFrame({ opcode: Opcode.Binary, payload, maskKey: key }),
        rawFrame({ opcode: Opcode.Binary, payload, maskKey: key }),
        `masked ${len}`,
      );
    }
  });
});

describe('RFC 6455 §5.2 Payload length: the reader', () => {
  for (const role of ROLES) {
    it(`decodes 7-bit, 16-bit and 64-bit lengths at every encoding boundary (${role})`, () => {
      for (const len of [0, 1, 125, 126, 127, 65535, 65536, 65537]) {
        const payload = payloadOf(len);
        const h = makeReceiver(role);
        h.push(frameFor(role, { opcode: Opcode.Binary, payload }));
        const m = onlyMessage(h.events);
        assert.equal(m.isBinary, true);
        assert.equal(m.data.length, len);
        assert.ok(m.data.equals(payload), `payload of ${len} bytes`);
      }
    });

    it(`accepts non-minimal length encodings, which change nothing in meaning (${role})`, () => {
      const cases: { len: number; lengthEncoding: 16 | 64 }[] = [
        { len: 0, lengthEncoding: 16 },
        { len: 5, lengthEncoding: 16 },
        { len: 125, lengthEncoding: 16 },
        { len: 0, lengthEncoding: 64 },
        { len: 5, lengthEncoding: 64 },
        { len: 200, lengthEncoding: 64 },
        { len: 65535, lengthEncoding: 64 },
      ];
      for (const { len, lengthEncoding } of cases) {
        const payload = payloadOf(len);
        const h = makeReceiver(role);
        h.push(frameFor(role, { opcode: Opcode.Binary, payload, lengthEncoding }));
        assert.ok(onlyMessage(h.events).data.equals(payload), `${len} bytes in a ${lengthEncoding}-bit length`);
      }
    });

    it(`parses a header split at every byte, for every length encoding (${role})`, () => {
      for (const len of [3, 200, 65536]) {
        const frame = frameFor(role, { opcode: Opcode.Binary, payload: payloadOf(len) });
        const headerSize = frameHeaderSize(len, role === 'server');
        for (let cut = 1; cut <= headerSize; cut++) {
          const h = makeReceiver(role);
          h.push(frame, [cut]);
          assert.ok(onlyMessage(h.events).data.equals(payloadOf(len)), `length ${len}, cut at ${cut}`);
        }
        const h = makeReceiver(role);
        h.push(frame.subarray(0, Math.min(frame.length, 300)), 1);
        h.push(frame.subarray(Math.min(frame.length, 300)));
        assert.ok(onlyMessage(h.events).data.equals(payloadOf(len)), `length ${len}, header byte by byte`);
      }
    });

    it(`parses many frames in one chunk, each reported in order (${role})`, () => {
      const h = makeReceiver(role);
      h.push(
        concat(
          text(role, 'a'),
          text(role, 'bb'),
          frameFor(role, { opcode: Opcode.Binary, payload: payloadOf(300) }),
          text(role, ''),
        ),
      );
      assert.deepEqual(types(h.events), ['message', 'message', 'message', 'message']);
      assert.deepEqual(
        h.events.map((e) => (e.type === 'message' ? e.data.length : -1)),
        [1, 2, 300, 0],
      );
    });

    it(`reports FIN, RSV bits, opcode, MASK and the key of each frame to onFrame (${role})`, () => {
      const key = bytes(9, 8, 7, 6);
      const h = makeReceiver(role, {}, true);
      const mask = role === 'server' ? key : null;
      h.push(
        concat(
          rawFrame({ opcode: Opcode.Text, payload: 'he', fin: false, maskKey: mask }),
          rawFrame({ opcode: Opcode.Continuation, payload: 'llo', maskKey: mask }),
        ),
      );
      const frames = h.events.filter((e) => e.type === 'frame').map((e) => (e as { frame: Frame }).frame);
      assert.equal(frames.length, 2);
      assert.deepEqual(
        frames.map((f) => ({ ...f, payload: f.payload.toString() })),
        [
          {
            fin: false,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode: Opcode.Text,
            masked: mask !== null,
            maskKey: mask === null ? null : Uint8Array.from(key),
            payload: 'he',
            lengthBits: 7,
          },
          {
            fin: true,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode: Opcode.Continuation,
            masked: mask !== null,
            maskKey: mask === null ? null : Uint8Array.from(key),
            payload: 'llo',
            lengthBits: 7,
          },
        ],
      );
      assert.deepEqual(types(h.events), ['frame', 'frame', 'message']);
    });

    it(`reports which length form each frame used, minimal or not (7, 7+16, 7+64 bits) (${role})`, () => {
      const h = makeReceiver(role, {}, true);
      h.push(
        concat(
          frameFor(role, { opcode: Opcode.Binary, payload: payloadOf(125) }),
          frameFor(role, { opcode: Opcode.Binary, payload: payloadOf(126) }),
          frameFor(role, { opcode: Opcode.Binary, payload: payloadOf(65536) }),
          frameFor(role, { opcode: Opcode.Binary, payload: payloadOf(5), lengthEncoding: 64 }),
        ),
      );
      const frames = h.events.filter((e) => e.type === 'frame').map((e) => (e as { frame: Frame }).frame);
      assert.deepEqual(
        frames.map((f) => [f.payload.length, f.lengthBits]),
        [
          [125, 7],
          [126, 16],
          [65536, 64],
          [5, 64],
        ],
      );
    });
  }
});

describe('RFC 6455 §5.2 Payload length: "the most significant bit MUST be 0"', () => {
  for (const role of ROLES) {
    it(`fails with 1002 on a 64-bit length with the top bit set, from the header alone (${role})`, () => {
      const h = makeReceiver(role);
      const maskBit = role === 'server' ? 0x80 : 0;
      h.push(bytes(0x82, maskBit | 127, 0x80, 0, 0, 0, 0, 0, 0, 5));
      assertFailed(h, 'LengthTopBitSet', PROTOCOL_ERROR);
    });

    it(`fails with 1002 on a 64-bit length of all ones, split byte by byte (${role})`, () => {
      const maskBit = role === 'server' ? 0x80 : 0;
      expectViolation(
        role,
        bytes(0x81, maskBit | 127, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4),
        'LengthTopBitSet',
        PROTOCOL_ERROR,
        {},
        1,
      );
    });
  }
});

describe('RFC 6455 §5.2 Opcode: "If an unknown opcode is received, the receiving endpoint MUST _Fail the WebSocket Connection_"', () => {
  for (const opcode of [0x3, 0x4, 0x5, 0x6, 0x7, 0xb, 0xc, 0xd, 0xe, 0xf]) {
    for (const role of ROLES) {
      it(`reserved opcode 0x${opcode.toString(16).toUpperCase()} fails with 1002 (${role})`, () => {
        expectViolation(role, frameFor(role, { opcode, payload: 'x' }), 'ReservedOpcode', PROTOCOL_ERROR);
      });
    }
    it(`reserved opcode 0x${opcode.toString(16).toUpperCase()} fails with 1002 from the first two bytes, even after a valid message`, () => {
      const h = makeReceiver('server');
      h.push(text('server', 'ok'));
      h.push(bytes(0x80 | opcode, 0x80));
      assert.deepEqual(types(h.events), ['message', 'error']);
      assertFailed(h, 'ReservedOpcode', PROTOCOL_ERROR);
    });
  }
});

describe('RFC 6455 §5.2 RSV1-3: "MUST be 0 unless an extension is negotiated that defines meanings for non-zero values"', () => {
  const bits = [
    { name: 'RSV1', spec: { rsv1: true } },
    { name: 'RSV2', spec: { rsv2: true } },
    { name: 'RSV3', spec: { rsv3: true } },
  ] as const;
  const opcodes = [
    { name: 'text', opcode: Opcode.Text },
    { name: 'binary', opcode: Opcode.Binary },
    { name: 'ping', opcode: Opcode.Ping },
    { name: 'pong', opcode: Opcode.Pong },
    { name: 'close', opcode: Opcode.Close },
  ];
  for (const bit of bits) {
    for (const role of ROLES) {
      it(`${bit.name} set with no extension negotiated fails with 1002 on any opcode (${role})`, () => {
        for (const { opcode } of opcodes) {
          const payload = opcode === Opcode.Close ? bytes(0x03, 0xe8) : utf8('x');
          expectViolation(role, frameFor(role, { opcode, payload, ...bit.spec }), 'ReservedBits', PROTOCOL_ERROR);
        }
      });
    }
    it(`${bit.name} set on a continuation frame fails with 1002`, () => {
      const h = makeReceiver('server');
      h.push(
        concat(text('server', 'a', false), clientFrame({ opcode: Opcode.Continuation, payload: 'b', ...bit.spec })),
      );
      assertFailed(h, 'ReservedBits', PROTOCOL_ERROR);
      assert.deepEqual(types(h.events), ['error']);
    });
  }

  it('all three RSV bits set fail with 1002 from the first two bytes alone', () => {
    const h = makeReceiver('client');
    h.push(bytes(0xf1, 0x05));
    assertFailed(h, 'ReservedBits', PROTOCOL_ERROR);
  });

  it('the same frame with all RSV bits clear is accepted', () => {
    const h = makeReceiver('client');
    h.push(serverFrame({ opcode: Opcode.Text, payload: 'x' }));
    assert.equal(onlyMessage(h.events).data.toString(), 'x');
  });
});
