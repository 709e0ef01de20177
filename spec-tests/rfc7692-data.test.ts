/**
 * RFC 7692 §6, §7.2: compressed data on real connections. Round trips in both roles over the
 * parameter space (context takeover, window bits 8-15, fragmentation, levels, sizes across the
 * threshold, compressible and random data), checked on the wire with the `trace` option: RSV1 on
 * the first frame of compressed messages only, and every compressed stream inflatable by a
 * strict, independent zlib inflater with exactly the negotiated window. Then the RFC's own
 * examples, ordering around the compression queue, RSV1 misuse, invalid compressed data,
 * decompression bombs, and the release of zlib state.
 */
import assert from 'node:assert/strict';
import { runInNewContext } from 'node:vm';
import * as zlibModule from 'node:zlib';
import { setFlagsFromString } from 'node:v8';
import { after, describe, it } from 'node:test';
import { WebSocket as WsClient, WebSocketServer as WsServer } from 'ws';
import { ProtocolViolation, type PerMessageDeflateOptions, type ServerOptions, type WebSocket } from '../src/index.js';
import { PerMessageDeflate, zlibLimiter } from '../src/driver/deflate-zlib.js';
import { inflateBudget } from '../src/protocol/inflate-budget.js';
import { compressible, prng, randomBuffer, randomText } from './helpers/data.js';
import {
  KiB,
  MiB,
  closeEvent,
  delay,
  lastConnection,
  rawRequest,
  received,
  startServer as start,
  tracedClient,
  waitUntil,
  withTimeout,
  wireMessages,
  type ConnectionHandler,
  type Received,
  type TestServer,
  type TracedClient,
} from './helpers/library.js';
import {
  OP,
  RawServer,
  clientFrame,
  deflatePayload,
  destroyRawClients,
  encodeFrame,
  negotiated,
  strictInflate,
  upgradeWith,
  zeroBomb,
} from './helpers/peer/index.js';
import type { TracedFrame } from '../src/protocol/trace.js';
import { InflatingReceiver } from './helpers/core.js';

after(() => destroyRawClients());

/** Our server, without pings, with a short close timeout. */
function startServer(options: ServerOptions, handler?: ConnectionHandler): Promise<TestServer> {
  return start({ pingInterval: 0, closeTimeout: 1000, ...options }, handler);
}

function closedOf(client: TracedClient, ms = 3000): Promise<{ code: number; reason: string; wasClean: boolean }> {
  return withTimeout(client.closed, ms, 'the client close event');
}

const DEFAULT_THRESHOLD = 1024;

interface Outgoing {
  data: Buffer;
  binary: boolean;
  compress: boolean;
}

/** Text and binary, compressible and random, at each size. Text content is valid UTF-8. */
function messageSet(sizes: readonly number[], seed: number): Outgoing[] {
  const rng = prng(seed);
  const out: Outgoing[] = [];
  for (const size of sizes) {
    out.push({ data: compressible(size, rng), binary: false, compress: true });
    out.push({ data: randomText(size, rng), binary: false, compress: true });
    out.push({ data: compressible(size, rng), binary: true, compress: true });
    out.push({ data: randomBuffer(size, rng), binary: true, compress: true });
  }
  return out;
}

interface RoundTrip {
  server: PerMessageDeflateOptions;
  client: PerMessageDeflateOptions;
  fragmentSize?: number;
  sizes: readonly number[];
  /** What the negotiation must produce. */
  expect: {
    serverNoContextTakeover: boolean;
    clientNoContextTakeover: boolean;
    serverBits: number;
    clientBits: number;
  };
  seed: number;
}

/** Check one direction of a trace against what was sent (RSV1, framing, and the compressed stream itself). */
function checkWire(
  frames: readonly TracedFrame[],
  direction: 'in' | 'out',
  sent: readonly Outgoing[],
  threshold: number,
  fragmentSize: number,
  windowBits: number,
  contextTakeover: boolean,
): void {
  const { messages, controls } = wireMessages(frames, direction);
  assert.equal(messages.length, sent.length, `${direction}: message count`);
  const compressedPayloads: Buffer[] = [];
  const plaintexts: Buffer[] = [];
  messages.forEach((message, i) => {
    const expected = sent[i]!;
    const what = `${direction} message ${i} (${expected.data.length} bytes, ${expected.binary ? 'binary' : 'text'})`;
    assert.equal(message.opcode, expected.binary ? OP.BINARY : OP.TEXT, what);
    // RFC 7692 §6: RSV1 marks a compressed message, on its first frame only (§6.1).
    const shouldCompress = expected.compress && expected.data.length >= threshold;
    assert.equal(message.compressed, shouldCompress, `${what}: RSV1 ${message.compressed}`);
    message.frames.forEach((frame, j) => {
      if (j > 0) assert.equal(frame.rsv1, false, `${what}: RSV1 on continuation frame ${j}`);
      assert.equal(frame.rsv2 || frame.rsv3, false, what);
      if (fragmentSize > 0)
        assert.ok(frame.payload.length <= fragmentSize, `${what}: frame ${j} of ${frame.payload.length} bytes`);
    });
    if (fragmentSize > 0 && message.payload.length > fragmentSize)
      assert.ok(message.frames.length > 1, `${what}: not fragmented`);
    if (!shouldCompress) {
      assert.ok(message.payload.equals(expected.data), `${what}: uncompressed payload differs`);
    } else {
      compressedPayloads.push(message.payload);
      plaintexts.push(expected.data);
      // §7.2.1: the tail is removed.
      if (message.payload.length >= 4)
        assert.ok(!message.payload.subarray(-4).equals(Buffer.from([0, 0, 0xff, 0xff])), `${what}: tail not removed`);
    }
  });
  for (const control of controls)
    assert.equal(control.rsv1, false, `${direction}: RSV1 on a control frame (opcode ${control.opcode})`);
  // An independent, strict inflater with exactly the negotiated window (and context rules) gets
  // the plaintext back: the compressor kept to the agreed window and reset when it had to.
  const inflated = strictInflate(compressedPayloads, windowBits, contextTakeover);
  assert.ok(
    inflated.equals(Buffer.concat(plaintexts)),
    `${direction}: the strict ${windowBits}-bit inflater disagrees`,
  );
}

async function roundTrip(c: RoundTrip): Promise<void> {
  const srv = await startServer({ perMessageDeflate: c.server, fragmentSize: c.fragmentSize ?? 0 });
  try {
    const client = await tracedClient(srv.url, { perMessageDeflate: c.client, fragmentSize: c.fragmentSize ?? 0 });
    const ws = client.ws;
    assert.deepEqual(negotiated(ws.extensions), c.expect, ws.extensions);
    const sent = messageSet(c.sizes, c.seed);
    // One message the application asks not to compress (the echo compresses it back).
    sent.splice(3, 0, { data: compressible(4 * KiB, prng(c.seed + 1)), binary: true, compress: false });
    const echoed = received(client, sent.length, 15_000);
    sent.forEach((message, i) => {
      ws.send(message.data, { binary: message.binary, compress: message.compress });
      // Control frames in the middle of compressed traffic.
      if (i % 5 === 2) ws.ping(`p${i}`);
    });
    const got = await echoed;
    got.forEach((message, i) => {
      assert.equal(message.isBinary, sent[i]!.binary, `message ${i} type`);
      assert.ok(
        message.data.equals(sent[i]!.data),
        `message ${i} (${sent[i]!.data.length} bytes) differs after the round trip`,
      );
    });
    const fragmentSize = c.fragmentSize ?? 0;
    const { expect } = c;
    checkWire(
      client.frames,
      'out',
      sent,
      c.client.threshold ?? DEFAULT_THRESHOLD,
      fragmentSize,
      expect.clientBits,
      !expect.clientNoContextTakeover,
    );
    const echoes = sent.map((m) => ({ ...m, compress: true }));
    checkWire(
      client.frames,
      'in',
      echoes,
      c.server.threshold ?? DEFAULT_THRESHOLD,
      fragmentSize,
      expect.serverBits,
      !expect.serverNoContextTakeover,
    );
    ws.close(1000);
    const closed = await closedOf(client);
    assert.equal(closed.code, 1000);
    // Close frames carry no RSV1 either.
    for (const frame of client.frames) if (frame.opcode === OP.CLOSE) assert.equal(frame.rsv1, false);
  } finally {
    await srv.close();
  }
}

