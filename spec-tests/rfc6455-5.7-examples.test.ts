import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CloseCode, Opcode } from '../src/protocol/constants.js';
import { encodeFrame, writeFrameHeader } from '../src/protocol/frame.js';
import type { Frame } from '../src/protocol/receiver.js';
import type { MaskKeySource } from '../src/protocol/writer.js';
import { appendControlFrame, appendFrame, appendMessage } from './helpers/writer.js';
import { assertFailed, bytes, concat, makeReceiver, types } from './helpers/core.js';

/** The examples of RFC 6455 §5.7, byte for byte. */
const KEY = bytes(0x37, 0xfa, 0x21, 0x3d);
const HELLO = Buffer.from('Hello');
const UNMASKED_HELLO = bytes(0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f);
const MASKED_HELLO = bytes(0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58);
const HEL = bytes(0x01, 0x03, 0x48, 0x65, 0x6c);
const LO = bytes(0x80, 0x02, 0x6c, 0x6f);
const UNMASKED_PING = bytes(0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f);
const MASKED_PONG = bytes(0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58);

function binaryPayload(n: number): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = (i * 151 + 7) & 0xff;
  return out;
}
const BIN_256 = binaryPayload(256);
const BIN_64K = binaryPayload(65536);
const BIN_256_FRAME = concat(bytes(0x82, 0x7e, 0x01, 0x00), BIN_256);
const BIN_64K_FRAME = concat(bytes(0x82, 0x7f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00), BIN_64K);

function header(opcode: number, length: number, fin: boolean, key: Uint8Array | null): Buffer {
  const out = Buffer.alloc(14);
  return out.subarray(0, writeFrameHeader(out, 0, opcode, length, fin, false, key));
}

function frames(events: ReturnType<typeof makeReceiver>['events']): Frame[] {
  return events.filter((e) => e.type === 'frame').map((e) => (e as { frame: Frame }).frame);
}

describe('RFC 6455 §5.7 Examples: decoding', () => {
  it('"A single-frame unmasked text message" 0x81 0x05 "Hello" is the text message "Hello" (client)', () => {
    for (const chunking of [undefined, 1, 2, 3]) {
      const h = makeReceiver('client');
      h.push(UNMASKED_HELLO, chunking);
      assert.deepEqual(h.events, [{ type: 'message', data: HELLO, isBinary: false }]);
    }
  });

  it('"A single-frame masked text message" 0x81 0x85 0x37 0xfa 0x21 0x3d ... is "Hello" (server)', () => {
    for (const chunking of [undefined, 1, 2, 5, 6, 7]) {
      const h = makeReceiver('server', {}, true);
      h.push(MASKED_HELLO, chunking);
      assert.deepEqual(types(h.events), ['frame', 'message']);
      const [frame] = frames(h.events);
      assert.equal(frame!.masked, true);
      assert.deepEqual(frame!.maskKey, Uint8Array.from(KEY));
      assert.deepEqual(h.events[1], { type: 'message', data: HELLO, isBinary: false });
    }
  });

  it('"A fragmented unmasked text message" 0x01 0x03 "Hel", 0x80 0x02 "lo" is "Hello" (client)', () => {
    const h = makeReceiver('client', {}, true);
    h.push(HEL);
    h.push(LO);
    assert.deepEqual(
      frames(h.events).map((f) => [f.fin, f.opcode, f.payload.toString()]),
      [
        [false, Opcode.Text, 'Hel'],
        [true, Opcode.Continuation, 'lo'],
      ],
    );
    assert.deepEqual(h.events.at(-1), { type: 'message', data: HELLO, isBinary: false });
    const oneChunk = makeReceiver('client');
    oneChunk.push(concat(HEL, LO), 1);
    assert.deepEqual(oneChunk.events, [{ type: 'message', data: HELLO, isBinary: false }]);
  });

  it('"Unmasked Ping request" 0x89 0x05 "Hello" is a ping with body "Hello" (client)', () => {
    const h = makeReceiver('client');
    h.push(UNMASKED_PING);
    assert.deepEqual(h.events, [{ type: 'ping', data: HELLO }]);
  });

  it('"masked Ping response" 0x8a 0x85 0x37 0xfa 0x21 0x3d ... is a pong with body "Hello" (server)', () => {
    const h = makeReceiver('server');
    h.push(MASKED_PONG, 3);
    assert.deepEqual(h.events, [{ type: 'pong', data: HELLO }]);
  });

  it('"256 bytes binary message in a single unmasked frame" 0x82 0x7E 0x0100 is a 256-byte binary message (client)', () => {
    for (const chunking of [undefined, 1, 3, 4, 5, 100]) {
      const h = makeReceiver('client');
      h.push(BIN_256_FRAME, chunking);
      assert.deepEqual(h.events, [{ type: 'message', data: BIN_256, isBinary: true }]);
    }
  });

  it('"64KiB binary message in a single unmasked frame" 0x82 0x7F 0x0000000000010000 is a 65,536-byte binary message (client)', () => {
    for (const chunking of [undefined, 9, 10, 11, 1000, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]) {
      const h = makeReceiver('client');
      h.push(BIN_64K_FRAME, chunking);
      assert.deepEqual(h.events, [{ type: 'message', data: BIN_64K, isBinary: true }]);
    }
  });

  it('the unmasked examples are rejected by a server and the masked ones by a client (§5.1)', () => {
    for (const example of [UNMASKED_HELLO, HEL, UNMASKED_PING, BIN_256_FRAME]) {
      const h = makeReceiver('server');
      h.push(example);
      assertFailed(h, 'UnmaskedFrame', CloseCode.ProtocolError);
    }
    for (const example of [MASKED_HELLO, MASKED_PONG]) {
      const h = makeReceiver('client');
      h.push(example);
      assertFailed(h, 'MaskedFrame', CloseCode.ProtocolError);
    }
  });
});

