import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CloseCode, Opcode } from '../src/protocol/constants.js';
import { Utf8Validator, isValidUtf8 } from '../src/protocol/utf8.js';
import {
  ROLES,
  assertFailed,
  binary,
  bytes,
  concat,
  continuation,
  expectViolation,
  frameFor,
  makeReceiver,
  onlyMessage,
  ping,
  text,
  types,
  utf8,
} from './helpers/core.js';
import { rawRequest, startServer } from './helpers/library.js';

const INVALID_PAYLOAD = CloseCode.InvalidPayload;

/** Validate in one write: the failing index (or -1) and whether the input ended on a code point boundary. */
function check(data: Uint8Array): { index: number; complete: boolean } {
  const v = new Utf8Validator();
  const index = v.write(data);
  return { index, complete: v.complete };
}

/** The reference: WHATWG UTF-8 decoding in fatal mode, streamed byte by byte. */
function reference(data: Uint8Array): { index: number; complete: boolean } {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  for (let i = 0; i < data.length; i++) {
    try {
      decoder.decode(data.subarray(i, i + 1), { stream: true });
    } catch {
      return { index: i, complete: false };
    }
  }
  try {
    decoder.decode();
    return { index: -1, complete: true };
  } catch {
    return { index: -1, complete: false };
  }
}

const VALID: [string, number[]][] = [
  ['U+0000', [0x00]],
  ['U+007F', [0x7f]],
  ['U+0080', [0xc2, 0x80]],
  ['U+07FF', [0xdf, 0xbf]],
  ['U+0800', [0xe0, 0xa0, 0x80]],
  ['U+0FFF', [0xe0, 0xbf, 0xbf]],
  ['U+1000', [0xe1, 0x80, 0x80]],
  ['U+CFFF', [0xec, 0xbf, 0xbf]],
  ['U+D000', [0xed, 0x80, 0x80]],
  ['U+D7FF (last before the surrogates)', [0xed, 0x9f, 0xbf]],
  ['U+E000 (first after the surrogates)', [0xee, 0x80, 0x80]],
  ['U+FEFF (BOM)', [0xef, 0xbb, 0xbf]],
  ['U+FFFD', [0xef, 0xbf, 0xbd]],
  ['U+FFFF', [0xef, 0xbf, 0xbf]],
  ['U+10000', [0xf0, 0x90, 0x80, 0x80]],
  ['U+3FFFF', [0xf0, 0xbf, 0xbf, 0xbf]],
  ['U+40000', [0xf1, 0x80, 0x80, 0x80]],
  ['U+FFFFF', [0xf3, 0xbf, 0xbf, 0xbf]],
  ['U+100000', [0xf4, 0x80, 0x80, 0x80]],
  ['U+10FFFF (the last code point)', [0xf4, 0x8f, 0xbf, 0xbf]],
];

