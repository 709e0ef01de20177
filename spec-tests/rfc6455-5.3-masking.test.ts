import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CloseCode, Opcode } from '../src/protocol/constants.js';
import { encodeFrame } from '../src/protocol/frame.js';
import { mask, maskInto } from '../src/protocol/mask.js';
import { MaskKeySource } from '../src/protocol/writer.js';
import * as core from '../src/core.js';
import { FrameDecoder, type DecodedFrame } from './helpers/peer/frames.js';
import { appendFrame, appendMessage } from './helpers/writer.js';
import {
  assertFailed,
  bytes,
  clientFrame,
  close,
  concat,
  expectViolation,
  makeReceiver,
  naiveMask,
  onlyMessage,
  rawFrame,
  serverFrame,
  text,
  types,
  utf8,
} from './helpers/core.js';

const KEY = bytes(0x37, 0xfa, 0x21, 0x3d);
const OTHER_KEY = bytes(0x01, 0x80, 0xfe, 0x5a);

/** Lengths around the 48-byte word-loop threshold of mask() and the 192-byte copy threshold of maskInto(). */
const LENGTHS = [
  ...Array.from({ length: 20 }, (_, i) => i),
  40,
  43,
  44,
  45,
  46,
  47,
  48,
  49,
  50,
  51,
  52,
  53,
  55,
  56,
  63,
  64,
  65,
  96,
  100,
  187,
  188,
  189,
  190,
  191,
  192,
  193,
  194,
  195,
  196,
  200,
  255,
  256,
  257,
  1000,
  1001,
  1002,
  1003,
];

