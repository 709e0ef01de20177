import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CloseCode, MAX_CLOSE_REASON_BYTES, Opcode, isValidWireCloseCode } from '../src/protocol/constants.js';
import { buildClosePayload, parseClosePayload } from '../src/protocol/close.js';
import { ProtocolError } from '../src/protocol/errors.js';
import { encodeFrame } from '../src/protocol/frame.js';
import { Receiver } from '../src/protocol/receiver.js';
import {
  ROLES,
  Collector,
  assertFailed,
  assertSilentAfterwards,
  bytes,
  close,
  concat,
  expectViolation,
  frameFor,
  makeReceiver,
  ping,
  text,
  types,
  utf8,
  receiverOptions,
} from './helpers/core.js';

const INVALID_RANGES: [number, number][] = [
  [0, 999],
  [1004, 1004],
  [1005, 1005],
  [1006, 1006],
  [1015, 1015],
  [1016, 2999],
  [5000, 5000],
  [65535, 65535],
];
const VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999];

/** Run `body` with stack traces off: tens of thousands of ProtocolErrors are cheap without them. */
function withoutStackTraces(body: () => void): void {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    body();
  } finally {
    Error.stackTraceLimit = limit;
  }
}

function codeBytes(code: number): Buffer {
  return bytes(code >>> 8, code & 0xff);
}

function closeFrame(role: 'server' | 'client', payload: Uint8Array): Buffer {
  return frameFor(role, { opcode: Opcode.Close, payload });
}

function parseError(payload: Uint8Array): ProtocolError {
  try {
    parseClosePayload(payload);
  } catch (error) {
    assert.ok(error instanceof ProtocolError, 'error instanceof ProtocolError');
    return error;
  }
  assert.fail(`parseClosePayload accepted ${Buffer.from(payload).toString('hex')}`);
}