/** [description, bytes, index of the first byte that proves the input invalid]. */
const INVALID: [string, number[], number][] = [
  ['overlong U+0000 in 2 bytes C0 80', [0xc0, 0x80], 0],
  ['overlong "/" in 2 bytes C0 AF', [0xc0, 0xaf], 0],
  ['overlong U+007F in 2 bytes C1 BF', [0xc1, 0xbf], 0],
  ['overlong U+0000 in 3 bytes E0 80 80', [0xe0, 0x80, 0x80], 1],
  ['overlong U+07FF in 3 bytes E0 9F BF', [0xe0, 0x9f, 0xbf], 1],
  ['overlong U+0000 in 4 bytes F0 80 80 80', [0xf0, 0x80, 0x80, 0x80], 1],
  ['overlong U+FFFF in 4 bytes F0 8F BF BF', [0xf0, 0x8f, 0xbf, 0xbf], 1],
  ['high surrogate U+D800 ED A0 80', [0xed, 0xa0, 0x80], 1],
  ['high surrogate U+DBFF ED AF BF', [0xed, 0xaf, 0xbf], 1],
  ['low surrogate U+DC00 ED B0 80', [0xed, 0xb0, 0x80], 1],
  ['low surrogate U+DFFF ED BF BF', [0xed, 0xbf, 0xbf], 1],
  ['surrogate pair in CESU-8 ED A0 BD ED B2 A9', [0xed, 0xa0, 0xbd, 0xed, 0xb2, 0xa9], 1],
  ['U+110000, above U+10FFFF: F4 90 80 80', [0xf4, 0x90, 0x80, 0x80], 1],
  ['F4 BF BF BF, above U+10FFFF', [0xf4, 0xbf, 0xbf, 0xbf], 1],
  ['lone continuation byte 80', [0x80], 0],
  ['lone continuation byte BF', [0xbf], 0],
  ['continuation byte after a complete sequence', [0xc3, 0xa9, 0x80], 2],
  ['2-byte sequence interrupted by ASCII', [0xc3, 0x41], 1],
  ['3-byte sequence interrupted by ASCII', [0xe2, 0x82, 0x41], 2],
  ['4-byte sequence interrupted by a new lead byte', [0xf0, 0x9f, 0xf0, 0x9f, 0x98, 0x80], 2],
  ['invalid byte after valid text', [...utf8('κόσμε'), 0xff], 10],
  ['FE', [0xfe], 0],
  ['FF', [0xff], 0],
  ['5-byte form F8 88 80 80 80', [0xf8, 0x88, 0x80, 0x80, 0x80], 0],
  ['6-byte form FC 84 80 80 80 80', [0xfc, 0x84, 0x80, 0x80, 0x80, 0x80], 0],
];

const TRUNCATED: [string, number[]][] = [
  ['a 2-byte lead at the end', [0x61, 0xc3]],
  ['a 3-byte sequence missing 1 byte', [0xe2, 0x82]],
  ['a 3-byte sequence missing 2 bytes', [0xe2]],
  ['a 4-byte sequence missing 1 byte', [0xf0, 0x9f, 0x98]],
  ['a 4-byte sequence missing 3 bytes', [0xf4]],
  ['valid text then a cut 4-byte sequence', [...utf8('hello'), 0xf0, 0x9f]],
];

