/**
 * The conformance engine's own pieces (src/conformance/), checked against the RFCs' examples and
 * against the test peer (an independent codec): its frame encoder and decoder (RFC 6455 §5.2,
 * §5.3, §5.7), its UTF-8 check (§8.1), its handshake (§4), its permessage-deflate (RFC 7692), the
 * case set (the suite's 517 ids) and the judge that turns what happened into the suite's verdicts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { allCases, compareIds, selectCases } from '../src/conformance/catalogue.js';
import { Case, type ExpectedClose } from '../src/conformance/case.js';
import { parseOffer, parseResponse, PerMessageDeflate, offerString } from '../src/conformance/deflate.js';
import type { Endpoint } from '../src/conformance/endpoint.js';
import { applyMask, encodeFrame, FrameDecoder, type DecoderEvent } from '../src/conformance/frames.js';
import { acceptFor, checkRequest, checkResponse, parseExtensions, splitHead } from '../src/conformance/http.js';
import { Utf8Validator, isValidUtf8 } from '../src/conformance/utf8.js';
import { ALL_CASES } from './helpers/autobahn-cases.js';
import {
  Compressor,
  FrameDecoder as PeerDecoder,
  RFC_ACCEPT,
  RFC_KEY,
  StrictInflater,
  encodeFrame as peerEncode,
  isUtf8,
  type DecodedFrame,
} from './helpers/peer/index.js';

const hex = (text: string): Buffer => Buffer.from(text.replace(/ /g, ''), 'hex');

describe('the case set', () => {
  it("is the suite's 517 cases, with its ids, in its order", () => {
    const ids = allCases().map((c) => c.id);
    assert.equal(ids.length, 517);
    assert.deepEqual(ids, [...ALL_CASES].sort(compareIds));
  });

  it('selects by pattern and id, in case order, without repeats; a pattern that selects nothing is an error', () => {
    const ids = (patterns: string): string[] => selectCases(patterns).map((c) => c.id);
    assert.deepEqual(ids('2.1,1.1.2,1.1.*'), [
      '1.1.1',
      '1.1.2',
      '1.1.3',
      '1.1.4',
      '1.1.5',
      '1.1.6',
      '1.1.7',
      '1.1.8',
      '2.1',
    ]);
    assert.equal(ids('6.*').length, 145);
    // "1.*" is group 1, not 10, 12 or 13.
    assert.equal(ids('1.*').length, 16);
    assert.deepEqual(ids('12.2.3, 10.1.1'), ['10.1.1', '12.2.3']);
    assert.throws(() => selectCases('8.*'), RangeError);
    assert.throws(() => selectCases('1.1.9'), RangeError);
  });

  it('every case has its own description and expectation', () => {
    for (const c of allCases()) {
      assert.ok(c.description.length > 10, `${c.id} description`);
      assert.ok(c.expectation.length > 5, `${c.id} expectation`);
    }
  });
});

describe('frames (RFC 6455 §5.2, §5.3)', () => {
  it('encodes the examples of §5.7 byte for byte', () => {
    const key = hex('37fa213d');
    assert.deepEqual(encodeFrame({ opcode: 1, payload: Buffer.from('Hello'), mask: null }), hex('810548656c6c6f'));
    assert.deepEqual(
      encodeFrame({ opcode: 1, payload: Buffer.from('Hello'), mask: key }),
      hex('818537fa213d7f9f4d5158'),
    );
    assert.deepEqual(
      encodeFrame({ opcode: 1, fin: false, payload: Buffer.from('Hel'), mask: null }),
      hex('010348656c'),
    );
    assert.deepEqual(encodeFrame({ opcode: 0, payload: Buffer.from('lo'), mask: null }), hex('80026c6f'));
    assert.deepEqual(encodeFrame({ opcode: 9, payload: Buffer.from('Hello'), mask: null }), hex('890548656c6c6f'));
    assert.deepEqual(
      encodeFrame({ opcode: 2, payload: Buffer.alloc(256), mask: null }).subarray(0, 4),
      hex('827e0100'),
    );
    assert.deepEqual(
      encodeFrame({ opcode: 2, payload: Buffer.alloc(65536), mask: null }).subarray(0, 10),
      hex('827f0000000000010000'),
    );
  });

  it('writes what the test peer writes, for every RSV, opcode and length form, masked or not', () => {
    for (const length of [0, 1, 125, 126, 127, 65535, 65536])
      for (const rsv of [0, 5, 7])
        for (const opcode of [0, 1, 2, 3, 8, 11])
          for (const mask of [null, hex('01020304')]) {
            const payload = Buffer.alloc(length, 0x61 + (length % 20));
            const frame = { opcode, payload, fin: length % 2 === 0, rsv, mask };
            const expected = peerEncode({
              opcode,
              payload,
              fin: frame.fin,
              rsv1: (rsv & 4) !== 0,
              rsv2: (rsv & 2) !== 0,
              rsv3: (rsv & 1) !== 0,
              maskKey: mask,
            });
            assert.deepEqual(encodeFrame(frame), expected, `${length} ${rsv} ${opcode} ${mask !== null}`);
          }
  });

  it('masks from any offset the way §5.3 says (octet i with key octet i mod 4)', () => {
    const data = Buffer.from(Array.from({ length: 37 }, (_, i) => i * 7));
    const key = hex('a1b2c3d4');
    for (const offset of [0, 1, 2, 3, 5])
      assert.deepEqual(applyMask(data, key, offset), Buffer.from(data.map((b, i) => b ^ key[(offset + i) % 4]!)));
  });

  it('decodes what the peer encodes, fed one byte at a time: header first, then the frame, unmasked', () => {
    const frames = [
      peerEncode({ opcode: 1, payload: 'Hello', maskKey: hex('37fa213d') }),
      peerEncode({ opcode: 2, payload: Buffer.alloc(300, 7), rsv1: true }),
      peerEncode({ opcode: 9, payload: '', lengthEncoding: 16 }),
      peerEncode({ opcode: 0, fin: false, payload: Buffer.alloc(70000, 1), lengthEncoding: 64 }),
    ];
    const decoder = new FrameDecoder();
    const events: DecoderEvent[] = [];
    for (const byte of Buffer.concat(frames)) {
      decoder.push(Buffer.from([byte]));
      for (let e = decoder.next(); e !== null; e = decoder.next()) events.push(e);
    }
    assert.deepEqual(
      events.map((e) => e.kind),
      ['header', 'frame', 'header', 'frame', 'header', 'frame', 'header', 'frame'],
    );
    const [hello, binary, ping, continuation] = events.filter((e) => e.kind === 'frame') as Extract<
      DecoderEvent,
      { kind: 'frame' }
    >[];
    assert.equal(hello!.payload.toString(), 'Hello');
    assert.deepEqual(hello!.header.maskKey, hex('37fa213d'));
    assert.equal(binary!.header.rsv, 4);
    assert.equal(binary!.payload.length, 300);
    // §5.2: the length in its shortest form, or not.
    assert.equal(ping!.header.minimalLength, false);
    assert.equal(continuation!.header.lengthForm, 64);
    assert.equal(continuation!.header.minimalLength, true);
    assert.equal(continuation!.header.fin, false);
  });

  it("reports a 64-bit length with its top bit set (§5.2), and the peer's decoder reads the engine's frames", () => {
    const decoder = new FrameDecoder();
    decoder.push(hex('827f8000000000000001'));
    const event = decoder.next();
    assert.equal(event?.kind, 'header');
    assert.equal(event.kind === 'header' && event.header.highBitSet, true);
    const seen: DecodedFrame[] = [];
    new PeerDecoder((frame) => seen.push(frame)).push(
      encodeFrame({ opcode: 1, payload: Buffer.from('κόσμε'), rsv: 1, mask: hex('00ff00ff') }),
    );
    assert.equal(seen[0]!.payload.toString(), 'κόσμε');
    assert.equal(seen[0]!.rsv3, true);
  });
});

describe('UTF-8 (RFC 6455 §8.1, RFC 3629)', () => {
  it('agrees with a strict decoder on every payload of the UTF-8 cases, and on random bytes', () => {
    const payloads: Buffer[] = [];
    for (const c of selectCases('6.*')) {
      const match = /0x([0-9a-f]+)/.exec(c.description);
      if (match !== null) payloads.push(Buffer.from(match[1]!, 'hex'));
    }
    assert.ok(payloads.length > 130);
    let state = 12345;
    for (let i = 0; i < 3000; i++) {
      const bytes = Buffer.alloc(1 + (i % 9));
      for (let j = 0; j < bytes.length; j++) {
        state = (state * 1103515245 + 12345) >>> 0;
        bytes[j] = i % 3 === 0 ? 0xc0 + (state % 64) : state >>> 24;
      }
      payloads.push(bytes);
    }
    for (const payload of payloads) assert.equal(isValidUtf8(payload), isUtf8(payload), payload.toString('hex'));
  });

  it('fails at the first invalid byte across chunks, and tells a sequence cut short from a complete one', () => {
    const v = new Utf8Validator();
    assert.equal(v.feed(hex('cebae1bdb9cf83cebccebd')), -1);
    assert.equal(v.feed(hex('f4')), -1);
    assert.equal(v.complete, false);
    // F4 90: past U+10FFFF, wrong at its second octet (index 12).
    assert.equal(v.feed(hex('90808065')), 12);
    const w = new Utf8Validator();
    assert.equal(w.feed(hex('e282')), -1);
    assert.equal(w.complete, false);
    assert.equal(w.feed(hex('ac')), -1);
    assert.equal(w.complete, true);
  });
});

describe('the opening handshake (RFC 6455 §4)', () => {
  it('computes Sec-WebSocket-Accept as §4.2.2 shows', () => {
    assert.equal(acceptFor(RFC_KEY), RFC_ACCEPT);
  });

  it('checks a server answer: 101, Upgrade, Connection, the accept value, no subprotocol it did not ask for', () => {
    const answer = (lines: string[]) => {
      const split = splitHead(Buffer.from(`${lines.join('\r\n')}\r\n\r\n`));
      assert.ok(split !== null && !(split instanceof Error));
      return checkResponse(split.head, RFC_KEY);
    };
    const good = [
      'HTTP/1.1 101 Switching Protocols',
      'Upgrade: websocket',
      'Connection: Upgrade',
      `Sec-WebSocket-Accept: ${RFC_ACCEPT}`,
    ];
    assert.deepEqual(answer(good), []);
    assert.ok(answer(['HTTP/1.1 200 OK', ...good.slice(1)]) instanceof Error);
    assert.ok(answer(good.filter((l) => !l.startsWith('Upgrade'))) instanceof Error);
    assert.ok(answer([...good.slice(0, 3), 'Sec-WebSocket-Accept: x']) instanceof Error);
    assert.ok(answer([...good, 'Sec-WebSocket-Protocol: chat']) instanceof Error);
  });

  it('checks a client request, and refuses a head over 64 KiB', () => {
    const request = (lines: string[]) => {
      const split = splitHead(Buffer.from(`${lines.join('\r\n')}\r\n\r\n`));
      assert.ok(split !== null && !(split instanceof Error));
      return checkRequest(split.head);
    };
    const good = [
      'GET /runCase?case=3&agent=me HTTP/1.1',
      'Host: x',
      'Upgrade: websocket',
      'Connection: keep-alive, Upgrade',
      `Sec-WebSocket-Key: ${RFC_KEY}`,
      'Sec-WebSocket-Version: 13',
      'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, x-other',
    ];
    const ok = request(good);
    assert.ok(!(ok instanceof Error));
    assert.equal(ok.path, '/runCase');
    assert.equal(ok.query.get('agent'), 'me');
    assert.deepEqual(
      ok.extensions.map((e) => e.name),
      ['permessage-deflate', 'x-other'],
    );
    assert.ok(request(good.map((l) => l.replace('13', '8'))) instanceof Error);
    assert.ok(request(good.filter((l) => !l.startsWith('Sec-WebSocket-Key'))) instanceof Error);
    assert.ok(splitHead(Buffer.alloc(70 * 1024, 0x61)) instanceof Error);
  });

  it('reads the extension grammar of §9.1 (quoted values, several headers), and refuses what is not in it', () => {
    const items = parseExtensions(['a; x=1; y="2"', 'b, c ;z']);
    assert.ok(!(items instanceof Error));
    assert.deepEqual(items, [
      {
        name: 'a',
        params: [
          ['x', '1'],
          ['y', '2'],
        ],
      },
      { name: 'b', params: [] },
      { name: 'c', params: [['z', true]] },
    ]);
    for (const bad of ['a; x=', 'a b', 'a; x="1 2"', '; x']) assert.ok(parseExtensions([bad]) instanceof Error, bad);
  });
});

describe('permessage-deflate (RFC 7692)', () => {
  it('reads offers and answers, refusing unknown parameters, bad window sizes and repeats (§7)', () => {
    const one = (text: string) =>
      (parseExtensions([text]) as { name: string; params: [string, string | true][] }[])[0]!;
    assert.deepEqual(parseOffer(one('permessage-deflate; client_max_window_bits; server_max_window_bits=10')), {
      clientNoContextTakeover: false,
      clientMaxWindowBits: true,
      serverNoContextTakeover: false,
      serverMaxWindowBits: 10,
    });
    assert.ok(parseOffer(one('permessage-deflate; server_max_window_bits=16')) instanceof Error);
    assert.ok(parseOffer(one('permessage-deflate; foo')) instanceof Error);
    assert.ok(
      parseOffer(one('permessage-deflate; server_no_context_takeover; server_no_context_takeover')) instanceof Error,
    );
    assert.deepEqual(parseResponse(one('permessage-deflate; server_no_context_takeover; client_max_window_bits=9')), {
      serverNoContextTakeover: true,
      clientNoContextTakeover: false,
      serverMaxWindowBits: 15,
      clientMaxWindowBits: 9,
    });
    assert.ok(parseResponse(one('permessage-deflate; client_max_window_bits')) instanceof Error);
    const offer = {
      clientNoContextTakeover: true,
      clientMaxWindowBits: true,
      serverNoContextTakeover: true,
      serverMaxWindowBits: 9,
    };
    assert.equal(
      offerString(offer),
      'permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover; server_max_window_bits=9',
    );
  });

  it("compresses so the peer's strict inflater reads it, context kept across messages or not, in a 2^9 window", () => {
    const messages = Array.from({ length: 40 }, (_, i) =>
      Buffer.from(`message ${i % 7} says ${'abc'.repeat(i % 5)} again ${i % 3}`),
    );
    for (const takeover of [true, false]) {
      const params = {
        serverNoContextTakeover: false,
        clientNoContextTakeover: !takeover,
        serverMaxWindowBits: 15,
        clientMaxWindowBits: 9,
      };
      const engine = new PerMessageDeflate(params, false, 1);
      const peer = new StrictInflater(9, takeover);
      for (const message of messages) assert.deepEqual(peer.inflate(engine.compress(message)), message);
    }
  });

  it('inflates what the peer compresses, and fails on a back-reference into a message it promised not to keep', () => {
    const messages = Array.from({ length: 10 }, (_, i) =>
      Buffer.from(`{"id": ${i}, "name": "the same name every time"}`),
    );
    const agreed = {
      serverNoContextTakeover: true,
      clientNoContextTakeover: false,
      serverMaxWindowBits: 15,
      clientMaxWindowBits: 15,
    };
    const honest = new Compressor({ contextTakeover: false });
    const engine = new PerMessageDeflate(agreed, false, 1);
    for (const message of messages) assert.deepEqual(engine.decompress([honest.compress(message)], 1 << 20), message);
    const keepsContext = new Compressor({ contextTakeover: true });
    const strict = new PerMessageDeflate(agreed, false, 1);
    assert.deepEqual(strict.decompress([keepsContext.compress(messages[0]!)], 1 << 20), messages[0]);
    assert.throws(() => strict.decompress([keepsContext.compress(messages[1]!)], 1 << 20), /distance too far back/);
  });

  it('stops inflating at its limit (a bomb does not get to fill memory)', () => {
    const engine = new PerMessageDeflate(
      {
        serverNoContextTakeover: false,
        clientNoContextTakeover: false,
        serverMaxWindowBits: 15,
        clientMaxWindowBits: 15,
      },
      false,
      1,
    );
    const bomb = new Compressor().compress(Buffer.alloc(4 << 20));
    assert.throws(() => engine.decompress([bomb], 1 << 20), RangeError);
  });
});

describe("the judge (the suite's Case.onConnectionLost)", () => {
  class Probe extends Case {
    override onOpen(): void {}
  }
  const judge = (close: ExpectedClose, p: Partial<Endpoint>, received = 0): Case => {
    const c = new Probe({ id: '0.0.0', description: '', expectation: '' });
    c.expected.set('OK', []);
    c.expectedClose = close;
    for (let i = 0; i < received; i++) c.received.push({ type: 'pong', payload: Buffer.alloc(0) });
    c.connectionWasOpen = true;
    c.p = {
      isServer: false,
      closedByMe: true,
      wasClean: true,
      droppedByMe: false,
      remoteCloseCode: 1000,
      ...p,
    } as Endpoint;
    c.onConnectionLost();
    return c;
  };
  const clean = { closedByMe: true, closeCode: [1000], requireClean: true };
  it('OK when the events match and the connection ended as expected', () => {
    const c = judge(clean, {});
    assert.deepEqual([c.behavior, c.behaviorClose], ['OK', 'OK']);
  });
  it('FAILED when no expected sequence matches; the close is judged on its own', () => {
    const c = judge(clean, {}, 1);
    assert.deepEqual([c.behavior, c.behaviorClose], ['FAILED', 'OK']);
  });
  it('the wrong endpoint closing is FAILED; an unclean close where a clean one is required, UNCLEAN', () => {
    assert.equal(judge(clean, { closedByMe: false }).behaviorClose, 'FAILED');
    assert.equal(judge(clean, { wasClean: false }).behaviorClose, 'UNCLEAN');
  });
  it('a close code not allowed is WRONG CODE; none at all is fine', () => {
    assert.equal(judge(clean, { remoteCloseCode: 1002 }).behaviorClose, 'WRONG CODE');
    assert.equal(judge(clean, { remoteCloseCode: null }).behaviorClose, 'OK');
  });
  it('testing a server, the engine ending TCP itself is FAILED BY CLIENT; testing a client it is how it should be', () => {
    assert.equal(judge(clean, { droppedByMe: true }).behaviorClose, 'FAILED BY CLIENT');
    assert.equal(judge(clean, { droppedByMe: true, isServer: true }).behaviorClose, 'OK');
  });
  it('for the UTF-8 cases, a peer that did not fail the connection fails the case itself', () => {
    const utf8 = { closedByMe: false, closeCode: [1007], requireClean: false, closedByWrongEndpointIsFatal: true };
    const c = judge(utf8, { closedByMe: true });
    assert.deepEqual([c.behavior, c.behaviorClose], ['FAILED', 'FAILED']);
  });
  it('a peer that floods the case with answers: recording stops (memory stays bounded) and the case FAILED', () => {
    const c = new Probe({ id: '0.0.0', description: '', expectation: '' });
    c.expected.set('OK', []);
    c.expectedClose = { ...clean, closedByMe: false };
    c.p = { isServer: false, closedByMe: false, wasClean: true, droppedByMe: false, remoteCloseCode: 1000 } as Endpoint;
    c.connectionWasOpen = true;
    for (let i = 0; i < 12_000; i++) c.onPong(Buffer.alloc(0));
    c.onMessage(Buffer.alloc(70 << 20), true);
    assert.equal(c.received.length, 10_000);
    c.onConnectionLost();
    assert.equal(c.behavior, 'FAILED');
    assert.match(c.result, /more than 10000 answers/);
  });

  it('a connection that never opened is FAILED', () => {
    const c = new Probe({ id: '0.0.0', description: '', expectation: '' });
    c.onConnectionLost();
    assert.deepEqual([c.behavior, c.behaviorClose], ['FAILED', 'FAILED']);
  });
});
