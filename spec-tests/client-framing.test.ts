/**
 * The client's side of framing (RFC 6455 §5), protocol errors (§7.1.7) and the closing handshake
 * (§7), against the raw server of the independent test peer (helpers/peer/), which sends whatever
 * a test wants and decodes what the client sends with its own decoder, recording any unmasked
 * frame as a protocol error.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Opcode, ProtocolError, WebSocket, type ClientOptions } from '../src/index.js';
import type { TracedFrame } from '../src/index.js';
import { record, type Recorder } from './helpers/client-events.js';
import {
  RawServer,
  acceptResponse,
  closePayload,
  deflatePayload,
  delay,
  encodeFrame,
  randomMaskKey,
  withTimeout,
  type FrameSpec,
  type Responder,
  type ServerPeer,
} from './helpers/peer/index.js';

const T = { timeout: 8_000 };

interface Session {
  server: RawServer;
  ws: WebSocket;
  events: Recorder;
  peer: ServerPeer;
  /** Terminate the client and stop the server. */
  dispose(): Promise<void>;
}

/** A client connected to a hostile server that accepted it. No pings unless asked. */
async function open(options: ClientOptions = {}, respond?: Responder): Promise<Session> {
  const server = await RawServer.start(respond !== undefined ? { respond } : {});
  const ws = new WebSocket(server.url('/'), [], { handshakeTimeout: 3_000, pingInterval: 0, ...options });
  const events = record(ws);
  const peer = await withTimeout(server.nextPeer(), 3_000, 'the connection');
  await withTimeout(events.opened, 3_000, "'open'");
  return {
    server,
    ws,
    events,
    peer,
    async dispose() {
      ws.terminate();
      await withTimeout(events.closed, 3_000, "'close' on dispose");
      await server.close();
    },
  };
}

function waitFor<T>(peer: ServerPeer, event: string, ms = 3_000): Promise<T> {
  return withTimeout(new Promise<T>((resolve) => peer.once(event, resolve)), ms, `the peer's '${event}'`);
}