describe('RFC 6455 §8.1, RFC 3629: the UTF-8 validator', () => {
  it('accepts every boundary code point of every sequence length', () => {
    for (const [name, seq] of VALID) {
      assert.deepEqual(check(Uint8Array.from(seq)), { index: -1, complete: true }, name);
    }
    assert.deepEqual(check(Buffer.concat(VALID.map(([, seq]) => Buffer.from(seq)))), { index: -1, complete: true });
    assert.deepEqual(check(utf8('Hello-µ@ßöäüàá-UTF-8!! κόσμε 𝄞 😀 ∮ E⋅da = Q')), { index: -1, complete: true });
    assert.deepEqual(check(new Uint8Array(0)), { index: -1, complete: true });
  });

  for (const [name, seq, index] of INVALID) {
    it(`rejects ${name}, at byte ${index}`, () => {
      const data = Uint8Array.from(seq);
      assert.equal(check(data).index, index);
      assert.equal(reference(data).index, index, 'TextDecoder agrees');
      assert.equal(isValidUtf8(data), false);
    });
  }

  for (let lead = 0xf5; lead <= 0xff; lead++) {
    it(`rejects the byte 0x${lead.toString(16).toUpperCase()}, which never appears in UTF-8`, () => {
      assert.equal(check(bytes(0x41, lead, 0x80, 0x80, 0x80)).index, 1);
    });
  }

  for (const [name, seq] of TRUNCATED) {
    it(`flags ${name} as incomplete (no invalid byte yet, but not complete)`, () => {
      assert.deepEqual(check(Uint8Array.from(seq)), { index: -1, complete: false });
      assert.equal(isValidUtf8(Uint8Array.from(seq)), false);
    });
  }

  it('agrees with TextDecoder (fatal) on every byte, every non-ASCII lead with every second byte, and every 3/4-byte lead with every second byte', () => {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0; // TextDecoder throws for most of these inputs: skip the stack traces
    try {
      const same = (data: Uint8Array) => {
        const got = check(data);
        const want = reference(data);
        if (got.index !== want.index || got.complete !== want.complete)
          assert.deepEqual(got, want, Buffer.from(data).toString('hex'));
      };
      for (let a = 0; a < 256; a++) {
        same(bytes(a));
        if (a < 0x80) continue; // an ASCII byte then b is the same as b alone
        for (let b = 0; b < 256; b++) {
          same(bytes(a, b));
          if (a >= 0xe0) same(bytes(a, b, 0x80, 0x80));
        }
      }
    } finally {
      Error.stackTraceLimit = limit;
    }
  });

  it('carries a code point split across writes, at every split position', () => {
    for (const [name, seq] of VALID) {
      for (let cut = 0; cut <= seq.length; cut++) {
        const v = new Utf8Validator();
        assert.equal(v.write(Uint8Array.from(seq.slice(0, cut))), -1);
        assert.equal(v.complete, cut === seq.length || cut === 0, `${name} after ${cut} bytes`);
        assert.equal(v.write(Uint8Array.from(seq.slice(cut))), -1);
        assert.equal(v.complete, true, name);
      }
    }
  });

  it('reports the index within the array passed, honouring start and end', () => {
    const data = concat(utf8('abcdef'), bytes(0xe2, 0x82, 0xac, 0xed, 0xa0, 0x80), utf8('xyz'));
    const v = new Utf8Validator();
    assert.equal(v.write(data, 0, 7), -1);
    assert.equal(v.complete, false);
    assert.equal(v.write(data, 7, 13), 10, 'ED A0: the A0 at index 10 of the array');
    const split = new Utf8Validator();
    assert.equal(split.write(data.subarray(0, 10)), -1);
    assert.equal(split.write(data.subarray(10)), 0, 'index 0 of the chunk passed');
  });

  it('stays failed once it has failed (returns the start of every later write) until reset', () => {
    const v = new Utf8Validator();
    assert.equal(v.write(bytes(0xff)), 0);
    assert.equal(v.complete, false);
    assert.equal(v.write(utf8('fine')), 0);
    assert.equal(v.write(utf8('fine'), 2, 4), 2);
    v.reset();
    assert.equal(v.write(utf8('fine')), -1);
    assert.equal(v.complete, true);
  });

  it('reset() drops a partial code point', () => {
    const v = new Utf8Validator();
    v.write(bytes(0xe2, 0x82));
    v.reset();
    assert.equal(v.complete, true);
    assert.equal(v.write(bytes(0xac)), 0, 'a continuation byte is now unexpected');
  });

  describe('inputs long enough for the native fast path (256 bytes and more)', () => {
    const ascii = (n: number) => Buffer.alloc(n, 0x61);
    it('accepts long valid input mixing every sequence length', () => {
      const long = utf8('aé€😀'.repeat(500));
      assert.deepEqual(check(long), { index: -1, complete: true });
    });

    it('reports the exact index of an invalid byte deep in a long input', () => {
      for (const [name, seq, index] of INVALID) {
        for (const prefix of [255, 256, 300, 1000]) {
          const data = concat(ascii(prefix), Buffer.from(seq), ascii(300));
          assert.equal(check(data).index, prefix + index, `${name} after ${prefix} bytes`);
        }
      }
    });

    it('carries a code point cut at the end of a long chunk into the next one', () => {
      for (const [name, seq] of VALID) {
        for (let cut = 1; cut < seq.length; cut++) {
          const v = new Utf8Validator();
          assert.equal(v.write(concat(ascii(400), Buffer.from(seq.slice(0, cut)))), -1, name);
          assert.equal(v.complete, false);
          assert.equal(v.write(concat(Buffer.from(seq.slice(cut)), ascii(400))), -1, name);
          assert.equal(v.complete, true, name);
        }
      }
    });

    it('flags a long input that ends inside a code point as incomplete, and one that ends in a bad sequence as invalid', () => {
      for (const [name, seq] of TRUNCATED) {
        assert.deepEqual(check(concat(ascii(500), Buffer.from(seq))), { index: -1, complete: false }, name);
      }
      assert.equal(check(concat(ascii(500), bytes(0x80, 0x80, 0x80, 0x80))).index, 500);
      assert.equal(check(concat(ascii(500), bytes(0xf0, 0x80, 0x80))).index, 501);
      assert.equal(check(concat(ascii(500), bytes(0xed, 0xa0))).index, 501);
    });
  });
});