const SMALL_SIZES = [0, 1, 1023, 1024, 64 * KiB];

describe('round trips: context takeover x fragmentation', () => {
  let seed = 100;
  for (const serverNo of [false, true]) {
    for (const clientNo of [false, true]) {
      for (const fragmentSize of [0, 1000]) {
        const name = `server_no_context_takeover=${serverNo} client_no_context_takeover=${clientNo} fragmentSize=${fragmentSize}`;
        const s = seed++;
        it(name, { timeout: 20_000 }, () =>
          roundTrip({
            // The server imposes one, the client asks for the other: both ways of negotiating.
            server: { clientNoContextTakeover: clientNo },
            client: { serverNoContextTakeover: serverNo },
            fragmentSize,
            // 1 MiB only unfragmented (a 1000-byte fragmentation of 1 MiB is 1000+ frames).
            sizes: fragmentSize === 0 ? [...SMALL_SIZES, MiB] : SMALL_SIZES,
            expect: {
              serverNoContextTakeover: serverNo,
              clientNoContextTakeover: clientNo,
              serverBits: 15,
              clientBits: 15,
            },
            seed: s,
          }),
        );
      }
    }
  }
});

describe('round trips: every window size 8-15 on both sides', () => {
  for (let bits = 8; bits <= 15; bits++) {
    const other = 23 - bits;
    const byClient = bits % 2 === 0;
    const fragmentSize = bits % 3 === 0 ? 333 : 0;
    it(
      `server_max_window_bits=${bits} client_max_window_bits=${other} (asked by the ${byClient ? 'client' : 'server'}, fragmentSize ${fragmentSize})`,
      { timeout: 20_000 },
      () =>
        roundTrip({
          server: byClient ? {} : { serverMaxWindowBits: bits, clientMaxWindowBits: other },
          client: byClient ? { serverMaxWindowBits: bits, clientMaxWindowBits: other } : {},
          fragmentSize,
          sizes: SMALL_SIZES,
          expect: {
            serverNoContextTakeover: false,
            clientNoContextTakeover: false,
            serverBits: bits,
            clientBits: other,
          },
          seed: 200 + bits,
        }),
    );
  }

  it('both windows at 8 without context takeover, fragmented', { timeout: 20_000 }, () =>
    roundTrip({
      server: {
        serverMaxWindowBits: 8,
        clientMaxWindowBits: 8,
        serverNoContextTakeover: true,
        clientNoContextTakeover: true,
      },
      client: {},
      fragmentSize: 100,
      sizes: [0, 1023, 1024, 20 * KiB],
      expect: { serverNoContextTakeover: true, clientNoContextTakeover: true, serverBits: 8, clientBits: 8 },
      seed: 300,
    }),
  );

  it('both windows at 9 with context takeover, 1 MiB messages', { timeout: 20_000 }, () =>
    roundTrip({
      server: { serverMaxWindowBits: 9, clientMaxWindowBits: 9 },
      client: {},
      sizes: [1024, MiB],
      expect: { serverNoContextTakeover: false, clientNoContextTakeover: false, serverBits: 9, clientBits: 9 },
      seed: 301,
    }),
  );
});

describe('round trips: levels, memLevels and thresholds', () => {
  const variants: [string, PerMessageDeflateOptions][] = [
    ['level 0 (stored blocks)', { level: 0 }],
    ['level 1, memLevel 1', { level: 1, memLevel: 1 }],
    ['level 9, memLevel 9', { level: 9, memLevel: 9 }],
    ['threshold 0 (everything compressed, the empty message included)', { threshold: 0 }],
    ['threshold 100', { threshold: 100 }],
  ];
  let seed = 400;
  for (const [what, options] of variants) {
    const s = seed++;
    it(what, { timeout: 20_000 }, () =>
      roundTrip({
        server: options,
        client: options,
        fragmentSize: 0,
        sizes: [0, 1, 99, 100, 1023, 1024, 64 * KiB],
        expect: { serverNoContextTakeover: false, clientNoContextTakeover: false, serverBits: 15, clientBits: 15 },
        seed: s,
      }),
    );
  }
});