describe('RFC 6455 §5.7 Examples: encoding', () => {
  it('single-frame unmasked "Hello": writeFrameHeader and encodeFrame give 0x81 0x05 0x48 0x65 0x6c 0x6c 0x6f', () => {
    assert.deepEqual(concat(header(Opcode.Text, 5, true, null), HELLO), UNMASKED_HELLO);
    assert.deepEqual(encodeFrame({ opcode: Opcode.Text, payload: HELLO }), UNMASKED_HELLO);
    const out: Buffer[] = [];
    appendFrame(out, Opcode.Text, HELLO, true, false, null);
    assert.deepEqual(Buffer.concat(out), UNMASKED_HELLO);
  });

  it('single-frame masked "Hello" with key 37 fa 21 3d: 0x81 0x85 0x37 0xfa 0x21 0x3d 0x7f 0x9f 0x4d 0x51 0x58', () => {
    assert.deepEqual(header(Opcode.Text, 5, true, KEY), MASKED_HELLO.subarray(0, 6));
    const payload = Buffer.from(HELLO);
    assert.deepEqual(encodeFrame({ opcode: Opcode.Text, payload, maskKey: KEY }), MASKED_HELLO);
    assert.deepEqual(payload, HELLO, 'the payload is not modified');
    const out: Buffer[] = [];
    const fixedKey = { next: () => KEY } as unknown as MaskKeySource; // the RFC's key instead of a random one
    appendFrame(out, Opcode.Text, payload, true, false, fixedKey);
    assert.deepEqual(Buffer.concat(out), MASKED_HELLO);
  });

  it('fragmented unmasked "Hel" + "lo": 0x01 0x03 0x48 0x65 0x6c then 0x80 0x02 0x6c 0x6f', () => {
    assert.deepEqual(concat(header(Opcode.Text, 3, false, null), Buffer.from('Hel')), HEL);
    assert.deepEqual(concat(header(Opcode.Continuation, 2, true, null), Buffer.from('lo')), LO);
    assert.deepEqual(encodeFrame({ opcode: Opcode.Text, payload: Buffer.from('Hel'), fin: false }), HEL);
    assert.deepEqual(encodeFrame({ opcode: Opcode.Continuation, payload: Buffer.from('lo') }), LO);
    const out: Buffer[] = [];
    appendMessage(out, Opcode.Text, Buffer.from('Hello'), false, null, 3);
    assert.deepEqual(out, [HEL, LO]);
  });

  it('unmasked ping "Hello": 0x89 0x05 0x48 0x65 0x6c 0x6c 0x6f', () => {
    assert.deepEqual(concat(header(Opcode.Ping, 5, true, null), HELLO), UNMASKED_PING);
    assert.deepEqual(encodeFrame({ opcode: Opcode.Ping, payload: HELLO }), UNMASKED_PING);
    const out: Buffer[] = [];
    appendControlFrame(out, Opcode.Ping, HELLO, null);
    assert.deepEqual(Buffer.concat(out), UNMASKED_PING);
  });

  it('masked pong "Hello" with key 37 fa 21 3d: 0x8a 0x85 0x37 0xfa 0x21 0x3d 0x7f 0x9f 0x4d 0x51 0x58', () => {
    assert.deepEqual(header(Opcode.Pong, 5, true, KEY), MASKED_PONG.subarray(0, 6));
    assert.deepEqual(encodeFrame({ opcode: Opcode.Pong, payload: HELLO, maskKey: KEY }), MASKED_PONG);
  });

  it('256 bytes binary in one unmasked frame: 0x82 0x7E 0x01 0x00 then the 256 bytes', () => {
    assert.deepEqual(header(Opcode.Binary, 256, true, null), bytes(0x82, 0x7e, 0x01, 0x00));
    assert.deepEqual(encodeFrame({ opcode: Opcode.Binary, payload: BIN_256 }), BIN_256_FRAME);
  });

  it('64 KiB binary in one unmasked frame: 0x82 0x7F 0x0000000000010000 then the 65,536 bytes', () => {
    assert.deepEqual(header(Opcode.Binary, 65536, true, null), bytes(0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0));
    assert.deepEqual(encodeFrame({ opcode: Opcode.Binary, payload: BIN_64K }), BIN_64K_FRAME);
    const out: Buffer[] = [];
    appendFrame(out, Opcode.Binary, BIN_64K, true, false, null);
    assert.deepEqual(Buffer.concat(out), BIN_64K_FRAME);
  });
});
