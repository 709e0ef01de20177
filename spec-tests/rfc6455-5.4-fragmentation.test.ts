import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CloseCode, Opcode } from '../src/protocol/constants.js';
import { MaskKeySource } from '../src/protocol/writer.js';
import { appendMessage } from './helpers/writer.js';
import type { Frame } from '../src/protocol/receiver.js';
import {
  ROLES,
  assertFailed,
  binary,
  bytes,
  close,
  concat,
  continuation,
  expectViolation,
  frameFor,
  makeReceiver,
  onlyMessage,
  ping,
  pong,
  text,
  types,
  utf8,
  type Event,
} from './helpers/core.js';

const PROTOCOL_ERROR = CloseCode.ProtocolError;

describe('RFC 6455 §5.4 Fragmentation: reassembly', () => {
  for (const role of ROLES) {
    it(`a text message in three fragments (FIN clear, continuation, FIN set) is delivered once, reassembled (${role})`, () => {
      const h = makeReceiver(role);
      h.push(concat(text(role, 'Hel', false), continuation(role, 'lo, ', false), continuation(role, 'world')));
      const m = onlyMessage(h.events);
      assert.equal(m.isBinary, false);
      assert.equal(m.data.toString(), 'Hello, world');
    });

    it(`a binary message in fragments is delivered as binary, in order (${role})`, () => {
      const h = makeReceiver(role);
      h.push(
        concat(
          binary(role, bytes(1, 2), false),
          continuation(role, bytes(3), false),
          continuation(role, bytes(4, 5, 6)),
        ),
      );
      const m = onlyMessage(h.events);
      assert.equal(m.isBinary, true);
      assert.deepEqual([...m.data], [1, 2, 3, 4, 5, 6]);
    });

    it(`nothing is delivered until the frame with FIN set arrives (${role})`, () => {
      const h = makeReceiver(role);
      h.push(text(role, 'part one ', false));
      h.push(continuation(role, 'part two ', false));
      assert.deepEqual(h.events, []);
      h.push(continuation(role, 'end'));
      assert.equal(onlyMessage(h.events).data.toString(), 'part one part two end');
    });

    it(`empty fragments (first, middle and last) are allowed (${role})`, () => {
      const h = makeReceiver(role);
      h.push(
        concat(
          text(role, '', false),
          continuation(role, 'a', false),
          continuation(role, '', false),
          continuation(role, 'b', false),
          continuation(role, ''),
        ),
      );
      assert.equal(onlyMessage(h.events).data.toString(), 'ab');
      const e = makeReceiver(role);
      e.push(concat(binary(role, '', false), continuation(role, '')));
      assert.equal(onlyMessage(e.events).data.length, 0);
    });

    it(`fragments of a message pushed byte by byte are reassembled (${role})`, () => {
      const h = makeReceiver(role);
      h.push(
        concat(text(role, 'fragmented ', false), continuation(role, 'and ', false), continuation(role, 'chunked')),
        1,
      );
      assert.equal(onlyMessage(h.events).data.toString(), 'fragmented and chunked');
    });

    it(`messages after a fragmented one start afresh (${role})`, () => {
      const h = makeReceiver(role);
      h.push(
        concat(
          text(role, 'a', false),
          continuation(role, 'b'),
          binary(role, bytes(9)),
          text(role, 'c', false),
          continuation(role, 'd'),
        ),
      );
      assert.deepEqual(
        h.events.map((e) => (e.type === 'message' ? [e.isBinary, e.data.toString('hex')] : e.type)),
        [
          [false, '6162'],
          [true, '09'],
          [false, '6364'],
        ],
      );
    });

    it(`a large message in fragments bigger than the chunks is reassembled exactly (${role})`, () => {
      const payload = Buffer.alloc(200_000);
      for (let i = 0; i < payload.length; i++) payload[i] = (i * 31) & 0xff;
      const stream = concat(
        binary(role, payload.subarray(0, 70_000), false),
        continuation(role, payload.subarray(70_000, 70_100), false),
        continuation(role, payload.subarray(70_100)),
      );
      const h = makeReceiver(role);
      h.push(stream, 4099);
      assert.ok(onlyMessage(h.events).data.equals(payload), 'onlyMessage(h.events).data.equals(payload)');
    });
  }
});