describe('RFC 7692 §7.2.3: the examples, on the wire', () => {
  const hex = (b: Buffer): string => b.toString('hex');

  it(
    'our client compresses "Hello" as §7.2.3.1, then with context takeover as §7.2.3.2; the empty message as §7.2.3.6',
    { timeout: 5000 },
    async () => {
      const srv = await startServer({ perMessageDeflate: { threshold: 0 } });
      try {
        const client = await tracedClient(srv.url, { perMessageDeflate: { threshold: 0 } });
        const ws = client.ws;
        const got = received(client, 3);
        ws.send('Hello');
        ws.send('Hello');
        ws.send('');
        assert.deepEqual(
          (await got).map((m) => m.data.toString()),
          ['Hello', 'Hello', ''],
        );
        const out = wireMessages(client.frames, 'out').messages;
        assert.deepEqual(
          out.map((m) => [m.compressed, hex(m.payload)]),
          [
            [true, 'f248cdc9c90700'],
            [true, 'f200110000'],
            [true, '00'],
          ],
        );
        // The server's echoes are the same bytes: its compressor is in the same state.
        const inbound = wireMessages(client.frames, 'in').messages;
        assert.deepEqual(
          inbound.map((m) => hex(m.payload)),
          ['f248cdc9c90700', 'f200110000', '00'],
        );
        ws.close();
        await closedOf(client);
      } finally {
        await srv.close();
      }
    },
  );

  it('without context takeover, every "Hello" is compressed afresh', { timeout: 5000 }, async () => {
    const srv = await startServer({
      perMessageDeflate: { threshold: 0, serverNoContextTakeover: true, clientNoContextTakeover: true },
    });
    try {
      const client = await tracedClient(srv.url, { perMessageDeflate: { threshold: 0 } });
      const ws = client.ws;
      const got = received(client, 3);
      for (let i = 0; i < 3; i++) ws.send('Hello');
      assert.deepEqual(
        (await got).map((m) => m.data.toString()),
        ['Hello', 'Hello', 'Hello'],
      );
      for (const direction of ['in', 'out'] as const) {
        assert.deepEqual(
          wireMessages(client.frames, direction).messages.map((m) => hex(m.payload)),
          ['f248cdc9c90700', 'f248cdc9c90700', 'f248cdc9c90700'],
        );
      }
      ws.close();
      await closedOf(client);
    } finally {
      await srv.close();
    }
  });

  const hello = (payloadHex: string): Buffer => Buffer.from(payloadHex, 'hex');
  const vectors: [string, { opcode: number; fin: boolean; rsv1: boolean; payload: Buffer }[][], string[]][] = [
    ['§7.2.3.1 one frame', [[{ opcode: OP.TEXT, fin: true, rsv1: true, payload: hello('f248cdc9c90700') }]], ['Hello']],
    [
      '§7.2.3.1 fragmented',
      [
        [
          { opcode: OP.TEXT, fin: false, rsv1: true, payload: hello('f248cd') },
          { opcode: OP.CONT, fin: true, rsv1: false, payload: hello('c9c90700') },
        ],
      ],
      ['Hello'],
    ],
    [
      '§7.2.3.2 context takeover',
      [
        [{ opcode: OP.TEXT, fin: true, rsv1: true, payload: hello('f248cdc9c90700') }],
        [{ opcode: OP.TEXT, fin: true, rsv1: true, payload: hello('f200110000') }],
      ],
      ['Hello', 'Hello'],
    ],
    [
      '§7.2.3.3 a DEFLATE block with no compression',
      [[{ opcode: OP.TEXT, fin: true, rsv1: true, payload: hello('000500faff48656c6c6f00') }]],
      ['Hello'],
    ],
    [
      '§7.2.3.5 two DEFLATE blocks in one message',
      [[{ opcode: OP.TEXT, fin: true, rsv1: true, payload: hello('f248050000' + '00ffff' + 'cac9c90700') }]],
      ['Hello'],
    ],
    ['§7.2.3.6 an empty message', [[{ opcode: OP.TEXT, fin: true, rsv1: true, payload: hello('00') }]], ['']],
    [
      '§7.2.3.4 a DEFLATE block with BFINAL set, then a normal message',
      [
        [{ opcode: OP.TEXT, fin: true, rsv1: true, payload: hello('f348cdc9c9070000') }],
        [{ opcode: OP.TEXT, fin: true, rsv1: true, payload: deflatePayload(Buffer.from('World')) }],
        [{ opcode: OP.BINARY, fin: true, rsv1: true, payload: deflatePayload(Buffer.from('Again')) }],
      ],
      ['Hello', 'World', 'Again'],
    ],
    [
      'messages ending in a BFINAL block (zlib Z_FINISH), one after another',
      [
        [{ opcode: OP.TEXT, fin: true, rsv1: true, payload: Buffer.concat([zlibFinish('first'), Buffer.from([0])]) }],
        [{ opcode: OP.TEXT, fin: true, rsv1: true, payload: Buffer.concat([zlibFinish('second'), Buffer.from([0])]) }],
      ],
      ['first', 'second'],
    ],
  ];
  for (const [what, messages, expected] of vectors) {
    it(`a raw client sending ${what}: the server inflates it`, { timeout: 5000 }, async () => {
      const srv = await startServer({ perMessageDeflate: true });
      try {
        const raw = await rawRequest(srv.port, ['Sec-WebSocket-Extensions: permessage-deflate']);
        assert.equal(raw.header('sec-websocket-extensions'), 'permessage-deflate');
        for (const frames of messages) raw.sendFrames(...frames);
        const got = await raw.waitFrames(expected.length, 2000);
        assert.deepEqual(
          got.map((f) => [f.opcode === OP.CLOSE ? `close ${f.payload.readUInt16BE(0)}` : f.payload.toString()]),
          expected.map((text) => [text]),
        );
        raw.destroy();
      } finally {
        await srv.close();
      }
    });
  }

  it(
    'a server sending RFC example payloads: our client inflates them (BFINAL included)',
    { timeout: 5000 },
    async () => {
      const hostile = await RawServer.start({
        respond: upgradeWith('Sec-WebSocket-Extensions: permessage-deflate'),
        onPeer: (peer) => {
          const frame = (payload: Buffer): Buffer => encodeFrame({ opcode: OP.TEXT, rsv1: true, payload });
          peer.write(
            Buffer.concat([
              frame(hello('f248cdc9c90700')),
              frame(hello('f200110000')),
              frame(hello('000500faff48656c6c6f00')),
              frame(hello('f348cdc9c9070000')),
              frame(deflatePayload(Buffer.from('World'))),
            ]),
          );
        },
      });
      try {
        const client = await tracedClient(hostile.url(), { perMessageDeflate: true });
        const ws = client.ws;
        const got = await received(client, 5, 2000);
        assert.deepEqual(
          got.map((m) => m.data.toString()),
          ['Hello', 'Hello', 'Hello', 'Hello', 'World'],
        );
        ws.terminate();
      } finally {
        await hostile.close();
      }
    },
  );
});

function zlibFinish(text: string): Buffer {
  // deflateRawSync's default finishFlush is Z_FINISH: one block with BFINAL set.
  return zlibModule.deflateRawSync(Buffer.from(text));
}
describe('the threshold and the compress option, on the wire', () => {
  it(
    'server side: { compress: false } and messages under the threshold go without RSV1; the rest with it',
    { timeout: 5000 },
    async () => {
      const big = compressible(8 * KiB, prng(7));
      const srv = await startServer({ perMessageDeflate: true }, (conn) => {
        conn.send(big, { compress: false });
        conn.send(big.subarray(0, 1023));
        conn.send(big.subarray(0, 1024));
        conn.send(big);
        conn.send(big, { compress: true });
      });
      try {
        const client = await tracedClient(srv.url, { perMessageDeflate: true });
        const ws = client.ws;
        const got = await received(client, 5);
        assert.deepEqual(
          got.map((m) => m.data.length),
          [8 * KiB, 1023, 1024, 8 * KiB, 8 * KiB],
        );
        assert.deepEqual(
          wireMessages(client.frames, 'in').messages.map((m) => m.compressed),
          [false, false, true, true, true],
        );
        ws.close();
        await closedOf(client);
      } finally {
        await srv.close();
      }
    },
  );

  it(
    'sendAsync resolves for compressed messages; the callback of a message still being compressed fails when the connection is terminated',
    { timeout: 5000 },
    async () => {
      const srv = await startServer({ perMessageDeflate: true });
      try {
        const client = await tracedClient(srv.url, { perMessageDeflate: true });
        const ws = client.ws;
        await ws.sendAsync(compressible(64 * KiB, prng(8)));
        const result = new Promise<Error | undefined>((resolve) =>
          ws.send(randomBuffer(2 * MiB, prng(9)), (error) => resolve(error)),
        );
        assert.ok(ws.bufferedAmount >= 2 * MiB, 'a message waiting for compression counts in bufferedAmount');
        ws.terminate();
        const error = await withTimeout(result, 3000, 'the send callback');
        assert.ok(error instanceof Error, 'error instanceof Error');
      } finally {
        await srv.close();
      }
    },
  );
});