describe('RFC 6455 §8.1 "When an endpoint is to interpret a byte stream as UTF-8 but finds that the byte stream is not ... a valid UTF-8 stream, that endpoint MUST _Fail the WebSocket Connection_"', () => {
  for (const role of ROLES) {
    it(`a text message with any invalid sequence fails with 1007 (${role})`, () => {
      for (const [name, seq] of INVALID) {
        const h = expectViolation(
          role,
          text(role, concat(utf8('ok '), Buffer.from(seq), utf8(' tail'))),
          'InvalidUtf8',
          INVALID_PAYLOAD,
        );
        assert.deepEqual(types(h.events), ['error'], name);
      }
    });

    it(`bytes F5..FF and C0/C1 in a text message fail with 1007 (${role})`, () => {
      for (const b of [0xc0, 0xc1, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff]) {
        expectViolation(role, text(role, bytes(b, 0x80, 0x80, 0x80)), 'InvalidUtf8', INVALID_PAYLOAD);
      }
    });

    it(`a text message that ends inside a code point fails with 1007 (${role})`, () => {
      for (const [, seq] of TRUNCATED) {
        expectViolation(role, text(role, Buffer.from(seq)), 'InvalidUtf8', INVALID_PAYLOAD);
        expectViolation(
          role,
          concat(text(role, 'start ', false), continuation(role, Buffer.from(seq))),
          'InvalidUtf8',
          INVALID_PAYLOAD,
        );
        expectViolation(
          role,
          concat(text(role, Buffer.from(seq), false), continuation(role, '')),
          'InvalidUtf8',
          INVALID_PAYLOAD,
        );
      }
    });

    it(`a text message with every boundary code point is delivered intact (${role})`, () => {
      const payload = Buffer.concat(VALID.map(([, seq]) => Buffer.from(seq)));
      const h = makeReceiver(role);
      h.push(text(role, payload), 1);
      const m = onlyMessage(h.events);
      assert.equal(m.isBinary, false);
      assert.ok(m.data.equals(payload), 'm.data.equals(payload)');
    });

    it(`binary messages are not validated (${role})`, () => {
      const h = makeReceiver(role);
      h.push(binary(role, bytes(0xff, 0xc0, 0xed, 0xa0, 0x80, 0xf0)));
      assert.deepEqual([...onlyMessage(h.events).data], [0xff, 0xc0, 0xed, 0xa0, 0x80, 0xf0]);
    });

    it(`ping and pong payloads are not validated, even between the fragments of a text message (${role})`, () => {
      const h = makeReceiver(role);
      h.push(concat(text(role, bytes(0xe2, 0x82), false), ping(role, bytes(0xff)), continuation(role, bytes(0xac))));
      assert.deepEqual(types(h.events), ['ping', 'message']);
      assert.equal((h.events[1] as { data: Buffer }).data.toString(), '€');
    });

    it(`the validator starts afresh for each message (${role})`, () => {
      const h = makeReceiver(role);
      h.push(concat(text(role, 'é'), binary(role, bytes(0xc3)), text(role, bytes(0xa9, 0x41))));
      assert.deepEqual(types(h.events), ['message', 'message', 'error']);
      assertFailed(h, 'InvalidUtf8', INVALID_PAYLOAD);
    });
  }
});

