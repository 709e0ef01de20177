import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CloseCode, MAX_CONTROL_PAYLOAD, Opcode } from '../src/protocol/constants.js';
import { MaskKeySource } from '../src/protocol/writer.js';
import { appendControlFrame } from './helpers/writer.js';
import {
  ROLES,
  assertFailed,
  bytes,
  concat,
  expectViolation,
  frameFor,
  makeReceiver,
  ping,
  pong,
  rawFrame,
  text,
  types,
} from './helpers/core.js';

const PROTOCOL_ERROR = CloseCode.ProtocolError;

function filled(n: number): Buffer {
  return Buffer.from(Array.from({ length: n }, (_, i) => (i * 5 + 1) & 0xff));
}

const CONTROL = [
  { name: 'ping', opcode: Opcode.Ping },
  { name: 'pong', opcode: Opcode.Pong },
  { name: 'close', opcode: Opcode.Close },
];

describe('RFC 6455 §5.5.2 Ping and §5.5.3 Pong', () => {
  for (const role of ROLES) {
    it(`a ping is delivered with its application data (${role})`, () => {
      const h = makeReceiver(role);
      h.push(ping(role, 'are you there?'));
      assert.deepEqual(h.events, [{ type: 'ping', data: Buffer.from('are you there?') }]);
    });

    it(`a pong is delivered with its application data (${role})`, () => {
      const h = makeReceiver(role);
      h.push(pong(role, bytes(0, 1, 2, 0xff)));
      assert.deepEqual(h.events, [{ type: 'pong', data: bytes(0, 1, 2, 0xff) }]);
    });

    it(`an unsolicited pong and an empty ping are fine (${role})`, () => {
      const h = makeReceiver(role);
      h.push(concat(pong(role), ping(role)));
      assert.deepEqual(h.events, [
        { type: 'pong', data: Buffer.alloc(0) },
        { type: 'ping', data: Buffer.alloc(0) },
      ]);
    });

    it(`control frames with every payload length from 0 to 125 are accepted (${role})`, () => {
      const h = makeReceiver(role);
      const stream: Buffer[] = [];
      for (let len = 0; len <= MAX_CONTROL_PAYLOAD; len++)
        stream.push(ping(role, filled(len)), pong(role, filled(len)));
      h.push(Buffer.concat(stream), [1, 2, 3, 100, 1000, 5000]);
      assert.equal(h.events.length, 2 * 126);
      h.events.forEach((e, i) => {
        assert.equal(e.type, i % 2 === 0 ? 'ping' : 'pong');
        assert.ok((e.type === 'ping' || e.type === 'pong') && e.data.equals(filled(i >> 1)), `event ${i}`);
      });
    });

    it(`the payload of a control frame is the same whichever chunking it arrives in (${role})`, () => {
      const frame = ping(role, filled(125));
      for (const chunking of [1, 2, 3, 7, 64]) {
        const h = makeReceiver(role);
        h.push(frame, chunking);
        assert.deepEqual(h.events, [{ type: 'ping', data: filled(125) }], `chunks of ${chunking}`);
      }
    });

    it(`control frames between data messages are delivered in wire order (${role})`, () => {
      const h = makeReceiver(role);
      h.push(concat(text(role, 'a'), ping(role, '1'), text(role, 'b'), pong(role, '2'), ping(role, '3')));
      assert.deepEqual(types(h.events), ['message', 'ping', 'message', 'pong', 'ping']);
    });
  }
});

