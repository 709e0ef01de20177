/**
 * RFC 6455 §7.4 Status Codes, on the protocol state machine (src/protocol/protocol.ts): which codes we
 * send, which received codes are accepted (and echoed) and which fail the connection, the close
 * reason (UTF-8, and what fits a 125-byte control frame, §5.5), the code the state machine fails
 * with for each kind of violation, and what `streamClosed()` then reports.
 *
 * The parsing of close payloads alone is covered in rfc6455-5.5.1-close.test.ts; here the same
 * rules are checked end to end: bytes in, close frame out.
 */
import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import { describe, it } from 'node:test';
import { ProtocolError } from '../src/protocol/errors.js';
import { InflateBudget } from '../src/protocol/inflate-budget.js';
import { bytes, concat, utf8 } from './helpers/core.js';
import { FakeCompression, Harness, OP, ROLES, closePayloadOf, everyKindOfFrame, peerOf } from './helpers/protocol.js';

/** §7.4.1 (defined), IANA (1012-1014), §7.4.2 (3000-3999 registered, 4000-4999 private). */
const SENDABLE = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999];
/** Reserved (1004-1006, 1015), unused (0-999), unassigned (1016-2999), out of range (5000+). */
const NEVER_ON_THE_WIRE = [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 6000, 65535];

/** Feed the peer's bytes and check that the connection failed with `code`: error, close frame, end. */
function assertFailedWith(
  h: Harness,
  code: number,
  options: { immediately?: boolean; error?: 'protocol' | 'other' | 'none' } = {},
): void {
  const entries = h.takeNoWakes();
  const closes = h.wire.filter((f) => f.opcode === OP.CLOSE);
  assert.equal(closes.length, 1, `one close frame, got ${JSON.stringify(entries)}`);
  assert.equal(closePayloadOf(closes[0]!).code, code, `the close frame carries ${code}: ${JSON.stringify(entries)}`);
  const closeAt = entries.findIndex((e) => e.startsWith('> close'));
  const endAt = entries.indexOf(options.immediately ? 'destroy' : 'end');
  assert.ok(
    closeAt >= 0 && endAt > closeAt,
    `the close frame, then ${options.immediately ? 'destroy' : 'end'}: ${JSON.stringify(entries)}`,
  );
  const kind = options.error ?? 'protocol';
  if (kind === 'protocol') {
    assert.equal(h.errors.length, 1);
    assert.ok(h.errors[0] instanceof ProtocolError, `a ProtocolError, got ${h.errors[0]}`);
    assert.equal((h.errors[0] as ProtocolError).closeCode, code);
  } else if (kind === 'other') {
    assert.equal(h.errors.length, 1);
    assert.ok(!(h.errors[0] instanceof ProtocolError), `not a ProtocolError: nothing the peer did, got ${h.errors[0]}`);
  } else {
    assert.equal(h.errors.length, 0);
  }
  // §7.1.7: nothing the peer sends afterwards is read, its close frame included.
  h.receive(everyKindOfFrame(h.role));
  assert.deepEqual(h.take(), []);
  const report = h.streamClosed();
  assert.equal(report.code, code, 'streamClosed() reports the code we failed with');
  assert.equal(report.wasClean, false);
}