describe('RFC 6455 §5.1, §5.3: every frame the client sends is masked, with a fresh key', () => {
  it(
    'masks data frames, fragments, pings, pongs and the close frame, each with its own unpredictable key',
    T,
    async () => {
      const s = await open({ fragmentSize: 0 });
      try {
        const sent: { data: Buffer; isBinary: boolean }[] = [];
        for (let i = 0; i < 160; i++) {
          const text = 'é'.repeat(i % 40) + `#${i}`;
          s.ws.send(text);
          sent.push({ data: Buffer.from(text), isBinary: false });
        }
        for (let i = 0; i < 40; i++) {
          const bytes = Buffer.alloc(i * 37, i);
          s.ws.send(bytes);
          sent.push({ data: bytes, isBinary: true });
        }
        s.ws.send('');
        sent.push({ data: Buffer.alloc(0), isBinary: false });
        s.ws.send(Buffer.alloc(300, 0x5a), { fragmentSize: 7 });
        sent.push({ data: Buffer.alloc(300, 0x5a), isBinary: true });
        for (let i = 0; i < 10; i++) s.ws.ping(i === 0 ? '' : `ping ${i}`);
        s.ws.pong('unsolicited');
        s.ws.close(1000, 'done');

        const close = await s.peer.waitCloseFrame(5_000);
        assert.equal(close.code, 1000);
        assert.equal(close.reason, 'done');
        // The peer records an unmasked frame as a protocol error: none was.
        assert.deepEqual(s.peer.protocolErrors, []);
        assert.deepEqual(s.peer.messages, sent, 'payloads did not survive masking');
        assert.deepEqual(
          s.peer.pings.map((p) => p.toString()),
          ['', ...Array.from({ length: 9 }, (_, i) => `ping ${i + 1}`)],
        );
        assert.equal(s.peer.pongs[0]?.toString(), 'unsolicited');

        const frames = s.peer.frames;
        // 201 single-frame messages + 43 fragments + 11 control frames + close.
        assert.equal(frames.length, 201 + 43 + 11 + 1);
        assert.ok(
          frames.every((f) => f.masked && f.maskKey !== null && f.maskKey.length === 4),
          'an unmasked frame',
        );
        const keys = frames.map((f) => Buffer.from(f.maskKey!));
        const distinct = new Set(keys.map((k) => k.toString('hex'))).size;
        assert.ok(distinct >= keys.length - 2, `only ${distinct} distinct keys out of ${keys.length}`);
        // Unpredictable: about half of all key bits set, and no counter-like sequence.
        const ones = keys.reduce((sum, k) => sum + [...k].reduce((n, b) => n + popcount(b), 0), 0);
        const bits = keys.length * 32;
        assert.ok(ones > bits * 0.4 && ones < bits * 0.6, `${ones} of ${bits} key bits set`);
        let steps = 0;
        for (let i = 1; i < keys.length; i++) {
          const delta = (keys[i]!.readUInt32BE(0) - keys[i - 1]!.readUInt32BE(0)) >>> 0;
          if (delta <= 16) steps++;
        }
        assert.ok(steps <= 2, `${steps} consecutive keys differ by a small step`);
        // No all-zero keys (a zero key is no masking at all).
        assert.ok(
          keys.filter((k) => k.readUInt32BE(0) === 0).length <= 1,
          'keys.filter((k) => k.readUInt32BE(0) === 0).length <= 1',
        );
      } finally {
        await s.dispose();
      }
    },
  );

  it("never modifies the application's buffers when masking them", T, async () => {
    const s = await open();
    try {
      const small = Buffer.from('hello, masking');
      const large = Buffer.alloc(100_000, 0x41);
      const view = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
      s.ws.send(small);
      s.ws.send(large);
      s.ws.send(view.subarray(2, 6));
      s.ws.send(large, { fragmentSize: 4096 });
      await withTimeout(
        Promise.all([s.peer.nextMessage(), s.peer.nextMessage(), s.peer.nextMessage(), s.peer.nextMessage()]),
        5_000,
        'the messages',
      );
      assert.equal(small.toString(), 'hello, masking');
      assert.ok(
        large.every((b) => b === 0x41),
        'large.every((b) => b === 0x41)',
      );
      assert.deepEqual([...view], [1, 2, 3, 4, 5, 6, 7, 8]);
      assert.deepEqual(s.peer.messages[2]!.data, Buffer.from([3, 4, 5, 6]));
    } finally {
      await s.dispose();
    }
  });

  it(
    'splits messages into fragmentSize frames: first with the opcode, then continuations, FIN on the last',
    T,
    async () => {
      const s = await open({ fragmentSize: 10 });
      try {
        const text = 'ab€'.repeat(9); // 45 bytes: the 3-byte € gets split across frames
        s.ws.send(text);
        s.ws.send(Buffer.alloc(10, 1)); // exactly one fragment: one frame
        s.ws.send(Buffer.alloc(0));
        const first = await withTimeout(s.peer.nextMessage(), 3_000, 'the text message');
        assert.equal(first.data.toString(), text);
        await withTimeout(s.peer.nextMessage(), 3_000, 'the second message');
        await withTimeout(s.peer.nextMessage(), 3_000, 'the third message');
        const shape = s.peer.frames.map((f) => [f.opcode, f.fin, f.payload.length]);
        assert.deepEqual(shape, [
          [Opcode.Text, false, 10],
          [Opcode.Continuation, false, 10],
          [Opcode.Continuation, false, 10],
          [Opcode.Continuation, false, 10],
          [Opcode.Continuation, true, 5],
          [Opcode.Binary, true, 10],
          [Opcode.Binary, true, 0],
        ]);
        assert.ok(
          s.peer.frames.every((f) => f.masked),
          's.peer.frames.every((f) => f.masked)',
        );
      } finally {
        await s.dispose();
      }
    },
  );
});

interface ViolationCase {
  name: string;
  bytes: () => Buffer;
  code: number;
  options?: ClientOptions;
  /** Valid messages before the bad frame. */
  delivered?: number;
}

const text = (payload: string | Uint8Array, extra: Partial<FrameSpec> = {}): Buffer =>
  encodeFrame({ opcode: Opcode.Text, payload, ...extra });