describe('RFC 6455 §5.4 "Control frames MAY be injected in the middle of a fragmented message"', () => {
  for (const role of ROLES) {
    it(`pings and pongs between fragments are delivered at once, before the message they interrupt (${role})`, () => {
      const h = makeReceiver(role);
      h.push(
        concat(
          text(role, 'one ', false),
          ping(role, 'p1'),
          continuation(role, 'two ', false),
          pong(role, 'q1'),
          ping(role, 'p2'),
          continuation(role, 'three'),
        ),
      );
      assert.deepEqual(
        h.events.map((e) =>
          e.type === 'message' || e.type === 'ping' || e.type === 'pong' ? `${e.type}:${e.data.toString()}` : e.type,
        ),
        ['ping:p1', 'pong:q1', 'ping:p2', 'message:one two three'],
      );
    });

    it(`a ping between fragments is reported before the rest of the message has arrived (${role})`, () => {
      const h = makeReceiver(role);
      h.push(concat(text(role, 'start', false), ping(role, 'now')));
      assert.deepEqual(types(h.events), ['ping']);
      h.push(continuation(role, 'end'));
      assert.deepEqual(types(h.events), ['ping', 'message']);
    });

    it(`a close frame between fragments is delivered and the open message is dropped (${role})`, () => {
      const h = makeReceiver(role);
      h.push(concat(text(role, 'never ', false), close(role, 1001, 'going'), continuation(role, 'delivered')));
      assert.deepEqual(h.events, [{ type: 'close', code: 1001, reason: 'going' }]);
    });

    it(`the fragments and the control frames are reported to onFrame in wire order (${role})`, () => {
      const h = makeReceiver(role, {}, true);
      h.push(concat(binary(role, 'a', false), ping(role, 'x'), continuation(role, 'b')), 1);
      const summary = h.events.map((e: Event) =>
        e.type === 'frame' ? `frame:${(e.frame as Frame).opcode}:${e.frame.fin}:${e.frame.payload.toString()}` : e.type,
      );
      assert.deepEqual(summary, ['frame:2:false:a', 'frame:9:true:x', 'ping', 'frame:0:true:b', 'message']);
    });

    it(`each of many fragments, small and large, is reported to onFrame with its own payload, whole or trickled (${role})`, () => {
      // The receiver keeps small fragments copied together and large ones as views; the frame
      // reported is the fragment's bytes alone either way (the fuzz target found the earlier pieces
      // copied again for each frame: quadratic in the number of fragments).
      const sizes = [1, 5000, 2, 3, 4100, 1, 0, 7];
      const payloads = sizes.map((size, i) => Buffer.alloc(size, 0x61 + i));
      const wire = concat(
        ...payloads.map((payload, i) =>
          i === 0 ? binary(role, payload, false) : continuation(role, payload, i === sizes.length - 1),
        ),
      );
      for (const chunk of [wire.length, 3]) {
        const h = makeReceiver(role, {}, true);
        h.push(Buffer.from(wire), chunk);
        const frames = h.events.flatMap((e: Event) => (e.type === 'frame' ? [e.frame.payload] : []));
        assert.deepEqual(frames, payloads, `chunks of ${chunk} bytes`);
        assert.deepEqual(onlyMessage(h.events.filter((e: Event) => e.type !== 'frame')).data, Buffer.concat(payloads));
      }
    });
  }
});