describe('RFC 6455 §7.4.1 Defined Status Codes: what we send', () => {
  for (const role of ROLES) {
    it(`close() sends every code an endpoint may use, as given (${role})`, () => {
      for (const code of SENDABLE) {
        const h = new Harness(role);
        h.close(code, `code ${code}`);
        assert.deepEqual(h.frames(), [`close ${code} "code ${code}"`]);
      }
    });

    it(`"1005 is a reserved value and MUST NOT be set as a status code in a Close control frame by an endpoint": close(1005) sends an empty close frame (${role})`, () => {
      const h = new Harness(role);
      h.close(1005, '');
      assert.deepEqual(h.frames(), ['close']);
      assert.equal(h.wire[0]!.payload.length, 0);
    });

    it(`an empty close frame received is answered with an empty one, where 1005 would be (${role})`, () => {
      const h = new Harness(role);
      h.receive(peerOf(role).close());
      assert.deepEqual(h.frames(), ['close']);
      assert.deepEqual(h.streamClosed(), { code: 1005, reason: '', wasClean: true });
    });

    it(`1006 and 1015 ("MUST NOT be set as a status code in a Close control frame"), 1004 (reserved) and codes out of range: close() refuses them and writes nothing (${role})`, () => {
      for (const code of [1004, 1006, 1015, 0, 999, 1016, 2999, 5000, 65535]) {
        const h = new Harness(role);
        assert.throws(() => h.close(code, ''), RangeError, `close(${code})`);
        h.write();
        assert.deepEqual(h.frames(), [], `nothing written for close(${code})`);
      }
    });

    it(`a close() refused for its code leaves the connection OPEN and able to close properly (${role})`, () => {
      const h = new Harness(role);
      assert.throws(() => h.close(1006, ''), RangeError);
      assert.equal(h.protocol.canSend, true);
      h.close(1000, 'properly');
      assert.deepEqual(h.frames(), ['close 1000 "properly"']);
    });

    it(`1006 is for the application only: a connection lost without close frames reports it, and no frame carries it (${role})`, () => {
      const h = new Harness(role, { options: { pingInterval: 100, pongTimeout: 300 } });
      h.timeout(100).timeout(200).timeout(300);
      assert.equal(h.destroyed, true);
      assert.deepEqual(h.frames(), ['ping ""', 'ping ""'], 'no close frame at all');
      assert.equal(h.streamClosed().code, 1006);
    });
  }
});

describe('RFC 6455 §7.4.1 and §7.4.2: codes received', () => {
  for (const role of ROLES) {
    for (const code of SENDABLE) {
      it(`${code} is accepted and echoed with its reason; the close reports it, clean (${role})`, () => {
        const h = new Harness(role);
        h.receive(peerOf(role).close(code, 'why'));
        assert.deepEqual(h.frames(), [`close ${code} "why"`]);
        assert.equal(h.errors.length, 0);
        assert.deepEqual(h.streamClosed(), { code, reason: 'why', wasClean: true });
      });
    }

    for (const code of NEVER_ON_THE_WIRE) {
      it(`${code} received fails the connection with 1002 (${role})`, () => {
        // §7.4.1: 1004 reserved; 1005, 1006, 1015 "MUST NOT be set ... by an endpoint".
        // §7.4.2: "Status codes in the range 0-999 are not used"; 1000-2999 are the protocol's
        // (nothing past 1014 is defined); nothing exists from 5000 on.
        const h = new Harness(role);
        h.receive(peerOf(role).close(code, 'bad'));
        assertFailedWith(h, 1002);
      });
    }

    it(`a 1-byte close payload fails with 1002: "the first two bytes of the body MUST be a 2-byte unsigned integer" (${role})`, () => {
      const h = new Harness(role);
      h.receive(peerOf(role).frame({ opcode: OP.CLOSE, payload: bytes(0x03) }));
      assertFailedWith(h, 1002);
    });

    it(`codes are read in network byte order: 0x03e8 is 1000, 0xe803 is not a code (${role})`, () => {
      const h = new Harness(role);
      h.receive(peerOf(role).frame({ opcode: OP.CLOSE, payload: bytes(0x03, 0xe8) }));
      assert.deepEqual(h.frames(), ['close 1000']);
      const g = new Harness(role);
      g.receive(peerOf(role).frame({ opcode: OP.CLOSE, payload: bytes(0xe8, 0x03) }));
      assertFailedWith(g, 1002);
    });
  }
});