const binary = (payload: Uint8Array, extra: Partial<FrameSpec> = {}): Buffer =>
  encodeFrame({ opcode: Opcode.Binary, payload, ...extra });
const closeFrame = (payload: Uint8Array): Buffer => encodeFrame({ opcode: Opcode.Close, payload });

const violations: ViolationCase[] = [
  {
    name: 'a masked frame from the server (§5.1)',
    bytes: () => text('hello', { maskKey: randomMaskKey() }),
    code: 1002,
  },
  {
    name: 'a masked ping from the server (§5.1)',
    bytes: () => encodeFrame({ opcode: Opcode.Ping, payload: 'x', maskKey: randomMaskKey() }),
    code: 1002,
  },
  ...[0x3, 0x4, 0x7].map((opcode) => ({
    name: `reserved data opcode 0x${opcode.toString(16)} (§5.2)`,
    bytes: () => encodeFrame({ opcode, payload: 'x' }),
    code: 1002,
  })),
  ...[0xb, 0xc, 0xf].map((opcode) => ({
    name: `reserved control opcode 0x${opcode.toString(16)} (§5.2)`,
    bytes: () => encodeFrame({ opcode, payload: '' }),
    code: 1002,
  })),
  { name: 'RSV1 set with no extension (§5.2)', bytes: () => text('x', { rsv1: true }), code: 1002 },
  { name: 'RSV2 set (§5.2)', bytes: () => binary(Buffer.from([1]), { rsv2: true }), code: 1002 },
  { name: 'RSV3 set (§5.2)', bytes: () => text('x', { rsv3: true }), code: 1002 },
  { name: 'RSV1 on a ping (§5.2)', bytes: () => encodeFrame({ opcode: Opcode.Ping, rsv1: true }), code: 1002 },
  {
    name: 'a ping with 126 bytes of payload (§5.5)',
    bytes: () => encodeFrame({ opcode: Opcode.Ping, payload: Buffer.alloc(126) }),
    code: 1002,
  },
  {
    name: 'a pong with 200 bytes of payload, 16-bit length (§5.5)',
    bytes: () => encodeFrame({ opcode: Opcode.Pong, payload: Buffer.alloc(200) }),
    code: 1002,
  },
  {
    name: 'a close frame with 126 bytes of payload (§5.5)',
    bytes: () => closeFrame(closePayload(1000, 'r'.repeat(124))),
    code: 1002,
  },
  {
    name: 'a fragmented ping (§5.5)',
    bytes: () => encodeFrame({ opcode: Opcode.Ping, fin: false, payload: 'x' }),
    code: 1002,
  },
  {
    name: 'a fragmented close (§5.5)',
    bytes: () => encodeFrame({ opcode: Opcode.Close, fin: false, payload: closePayload(1000) }),
    code: 1002,
  },
  {
    name: 'a continuation frame with no message open (§5.4)',
    bytes: () => encodeFrame({ opcode: Opcode.Continuation, payload: 'x' }),
    code: 1002,
  },
  {
    name: 'a final continuation frame after a complete message (§5.4)',
    bytes: () => Buffer.concat([text('done'), encodeFrame({ opcode: Opcode.Continuation, payload: 'more' })]),
    code: 1002,
    delivered: 1,
  },
  {
    name: 'a new text message inside a fragmented one (§5.4)',
    bytes: () => Buffer.concat([text('par', { fin: false }), text('new')]),
    code: 1002,
  },
  {
    name: 'a new binary message inside a fragmented text one (§5.4)',
    bytes: () => Buffer.concat([text('par', { fin: false }), binary(Buffer.from([1]))]),
    code: 1002,
  },
  {
    name: 'a 64-bit length with the most significant bit set (§5.2)',
    bytes: () => encodeFrame({ opcode: Opcode.Binary, lengthEncoding: 64, declaredLength: 1n << 63n }),
    code: 1002,
  },
  {
    name: 'a 64-bit length of 2^64 - 1 (§5.2)',
    bytes: () => encodeFrame({ opcode: Opcode.Binary, lengthEncoding: 64, declaredLength: (1n << 64n) - 1n }),
    code: 1002,
  },
  { name: 'invalid UTF-8 in a text message (§8.1)', bytes: () => text(Buffer.from([0x48, 0xc3, 0x28])), code: 1007 },
  {
    name: 'a UTF-16 surrogate encoded in a text message (§8.1)',
    bytes: () => text(Buffer.from([0xed, 0xa0, 0x80])),
    code: 1007,
  },
  { name: 'an overlong encoding in a text message (§8.1)', bytes: () => text(Buffer.from([0xc0, 0xaf])), code: 1007 },
  {
    name: 'a text message ending inside a code point (§8.1)',
    bytes: () => text(Buffer.from([0x61, 0xe2, 0x82])),
    code: 1007,
  },
  {
    name: 'invalid UTF-8 in the second fragment of a text message (§8.1)',
    bytes: () =>
      Buffer.concat([
        text('valid ', { fin: false }),
        encodeFrame({ opcode: Opcode.Continuation, fin: false, payload: Buffer.from([0xff]) }),
      ]),
    code: 1007,
  },
  {
    name: 'a code point split across fragments, then invalid (§8.1)',
    bytes: () =>
      Buffer.concat([
        text(Buffer.from([0xf0, 0x9f]), { fin: false }),
        encodeFrame({ opcode: Opcode.Continuation, payload: Buffer.from([0x41]) }),
      ]),
    code: 1007,
  },
  { name: 'a close frame with a 1-byte payload (§5.5.1)', bytes: () => closeFrame(Buffer.from([0x03])), code: 1002 },
  ...[0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535].map((code) => ({
    name: `close code ${code} (§7.4)`,
    bytes: () => closeFrame(closePayload(code)),
    code: 1002,
  })),
  {
    name: 'a close reason that is not UTF-8 (§5.5.1, §8.1)',
    bytes: () => closeFrame(closePayload(1000, Buffer.from([0xce, 0xba, 0xe1]))),
    code: 1007,
  },
  {
    name: 'a single-frame message over maxMessageSize (§10.4)',
    options: { maxMessageSize: 1000 },
    bytes: () => binary(Buffer.alloc(1001)),
    code: 1009,
  },
  {
    name: 'a fragmented message over maxMessageSize (§10.4)',
    options: { maxMessageSize: 1000 },
    bytes: () =>
      Buffer.concat([
        text('a'.repeat(600), { fin: false }),
        encodeFrame({ opcode: Opcode.Continuation, fin: false, payload: 'b'.repeat(300) }),
        encodeFrame({ opcode: Opcode.Continuation, payload: 'c'.repeat(101) }),
      ]),
    code: 1009,
  },
  {
    name: 'a 64-bit length far over maxMessageSize, with no payload sent (§10.4)',
    options: { maxMessageSize: 1 << 20 },
    bytes: () => encodeFrame({ opcode: Opcode.Binary, lengthEncoding: 64, declaredLength: 1n << 40n }),
    code: 1009,
  },
  {
    name: 'a frame over maxFramePayload (§10.4)',
    options: { maxFramePayload: 100 },
    bytes: () => binary(Buffer.alloc(101)),
    code: 1009,
  },
];