describe('RFC 6455 §5.5 "All control frames MUST have a payload length of 125 bytes or less"', () => {
  for (const { name, opcode } of CONTROL) {
    for (const role of ROLES) {
      it(`a ${name} with 126 bytes (16-bit length code 126) fails with 1002 (${role})`, () => {
        expectViolation(role, frameFor(role, { opcode, payload: filled(126) }), 'ControlFrameTooLong', PROTOCOL_ERROR);
      });

      it(`a ${name} with a 64-bit length (length code 127) fails with 1002 (${role})`, () => {
        expectViolation(
          role,
          frameFor(role, { opcode, payload: filled(65536) }),
          'ControlFrameTooLong',
          PROTOCOL_ERROR,
        );
        expectViolation(
          role,
          frameFor(role, { opcode, payload: filled(10), lengthEncoding: 64 }),
          'ControlFrameTooLong',
          PROTOCOL_ERROR,
        );
      });

      it(`a ${name} with a short payload in a 16-bit length (length code 126) fails with 1002 (${role})`, () => {
        expectViolation(
          role,
          frameFor(role, { opcode, payload: filled(2), lengthEncoding: 16 }),
          'ControlFrameTooLong',
          PROTOCOL_ERROR,
        );
      });
    }

    it(`a too-long ${name} is rejected from its first two bytes, before the extended length and payload arrive`, () => {
      for (const lengthCode of [126, 127]) {
        const h = makeReceiver('server');
        h.push(bytes(0x80 | opcode, 0x80 | lengthCode));
        assertFailed(h, 'ControlFrameTooLong', PROTOCOL_ERROR);
      }
    });
  }

  it('appendControlFrame refuses a payload over 125 bytes and accepts exactly 125', () => {
    assert.throws(() => appendControlFrame([], Opcode.Ping, Buffer.alloc(126), null), RangeError);
    const out: Buffer[] = [];
    appendControlFrame(out, Opcode.Ping, filled(125), null);
    assert.deepEqual(Buffer.concat(out), concat(bytes(0x89, 125), filled(125)));
  });
});

describe('RFC 6455 §5.5 Control frames "MUST NOT be fragmented"', () => {
  for (const { name, opcode } of CONTROL) {
    for (const role of ROLES) {
      it(`a ${name} with FIN clear fails with 1002 (${role})`, () => {
        const payload = opcode === Opcode.Close ? bytes(0x03, 0xe8) : filled(3);
        expectViolation(
          role,
          frameFor(role, { opcode, payload, fin: false }),
          'ControlFrameFragmented',
          PROTOCOL_ERROR,
        );
      });

      it(`a ${name} with FIN clear inside a fragmented message fails with 1002 (${role})`, () => {
        const h = makeReceiver(role);
        h.push(concat(text(role, 'a', false), frameFor(role, { opcode, payload: '', fin: false })));
        assertFailed(h, 'ControlFrameFragmented', PROTOCOL_ERROR);
        assert.deepEqual(types(h.events), ['error']);
      });
    }
  }

  it('a fragmented ping is rejected from its first two bytes', () => {
    const h = makeReceiver('client');
    h.push(bytes(0x09, 0x05));
    assertFailed(h, 'ControlFrameFragmented', PROTOCOL_ERROR);
  });
});

describe('RFC 6455 §5.5 Control frames: the writer', () => {
  it('appendControlFrame writes one frame with FIN set and RSV1 clear', () => {
    const out: Buffer[] = [];
    appendControlFrame(out, Opcode.Pong, Buffer.from('hi'), null);
    assert.deepEqual(Buffer.concat(out), bytes(0x8a, 2, 0x68, 0x69));
  });

  it('appendControlFrame masks a client control frame', () => {
    const out: Buffer[] = [];
    appendControlFrame(out, Opcode.Ping, Buffer.from('hi'), new MaskKeySource());
    const wire = Buffer.concat(out);
    assert.equal(wire[1], 0x82);
    assert.deepEqual(wire, rawFrame({ opcode: Opcode.Ping, payload: 'hi', maskKey: wire.subarray(2, 6) }));
  });

  it('appendControlFrame refuses data opcodes', () => {
    for (const opcode of [Opcode.Continuation, Opcode.Text, Opcode.Binary]) {
      assert.throws(() => appendControlFrame([], opcode, Buffer.alloc(0), null), TypeError);
    }
  });
});