describe('RFC 6455 §5.5.1 and §8.1: the close reason', () => {
  const INVALID_REASONS: [string, Buffer][] = [
    ['a lone continuation byte', bytes(0x80)],
    ['a truncated 3-byte sequence', bytes(0xe2, 0x82)],
    ['an overlong encoding of "/"', bytes(0xc0, 0xaf)],
    ['a UTF-16 surrogate', bytes(0xed, 0xa0, 0x80)],
    ['a code point past U+10FFFF', bytes(0xf4, 0x90, 0x80, 0x80)],
    ['0xff', bytes(0x61, 0xff)],
  ];
  for (const role of ROLES) {
    for (const [what, reason] of INVALID_REASONS) {
      it(`a reason with ${what} is not "UTF-8-encoded data": fail with 1007 (${role})`, () => {
        const h = new Harness(role);
        h.receive(peerOf(role).close(1000, reason));
        assertFailedWith(h, 1007);
      });
    }

    it(`a 123-byte reason (a 125-byte payload, the most §5.5 allows) is accepted and echoed byte for byte (${role})`, () => {
      const reason = 'é'.repeat(61) + 'x'; // 123 bytes, multi-byte characters
      assert.equal(Buffer.byteLength(reason), 123);
      const h = new Harness(role);
      h.receive(peerOf(role).close(4000, reason));
      assert.deepEqual(closePayloadOf(h.wire[0]!).reason, utf8(reason));
      assert.equal(h.wire[0]!.payload.length, 125);
      assert.deepEqual(h.streamClosed(), { code: 4000, reason, wasClean: true });
    });

    it(`a 124-byte reason makes a 126-byte control frame: "All control frames MUST have a payload length of 125 bytes or less": 1002 (${role})`, () => {
      const h = new Harness(role);
      h.receive(peerOf(role).close(1000, 'x'.repeat(124)));
      assertFailedWith(h, 1002);
    });

    it(`the reason of a close frame we fail with is cut to fit 125 bytes, on a character boundary (${role})`, () => {
      const h = new Harness(role);
      const long = '€'.repeat(60); // 180 bytes
      h.fail(1011, long, null);
      const frame = h.wire[0]!;
      assert.ok(frame.payload.length <= 125, `payload of ${frame.payload.length} bytes`);
      const reason = closePayloadOf(frame).reason;
      assert.ok(isUtf8(reason), 'still valid UTF-8');
      assert.equal(reason.toString(), '€'.repeat(41), 'as many whole characters as fit in 123 bytes');
    });

    it(`close() refuses a reason longer than 123 bytes and writes nothing (${role})`, () => {
      const h = new Harness(role);
      assert.throws(() => h.close(1000, 'x'.repeat(124)), RangeError);
      h.write();
      assert.deepEqual(h.frames(), []);
    });

    it(`a reason needs a code before it (§5.5.1 "Following the 2-byte integer, the body MAY contain ... /reason/"): close(undefined, 'why') sends an empty close frame (${role})`, () => {
      const h = new Harness(role);
      h.close(undefined, 'why');
      assert.deepEqual(h.frames(), ['close']);
    });
  }
});