describe('RFC 6455 §8.1 Validation is incremental: fail fast, and accept code points split anywhere', () => {
  for (const role of ROLES) {
    it(`an invalid byte in the first chunk of a large single frame is reported before the rest of the frame arrives (${role})`, () => {
      const payload = concat(utf8('valid start '), bytes(0xed, 0xa0, 0x80), Buffer.alloc(1 << 20, 0x61));
      const frame = text(role, payload);
      for (const firstChunk of [30, 40, 300, 5000]) {
        // the invalid A0 is payload byte 13, after a 10- or 14-byte header
        const h = makeReceiver(role);
        h.push(frame.subarray(0, firstChunk));
        assertFailed(h, 'InvalidUtf8', INVALID_PAYLOAD);
        h.push(frame.subarray(firstChunk));
        assert.deepEqual(types(h.events), ['error']);
      }
    });

    it(`an invalid byte is reported as soon as its chunk arrives, even if the chunk is the 3rd of a large frame (${role})`, () => {
      const payload = Buffer.alloc(100_000, 0x62);
      payload[50_000] = 0xff;
      const frame = text(role, payload);
      const h = makeReceiver(role);
      h.push(frame.subarray(0, 20_000));
      h.push(frame.subarray(20_000, 40_000));
      assert.deepEqual(h.events, []);
      h.push(frame.subarray(40_000, 60_000));
      assertFailed(h, 'InvalidUtf8', INVALID_PAYLOAD);
    });

    it(`an invalid byte in the first fragment is reported before later fragments arrive (${role})`, () => {
      const h = makeReceiver(role);
      h.push(text(role, concat(utf8('abc'), bytes(0xc0, 0xaf)), false));
      assertFailed(h, 'InvalidUtf8', INVALID_PAYLOAD);
    });

    it(`an invalid byte in the first fragment, itself in several chunks, is reported from the chunk that holds it (${role})`, () => {
      const fragment = text(
        role,
        concat(Buffer.alloc(1000, 0x61), bytes(0xf4, 0x90, 0x80, 0x80), Buffer.alloc(1000, 0x61)),
        false,
      );
      const h = makeReceiver(role);
      h.push(fragment.subarray(0, 500));
      assert.deepEqual(h.events, []);
      h.push(fragment.subarray(500, 1020));
      assertFailed(h, 'InvalidUtf8', INVALID_PAYLOAD);
    });

    it(`a fragment that ends inside a code point is not an error: the next fragment completes it (${role})`, () => {
      const h = makeReceiver(role);
      h.push(text(role, bytes(0x61, 0xf0, 0x9f), false));
      assert.deepEqual(h.events, []);
      h.push(continuation(role, bytes(0x98, 0x80, 0x62)));
      assert.equal(onlyMessage(h.events).data.toString(), 'a😀b');
    });

    it(`a code point split across frames, at every position, is valid (${role})`, () => {
      for (const [name, seq] of VALID) {
        const payload = concat(utf8('<'), Buffer.from(seq), utf8('>'));
        for (let cut = 0; cut <= payload.length; cut++) {
          for (let cut2 = cut; cut2 <= payload.length; cut2++) {
            const h = makeReceiver(role);
            h.push(
              concat(
                text(role, payload.subarray(0, cut), false),
                continuation(role, payload.subarray(cut, cut2), false),
                ping(role),
                continuation(role, payload.subarray(cut2)),
              ),
            );
            assert.deepEqual(types(h.events), ['ping', 'message'], `${name} cut at ${cut}, ${cut2}`);
            assert.ok(
              (h.events[1] as { data: Buffer }).data.equals(payload),
              '(h.events[1] as { data: Buffer }).data.equals(payload)',
            );
          }
        }
      }
    });

    it(`a code point split across chunks, at every position, is valid (${role})`, () => {
      const payload = Buffer.concat(VALID.map(([, seq]) => Buffer.from(seq)));
      const frame = text(role, payload);
      for (let cut = 1; cut < frame.length; cut++) {
        const h = makeReceiver(role);
        h.push(frame, [cut]);
        assert.ok(onlyMessage(h.events).data.equals(payload), `cut at ${cut}`);
      }
      const fragmented = concat(text(role, payload.subarray(0, 7), false), continuation(role, payload.subarray(7)));
      for (const chunking of [1, 2, 3, 5]) {
        const h = makeReceiver(role);
        h.push(fragmented, chunking);
        assert.ok(onlyMessage(h.events).data.equals(payload), `chunks of ${chunking}`);
      }
    });

    it(`a long text message (native fast path) with code points split across chunks and frames is valid (${role})`, () => {
      const payload = utf8('aé€😀'.repeat(3000));
      const frames = concat(
        frameFor(role, { opcode: Opcode.Text, payload: payload.subarray(0, 10_001), fin: false }),
        frameFor(role, { opcode: Opcode.Continuation, payload: payload.subarray(10_001) }),
      );
      for (const chunking of [257, 1000, 4099, [300, 301, 302, 9000]]) {
        const h = makeReceiver(role);
        h.push(frames, chunking);
        assert.ok(onlyMessage(h.events).data.equals(payload), 'onlyMessage(h.events).data.equals(payload)');
      }
    });
  }
});