describe('order around the compression queue', () => {
  const SIZES = [1023, 1024, 1, 1025, 4000, 0, 1536, 700, 20 * KiB, 1024];

  function numbered(i: number): { data: Buffer; binary: boolean; compress: boolean } {
    const size = SIZES[i % SIZES.length]!;
    const data = Buffer.alloc(Math.max(size, 8), `message ${i}; `);
    data.write(`#${i}#`.padEnd(8, ' ').slice(0, 8), 0);
    return { data: data.subarray(0, Math.max(size, 8)), binary: i % 3 === 0, compress: i % 7 !== 0 };
  }
  const indexOf = (m: Received): number => Number(/^#(\d+)#/.exec(m.data.toString('latin1'))![1]);

  it(
    '500 messages from our client, alternating sizes around the threshold: received and echoed in order',
    { timeout: 10_000 },
    async () => {
      const receivedByServer: number[] = [];
      const srv = await startServer({ perMessageDeflate: true }, (conn) => {
        conn.on('message', (data, isBinary) => {
          receivedByServer.push(indexOf({ data, isBinary }));
          conn.send(data, { binary: isBinary });
        });
      });
      try {
        const client = await tracedClient(srv.url, { perMessageDeflate: true });
        const ws = client.ws;
        const got = received(client, 500, 8000);
        for (let i = 0; i < 500; i++) {
          const m = numbered(i);
          ws.send(m.data, { binary: m.binary, compress: m.compress });
        }
        const echoed = await got;
        const expected = Array.from({ length: 500 }, (_, i) => i);
        assert.deepEqual(receivedByServer, expected);
        assert.deepEqual(echoed.map(indexOf), expected);
        echoed.forEach((m, i) => assert.ok(m.data.equals(numbered(i).data), `message ${i}`));
        // And the mix really was mixed on the wire.
        const flags = wireMessages(client.frames, 'out').messages.map((m) => m.compressed);
        assert.ok(flags.includes(true) && flags.includes(false), 'flags.includes(true) && flags.includes(false)');
        ws.close();
        await closedOf(client);
      } finally {
        await srv.close();
      }
    },
  );

  it('500 messages from our server, mixed with pings: received in order', { timeout: 10_000 }, async () => {
    const srv = await startServer({ perMessageDeflate: true }, (conn) => {
      for (let i = 0; i < 500; i++) {
        const m = numbered(i);
        conn.send(m.data, { binary: m.binary, compress: m.compress });
        if (i % 50 === 0) conn.ping();
      }
    });
    try {
      const client = await tracedClient(srv.url, { perMessageDeflate: true });
      const ws = client.ws;
      const got = await received(client, 500, 8000);
      assert.deepEqual(
        got.map(indexOf),
        Array.from({ length: 500 }, (_, i) => i),
      );
      got.forEach((m, i) => assert.ok(m.data.equals(numbered(i).data), `message ${i}`));
      const { controls } = wireMessages(client.frames, 'in');
      assert.ok(controls.length >= 10, 'controls.length >= 10');
      for (const control of controls) assert.equal(control.rsv1, false);
      ws.close();
      await closedOf(client);
    } finally {
      await srv.close();
    }
  });

  it('a broadcast after a compressed send arrives after it', { timeout: 5000 }, async () => {
    const big = compressible(256 * KiB, prng(11));
    const srv = await startServer({ perMessageDeflate: true }, (conn) => {
      conn.on('message', () => {
        conn.send(big);
        srv.wss.broadcast('after the big one');
      });
    });
    try {
      const client = await tracedClient(srv.url, { perMessageDeflate: true });
      const ws = client.ws;
      const got = received(client, 2);
      ws.send('go');
      const [first, second] = await got;
      assert.equal(
        first!.data.length,
        big.length,
        `the broadcast overtook the compressed message: got "${first!.data.subarray(0, 40).toString()}" first`,
      );
      assert.equal(second!.data.toString(), 'after the big one');
      ws.close();
      await closedOf(client);
    } finally {
      await srv.close();
    }
  });

  it(
    'close() right after sends from our client: every message arrives before the close frame',
    { timeout: 5000 },
    async () => {
      const received: number[] = [];
      let serverClose: Promise<{ code: number; reason: string }> | null = null;
      const srv = await startServer({ perMessageDeflate: true }, (conn) => {
        conn.on('message', (data, isBinary) => received.push(indexOf({ data, isBinary })));
        serverClose = closeEvent(conn);
      });
      try {
        const client = await tracedClient(srv.url, { perMessageDeflate: true });
        const ws = client.ws;
        for (let i = 0; i < 100; i++) {
          const m = numbered(i);
          ws.send(m.data, { binary: m.binary, compress: m.compress });
        }
        ws.close(1000, 'done');
        const mine = await closedOf(client);
        assert.equal(mine.code, 1000);
        assert.equal(mine.wasClean, true);
        const theirs = await serverClose!;
        assert.equal(theirs.code, 1000);
        assert.equal(theirs.reason, 'done');
        assert.deepEqual(
          received,
          Array.from({ length: 100 }, (_, i) => i),
        );
      } finally {
        await srv.close();
      }
    },
  );

  it(
    'close() right after sends from our server: every message arrives before the close frame',
    { timeout: 5000 },
    async () => {
      const srv = await startServer({ perMessageDeflate: true }, (conn) => {
        for (let i = 0; i < 100; i++) {
          const m = numbered(i);
          conn.send(m.data, { binary: m.binary, compress: m.compress });
        }
        conn.close(1000, 'bye');
      });
      try {
        const client = await tracedClient(srv.url, { perMessageDeflate: true });
        const closed = await closedOf(client);
        assert.equal(closed.code, 1000);
        assert.equal(closed.reason, 'bye');
        assert.equal(closed.wasClean, true);
        const inbound = client.frames.filter((f) => f.direction === 'in');
        const { messages } = wireMessages(client.frames, 'in');
        assert.equal(messages.length, 100);
        assert.equal(inbound.at(-1)!.opcode, OP.CLOSE, 'the close frame comes last');
        assert.equal(inbound.filter((f) => f.opcode === OP.CLOSE).length, 1);
        assert.deepEqual(
          client.messages.map(indexOf),
          Array.from({ length: 100 }, (_, i) => i),
        );
      } finally {
        await srv.close();
      }
    },
  );
});

describe('the size limit with compression', () => {
  for (const [what, options] of [
    ['15-bit windows', {}],
    ['8-bit windows (Huffman only)', { serverMaxWindowBits: 8, clientMaxWindowBits: 8 }],
    ['level 0', { level: 0 }],
  ] as [string, PerMessageDeflateOptions][]) {
    it(
      `${what}: a random message of exactly maxMessageSize is accepted both ways; one byte more closes with 1009`,
      { timeout: 10_000 },
      async () => {
        const limit = MiB;
        const srv = await startServer({ perMessageDeflate: options, maxMessageSize: limit });
        try {
          const client = await tracedClient(srv.url, { perMessageDeflate: options, maxMessageSize: limit });
          const ws = client.ws;
          const data = randomBuffer(limit, prng(12));
          const got = received(client, 1, 8000);
          ws.send(data);
          const [echo] = await got;
          assert.ok(echo!.data.equals(data), 'echo!.data.equals(data)');
          // It did go compressed, and did not compress (so its frame is bigger than the limit).
          const [out] = wireMessages(client.frames, 'out').messages;
          assert.equal(out!.compressed, true);
          assert.ok(out!.payload.length >= limit - 64, `${out!.payload.length}`);
          ws.send(randomBuffer(limit + 1, prng(13)));
          const closed = await closedOf(client, 5000);
          assert.equal(closed.code, 1009);
        } finally {
          await srv.close();
        }
      },
    );
  }

  it(
    'fragmented: a random message of exactly maxMessageSize in 64 KiB frames is accepted',
    { timeout: 10_000 },
    async () => {
      const limit = 512 * KiB;
      const srv = await startServer({ perMessageDeflate: true, maxMessageSize: limit, fragmentSize: 64 * KiB });
      try {
        const client = await tracedClient(srv.url, {
          perMessageDeflate: true,
          maxMessageSize: limit,
          fragmentSize: 64 * KiB,
        });
        const ws = client.ws;
        const data = randomBuffer(limit, prng(14));
        const got = received(client, 1, 8000);
        ws.send(data);
        assert.ok((await got)[0]!.data.equals(data), '(await got)[0]!.data.equals(data)');
        ws.close();
        await closedOf(client);
      } finally {
        await srv.close();
      }
    },
  );
});

describe('RSV1 misuse (RFC 6455 §5.2, RFC 7692 §6.1): close 1002', () => {
  const compressedHello = Buffer.from('f248cdc9c90700', 'hex');
  const cases: [
    string,
    boolean,
    { opcode: number; fin?: boolean; rsv1?: boolean; rsv2?: boolean; rsv3?: boolean; payload?: Buffer | string }[],
  ][] = [
    ['RSV1 without permessage-deflate negotiated', false, [{ opcode: OP.TEXT, rsv1: true, payload: compressedHello }]],
    [
      'RSV1 on a continuation frame of a compressed message',
      true,
      [
        { opcode: OP.TEXT, fin: false, rsv1: true, payload: compressedHello.subarray(0, 3) },
        { opcode: OP.CONT, fin: true, rsv1: true, payload: compressedHello.subarray(3) },
      ],
    ],
    [
      'RSV1 on a continuation frame of an uncompressed message',
      true,
      [
        { opcode: OP.BINARY, fin: false, payload: 'abc' },
        { opcode: OP.CONT, fin: true, rsv1: true, payload: 'def' },
      ],
    ],
    ['RSV1 on a ping', true, [{ opcode: OP.PING, rsv1: true, payload: 'x' }]],
    ['RSV1 on a pong', true, [{ opcode: OP.PONG, rsv1: true }]],
    ['RSV1 on a close frame', true, [{ opcode: OP.CLOSE, rsv1: true, payload: Buffer.from([0x03, 0xe8]) }]],
    [
      'RSV1 on a ping between the frames of a compressed message',
      true,
      [
        { opcode: OP.TEXT, fin: false, rsv1: true, payload: compressedHello.subarray(0, 3) },
        { opcode: OP.PING, rsv1: true },
        { opcode: OP.CONT, fin: true, payload: compressedHello.subarray(3) },
      ],
    ],
    ['RSV2 with permessage-deflate negotiated', true, [{ opcode: OP.TEXT, rsv2: true, payload: 'x' }]],
    [
      'RSV3 with permessage-deflate negotiated',
      true,
      [{ opcode: OP.BINARY, rsv3: true, rsv1: true, payload: compressedHello }],
    ],
  ];
  for (const [what, negotiate, frames] of cases) {
    it(`${what}`, { timeout: 5000 }, async () => {
      const srv = await startServer({ perMessageDeflate: true });
      try {
        const raw = await rawRequest(srv.port, negotiate ? ['Sec-WebSocket-Extensions: permessage-deflate'] : []);
        assert.equal(raw.header('sec-websocket-extensions'), negotiate ? 'permessage-deflate' : undefined);
        const serverSide = closeEvent(await waitForConnection(srv));
        raw.sendFrames(...frames);
        assert.equal((await raw.waitCloseFrame()).code, 1002);
        // No message was delivered out of the bad frames.
        assert.ok(
          raw.frames.every((f) => f.opcode === OP.CLOSE || f.opcode === OP.PONG),
          'raw.frames.every((f) => f.opcode === OP.CLOSE || f.opcode === OP.PONG)',
        );
        assert.equal((await serverSide).code, 1002);
        raw.destroy();
      } finally {
        await srv.close();
      }
    });
  }
});

async function waitForConnection(srv: TestServer): Promise<WebSocket> {
  return (await lastConnection(srv)).ws;
}

describe('invalid compressed data', () => {
  const garbage: [string, { opcode: number; fin?: boolean; rsv1?: boolean; payload?: Buffer }[], number][] = [
    [
      'a reserved block type (BTYPE=11)',
      [{ opcode: OP.BINARY, rsv1: true, payload: Buffer.alloc(16, 0xff) }],
      ProtocolViolation.InvalidCompressedData,
    ],
    [
      'a stored block whose LEN and NLEN disagree',
      [{ opcode: OP.BINARY, rsv1: true, payload: Buffer.from('0005000000', 'hex') }],
      ProtocolViolation.InvalidCompressedData,
    ],
    // The first frame ends where a stored block's LEN/NLEN must follow; ff ff / ff ff disagree.
    [
      'garbage in the continuation of a valid start',
      [
        { opcode: OP.BINARY, fin: false, rsv1: true, payload: Buffer.from('f248cdc9c90700', 'hex') },
        { opcode: OP.CONT, fin: true, payload: Buffer.from('ffffffffffffffffffff', 'hex') },
      ],
      ProtocolViolation.InvalidCompressedData,
    ],
    [
      'a back-reference before the start of the stream',
      [{ opcode: OP.BINARY, rsv1: true, payload: Buffer.from('f200110000', 'hex') }],
      ProtocolViolation.InvalidCompressedData,
    ],
    [
      'a text message that inflates to invalid UTF-8',
      [{ opcode: OP.TEXT, rsv1: true, payload: deflatePayload(Buffer.from([0x48, 0xff, 0xfe, 0x49])) }],
      ProtocolViolation.InvalidUtf8,
    ],
  ];
  for (const [what, frames, code] of garbage) {
    it(`${what}: closes with ${code}, and the server keeps serving`, { timeout: 5000 }, async () => {
      const srv = await startServer({ perMessageDeflate: true });
      try {
        const raw = await rawRequest(srv.port, ['Sec-WebSocket-Extensions: permessage-deflate']);
        const serverSide = closeEvent(await waitForConnection(srv));
        raw.sendFrames(...frames);
        assert.equal((await raw.waitCloseFrame()).code, code);
        assert.equal((await serverSide).code, code);
        assert.ok(
          raw.frames.every((f) => f.opcode === OP.CLOSE),
          'nothing was echoed',
        );
        raw.destroy();
        // Still alive and compressing for the next client.
        const client = await tracedClient(srv.url, { perMessageDeflate: true });
        const ws = client.ws;
        const got = received(client, 1);
        ws.send(compressible(4 * KiB, prng(15)).toString());
        assert.equal((await got)[0]!.data.length, 4 * KiB);
        ws.close();
        await closedOf(client);
      } finally {
        await srv.close();
      }
    });
  }

  it('our client fails a server that sends invalid compressed data', { timeout: 5000 }, async () => {
    const hostile = await RawServer.start({
      respond: upgradeWith('Sec-WebSocket-Extensions: permessage-deflate'),
      onPeer: (peer) => peer.write(Buffer.concat([Buffer.from([0xc2, 16]), Buffer.alloc(16, 0xff)])),
    });
    try {
      const client = await tracedClient(hostile.url(), { perMessageDeflate: true, closeTimeout: 300 });
      const closed = await closedOf(client);
      assert.equal(closed.code, ProtocolViolation.InvalidCompressedData);
    } finally {
      await hostile.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Memory: bombs, and the release of zlib state
// ---------------------------------------------------------------------------------------------

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    gc();
    await delay(10);
  }
}

describe('decompression bombs', () => {
  it('the bomb builder is sound: 3 MiB of zeros', () => {
    const bomb = zeroBomb(3 * MiB);
    const out = zlibModule.inflateRawSync(Buffer.concat([bomb, Buffer.from([0, 0, 0xff, 0xff])]), {
      finishFlush: zlibModule.constants.Z_SYNC_FLUSH,
    });
    assert.equal(out.length, 3 * MiB);
    assert.ok(
      out.every((b) => b === 0),
      'out.every((b) => b === 0)',
    );
  });

  const bomb = zeroBomb(64 * MiB);

  for (const [what, frames] of [
    ['in one RSV1 frame', [{ opcode: OP.BINARY, rsv1: true, payload: bomb }]],
    [
      'as a text message in 8 frames',
      Array.from({ length: 8 }, (_, i) => {
        const step = Math.ceil(bomb.length / 8);
        return {
          opcode: i === 0 ? OP.TEXT : OP.CONT,
          rsv1: i === 0,
          fin: i === 7,
          payload: bomb.subarray(i * step, (i + 1) * step),
        };
      }),
    ],
  ] as [string, { opcode: number; fin?: boolean; rsv1?: boolean; payload: Buffer }[]][]) {
    it(
      `64 MiB of zeros in ${Math.round(bomb.length / KiB)} KiB, ${what}, to a server with maxMessageSize 1 MiB: 1009, quickly, without the memory`,
      { timeout: 10_000 },
      async () => {
        const srv = await startServer({ perMessageDeflate: true, maxMessageSize: MiB });
        try {
          const raw = await rawRequest(srv.port, ['Sec-WebSocket-Extensions: permessage-deflate']);
          const conn = await waitForConnection(srv);
          let messages = 0;
          conn.on('message', () => messages++);
          const serverSide = closeEvent(conn);
          await settle();
          const before = process.memoryUsage();
          let peakRss = before.rss;
          let peakBuffers = before.arrayBuffers;
          const sampler = setInterval(() => {
            const now = process.memoryUsage();
            peakRss = Math.max(peakRss, now.rss);
            peakBuffers = Math.max(peakBuffers, now.arrayBuffers);
          }, 1);
          const started = Date.now();
          raw.sendFrames(...frames);
          try {
            assert.equal((await raw.waitCloseFrame(3000)).code, 1009);
            const closed = await serverSide;
            assert.equal(closed.code, 1009);
            // The reason names the configured limit, not what was left of it when a later
            // fragment crossed it.
            assert.equal(closed.reason, `message exceeds the limit of ${MiB} bytes once inflated`);
          } finally {
            clearInterval(sampler);
          }
          const elapsed = Date.now() - started;
          const after = process.memoryUsage();
          peakRss = Math.max(peakRss, after.rss);
          peakBuffers = Math.max(peakBuffers, after.arrayBuffers);
          assert.equal(messages, 0);
          assert.ok(elapsed < 2000, `took ${elapsed} ms`);
          const rssGrowth = (peakRss - before.rss) / MiB;
          const bufferGrowth = (peakBuffers - before.arrayBuffers) / MiB;
          assert.ok(bufferGrowth < 16, `ArrayBuffer memory grew by ${bufferGrowth.toFixed(1)} MiB`);
          assert.ok(rssGrowth < 40, `RSS grew by ${rssGrowth.toFixed(1)} MiB`);
          raw.destroy();
        } finally {
          await srv.close();
        }
      },
    );
  }

  it(
    'a server sending a bomb to our client with maxMessageSize 1 MiB: the client closes with 1009',
    { timeout: 5000 },
    async () => {
      const hostile = await RawServer.start({
        respond: upgradeWith('Sec-WebSocket-Extensions: permessage-deflate'),
        onPeer: (peer) => {
          peer.write(encodeFrame({ opcode: OP.BINARY, rsv1: true, payload: bomb, lengthEncoding: 64 }));
        },
      });
      try {
        const client = await tracedClient(hostile.url(), {
          perMessageDeflate: true,
          maxMessageSize: MiB,
          closeTimeout: 300,
        });
        const ws = client.ws;
        let messages = 0;
        ws.on('message', () => messages++);
        const closed = await closedOf(client);
        assert.equal(closed.code, 1009);
        assert.equal(messages, 0);
      } finally {
        await hostile.close();
      }
    },
  );
});

describe('zlib state is released', () => {
  // PerMessageDeflate's private zlib streams (src/driver/deflate-zlib.ts).
  type Streams = { deflater: { destroyed: boolean } | null; inflater: { destroyed: boolean } | null };

  it(
    'every connection closes its PerMessageDeflate and destroys its zlib streams, on both sides',
    { timeout: 10_000 },
    async () => {
      const original = PerMessageDeflate.prototype.close;
      const originalDeflate = PerMessageDeflate.prototype.deflate;
      const closed = new Set<PerMessageDeflate>();
      // Every connection's PerMessageDeflate, seen when it compresses (both sides do, below).
      const used = new Set<PerMessageDeflate>();
      PerMessageDeflate.prototype.close = function (this: PerMessageDeflate): void {
        closed.add(this);
        original.call(this);
      };
      PerMessageDeflate.prototype.deflate = function (
        this: PerMessageDeflate,
        ...args: Parameters<PerMessageDeflate['deflate']>
      ): void {
        used.add(this);
        originalDeflate.apply(this, args);
      };
      const srv = await startServer({ perMessageDeflate: true });
      try {
        for (let i = 0; i < 10; i++) {
          const before = new Set(used);
          const client = await tracedClient(srv.url, { perMessageDeflate: true });
          const ws = client.ws;
          const got = received(client, 1);
          ws.send(compressible(16 * KiB, prng(i)));
          await got;
          const conn = srv.connections.at(-1)!.ws;
          const pmds = [...used].filter((p) => !before.has(p));
          assert.equal(
            pmds.length,
            2,
            'the client and the server connection each compressed with their own PerMessageDeflate',
          );
          const streams = pmds.flatMap((p) => {
            const s = p as unknown as Streams;
            return [s.deflater, s.inflater];
          });
          assert.ok(
            streams.every((s) => s !== null && !s.destroyed),
            'both sides compressed and inflated',
          );
          const serverClosed = closeEvent(conn);
          // Alternate who closes, and how.
          if (i % 3 === 0) ws.close();
          else if (i % 3 === 1) conn.close();
          else ws.terminate();
          await closedOf(client).catch(() => {});
          await serverClosed;
          for (const pmd of pmds) {
            assert.ok(closed.has(pmd), `connection ${i}: PerMessageDeflate.close() not called`);
            const s = pmd as unknown as Streams;
            assert.equal(s.deflater, null);
            assert.equal(s.inflater, null);
          }
          for (const stream of streams)
            assert.equal(stream!.destroyed, true, `connection ${i}: a zlib stream was not destroyed`);
        }
      } finally {
        PerMessageDeflate.prototype.close = original;
        PerMessageDeflate.prototype.deflate = originalDeflate;
        await srv.close();
      }
    },
  );

  it('many sequential compressed connections do not grow memory without bound', { timeout: 15_000 }, async () => {
    const srv = await startServer({ perMessageDeflate: true });
    const payload = compressible(16 * KiB, prng(99));
    const oneConnection = async (): Promise<void> => {
      const client = await tracedClient(srv.url, { perMessageDeflate: true });
      const ws = client.ws;
      const got = received(client, 1);
      ws.send(payload);
      await got;
      ws.close();
      await closedOf(client);
    };
    try {
      for (let i = 0; i < 15; i++) await oneConnection();
      await waitUntil(() => srv.wss.clients.size === 0, 2000, 'server connections to go');
      await settle();
      const before = process.memoryUsage();
      for (let i = 0; i < 80; i++) await oneConnection();
      await waitUntil(() => srv.wss.clients.size === 0, 2000, 'server connections to go');
      await settle();
      const after = process.memoryUsage();
      // Each connection holds ~0.6 MiB of zlib state over both sides while open.
      const rssGrowth = (after.rss - before.rss) / MiB;
      assert.ok(rssGrowth < 24, `RSS grew by ${rssGrowth.toFixed(1)} MiB over 80 connections`);
      assert.ok(
        (after.arrayBuffers - before.arrayBuffers) / MiB < 8,
        '(after.arrayBuffers - before.arrayBuffers) / MiB < 8',
      );
      assert.equal(zlibLimiter.active, 0);
      assert.equal(zlibLimiter.waiting, 0);
    } finally {
      await srv.close();
    }
  });
});

describe('closing while zlib is busy', () => {
  /** Collect uncaught exceptions while `run` runs (a crash of the server process otherwise). */
  async function catchingUncaught(run: () => Promise<void>): Promise<Error[]> {
    const errors: Error[] = [];
    const onError = (error: Error): void => {
      errors.push(error);
    };
    process.on('uncaughtException', onError);
    try {
      await run();
    } finally {
      process.off('uncaughtException', onError);
    }
    return errors;
  }

  it(
    'a server without context takeover, terminated while compressing: no crash, the zlib slot is released',
    { timeout: 5000 },
    async () => {
      const active = zlibLimiter.active;
      const srv = await startServer({ perMessageDeflate: { serverNoContextTakeover: true } }, (conn) => {
        conn.send(randomBuffer(4 * MiB, prng(21)));
        conn.terminate();
      });
      try {
        const errors = await catchingUncaught(async () => {
          // The server may hang up before the 101 gets out: either way is fine here.
          await tracedClient(srv.url, { perMessageDeflate: true })
            .then(closedOf, () => undefined)
            .catch(() => {});
          await delay(300);
        });
        assert.deepEqual(
          errors.map((e) => e.message),
          [],
        );
        await waitUntil(() => zlibLimiter.active <= active, 1000, 'the zlib job slot to be released').catch(() => {});
        assert.equal(zlibLimiter.active, active, 'a zlib job slot leaked');
      } finally {
        await srv.close();
      }
    },
  );

  it(
    'a client without context takeover that hangs up while its message is inflated: no crash, the slot is released',
    { timeout: 5000 },
    async () => {
      const active = zlibLimiter.active;
      // 24 MiB of zeros: valid (under the 64 MiB default limit), and long enough to inflate that
      // the hang-up is seen mid-way.
      const payload = zeroBomb(24 * MiB);
      const srv = await startServer({ perMessageDeflate: true });
      try {
        const errors = await catchingUncaught(async () => {
          const raw = await rawRequest(srv.port, [
            'Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover',
          ]);
          assert.equal(raw.header('sec-websocket-extensions'), 'permessage-deflate; client_no_context_takeover');
          const conn = await waitForConnection(srv);
          const closed = closeEvent(conn);
          raw.sendFrames({ opcode: OP.BINARY, rsv1: true, payload });
          raw.socket.end();
          await closed.catch(() => {});
          await delay(300);
        });
        assert.deepEqual(
          errors.map((e) => e.message),
          [],
        );
        await waitUntil(() => zlibLimiter.active <= active, 1000, 'the zlib job slot to be released').catch(() => {});
        assert.equal(zlibLimiter.active, active, 'a zlib job slot leaked');
      } finally {
        await srv.close();
      }
    },
  );

  it(
    'PerMessageDeflate.close() during a deflate or an inflate, with and without context takeover: callbacks settle, no throw',
    { timeout: 5000 },
    async () => {
      const data = randomBuffer(2 * MiB, prng(22));
      const source = new PerMessageDeflate({
        ownNoContextTakeover: false,
        peerNoContextTakeover: false,
        ownMaxWindowBits: 15,
        peerMaxWindowBits: 15,
      });
      const compressed = await new Promise<Buffer>((resolve) => source.deflate(data, (c) => resolve(c!)));
      source.close();
      for (const noTakeover of [false, true]) {
        const errors = await catchingUncaught(async () => {
          const active = zlibLimiter.active;
          const params = {
            ownNoContextTakeover: noTakeover,
            peerNoContextTakeover: noTakeover,
            ownMaxWindowBits: 15,
            peerMaxWindowBits: 15,
          };
          const a = new PerMessageDeflate(params);
          const deflated = new Promise<Buffer | null>((resolve) => a.deflate(data, resolve));
          a.close();
          assert.equal(await withTimeout(deflated, 2000, 'the deflate callback'), null);
          const b = new PerMessageDeflate(params);
          b.inflate(
            compressed,
            true,
            () => true,
            () => {},
          );
          await delay(1);
          b.close();
          await delay(200);
          assert.equal(zlibLimiter.active, active, `no_context_takeover=${noTakeover}: a zlib job slot leaked`);
        });
        assert.deepEqual(
          errors.map((e) => e.message),
          [],
          `no_context_takeover=${noTakeover}`,
        );
      }
    },
  );
});

describe('zlib work per frame', () => {
  it(
    'a compressed frame arriving in 1-byte chunks goes to zlib in a bounded number of writes (each is a thread-pool job holding one of the process-wide zlib slots)',
    { timeout: 10_000 },
    async () => {
      const params = {
        ownNoContextTakeover: false,
        peerNoContextTakeover: false,
        ownMaxWindowBits: 15,
        peerMaxWindowBits: 15,
      };
      const sender = new PerMessageDeflate(params);
      const pmd = new PerMessageDeflate(params);
      const compress = (data: Buffer): Promise<Buffer> =>
        new Promise((resolve) => sender.deflate(data, (c) => resolve(c!)));
      try {
        const messages: Buffer[] = [];
        const receiver = new InflatingReceiver(
          { role: 'server' },
          {
            onMessage: (d) => messages.push(Buffer.from(d)),
            onPing() {},
            onPong() {},
            onClose() {},
            onError: (e) => assert.fail(e.message),
          },
          pmd,
        );
        // A first message creates the inflater; then count what the second costs.
        receiver.push(clientFrame({ opcode: OP.BINARY, rsv1: true, payload: await compress(Buffer.from('warm up')) }));
        await waitUntil(() => messages.length === 1, 2000, 'the first message');
        const inflater = (pmd as unknown as { inflater: { write: (...args: unknown[]) => boolean } }).inflater;
        assert.ok(inflater !== null, 'the inflater exists after a message');
        let writes = 0;
        const write = inflater.write.bind(inflater);
        inflater.write = (...args: unknown[]): boolean => {
          writes++;
          return write(...(args as Parameters<typeof write>));
        };
        const data = randomBuffer(16 * KiB, prng(31));
        const frame = clientFrame({ opcode: OP.BINARY, rsv1: true, payload: await compress(data) });
        for (let i = 0; i < frame.length; i++) receiver.push(frame.subarray(i, i + 1));
        await waitUntil(() => messages.length === 2, 8000, 'the second message');
        assert.ok(messages[1]!.equals(data), 'messages[1]!.equals(data)');
        assert.ok(writes <= 64, `${writes} separate zlib writes for one ${frame.length}-byte frame`);
      } finally {
        sender.close();
        pmd.close();
      }
    },
  );
});

describe('reading pauses behind inflation and resumes', () => {
  it(
    'a burst of compressed messages to a server with a tiny highWaterMark: every one echoed, in order',
    { timeout: 10_000 },
    async () => {
      const srv = await startServer({ perMessageDeflate: true, highWaterMark: 4 * KiB });
      try {
        const client = await tracedClient(srv.url, { perMessageDeflate: true });
        const sent: Buffer[] = [];
        for (let i = 0; i < 150; i++) {
          const data = i % 2 === 0 ? randomBuffer(20 * KiB, prng(500 + i)) : compressible(60 * KiB, prng(500 + i));
          sent.push(data);
          client.ws.send(data);
        }
        const got = await received(client, sent.length, 8000);
        got.forEach((m, i) => assert.ok(m.data.equals(sent[i]!), `message ${i}`));
        client.ws.close();
        await closedOf(client);
      } finally {
        await srv.close();
      }
    },
  );
});

describe('interoperability with the ws package (an independent implementation)', () => {
  const optionSets: [string, PerMessageDeflateOptions][] = [
    ['defaults', {}],
    ['no context takeover both ways', { serverNoContextTakeover: true, clientNoContextTakeover: true }],
    ['windows 9 and 10', { serverMaxWindowBits: 9, clientMaxWindowBits: 10 }],
    ['windows 8 and 8', { serverMaxWindowBits: 8, clientMaxWindowBits: 8 }],
    ['windows 15 and 8, threshold 0', { serverMaxWindowBits: 15, clientMaxWindowBits: 8, threshold: 0 }],
  ];
  const payloads = (seed: number): { data: Buffer; binary: boolean }[] => {
    const rng = prng(seed);
    return [0, 10, 1024, 5000, 64 * KiB].flatMap((n) => [
      { data: compressible(n, rng), binary: false },
      { data: randomBuffer(n, rng), binary: true },
    ]);
  };

  for (const [what, options] of optionSets) {
    it(`ws client -> our server (${what})`, { timeout: 10_000 }, async () => {
      const srv = await startServer({ perMessageDeflate: options });
      const ws = new WsClient(srv.url, { perMessageDeflate: { ...options, threshold: options.threshold ?? 1024 } });
      try {
        const got: { data: Buffer; binary: boolean }[] = [];
        ws.on('message', (data: Buffer, isBinary: boolean) => got.push({ data: Buffer.from(data), binary: isBinary }));
        await withTimeout(
          new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject)),
          3000,
          'ws open',
        );
        assert.match(ws.extensions, /^permessage-deflate/);
        const sent = payloads(600);
        for (const m of sent) ws.send(m.data, { binary: m.binary });
        await waitUntil(() => got.length === sent.length, 8000, `${sent.length} echoes from our server`);
        got.forEach((m, i) => {
          assert.equal(m.binary, sent[i]!.binary);
          assert.ok(m.data.equals(sent[i]!.data), `message ${i}`);
        });
      } finally {
        ws.terminate();
        await srv.close();
      }
    });

    it(`our client -> ws server (${what})`, { timeout: 10_000 }, async () => {
      const wss = new WsServer({
        host: '127.0.0.1',
        port: 0,
        perMessageDeflate: { ...options, threshold: options.threshold ?? 1024 },
      });
      wss.on('connection', (socket) =>
        socket.on('message', (data: Buffer, isBinary: boolean) => socket.send(data, { binary: isBinary })),
      );
      await new Promise((resolve) => wss.once('listening', resolve));
      const port = (wss.address() as { port: number }).port;
      try {
        const client = await tracedClient(`ws://127.0.0.1:${port}/`, { perMessageDeflate: options });
        assert.match(client.ws.extensions, /^permessage-deflate/);
        const sent = payloads(700);
        for (const m of sent) client.ws.send(m.data, { binary: m.binary });
        const got = await received(client, sent.length, 8000);
        got.forEach((m, i) => {
          assert.equal(m.isBinary, sent[i]!.binary);
          assert.ok(m.data.equals(sent[i]!.data), `message ${i}`);
        });
        // ws compressed its echoes too.
        assert.ok(
          wireMessages(client.frames, 'in').messages.some((m) => m.compressed),
          "wireMessages(client.frames, 'in').messages.some((m) => m.compressed)",
        );
        client.ws.close();
        await closedOf(client);
      } finally {
        for (const socket of wss.clients) socket.terminate();
        await new Promise((resolve) => wss.close(resolve));
      }
    });
  }
});

// ---------------------------------------------------------------------------------------------
// The process-wide budget for inflated data (src/protocol/inflate-budget.ts, RFC 6455 §10.4)
// ---------------------------------------------------------------------------------------------

describe('the process-wide inflate budget: unfinished compressed messages cannot add up without bound', () => {
  const DEFLATE = ['Sec-WebSocket-Extensions: permessage-deflate'];
  /** The first fragment of a compressed message: 2 MiB of zeros in a few KiB, more to come. */
  const half = zeroBomb(2 * MiB);

  it(
    'a message that would take the process past the budget closes its connection with 1013; the others go on, and every byte comes back',
    { timeout: 10_000 },
    async () => {
      const savedLimit = inflateBudget.limit;
      const heldBefore = inflateBudget.held;
      inflateBudget.limit = heldBefore + 3 * MiB;
      const delivered: number[] = [];
      const srv = await startServer({ perMessageDeflate: true }, (ws) =>
        ws.on('message', (data) => delivered.push(data.length)),
      );
      try {
        // A: half a message, which holds 2 MiB of inflated data on the server.
        const a = await rawRequest(srv.port, DEFLATE);
        a.sendFrames({ opcode: OP.BINARY, rsv1: true, fin: false, payload: half });
        await waitUntil(() => inflateBudget.held === heldBefore + 2 * MiB, 3000, 'A to hold 2 MiB');

        // B: the same would make 4 MiB, past the 3 MiB budget: B is closed, with 1013 (Try Again Later).
        const b = await rawRequest(srv.port, DEFLATE);
        const bServer = srv.connections[1]!.ws;
        const bClosed = closeEvent(bServer);
        b.sendFrames({ opcode: OP.BINARY, rsv1: true, fin: false, payload: half });
        assert.equal((await b.waitCloseFrame(3000)).code, 1013);
        assert.equal((await bClosed).code, 1013);
        assert.equal(inflateBudget.held, heldBefore + 2 * MiB, 'B gave back what it had taken');

        // A is untouched: it finishes its message, which is delivered whole and leaves the budget.
        assert.equal(a.closeFrame, null);
        a.sendFrames({ opcode: OP.CONT, fin: true, payload: Buffer.alloc(0) });
        await waitUntil(() => delivered.length === 1, 3000, "A's message");
        assert.deepEqual(delivered, [2 * MiB]);
        assert.equal(inflateBudget.held, heldBefore);

        // C now fits; and a connection that dies in the middle of a message gives its bytes back.
        const c = await rawRequest(srv.port, DEFLATE);
        c.sendFrames({ opcode: OP.BINARY, rsv1: true, fin: false, payload: half });
        await waitUntil(() => inflateBudget.held === heldBefore + 2 * MiB, 3000, 'C to hold 2 MiB');
        c.destroy();
        await waitUntil(
          () => inflateBudget.held === heldBefore,
          3000,
          "C's bytes to come back after its connection died",
        );

        // A close frame in the middle of a message drops the message, and its bytes.
        a.sendFrames({ opcode: OP.BINARY, rsv1: true, fin: false, payload: half });
        await waitUntil(() => inflateBudget.held === heldBefore + 2 * MiB, 3000, 'A to hold 2 MiB again');
        a.sendFrames({ opcode: OP.CLOSE, payload: Buffer.from([0x03, 0xe8]) });
        assert.equal((await a.waitCloseFrame(3000)).code, 1000);
        await waitUntil(() => inflateBudget.held === heldBefore, 3000, "A's unfinished message to be dropped");
        assert.deepEqual(delivered, [2 * MiB]);
      } finally {
        inflateBudget.limit = savedLimit;
        await srv.close();
      }
    },
  );
});