describe('RFC 6455 §5.4 Fragmentation errors', () => {
  for (const role of ROLES) {
    it(`a continuation frame with no message open fails with 1002 (${role})`, () => {
      expectViolation(role, continuation(role, 'orphan'), 'UnexpectedContinuation', PROTOCOL_ERROR);
      expectViolation(role, continuation(role, 'orphan', false), 'UnexpectedContinuation', PROTOCOL_ERROR);
    });

    it(`a continuation frame after a message has ended fails with 1002, the message itself delivered (${role})`, () => {
      const h = makeReceiver(role);
      h.push(concat(text(role, 'a', false), continuation(role, 'b'), continuation(role, 'c')));
      assert.deepEqual(types(h.events), ['message', 'error']);
      assertFailed(h, 'UnexpectedContinuation', PROTOCOL_ERROR);
    });

    it(`a continuation frame after a ping (with no message open) fails with 1002 (${role})`, () => {
      const h = makeReceiver(role);
      h.push(concat(ping(role), continuation(role, 'x')));
      assert.deepEqual(types(h.events), ['ping', 'error']);
      assertFailed(h, 'UnexpectedContinuation', PROTOCOL_ERROR);
    });

    for (const [open, inner] of [
      ['text', 'text'],
      ['text', 'binary'],
      ['binary', 'text'],
      ['binary', 'binary'],
    ] as const) {
      it(`a new ${inner} frame while a fragmented ${open} message is open fails with 1002 (${role})`, () => {
        const first = open === 'text' ? text(role, 'a', false) : binary(role, 'a', false);
        const second = inner === 'text' ? text(role, 'b') : binary(role, 'b');
        expectViolation(role, concat(first, second), 'ExpectedContinuation', PROTOCOL_ERROR);
        expectViolation(
          role,
          concat(first, continuation(role, 'x', false), ping(role), second),
          'ExpectedContinuation',
          PROTOCOL_ERROR,
        );
      });
    }

    it(`the interleaving violation is reported from the header alone, before its payload arrives (${role})`, () => {
      const h = makeReceiver(role);
      h.push(text(role, 'a', false));
      const second = frameFor(role, { opcode: Opcode.Binary, payload: Buffer.alloc(1000) });
      h.push(second.subarray(0, 2));
      assertFailed(h, 'ExpectedContinuation', PROTOCOL_ERROR);
    });
  }
});

describe('RFC 6455 §5.4 Fragmentation at scale', () => {
  /** Fragments written straight into one buffer (the generic helper is too slow for 65,536 frames). */
  function fragmentStream(opcode: number, payloads: Buffer[], key: Buffer | null): Buffer {
    const headerSize = key === null ? 2 : 6;
    const total = payloads.reduce((n, p) => n + headerSize + p.length, 0);
    const out = Buffer.alloc(total);
    let at = 0;
    payloads.forEach((payload, i) => {
      assert.ok(payload.length < 126, 'payload.length < 126');
      out[at++] = (i === payloads.length - 1 ? 0x80 : 0) | (i === 0 ? opcode : Opcode.Continuation);
      out[at++] = (key === null ? 0 : 0x80) | payload.length;
      if (key !== null) {
        key.copy(out, at);
        at += 4;
      }
      for (let j = 0; j < payload.length; j++) out[at++] = key === null ? payload[j]! : payload[j]! ^ key[j & 3]!;
    });
    assert.equal(at, total);
    return out;
  }

  it('a message of 65,536 one-byte fragments is accepted and reassembled (server, masked)', () => {
    const expected = Buffer.alloc(65536);
    const payloads: Buffer[] = [];
    for (let i = 0; i < 65536; i++) {
      expected[i] = i & 0xff;
      payloads.push(expected.subarray(i, i + 1));
    }
    const h = makeReceiver('server');
    h.push(fragmentStream(Opcode.Binary, payloads, bytes(0xa1, 0xb2, 0xc3, 0xd4)));
    const m = onlyMessage(h.events);
    assert.equal(m.isBinary, true);
    assert.ok(m.data.equals(expected), 'm.data.equals(expected)');
  });

  it('a text message of 65,536 fragments, with 3-byte code points split across fragment boundaries, is accepted (client)', () => {
    const full = utf8('€'.repeat(65536 / 2)); // 98,304 bytes: fragments of 1 and 2 bytes split every code point
    const payloads: Buffer[] = [];
    const step = full.length / 65536;
    for (let i = 0; i < 65536; i++) payloads.push(full.subarray(Math.floor(i * step), Math.floor((i + 1) * step)));
    const h = makeReceiver('client');
    h.push(fragmentStream(Opcode.Text, payloads, null));
    const m = onlyMessage(h.events);
    assert.equal(m.isBinary, false);
    assert.ok(m.data.equals(full), 'm.data.equals(full)');
  });
});