describe('RFC 6455 §7.4.1: the code the state machine fails with, for each kind of violation', () => {
  for (const role of ROLES) {
    const p = peerOf(role);
    // "1002 indicates that an endpoint is terminating the connection due to a protocol error."
    const PROTOCOL_ERRORS: [string, Buffer][] = [
      ['RSV2 set (§5.2)', p.frame({ opcode: OP.TEXT, payload: 'x', rsv2: true })],
      ['RSV3 set (§5.2)', p.frame({ opcode: OP.TEXT, payload: 'x', rsv3: true })],
      ['RSV1 set with no extension (§5.2)', p.frame({ opcode: OP.TEXT, payload: 'x', rsv1: true })],
      ['reserved data opcode 0x3 (§5.2)', p.frame({ opcode: 0x3 })],
      ['reserved control opcode 0xB (§5.2)', p.frame({ opcode: 0xb })],
      [role === 'server' ? 'an unmasked frame (§5.1)' : 'a masked frame (§5.1)', p.wronglyMasked()],
      ['a fragmented ping (§5.5)', p.frame({ opcode: OP.PING, payload: 'x', fin: false })],
      ['a ping of 126 bytes (§5.5)', p.ping(Buffer.alloc(126))],
      ['a continuation frame with no message open (§5.4)', p.continuation('x')],
      ['a text frame inside a fragmented message (§5.4)', concat(p.text('a', false), p.text('b'))],
      [
        'a 64-bit length with its top bit set (§5.2)',
        p.frame({ opcode: OP.BINARY, lengthEncoding: 64, declaredLength: 2n ** 63n }),
      ],
    ];
    for (const [what, input] of PROTOCOL_ERRORS) {
      it(`${what}: 1002 (${role})`, () => {
        const h = new Harness(role);
        h.receive(input);
        assertFailedWith(h, 1002);
      });
    }

    // "1007 indicates that an endpoint is terminating the connection because it has received data
    // within a message that was not consistent with the type of the message (e.g., non-UTF-8 [RFC3629]
    // data within a text message)."
    it(`invalid UTF-8 in a text message: 1007 (${role})`, () => {
      const h = new Harness(role);
      h.receive(p.text(bytes(0x68, 0x69, 0xff)));
      assertFailedWith(h, 1007);
    });

    it(`a fragmented text message that ends inside a UTF-8 sequence: 1007 (${role})`, () => {
      const h = new Harness(role);
      h.receive(concat(p.text('caf', false), p.continuation(bytes(0xc3))));
      assertFailedWith(h, 1007);
    });

    // "1009 indicates that an endpoint is terminating the connection because it has received a
    // message that is too big for it to process."
    it(`a message over maxMessageSize, in fragments: 1009 (${role})`, () => {
      const h = new Harness(role, { options: { maxMessageSize: 10 } });
      h.receive(concat(p.binary(Buffer.alloc(6), false), p.continuation(Buffer.alloc(6))));
      assertFailedWith(h, 1009);
    });

    it(`a frame over maxFramePayload: 1009, before its payload arrives (${role})`, () => {
      const h = new Harness(role, { options: { maxFramePayload: 100 } });
      h.receive(p.binary(Buffer.alloc(101)).subarray(0, 8));
      assertFailedWith(h, 1009);
    });

    // IANA registry: 1013 "Try Again Later". Not the peer's fault: the process holds too much
    // inflated data (src/protocol/inflate-budget.ts).
    it(`a compressed message that would take the process past its inflate budget: 1013 (${role})`, () => {
      const h = new Harness(role, { compression: new FakeCompression(), inflateBudget: new InflateBudget(8) });
      h.receive(p.frame({ opcode: OP.BINARY, payload: Buffer.alloc(9), rsv1: true }));
      assertFailedWith(h, 1013);
    });

    // "1011 indicates that a server is terminating the connection because it encountered an
    // unexpected condition that prevented it from fulfilling the request." Compressing our own
    // message failed: nothing the peer did.
    it(`zlib fails to compress a message we send: 1011; the messages waiting are dropped, their callbacks failed (${role})`, () => {
      const compression = new FakeCompression();
      const h = new Harness(role, { compression });
      // The peer said something first: see rfc6455-7.1-closing.test.ts for a connection that had
      // received nothing when it failed.
      h.receive(p.text('hi'));
      h.take();
      const results: string[] = [];
      h.send('first', { compress: true, callback: (error) => results.push(error === undefined ? 'sent' : 'failed') });
      h.send('second', { compress: true, callback: (error) => results.push(error === undefined ? 'sent' : 'failed') });
      compression.break();
      h.write();
      assert.deepEqual(
        h.log.filter((e) => e.startsWith('sendFailed')),
        ['sendFailed 2'],
      );
      assert.equal(h.failedCallbacks.length, 2);
      assert.deepEqual(results, [], 'no callback reported success');
      assertFailedWith(h, 1011, { error: 'other' });
      assert.match(h.errors[0]!.message, /compress/);
    });

    // "1008 indicates that an endpoint is terminating the connection because it has received a
    // message that violates its policy." The driver uses it for a peer too slow to read.
    it(`fail(1008, ..., immediately): a close frame with 1008, then the stream destroyed, not ended (${role})`, () => {
      const h = new Harness(role);
      h.receive(p.text('hi'));
      h.take();
      h.fail(1008, 'peer too slow', null, true);
      assert.equal(h.ended, false);
      assertFailedWith(h, 1008, { immediately: true, error: 'none' });
    });
  }
});