function pattern(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** Byte equality without the cost of a deep-equal diff unless it fails. */
function sameBytes(actual: Uint8Array, expected: Uint8Array, message: string): void {
  if (Buffer.compare(actual, expected) !== 0) assert.deepEqual([...actual], [...expected], message);
}

/** A view of `length` bytes that starts `byteOffset` bytes into its ArrayBuffer (so possibly unaligned). */
function viewAt(byteOffset: number, content: Uint8Array, slack = 5): Uint8Array {
  const backing = new Uint8Array(byteOffset + content.length + slack).fill(0xcc);
  const view = backing.subarray(byteOffset, byteOffset + content.length);
  view.set(content);
  return view;
}

describe('RFC 6455 §5.3 Client-to-server masking: mask()', () => {
  it('masks the RFC example: "Hello" with key 37 fa 21 3d is 7f 9f 4d 51 58', () => {
    const data = utf8('Hello');
    assert.equal(mask(data, KEY), 1);
    assert.deepEqual([...data], [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
  });

  it('"octet i of the transformed data is octet i of the original data XOR octet at index i modulo 4 of the masking key", at every phase, offset, byteOffset and length', () => {
    for (const length of LENGTHS) {
      const original = pattern(length + 8, length + 1);
      for (let byteOffset = 0; byteOffset < 4; byteOffset++) {
        for (let start = 0; start < 5; start++) {
          for (let phase = 0; phase < 4; phase++) {
            const data = viewAt(byteOffset, original.subarray(0, start + length + 3));
            const end = start + length;
            const next = mask(data, OTHER_KEY, phase, start, end);
            const where = `length ${length}, byteOffset ${byteOffset}, start ${start}, phase ${phase}`;
            assert.equal(next, (phase + length) % 4, `returned phase, ${where}`);
            sameBytes(
              data.subarray(start, end),
              naiveMask(original.subarray(start, end), OTHER_KEY, phase),
              `masked bytes, ${where}`,
            );
            sameBytes(data.subarray(0, start), original.subarray(0, start), `bytes before start untouched, ${where}`);
            sameBytes(
              data.subarray(end),
              original.subarray(end, start + length + 3),
              `bytes after end untouched, ${where}`,
            );
            const backing = new Uint8Array(data.buffer);
            assert.ok(
              backing.subarray(0, byteOffset).every((b) => b === 0xcc),
              `bytes before the view untouched, ${where}`,
            );
            assert.ok(
              backing.subarray(data.byteOffset + data.length).every((b) => b === 0xcc),
              `bytes after the view untouched, ${where}`,
            );
          }
        }
      }
    }
  });

  it('masking twice with the same key and phase restores the data (masking and unmasking are one operation)', () => {
    for (const length of LENGTHS) {
      for (let phase = 0; phase < 4; phase++) {
        const original = pattern(length, phase + 7);
        const data = viewAt(3, original);
        mask(data, KEY, phase);
        if (length >= 4) assert.notDeepEqual([...data], [...original]);
        mask(data, KEY, phase);
        assert.deepEqual([...data], [...original], `length ${length}, phase ${phase}`);
      }
    }
  });

  it('masking a payload piece by piece, carrying the returned phase, equals masking it in one go', () => {
    const original = pattern(1000, 3);
    const whole = naiveMask(original, KEY);
    for (const pieceSize of [1, 2, 3, 5, 47, 48, 49, 97, 333]) {
      const data = viewAt(1, original);
      let phase = 0;
      for (let start = 0; start < data.length; start += pieceSize) {
        phase = mask(data.subarray(start, Math.min(start + pieceSize, data.length)), KEY, phase);
      }
      assert.deepEqual(Buffer.from(data), whole, `pieces of ${pieceSize}`);
    }
  });

  it('phases outside 0-3 are taken modulo 4', () => {
    const original = pattern(100, 9);
    for (const phase of [4, 5, 6, 7, 9]) {
      const data = Uint8Array.from(original);
      assert.equal(mask(data, KEY, phase), (phase + 100) & 3);
      assert.deepEqual(Buffer.from(data), naiveMask(original, KEY, phase & 3));
    }
  });
});

describe('RFC 6455 §5.3 Client-to-server masking: maskInto()', () => {
  it('copies source[start, end) into target at targetOffset, masked, at every phase, offset, byteOffset and length, leaving the source untouched', () => {
    for (const length of LENGTHS) {
      const content = pattern(length + 6, length + 11);
      for (let sourceOffset = 0; sourceOffset < 4; sourceOffset++) {
        for (let targetByteOffset = 0; targetByteOffset < 4; targetByteOffset++) {
          for (const start of [0, 1, 3]) {
            for (const targetOffset of [0, 1, 2, 3, 6]) {
              for (let phase = 0; phase < 4; phase++) {
                const source = viewAt(sourceOffset, content);
                const target = viewAt(targetByteOffset, new Uint8Array(targetOffset + length + 3).fill(0x55));
                const next = maskInto(source, start, start + length, target, targetOffset, OTHER_KEY, phase);
                const where = () =>
                  `length ${length}, source byteOffset ${sourceOffset}, target byteOffset ${targetByteOffset}, start ${start}, targetOffset ${targetOffset}, phase ${phase}`;
                if (next !== (phase + length) % 4) assert.fail(`phase ${next}, ${where()}`);
                // maskInto equals mask() applied to a copy, and the naive byte loop.
                const copy = Uint8Array.from(content.subarray(start, start + length));
                mask(copy, OTHER_KEY, phase);
                const written = target.subarray(targetOffset, targetOffset + length);
                sameBytes(written, copy, `maskInto vs mask on a copy, ${where()}`);
                sameBytes(
                  written,
                  naiveMask(content.subarray(start, start + length), OTHER_KEY, phase),
                  `naive, ${where()}`,
                );
                if (!target.subarray(0, targetOffset).every((b) => b === 0x55))
                  assert.fail(`target before touched, ${where()}`);
                if (!target.subarray(targetOffset + length).every((b) => b === 0x55))
                  assert.fail(`target after touched, ${where()}`);
                sameBytes(source, content, `source untouched, ${where()}`);
              }
            }
          }
        }
      }
    }
  });
});

describe('RFC 6455 §5.3 The masking key: the writer', () => {
  it('MaskKeySource gives 4-byte keys, fresh for every frame (not all equal)', () => {
    const keys = new MaskKeySource();
    const seen = new Set<string>();
    for (let i = 0; i < 3000; i++) {
      const key = keys.next();
      assert.equal(key.length, 4);
      seen.add(Buffer.from(key).toString('hex'));
    }
    assert.ok(seen.size > 2900, `${seen.size} distinct keys out of 3000`);
  });

  it('MaskKeySource hands out every random byte once: keys across pool refills are the pool bytes in order, never repeated', () => {
    // next() refills one array (valid until the next call), so callers copy the key into the frame.
    const keys = new MaskKeySource(8);
    const drawn: Buffer[] = [];
    for (let i = 0; i < 100; i++) drawn.push(Buffer.from(keys.next()));
    const distinct = new Set(drawn.map((k) => k.toString('hex')));
    // 100 keys of 32 random bits: a repeat would mean a byte was handed out twice.
    assert.equal(distinct.size, 100, `${100 - distinct.size} repeated keys`);
  });

  it('MaskKeySource.next() returns a 4-byte key whatever the pool size (also one that is not a multiple of 4)', () => {
    for (const poolSize of [4, 6, 10, 4097]) {
      const keys = new MaskKeySource(poolSize);
      for (let i = 0; i < 10; i++) {
        assert.equal(keys.next().length, 4, `pool size ${poolSize}, key #${i}`);
      }
    }
  });

  it('appendFrame with a key source sets MASK, writes the key and masks the payload, leaving the application buffer untouched', () => {
    for (const length of [0, 5, 125, 126, 200, 20000, 70000]) {
      const payload = Buffer.from(pattern(length, 5));
      const before = Buffer.from(payload);
      const out: Buffer[] = [];
      const written = appendFrame(out, Opcode.Binary, payload, true, false, new MaskKeySource());
      const wire = Buffer.concat(out);
      assert.equal(written, wire.length);
      assert.deepEqual(payload, before, 'application payload untouched');
      assert.equal(wire[1]! & 0x80, 0x80, 'MASK bit set');
      const headerSize = length < 126 ? 2 : length < 65536 ? 4 : 10;
      const key = wire.subarray(headerSize, headerSize + 4);
      assert.deepEqual(wire, rawFrame({ opcode: Opcode.Binary, payload, maskKey: key }), `length ${length}`);
    }
  });

  it('appendFrame without a key source writes unmasked frames (a server never masks)', () => {
    for (const length of [0, 5, 126, 20000, 70000]) {
      const payload = Buffer.from(pattern(length, 6));
      const out: Buffer[] = [];
      appendFrame(out, Opcode.Binary, payload, true, false, null);
      assert.deepEqual(Buffer.concat(out), rawFrame({ opcode: Opcode.Binary, payload, maskKey: null }));
    }
  });

  it('every frame of a fragmented client message gets its own key', () => {
    const out: Buffer[] = [];
    appendMessage(out, Opcode.Binary, Buffer.from(pattern(400, 1)), false, new MaskKeySource(), 100);
    assert.equal(out.length, 4);
    const keys = out.map((f) => f.subarray(4, 8).toString('hex'));
    assert.equal(new Set(keys).size, 4);
  });
});

describe('RFC 6455 §5.1, §5.3 Masking on the receiving side', () => {
  it('a server unmasks each frame with its own key, across chunks cut at every position', () => {
    const payload = Buffer.from(pattern(300, 2));
    const stream = concat(
      rawFrame({ opcode: Opcode.Binary, payload, maskKey: KEY }),
      rawFrame({ opcode: Opcode.Binary, payload, maskKey: OTHER_KEY }),
    );
    for (let cut = 1; cut < stream.length; cut += 7) {
      const h = makeReceiver('server');
      h.push(stream, [cut, cut + 3, stream.length - 2]);
      assert.deepEqual(types(h.events), ['message', 'message'], `cut ${cut}`);
      for (const e of h.events) assert.ok(e.type === 'message' && e.data.equals(payload), `cut ${cut}`);
    }
  });

  it('a server unmasks a payload pushed byte by byte', () => {
    const payload = Buffer.from(pattern(130, 8));
    const h = makeReceiver('server');
    h.push(rawFrame({ opcode: Opcode.Binary, payload, maskKey: KEY }), 1);
    assert.ok(onlyMessage(h.events).data.equals(payload), 'onlyMessage(h.events).data.equals(payload)');
  });

  it('encodeFrame with a masking key produces what a server receiver decodes back', () => {
    const payload = Buffer.from(pattern(1000, 4));
    const h = makeReceiver('server');
    h.push(encodeFrame({ opcode: Opcode.Binary, payload, maskKey: OTHER_KEY }), [1, 2, 9, 50, 51, 700]);
    assert.ok(onlyMessage(h.events).data.equals(payload), 'onlyMessage(h.events).data.equals(payload)');
  });

  const unmaskedToServer = [
    { name: 'text', frame: () => serverFrame({ opcode: Opcode.Text, payload: 'hi' }) },
    { name: 'binary', frame: () => serverFrame({ opcode: Opcode.Binary, payload: bytes(1) }) },
    {
      name: 'continuation',
      frame: () => concat(text('server', 'a', false), serverFrame({ opcode: Opcode.Continuation, payload: 'b' })),
    },
    { name: 'ping', frame: () => serverFrame({ opcode: Opcode.Ping, payload: 'p' }) },
    { name: 'pong', frame: () => serverFrame({ opcode: Opcode.Pong, payload: '' }) },
    { name: 'close', frame: () => close('client', 1000) },
  ];
  for (const { name, frame } of unmaskedToServer) {
    it(`"The server MUST close the connection upon receiving a frame that is not masked": unmasked ${name} frame fails with 1002`, () => {
      expectViolation('server', frame(), 'UnmaskedFrame', CloseCode.ProtocolError);
    });
  }

  const maskedToClient = [
    { name: 'text', frame: () => clientFrame({ opcode: Opcode.Text, payload: 'hi' }) },
    { name: 'binary', frame: () => clientFrame({ opcode: Opcode.Binary, payload: bytes(1) }) },
    {
      name: 'continuation',
      frame: () => concat(text('client', 'a', false), clientFrame({ opcode: Opcode.Continuation, payload: 'b' })),
    },
    { name: 'ping', frame: () => clientFrame({ opcode: Opcode.Ping, payload: 'p' }) },
    { name: 'pong', frame: () => clientFrame({ opcode: Opcode.Pong, payload: '' }) },
    { name: 'close', frame: () => close('server', 1000) },
  ];
  for (const { name, frame } of maskedToClient) {
    it(`"A client MUST close a connection if it detects a masked frame": masked ${name} frame fails with 1002`, () => {
      expectViolation('client', frame(), 'MaskedFrame', CloseCode.ProtocolError);
    });
  }

  it('the masking violation is reported from the first two bytes, before any key or payload byte arrives', () => {
    const server = makeReceiver('server');
    server.push(bytes(0x81, 0x7d));
    assertFailed(server, 'UnmaskedFrame', CloseCode.ProtocolError);
    const client = makeReceiver('client');
    client.push(bytes(0x82, 0xff));
    assertFailed(client, 'MaskedFrame', CloseCode.ProtocolError);
  });

  it('messages before the offending frame are delivered, nothing after it', () => {
    const h = makeReceiver('server');
    h.push(
      concat(text('server', 'one'), serverFrame({ opcode: Opcode.Text, payload: 'two' }), text('server', 'three')),
    );
    assert.deepEqual(types(h.events), ['message', 'error']);
    assertFailed(h, 'UnmaskedFrame', CloseCode.ProtocolError);
  });
});

describe('RFC 6455 §5.3 The protocol core in the client role masks every frame, whatever its caller passes', () => {
  // wsrfc/core as an embedder drives it, without any driver: what it writes, decoded by the
  // independent test peer's decoder.
  const decode = (buffers: Buffer[]): DecodedFrame[] => {
    const frames: DecodedFrame[] = [];
    const decoder = new FrameDecoder((frame) => frames.push(frame));
    for (const buffer of buffers) decoder.push(Buffer.from(buffer));
    assert.equal(decoder.stopped, null);
    return frames;
  };

  it('new Protocol("client", options, now) with no setup: send() writes a masked text frame, never 81 02 68 69', () => {
    const client = new core.Protocol('client', core.resolveConnectionOptions({}), 0);
    client.send(core.Opcode.Text, Buffer.from('hi'), false, 0);
    const wire = Buffer.concat(client.takeOutput());
    assert.notDeepEqual(wire, Buffer.from([0x81, 0x02, 0x68, 0x69]));
    const [frame] = decode([wire]);
    assert.equal(frame!.masked, true, '"a client MUST mask all frames that it sends to the server"');
    assert.equal(frame!.payload.toString(), 'hi');
  });

  it('every kind of frame a client writes is masked, each with a fresh key: data, fragments, pings, pongs (its own and the automatic answer), the ping loop, close', () => {
    const options = core.resolveConnectionOptions({ pingInterval: 1000, pongTimeout: 60_000 });
    const client = new core.Protocol('client', options, 0);
    client.sendData('text', undefined);
    client.sendData(Buffer.from([1, 2, 3]), undefined);
    client.sendData('fragmented message', { fragmentSize: 4 });
    client.sendControl(core.Opcode.Ping, Buffer.from('p'));
    client.sendControl(core.Opcode.Pong, Buffer.from('q'));
    client.receive(Buffer.from([0x89, 0x01, 0x21]), 10); // a server's (unmasked) ping: answered with a pong
    client.timeout(1000, false); // the ping loop's ping
    client.close(1000, 'bye', 1001);
    const frames = decode(client.takeOutput());
    const opcodes = frames.map((frame) => frame.opcode);
    assert.deepEqual(opcodes, [0x1, 0x2, 0x1, 0x0, 0x0, 0x0, 0x0, 0x9, 0xa, 0xa, 0x9, 0x8]);
    for (const frame of frames) assert.equal(frame.masked, true, `opcode ${frame.opcode} unmasked`);
    const keys = new Set(frames.map((frame) => frame.maskKey!.toString('hex')));
    assert.ok(keys.size > frames.length / 2, `${keys.size} distinct keys for ${frames.length} frames`);
  });

  it('a client takes no pre-framed bytes (they could not be masked with a fresh key); a server takes them', () => {
    const client = new core.Protocol('client', core.resolveConnectionOptions({}), 0);
    assert.throws(() => client.sendFramed(Buffer.from([0x81, 0x00])), TypeError);
    assert.equal(client.hasOutput, false);
    const server = new core.Protocol('server', core.resolveConnectionOptions({}), 0);
    assert.equal(server.sendFramed(Buffer.from([0x81, 0x00])), true);
  });

  it('a role other than server or client refuses to start', () => {
    assert.throws(() => new core.Protocol('peer' as core.Role, core.resolveConnectionOptions({}), 0), TypeError);
  });

  it('the server role masks nothing ("A server MUST NOT mask any frames that it sends to the client")', () => {
    const server = new core.Protocol('server', core.resolveConnectionOptions({}), 0);
    server.sendData('text', undefined);
    server.sendControl(core.Opcode.Ping, Buffer.from('p'));
    server.close(1000, '', 0);
    for (const frame of decode(server.takeOutput())) assert.equal(frame.masked, false);
  });
});