describe('RFC 6455 §5.4 Fragmentation: the writer', () => {
  it('appendMessage splits a message: the first frame carries the opcode, the others are continuations, only the last has FIN', () => {
    const payload = Buffer.from('abcdefghij');
    const out: Buffer[] = [];
    const written = appendMessage(out, Opcode.Text, payload, false, null, 4);
    assert.deepEqual(
      out.map((b) => [...b]),
      [
        [0x01, 4, ...utf8('abcd')],
        [0x00, 4, ...utf8('efgh')],
        [0x80, 2, ...utf8('ij')],
      ],
    );
    assert.equal(written, 16);
  });

  it('appendMessage with RSV1 sets it on the first frame only (RFC 7692 §6)', () => {
    const out: Buffer[] = [];
    appendMessage(out, Opcode.Binary, Buffer.alloc(9), true, null, 3);
    assert.deepEqual(
      out.map((b) => b[0]),
      [0x42, 0x00, 0x80],
    );
  });

  it('appendMessage writes one frame when the payload fits in a fragment, or when no fragment size is set', () => {
    for (const fragmentSize of [0, 10, 11, 100]) {
      const out: Buffer[] = [];
      appendMessage(out, Opcode.Binary, Buffer.alloc(10, 7), false, null, fragmentSize);
      assert.deepEqual(
        Buffer.concat(out),
        concat(bytes(0x82, 10), Buffer.alloc(10, 7)),
        `fragment size ${fragmentSize}`,
      );
    }
    const empty: Buffer[] = [];
    appendMessage(empty, Opcode.Text, Buffer.alloc(0), false, null, 4);
    assert.deepEqual(Buffer.concat(empty), bytes(0x81, 0));
  });

  for (const role of ROLES) {
    it(`a fragmented message from appendMessage is reassembled by the peer's receiver (${role} receiver)`, () => {
      const payload = Buffer.alloc(100_000);
      for (let i = 0; i < payload.length; i++) payload[i] = (i * 13) & 0xff;
      const out: Buffer[] = [];
      appendMessage(out, Opcode.Binary, payload, false, role === 'server' ? new MaskKeySource() : null, 30_000);
      assert.ok(out.length >= 4, 'out.length >= 4');
      const h = makeReceiver(role, {}, true);
      h.push(Buffer.concat(out), [5, 17000, 40000]);
      const frames = h.events.filter((e) => e.type === 'frame').map((e) => (e as { frame: Frame }).frame);
      assert.deepEqual(
        frames.map((f) => [f.opcode, f.fin, f.masked, f.payload.length]),
        [
          [Opcode.Binary, false, role === 'server', 30_000],
          [Opcode.Continuation, false, role === 'server', 30_000],
          [Opcode.Continuation, false, role === 'server', 30_000],
          [Opcode.Continuation, true, role === 'server', 10_000],
        ],
      );
      const message = h.events.find((e) => e.type === 'message');
      assert.ok(
        message !== undefined && message.type === 'message' && message.data.equals(payload),
        "message !== undefined && message.type === 'message' && message.data.equals(payload)",
      );
    });
  }
});