describe('RFC 6455 §5.5.1 Close: parseClosePayload', () => {
  it('an empty close payload means "no status code": the application sees 1005 (§7.1.5) and an empty reason', () => {
    assert.deepEqual(parseClosePayload(Buffer.alloc(0)), { code: CloseCode.NoStatusReceived, reason: '' });
  });

  it('a 1-byte close payload is a protocol error (1002): "the first two bytes of the body MUST be a 2-byte unsigned integer"', () => {
    const error = parseError(bytes(0x03));
    assert.equal(error.violation, 'CloseFrameTooShort');
    assert.equal(error.closeCode, CloseCode.ProtocolError);
  });

  it('the code is read in network byte order and the rest is the reason', () => {
    assert.deepEqual(parseClosePayload(concat(codeBytes(1000), utf8('bye'))), { code: 1000, reason: 'bye' });
    assert.deepEqual(parseClosePayload(codeBytes(4321)), { code: 4321, reason: '' });
    assert.deepEqual(parseClosePayload(concat(codeBytes(3000), utf8('ünïcødé €𝄞'))), {
      code: 3000,
      reason: 'ünïcødé €𝄞',
    });
  });

  for (const [low, high] of INVALID_RANGES) {
    it(`close code${low === high ? ` ${low}` : `s ${low}-${high}`} may not appear on the wire: 1002 (§7.4)`, () => {
      for (let code = low; code <= high; code++) {
        const error = parseError(concat(codeBytes(code), utf8('r')));
        assert.equal(error.violation, 'InvalidCloseCode', `code ${code}`);
        assert.equal(error.closeCode, CloseCode.ProtocolError, `code ${code}`);
      }
    });
  }

  it('every close code defined by the RFC or IANA, or in the 3000-4999 ranges, is accepted', () => {
    for (const code of [...VALID_CODES, 3001, 3999, 4000, 4001]) {
      assert.deepEqual(parseClosePayload(codeBytes(code)), { code, reason: '' }, `code ${code}`);
    }
  });

  it('exhaustively, over all 65,536 codes, exactly 1000-1003, 1007-1014 and 3000-4999 are accepted', () => {
    let accepted = 0;
    withoutStackTraces(() => {
      for (let code = 0; code <= 0xffff; code++) {
        const valid =
          (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
        assert.equal(isValidWireCloseCode(code), valid, `isValidWireCloseCode(${code})`);
        let ok = true;
        try {
          parseClosePayload(codeBytes(code));
        } catch {
          ok = false;
        }
        if (ok !== valid) assert.fail(`code ${code}: accepted ${ok}, expected ${valid}`);
        if (ok) accepted++;
      }
    });
    assert.equal(accepted, 4 + 8 + 2000);
  });

  it('a reason that is not valid UTF-8 is 1007 (§5.5.1: "the body ... MUST be UTF-8-encoded")', () => {
    for (const reason of [
      bytes(0xff),
      bytes(0xc0, 0x80),
      bytes(0xed, 0xa0, 0x80),
      bytes(0x61, 0xe2, 0x82),
      bytes(0xf4, 0x90, 0x80, 0x80),
    ]) {
      const error = parseError(concat(codeBytes(1000), reason));
      assert.equal(error.violation, 'InvalidCloseReason', reason.toString('hex'));
      assert.equal(error.closeCode, CloseCode.InvalidPayload);
    }
  });

  it('a 123-byte reason (the most a 125-byte control frame holds) is accepted', () => {
    const reason = 'r'.repeat(123);
    assert.deepEqual(parseClosePayload(concat(codeBytes(1000), utf8(reason))), { code: 1000, reason });
  });
});

describe('RFC 6455 §5.5.1 Close: buildClosePayload', () => {
  it('no code, or 1005, gives an empty payload (1005 "MUST NOT be set as a status code in a Close control frame")', () => {
    assert.equal(buildClosePayload().length, 0);
    assert.equal(buildClosePayload(undefined, '').length, 0);
    assert.equal(buildClosePayload(CloseCode.NoStatusReceived).length, 0);
  });

  it('a reason without a code is refused', () => {
    assert.throws(() => buildClosePayload(undefined, 'why'), TypeError);
    assert.throws(() => buildClosePayload(CloseCode.NoStatusReceived, 'why'), TypeError);
  });

  it('writes the code as a 2-byte big-endian integer followed by the UTF-8 reason', () => {
    assert.deepEqual([...buildClosePayload(1000)], [0x03, 0xe8]);
    assert.deepEqual([...buildClosePayload(4999, 'é')], [0x13, 0x87, 0xc3, 0xa9]);
  });

  it('refuses codes that may not be sent: 0-999, 1004, 1006, 1015, 1016-2999, 5000+, non-integers', () => {
    for (const code of [0, 1, 999, 1004, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535, 65536, -1, 1000.5, NaN]) {
      assert.throws(() => buildClosePayload(code), RangeError, `code ${code}`);
    }
  });

  it('accepts every code that may be sent', () => {
    for (const code of [...VALID_CODES, 3500, 4000]) {
      assert.deepEqual(parseClosePayload(buildClosePayload(code, 'x')), { code, reason: 'x' });
    }
  });

  it('a 123-byte reason is accepted, a 124-byte one refused (counted in UTF-8 bytes, not characters)', () => {
    assert.equal(MAX_CLOSE_REASON_BYTES, 123);
    assert.equal(buildClosePayload(1000, 'a'.repeat(123)).length, 125);
    assert.throws(() => buildClosePayload(1000, 'a'.repeat(124)), RangeError);
    assert.equal(buildClosePayload(1000, '€'.repeat(41)).length, 125); // 41 x 3 bytes
    assert.throws(() => buildClosePayload(1000, '€'.repeat(41) + 'a'), RangeError); // 124 bytes, 42 characters
    assert.throws(() => buildClosePayload(1000, 'é'.repeat(62)), RangeError); // 124 bytes, 62 characters
  });

  it('a payload built by buildClosePayload round-trips through a receiver', () => {
    for (const role of ROLES) {
      const h = makeReceiver(role);
      h.push(frameFor(role, { opcode: Opcode.Close, payload: buildClosePayload(1001, 'server restart ♻') }));
      assert.deepEqual(h.events, [{ type: 'close', code: 1001, reason: 'server restart ♻' }]);
    }
  });
});

describe('RFC 6455 §5.5.1 Close: the receiver', () => {
  for (const role of ROLES) {
    it(`a close frame with no payload is reported as 1005 with an empty reason (${role})`, () => {
      const h = makeReceiver(role);
      h.push(close(role));
      assert.deepEqual(h.events, [{ type: 'close', code: 1005, reason: '' }]);
    });

    it(`a close frame's code and reason are reported (${role})`, () => {
      const h = makeReceiver(role);
      h.push(close(role, 1000, 'normal closure'), 1);
      assert.deepEqual(h.events, [{ type: 'close', code: 1000, reason: 'normal closure' }]);
    });

    it(`a 1-byte close payload fails with 1002 (${role})`, () => {
      expectViolation(role, closeFrame(role, bytes(0x03)), 'CloseFrameTooShort', CloseCode.ProtocolError);
    });

    for (const [low, high] of INVALID_RANGES) {
      it(`invalid close code${low === high ? ` ${low}` : `s ${low}-${high}`} fail${low === high ? 's' : ''} with 1002 (${role})`, () => {
        const step = high - low > 100 ? 7 : 1;
        for (let code = low; code <= high; code += step) {
          expectViolation(role, closeFrame(role, codeBytes(code)), 'InvalidCloseCode', CloseCode.ProtocolError);
        }
        expectViolation(role, closeFrame(role, codeBytes(high)), 'InvalidCloseCode', CloseCode.ProtocolError);
      });
    }

    it(`valid close codes 1000-1003, 1007-1014, 3000 and 4999 are accepted (${role})`, () => {
      for (const code of VALID_CODES) {
        const h = makeReceiver(role);
        h.push(close(role, code, 'ok'));
        assert.deepEqual(h.events, [{ type: 'close', code, reason: 'ok' }], `code ${code}`);
      }
    });

    it(`a close reason that is not valid UTF-8 fails with 1007 (${role})`, () => {
      expectViolation(
        role,
        closeFrame(role, concat(codeBytes(1000), bytes(0x80))),
        'InvalidCloseReason',
        CloseCode.InvalidPayload,
      );
      expectViolation(
        role,
        closeFrame(role, concat(codeBytes(1000), utf8('ok'), bytes(0xf0, 0x9f))),
        'InvalidCloseReason',
        CloseCode.InvalidPayload,
      );
      expectViolation(
        role,
        closeFrame(role, concat(codeBytes(1000), bytes(0xed, 0xbf, 0xbf))),
        'InvalidCloseReason',
        CloseCode.InvalidPayload,
      );
    });

    it(`a close frame with a 123-byte reason (125-byte payload) is accepted (${role})`, () => {
      const h = makeReceiver(role);
      h.push(close(role, 1000, 'x'.repeat(123)));
      assert.deepEqual(h.events, [{ type: 'close', code: 1000, reason: 'x'.repeat(123) }]);
    });

    it(`nothing is parsed after a close frame, in the same chunk or later (${role})`, () => {
      const h = makeReceiver(role);
      h.push(
        concat(
          text(role, 'before'),
          close(role, 1000),
          text(role, 'after'),
          ping(role, 'after'),
          bytes(0xff, 0xff, 0xff),
        ),
      );
      assert.deepEqual(types(h.events), ['message', 'close']);
      assert.equal(h.receiver.finished, true);
      assertSilentAfterwards(h);
      h.push(bytes(0x83, 0x00, 0xff)); // a reserved opcode: not even an error is reported
      assert.deepEqual(types(h.events), ['message', 'close']);
    });

    it(`nothing is parsed after a close frame pushed byte by byte (${role})`, () => {
      const h = makeReceiver(role);
      h.push(concat(close(role, 1001), text(role, 'after'), bytes(0x8f, 0x00)), 1);
      assert.deepEqual(h.events, [{ type: 'close', code: 1001, reason: '' }]);
    });
  }

  it('a close frame that fails validation is not reported as a close', () => {
    const h = makeReceiver('server');
    h.push(concat(text('server', 'x'), closeFrame('server', codeBytes(1005))));
    assert.deepEqual(types(h.events), ['message', 'error']);
    assertFailed(h, 'InvalidCloseCode', CloseCode.ProtocolError);
  });

  it('exhaustively, a receiver accepts exactly the valid codes, over all 65,536', () => {
    const key = bytes(1, 2, 3, 4);
    withoutStackTraces(() => {
      for (let code = 0; code <= 0xffff; code++) {
        const collector = new Collector();
        const receiver = new Receiver(receiverOptions('server'), collector);
        receiver.push(encodeFrame({ opcode: Opcode.Close, payload: codeBytes(code), maskKey: key }));
        const e = collector.events;
        const valid = isValidWireCloseCode(code);
        if (e.length !== 1 || e[0]!.type !== (valid ? 'close' : 'error'))
          assert.fail(`code ${code}: ${JSON.stringify(types(e))}`);
        if (e[0]!.type === 'error' && (e[0].error.violation !== 'InvalidCloseCode' || e[0].error.closeCode !== 1002)) {
          assert.fail(`code ${code}: ${e[0].error.violation}`);
        }
      }
    });
  });
});