describe('RFC 6455 §7.1.7: the client fails the connection on protocol errors, with the right code', () => {
  for (const violation of violations) {
    it(`${violation.name} -> ${violation.code}`, T, async () => {
      const s = await open(violation.options);
      try {
        // A valid message right behind the bad bytes must never be delivered.
        s.peer.write(Buffer.concat([violation.bytes(), text('after the error')]));
        const close = await s.peer.waitCloseFrame(3_000);
        assert.equal(close.code, violation.code, `the client sent close ${close.code} (${close.reason})`);
        // The client closes TCP after failing the connection.
        await s.peer.waitPeerEnd(3_000);
        const closed = await withTimeout(s.events.closed, 3_000, "'close'");
        assert.equal(closed.code, violation.code);
        assert.equal(closed.wasClean, false);
        assert.equal(s.events.count('message'), violation.delivered ?? 0);
        const errors = s.events.errors();
        assert.equal(errors.length, 1, `errors: ${errors.map(String).join('; ')}`);
        assert.ok(errors[0] instanceof ProtocolError, String(errors[0]));
        assert.equal(errors[0].closeCode, violation.code);
        assert.deepEqual(s.peer.protocolErrors, []);
        await delay(30);
        assert.equal(s.events.count('close'), 1);
      } finally {
        await s.dispose();
      }
    });
  }

  it('fails the same way when the bad frame arrives one byte at a time', T, async () => {
    const s = await open();
    try {
      const bytes = Buffer.concat([text('ok'), encodeFrame({ opcode: Opcode.Ping, payload: Buffer.alloc(126) })]);
      await s.peer.writeChunked(bytes, 1, 1);
      const close = await s.peer.waitCloseFrame(3_000);
      assert.equal(close.code, 1002);
      const closed = await withTimeout(s.events.closed, 3_000, "'close'");
      assert.equal(closed.code, 1002);
      assert.equal(s.events.count('message'), 1);
    } finally {
      await s.dispose();
    }
  });
});

