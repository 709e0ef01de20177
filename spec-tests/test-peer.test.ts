/**
 * The independent test peer (spec-tests/helpers/peer/) checked on its own: it imports nothing from
 * src/, its encoder writes the RFC's own example bytes (RFC 6455 §5.7, RFC 7692 §7.2.3), its
 * decoder reads them back in any chunking, its accept value is the RFC's, its strict inflater
 * refuses a back-reference the agreement does not allow, and its two roles talk to each other.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { randomBytes } from 'node:crypto';
import {
  Compressor,
  FrameDecoder,
  FramePieceReader,
  OP,
  RFC_ACCEPT,
  RFC_KEY,
  RawClient,
  RawServer,
  StrictInflater,
  acceptFor,
  acceptResponse,
  closePayload,
  deflatePayload,
  destroyRawClients,
  encodeFrame,
  frameHead,
  maskInPlace,
  naiveMask,
  negotiated,
  parseClosePayload,
  strictInflate,
  type DecodedFrame,
} from './helpers/peer/index.js';

const PEER_DIR = fileURLToPath(new URL('./helpers/peer/', import.meta.url));

after(() => destroyRawClients());

/** Every module specifier a TypeScript file names: static imports and re-exports, `import type`, dynamic import(). */
function specifiers(source: string): string[] {
  const found: string[] = [];
  const patterns = [
    /\bfrom\s*['"]([^'"]+)['"]/g,
    /\bimport\s*['"]([^'"]+)['"]/g,
    /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
    /\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  for (const pattern of patterns) for (const match of source.matchAll(pattern)) found.push(match[1]!);
  return found;
}

describe('the peer is independent of src/', () => {
  it('every file in helpers/peer/ imports only node: modules and other files of the peer', () => {
    const files = readdirSync(PEER_DIR).filter((name) => name.endsWith('.ts'));
    assert.ok(files.length >= 6, `peer files: ${files.join(', ')}`);
    for (const file of files) {
      const source = readFileSync(join(PEER_DIR, file), 'utf8');
      const names = specifiers(source);
      assert.ok(names.length > 0 || file === 'wait.ts', `${file}: no imports found (the check reads nothing)`);
      for (const name of names) {
        if (name.startsWith('node:')) continue;
        assert.ok(name.startsWith('.'), `${file} imports the package ${name}: the peer uses Node's own modules only`);
        const target = resolve(dirname(join(PEER_DIR, file)), name);
        const inside = relative(PEER_DIR, target);
        assert.ok(!inside.startsWith('..'), `${file} imports ${name}, outside the peer (src/ or shared helpers)`);
      }
    }
  });

  it('the import check sees the forms an import of src/ could take', () => {
    const sample = [
      "import { encodeFrame } from '../../../src/protocol/frame.js';",
      "import type { Frame } from '../../../src/protocol/receiver.js';",
      "export * from '../../../src/index.js';",
      "const m = await import('../../../src/protocol/http1.js');",
    ].join('\n');
    assert.deepEqual(specifiers(sample), [
      '../../../src/protocol/frame.js',
      '../../../src/protocol/receiver.js',
      '../../../src/index.js',
      '../../../src/protocol/http1.js',
    ]);
  });
});

describe('RFC 6455 §5.7: the encoder writes the examples byte for byte', () => {
  const hello = Buffer.from('Hello');
  const key = Buffer.from([0x37, 0xfa, 0x21, 0x3d]);
  const examples: [string, Buffer, number[]][] = [
    [
      'a single-frame unmasked text message',
      encodeFrame({ opcode: OP.TEXT, payload: hello }),
      [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f],
    ],
    [
      'a single-frame masked text message',
      encodeFrame({ opcode: OP.TEXT, payload: hello, maskKey: key }),
      [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58],
    ],
    [
      'a fragmented unmasked text message',
      Buffer.concat([
        encodeFrame({ opcode: OP.TEXT, fin: false, payload: 'Hel' }),
        encodeFrame({ opcode: OP.CONT, payload: 'lo' }),
      ]),
      [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f],
    ],
    ['an unmasked ping', encodeFrame({ opcode: OP.PING, payload: hello }), [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]],
    [
      'a masked pong',
      encodeFrame({ opcode: OP.PONG, payload: hello, maskKey: key }),
      [0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58],
    ],
  ];
  for (const [what, bytes, expected] of examples) {
    it(what, () => assert.deepEqual([...bytes], expected));
  }

  it('256 bytes and 64 KiB use the 16-bit and 64-bit lengths', () => {
    assert.deepEqual(
      [...encodeFrame({ opcode: OP.BINARY, payload: Buffer.alloc(256) }).subarray(0, 4)],
      [0x82, 0x7e, 0x01, 0x00],
    );
    assert.deepEqual(
      [...encodeFrame({ opcode: OP.BINARY, payload: Buffer.alloc(65536) }).subarray(0, 10)],
      [0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0],
    );
  });

  it('writes what it is told: forced length encodings, a lying length, every header bit', () => {
    assert.deepEqual(
      [...encodeFrame({ opcode: OP.TEXT, payload: 'a', lengthEncoding: 64 })],
      [0x81, 127, 0, 0, 0, 0, 0, 0, 0, 1, 0x61],
    );
    assert.deepEqual([...encodeFrame({ opcode: OP.TEXT, payload: 'a', lengthEncoding: 16 })], [0x81, 126, 0, 1, 0x61]);
    assert.deepEqual(
      [...encodeFrame({ opcode: OP.BINARY, lengthEncoding: 64, declaredLength: 1n << 63n })],
      [0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0],
    );
    assert.deepEqual([...encodeFrame({ opcode: 0xf, fin: false, rsv1: true, rsv2: true, rsv3: true })], [0x7f, 0x00]);
  });
});

describe('the decoder reads frames back in any chunking', () => {
  function decodeAll(bytes: Buffer, chunk: number): DecodedFrame[] {
    const frames: DecodedFrame[] = [];
    const decoder = new FrameDecoder((frame) => frames.push(frame));
    for (let i = 0; i < bytes.length; i += chunk) decoder.push(bytes.subarray(i, i + chunk));
    return frames;
  }

  it('unmasks, and records the header as sent', () => {
    const key = randomBytes(4);
    const payload = randomBytes(70_000);
    const stream = Buffer.concat([
      encodeFrame({ opcode: OP.TEXT, fin: false, payload: 'Hel', maskKey: key }),
      encodeFrame({ opcode: OP.PING, payload: 'p', lengthEncoding: 64 }),
      encodeFrame({ opcode: OP.CONT, payload: 'lo', rsv1: true, lengthEncoding: 16 }),
      encodeFrame({ opcode: OP.BINARY, payload, maskKey: key }),
    ]);
    for (const chunk of [1, 3, 7, 1000, stream.length]) {
      const frames = decodeAll(stream, chunk);
      assert.deepEqual(
        frames.map((f) => [f.opcode, f.fin, f.rsv1, f.masked, f.lengthEncoding]),
        [
          [OP.TEXT, false, false, true, 7],
          [OP.PING, true, false, false, 64],
          [OP.CONT, true, true, false, 16],
          [OP.BINARY, true, false, true, 64],
        ],
      );
      assert.equal(frames[0]!.payload.toString(), 'Hel');
      assert.deepEqual(frames[0]!.maskKey, key);
      assert.ok(frames[3]!.payload.equals(payload), `chunk ${chunk}: the payload differs`);
    }
  });

  it('the piece reader (for frames too big to hold) reads the same frames, in pieces, in any chunking', () => {
    const key = randomBytes(4);
    const payload = randomBytes(70_001);
    const stream = Buffer.concat([
      encodeFrame({ opcode: OP.TEXT, fin: false, payload: 'Hel', maskKey: key }),
      encodeFrame({ opcode: OP.PING, payload: '', lengthEncoding: 64 }),
      encodeFrame({ opcode: OP.BINARY, payload, maskKey: key, rsv1: true }),
      frameHead({ opcode: OP.CONT, fin: true, length: 3, maskKey: null }),
      Buffer.from('end'),
    ]);
    for (const chunk of [1, 3, 7, 1000, stream.length]) {
      const frames: { opcode: number; fin: boolean; rsv1: boolean; key: Buffer | null; data: Buffer[] }[] = [];
      const reader = new FramePieceReader({
        header: (h) => frames.push({ opcode: h.opcode, fin: h.fin, rsv1: h.rsv1, key: h.maskKey, data: [] }),
        piece: (data) => frames.at(-1)!.data.push(Buffer.from(data)),
        end: () => {},
      });
      for (let i = 0; i < stream.length; i += chunk) reader.push(Buffer.from(stream.subarray(i, i + chunk)));
      assert.deepEqual(
        frames.map((f) => [f.opcode, f.fin, f.rsv1, f.key]),
        [
          [OP.TEXT, false, false, key],
          [OP.PING, true, false, null],
          [OP.BINARY, true, true, key],
          [OP.CONT, true, false, null],
        ],
      );
      assert.equal(Buffer.concat(frames[0]!.data).toString(), 'Hel');
      assert.ok(Buffer.concat(frames[2]!.data).equals(payload), `chunk ${chunk}: the payload differs`);
      assert.equal(Buffer.concat(frames[3]!.data).toString(), 'end');
    }
  });

  it('masks a word at a time exactly as byte by byte, at any phase and alignment', () => {
    const key = randomBytes(4);
    const data = randomBytes(1027);
    for (const [start, phase] of [
      [0, 0],
      [1, 0],
      [4, 2],
      [3, 3],
    ] as const) {
      // A view at `start` of a copy: aligned or not, as `start` makes it.
      const copy = Buffer.from(data).subarray(start);
      const next = maskInPlace(copy, key, phase);
      assert.ok(copy.equals(naiveMask(data.subarray(start), key, phase)));
      assert.equal(next, (phase + copy.length) % 4);
    }
  });

  it('stops at a length with its most significant bit set, saying why', () => {
    const decoder = new FrameDecoder(() => assert.fail('no frame'));
    decoder.push(encodeFrame({ opcode: OP.BINARY, lengthEncoding: 64, declaredLength: 1n << 63n }));
    assert.match(decoder.stopped ?? '', /most significant bit/);
  });

  it('close payloads: code and reason both ways', () => {
    assert.deepEqual([...closePayload(1000, 'ok')], [0x03, 0xe8, 0x6f, 0x6b]);
    assert.deepEqual(parseClosePayload(closePayload(4001, 'é')).code, 4001);
    assert.equal(parseClosePayload(closePayload(4001, 'é')).reason, 'é');
    assert.equal(parseClosePayload(Buffer.alloc(0)).code, undefined);
  });
});

describe('RFC 6455 §4.2.2 and RFC 7692 §7.2.3 in the peer', () => {
  it('the accept value of the RFC example key', () => {
    assert.equal(acceptFor(RFC_KEY), RFC_ACCEPT);
  });

  it('compresses "Hello" as §7.2.3.1, then with context as §7.2.3.2; afresh without it', () => {
    const withContext = new Compressor();
    assert.equal(withContext.compress(Buffer.from('Hello')).toString('hex'), 'f248cdc9c90700');
    assert.equal(withContext.compress(Buffer.from('Hello')).toString('hex'), 'f200110000');
    const fresh = new Compressor({ contextTakeover: false });
    for (let i = 0; i < 3; i++) assert.equal(fresh.compress(Buffer.from('Hello')).toString('hex'), 'f248cdc9c90700');
    assert.equal(deflatePayload(Buffer.alloc(0)).toString('hex'), '00', '§7.2.3.6: the empty message');
  });

  it('the strict inflater keeps context only when told, and refuses a back-reference past its window', () => {
    const block = randomBytes(1000);
    const sender = new Compressor({ windowBits: 15 });
    const first = sender.compress(block);
    const second = sender.compress(block);
    assert.ok(second.length < 30, `the repeat refers back into the first message (${second.length} bytes)`);
    assert.ok(strictInflate([first, second], 15, true).equals(Buffer.concat([block, block])));
    assert.throws(() => strictInflate([first, second], 15, false), /distance too far back/);
    // 1000 bytes back: inside a 1 KiB window, outside a 512-byte one.
    assert.ok(strictInflate([first, second], 10, true).equals(Buffer.concat([block, block])));
    assert.throws(() => strictInflate([first, second], 9, true), /distance too far back/);
    // A 256-byte window (8 bits): what a sender limited to 8 bits sends inflates; 1000 back does not.
    const small = new Compressor({ windowBits: 8 });
    const inflater = new StrictInflater(8, true);
    for (let i = 0; i < 20; i++) {
      const message = Buffer.concat([randomBytes(100), Buffer.from('abcdefgh'.repeat(i))]);
      assert.ok(inflater.inflate(small.compress(message)).equals(message), `message ${i}`);
    }
    assert.throws(() => strictInflate([first, second], 8, true), /distance too far back/);
  });

  it('reads the agreed parameters from a response', () => {
    assert.deepEqual(negotiated('permessage-deflate; server_no_context_takeover; client_max_window_bits=9'), {
      serverNoContextTakeover: true,
      clientNoContextTakeover: false,
      serverBits: 15,
      clientBits: 9,
    });
  });
});

describe("the peer's two roles talk to each other", () => {
  it(
    'handshake, masked frames from the client, a compressed message each way, the close',
    { timeout: 5000 },
    async () => {
      const server = await RawServer.start({
        respond: (request) =>
          acceptResponse(request, { headers: [['Sec-WebSocket-Extensions', 'permessage-deflate']] }),
      });
      try {
        const client = await RawClient.connect(server.port, { extensions: ['permessage-deflate'] });
        const peer = await server.nextPeer();
        client.inflateWith(new StrictInflater(15, true));
        peer.inflateWith(new StrictInflater(15, true));
        const toServer = new Compressor();
        const toClient = new Compressor();
        client.sendText('plain');
        client.sendCompressed(toServer.compress(Buffer.from('squeezed')), { cuts: [2] });
        peer.sendCompressed(toClient.compress(Buffer.from('back')), { binary: true });
        await peer.waitMessages(2);
        await client.waitMessages(1);
        assert.deepEqual(
          peer.messages.map((m) => m.data.toString()),
          ['plain', 'squeezed'],
        );
        assert.deepEqual(client.messages, [{ data: Buffer.from('back'), isBinary: true }]);
        assert.ok(
          peer.frames.every((f) => f.masked),
          'the client role masks',
        );
        assert.ok(
          client.frames.every((f) => !f.masked),
          'the server role does not',
        );
        client.sendFrame({ opcode: OP.TEXT, payload: 'bare', maskKey: null });
        await peer.until(() => peer.protocolErrors.length === 1, 2000, 'the unmasked frame to be flagged');
        assert.match(peer.protocolErrors[0]!.message, /unmasked/);
        peer.sendClose(1000, 'bye');
        assert.deepEqual(await client.waitCloseFrame(), { ...client.closeFrame!, code: 1000, reason: 'bye' });
        assert.deepEqual(client.protocolErrors, []);
      } finally {
        await server.close();
      }
    },
  );
});