describe('RFC 6455 §5.6 "The "Payload data" is text data encoded as UTF-8": what we send as text', () => {
  // Each payload is sent as text by the server's application; a raw peer reads what goes out.
  const SENT: [string, number[], boolean][] = [
    ['ASCII', [...Buffer.from('plain ASCII, four bytes at a time and then some')], true],
    ['ASCII then a 3-byte code point', [...Buffer.from('abcdefgh€')], true],
    ['a lone continuation byte after ASCII', [...Buffer.from('abcdefgh'), 0x80], false],
    ['0xFF at the start', [0xff, 0x61, 0x62, 0x63], false],
    ['a surrogate (ED A0 80) after ASCII', [...Buffer.from('abcd'), 0xed, 0xa0, 0x80], false],
    ['a code point cut short at the end', [...Buffer.from('abcd'), 0xe2, 0x82], false],
    ['300 bytes of ASCII then 0xC0 (the native path)', [...Buffer.alloc(300, 0x61), 0xc0, 0x80], false],
  ];
  for (const [name, payload, valid] of SENT) {
    it(`${name}: ${valid ? 'goes out as a text frame' : 'send() throws a TypeError, nothing goes out, the connection stays open'}`, async () => {
      const outcome: { error: unknown } = { error: null };
      const server = await startServer({}, (ws) => {
        ws.on('message', () => {
          try {
            ws.send(Buffer.from(payload), { binary: false });
          } catch (error) {
            outcome.error = error;
          }
          ws.send('after');
        });
      });
      try {
        const client = await rawRequest(server.port);
        client.sendText('go');
        const [first, second] = await client.waitMessages(valid ? 2 : 1);
        if (valid) {
          assert.equal(outcome.error, null);
          assert.deepEqual([...first!.data], payload);
          assert.equal(first!.isBinary, false);
          assert.equal(second!.data.toString(), 'after');
        } else {
          assert.ok(outcome.error instanceof TypeError, `expected a TypeError, got ${String(outcome.error)}`);
          assert.equal(first!.data.toString(), 'after', 'only the message sent after it went out');
          await assertEchoesNothingBroken(client);
        }
      } finally {
        await server.close();
      }
    });
  }
});

async function assertEchoesNothingBroken(client: Awaited<ReturnType<typeof rawRequest>>): Promise<void> {
  const before = client.messages.length;
  client.sendText('again');
  await client.waitMessages(before + 1);
  assert.equal(client.messages[before]!.data.toString(), 'after');
}