/** RFC 7692 §7.2.1: a message compressed with raw DEFLATE, without the final 00 00 ff ff. */
function compressed(data: string | Uint8Array): Buffer {
  return deflatePayload(typeof data === 'string' ? Buffer.from(data) : data);
}

describe('RFC 7692: with permessage-deflate negotiated', () => {
  const acceptDeflate: Responder = (request) =>
    acceptResponse(request, { headers: [['Sec-WebSocket-Extensions', 'permessage-deflate']] });

  it('inflates a compressed message (RSV1 on its first frame only), fragmented or not', T, async () => {
    const s = await open({ perMessageDeflate: true }, acceptDeflate);
    try {
      const body = 'compress me '.repeat(200);
      const packed = compressed(body);
      s.peer.write(
        Buffer.concat([
          text(packed, { rsv1: true }),
          text(packed.subarray(0, 10), { rsv1: true, fin: false }),
          encodeFrame({ opcode: Opcode.Continuation, payload: packed.subarray(10) }),
          text('not compressed'),
        ]),
      );
      const messages = [];
      for (let i = 0; i < 3; i++) messages.push(await withTimeout(s.events.nextMessage(), 3_000, `message ${i}`));
      assert.deepEqual(
        messages.map((m) => m.data.toString()),
        [body, body, 'not compressed'],
      );
    } finally {
      await s.dispose();
    }
  });

  const deflateViolations: ViolationCase[] = [
    { name: 'RSV1 on a ping', bytes: () => encodeFrame({ opcode: Opcode.Ping, rsv1: true }), code: 1002 },
    {
      name: 'RSV1 on a continuation frame',
      bytes: () =>
        Buffer.concat([
          text(compressed('ab'), { rsv1: true, fin: false }),
          encodeFrame({ opcode: Opcode.Continuation, rsv1: true, payload: compressed('cd') }),
        ]),
      code: 1002,
    },
    { name: 'RSV2 on a data frame', bytes: () => text(compressed('x'), { rsv1: true, rsv2: true }), code: 1002 },
    {
      name: 'a compressed message that does not inflate',
      bytes: () => text(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00]), { rsv1: true }),
      code: 1002,
    },
    {
      name: 'a compressed message that inflates to invalid UTF-8',
      bytes: () => text(compressed(Buffer.from([0x61, 0xff, 0x62])), { rsv1: true }),
      code: 1007,
    },
    {
      name: 'a small compressed message that inflates past maxMessageSize (a deflate bomb)',
      options: { maxMessageSize: 64 * 1024 },
      bytes: () => binary(compressed(Buffer.alloc(4 * 1024 * 1024)), { rsv1: true }),
      code: 1009,
    },
  ];
  for (const violation of deflateViolations) {
    it(`${violation.name} -> ${violation.code}`, T, async () => {
      const s = await open({ perMessageDeflate: true, ...violation.options }, acceptDeflate);
      try {
        s.peer.write(Buffer.concat([violation.bytes(), text('after the error')]));
        const close = await s.peer.waitCloseFrame(3_000);
        assert.equal(close.code, violation.code, `the client sent close ${close.code} (${close.reason})`);
        const closed = await withTimeout(s.events.closed, 3_000, "'close'");
        assert.equal(closed.code, violation.code);
        assert.equal(closed.wasClean, false);
        assert.equal(s.events.count('message'), 0);
      } finally {
        await s.dispose();
      }
    });
  }
});

describe('RFC 6455 §5.5.2, §5.5.3: pings and pongs from the server', () => {
  it("answers a ping with a pong carrying the same payload, and emits 'ping'", T, async () => {
    const s = await open();
    try {
      s.peer.write(encodeFrame({ opcode: Opcode.Ping, payload: 'are you there?' }));
      const pong = await waitFor<Buffer>(s.peer, 'pong');
      assert.equal(pong.toString(), 'are you there?');
      const pings = s.events.events.filter((e) => e.type === 'ping');
      assert.equal(pings.length, 1);
      // A ping in the middle of a fragmented message is answered too, and the message survives.
      s.peer.write(
        Buffer.concat([
          text('frag', { fin: false }),
          encodeFrame({ opcode: Opcode.Ping, payload: Buffer.alloc(125, 7) }),
          encodeFrame({ opcode: Opcode.Continuation, payload: 'mented' }),
        ]),
      );
      const message = await withTimeout(s.events.nextMessage(), 3_000, 'the message');
      assert.equal(message.data.toString(), 'fragmented');
      const pong2 = await waitFor<Buffer>(s.peer, 'pong');
      assert.deepEqual(pong2, Buffer.alloc(125, 7));
      // An unsolicited pong is reported and needs no answer.
      s.peer.write(encodeFrame({ opcode: Opcode.Pong, payload: 'heartbeat' }));
      await withTimeout(
        (async () => {
          while (s.events.count('pong') === 0) await delay(5);
        })(),
        3_000,
        "'pong'",
      );
      assert.deepEqual(s.peer.protocolErrors, []);
    } finally {
      await s.dispose();
    }
  });

  it('does not answer pings when autoPong is false', T, async () => {
    const s = await open({ autoPong: false });
    try {
      s.peer.write(encodeFrame({ opcode: Opcode.Ping, payload: 'p' }));
      s.peer.write(text('marker'));
      await withTimeout(s.events.nextMessage(), 3_000, 'the marker');
      await delay(50);
      assert.equal(s.events.count('ping'), 1);
      assert.equal(s.peer.pongs.length, 0);
    } finally {
      await s.dispose();
    }
  });

  it('pings every pingInterval, and drops the connection when nothing arrives for pongTimeout', T, async () => {
    const s = await open({ pingInterval: 100, pongTimeout: 400 });
    try {
      const started = performance.now();
      const closed = await withTimeout(s.events.closed, 4_000, "'close' after the pong timeout");
      const elapsed = performance.now() - started;
      assert.ok(s.peer.pings.length >= 1, 'no ping was sent');
      assert.equal(closed.code, 1006);
      assert.equal(closed.wasClean, false);
      assert.ok(elapsed >= 300 && elapsed < 3_000, `dropped after ${Math.round(elapsed)} ms`);
      await s.peer.waitClosed(3_000);
    } finally {
      await s.dispose();
    }
  });
});

describe('RFC 6455 §7: the closing handshake from the client side', () => {
  it(
    'server-initiated: the client echoes the code and waits for the server to close TCP first (§7.1.1)',
    T,
    async () => {
      const s = await open({ closeTimeout: 5_000 });
      try {
        s.peer.write(closeFrame(closePayload(1001, 'going away')));
        const close = await s.peer.waitCloseFrame(3_000);
        assert.equal(close.code, 1001);
        // The server takes its time: the client must not close TCP meanwhile.
        await delay(250);
        assert.equal(s.peer.peerEndedAt, null, 'the client closed TCP before the server did');
        assert.equal(s.events.count('close'), 0);
        assert.equal(s.ws.readyState, WebSocket.CLOSING);
        // Messages can no longer be sent.
        assert.equal(s.ws.send('too late'), false);
        s.peer.end();
        const closed = await withTimeout(s.events.closed, 3_000, "'close'");
        assert.deepEqual(
          { code: closed.code, reason: closed.reason, wasClean: closed.wasClean },
          { code: 1001, reason: 'going away', wasClean: true },
        );
        await s.peer.waitClosed(3_000);
        assert.ok(s.peer.peerEndedAt! >= s.peer.weEndedAt!, 'the client FIN came before the server FIN');
        assert.equal(s.peer.messages.length, 0, 'data sent after the close frame');
      } finally {
        await s.dispose();
      }
    },
  );

  it('server-initiated, server closes TCP promptly: clean close, well before closeTimeout', T, async () => {
    const s = await open({ closeTimeout: 4_000 });
    try {
      s.peer.on('closeFrame', () => s.peer.end());
      const started = performance.now();
      s.peer.write(closeFrame(closePayload(4001, 'custom')));
      const close = await s.peer.waitCloseFrame(3_000);
      assert.equal(close.code, 4001);
      const closed = await withTimeout(s.events.closed, 3_000, "'close'");
      assert.deepEqual(
        { code: closed.code, reason: closed.reason, wasClean: closed.wasClean },
        { code: 4001, reason: 'custom', wasClean: true },
      );
      assert.ok(closed.at - started < 2_000, `closed after ${Math.round(closed.at - started)} ms`);
      await s.peer.waitClosed(3_000);
      assert.ok(
        s.peer.weEndedAt !== null && s.peer.peerEndedAt !== null && s.peer.weEndedAt <= s.peer.peerEndedAt,
        'the client closed TCP first',
      );
    } finally {
      await s.dispose();
    }
  });

  it('server-initiated with an empty close frame: the client answers with an empty one; code 1005', T, async () => {
    const s = await open();
    try {
      s.peer.on('closeFrame', () => s.peer.end());
      s.peer.write(closeFrame(Buffer.alloc(0)));
      await s.peer.waitCloseFrame(3_000);
      const lastFrame = s.peer.frames.at(-1)!;
      assert.equal(lastFrame.opcode, Opcode.Close);
      assert.equal(lastFrame.payload.length, 0, 'a reply to an empty close must not carry 1005');
      const closed = await withTimeout(s.events.closed, 3_000, "'close'");
      assert.deepEqual({ code: closed.code, wasClean: closed.wasClean }, { code: 1005, wasClean: true });
    } finally {
      await s.dispose();
    }
  });

  it('server-initiated, server never closes TCP: the client closes it after closeTimeout', T, async () => {
    const s = await open({ closeTimeout: 300 });
    try {
      s.peer.write(closeFrame(closePayload(1000, 'bye')));
      const close = await s.peer.waitCloseFrame(3_000);
      assert.equal(close.code, 1000);
      await s.peer.waitClosed(3_000);
      const waited = s.peer.closedAt! - close.at;
      assert.ok(
        waited >= 200 && waited < 2_500,
        `the client closed TCP ${Math.round(waited)} ms after its close frame`,
      );
      const closed = await withTimeout(s.events.closed, 3_000, "'close'");
      // Both close frames were exchanged: the closing handshake completed (§7.1.4).
      assert.deepEqual(
        { code: closed.code, reason: closed.reason, wasClean: closed.wasClean },
        { code: 1000, reason: 'bye', wasClean: true },
      );
    } finally {
      await s.dispose();
    }
  });

  it('client-initiated: the client sends close, gets the reply, and the close is clean', T, async () => {
    const s = await open({ closeTimeout: 4_000 });
    try {
      s.peer.on('closeFrame', (frame: { code: number; reason: string }) => {
        s.peer.write(closeFrame(closePayload(frame.code, frame.reason)));
        s.peer.end();
      });
      const started = performance.now();
      s.ws.close(1000, 'done');
      assert.equal(s.ws.readyState, WebSocket.CLOSING);
      const close = await s.peer.waitCloseFrame(3_000);
      assert.deepEqual({ code: close.code, reason: close.reason }, { code: 1000, reason: 'done' });
      const closed = await withTimeout(s.events.closed, 3_000, "'close'");
      assert.deepEqual(
        { code: closed.code, reason: closed.reason, wasClean: closed.wasClean },
        { code: 1000, reason: 'done', wasClean: true },
      );
      assert.ok(closed.at - started < 2_000, `closed after ${Math.round(closed.at - started)} ms`);
      assert.equal(s.ws.readyState, WebSocket.CLOSED);
      await delay(30);
      assert.equal(s.events.count('close'), 1);
    } finally {
      await s.dispose();
    }
  });

  it('client-initiated: after the reply, the client still waits for the server to close TCP', T, async () => {
    const s = await open({ closeTimeout: 4_000 });
    try {
      s.peer.on('closeFrame', () => s.peer.write(closeFrame(closePayload(1000))));
      s.ws.close(3000, 'app close');
      await s.peer.waitCloseFrame(3_000);
      await delay(250);
      assert.equal(s.peer.peerEndedAt, null, 'the client closed TCP before the server did');
      s.peer.end();
      const closed = await withTimeout(s.events.closed, 3_000, "'close'");
      assert.deepEqual({ code: closed.code, wasClean: closed.wasClean }, { code: 1000, wasClean: true });
    } finally {
      await s.dispose();
    }
  });

  it(
    'client-initiated, the server never answers: the client gives up after closeTimeout; 1006, not clean',
    T,
    async () => {
      const s = await open({ closeTimeout: 300 });
      try {
        s.ws.close(1000);
        const close = await s.peer.waitCloseFrame(3_000);
        assert.equal(close.code, 1000);
        await s.peer.waitClosed(3_000);
        const waited = s.peer.closedAt! - close.at;
        assert.ok(waited >= 200 && waited < 2_500, `gave up after ${Math.round(waited)} ms`);
        const closed = await withTimeout(s.events.closed, 3_000, "'close'");
        assert.deepEqual({ code: closed.code, wasClean: closed.wasClean }, { code: 1006, wasClean: false });
      } finally {
        await s.dispose();
      }
    },
  );

  it('the server drops TCP without a close frame: close 1006, not clean', T, async () => {
    const s = await open();
    try {
      s.peer.write(text('last words'));
      s.peer.end();
      const closed = await withTimeout(s.events.closed, 3_000, "'close'");
      assert.deepEqual({ code: closed.code, wasClean: closed.wasClean }, { code: 1006, wasClean: false });
      assert.equal(s.events.count('message'), 1);
    } finally {
      await s.dispose();
    }
  });

  it('messages the server sent before its close frame are all delivered, in order, before close', T, async () => {
    const s = await open();
    try {
      s.peer.on('closeFrame', () => s.peer.end());
      const frames = [
        text('one'),
        binary(Buffer.from([2])),
        text('th', { fin: false }),
        encodeFrame({ opcode: Opcode.Continuation, payload: 'ree' }),
      ];
      s.peer.write(Buffer.concat([...frames, closeFrame(closePayload(1000)), text('after close: ignored')]));
      await withTimeout(s.events.closed, 3_000, "'close'");
      const types = s.events.events
        .filter((e) => e.type === 'message' || e.type === 'close')
        .map((e) => (e.type === 'message' ? e.data.toString('latin1') : 'close'));
      assert.deepEqual(types, ['one', '\x02', 'three', 'close']);
    } finally {
      await s.dispose();
    }
  });
});

describe('the trace option', () => {
  it('reports every frame received and sent, decoded', T, async () => {
    const traced: TracedFrame[] = [];
    const s = await open({ trace: (frame) => traced.push({ ...frame, payload: Buffer.from(frame.payload) }) });
    try {
      s.peer.write(text('from server'));
      await withTimeout(s.events.nextMessage(), 3_000, 'the message');
      s.ws.send('from client');
      await withTimeout(s.peer.nextMessage(), 3_000, "the client's message");
      const seen = traced.map((f) => `${f.direction} ${f.opcode} ${f.payload.toString()} ${f.masked}`);
      assert.ok(seen.includes(`out ${Opcode.Text} from client true`), seen.join(' | '));
      assert.ok(
        seen.includes(`in ${Opcode.Text} from server false`),
        `incoming frames are not traced: ${seen.join(' | ')}`,
      );
    } finally {
      await s.dispose();
    }
  });
});

function popcount(byte: number): number {
  let count = 0;
  for (let b = byte; b !== 0; b >>= 1) count += b & 1;
  return count;
}
