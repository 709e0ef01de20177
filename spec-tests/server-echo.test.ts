/**
 * Data transfer through the server (RFC 6455 §5.2 framing, §5.4 fragmentation, §5.5.2/§5.5.3
 * ping/pong, §5.6 data frames): an echo handler sends every message back, at every length
 * encoding boundary, from the raw client (hand-made frames) and from our own client.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { inspect } from 'node:util';
import { after, afterEach, before, describe, it } from 'node:test';
import { connect, formatFrame, type WebSocket } from '../src/index.js';
import { MiB, Opcode, startServer, waitUntil, withTimeout, type TestServer } from './helpers/library.js';
import { RawClient, clientFrame, destroyRawClients } from './helpers/peer/index.js';
import { QUIET_MS } from './helpers/alive.js';

/** The length-encoding boundaries of §5.2 (7-bit, 16-bit, 64-bit) and a large message. */
const SIZES = [0, 125, 126, 65535, 65536, 16 * MiB];

/** Exactly `size` bytes of valid UTF-8 with multi-byte characters spread through it. */
function utf8Payload(size: number): Buffer {
  const unit = Buffer.from('Größe €1 😀 — ñ ascii text 0123456789 ', 'utf8');
  const out = Buffer.alloc(size, 0x61);
  let at = 0;
  while (at + unit.length <= size) {
    unit.copy(out, at);
    at += unit.length;
  }
  // The tail stays 'a' (0x61): every multi-byte character is whole.
  return out;
}

function binaryPayload(size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31 + (i >>> 8)) & 0xff;
  return out;
}

const payloads = new Map<string, Buffer>();
function payload(kind: 'text' | 'binary', size: number): Buffer {
  const key = `${kind}:${size}`;
  let value = payloads.get(key);
  if (value === undefined) {
    value = kind === 'text' ? utf8Payload(size) : binaryPayload(size);
    payloads.set(key, value);
  }
  return value;
}

function label(size: number): string {
  return size >= MiB ? `${size / MiB} MiB` : `${size} bytes`;
}

function assertSameBytes(actual: Buffer, expected: Buffer): void {
  assert.equal(actual.length, expected.length, 'length');
  assert.ok(actual.equals(expected), 'the echoed bytes differ from the ones sent');
}

let server: TestServer;
before(async () => {
  server = await startServer();
});
after(() => server.close());
afterEach(() => destroyRawClients());

describe('RFC 6455 §5.2, §5.6: echo of single-frame messages from the raw client', () => {
  for (const kind of ['text', 'binary'] as const) {
    for (const size of SIZES) {
      it(`${kind} message of ${label(size)}`, async () => {
        const client = await RawClient.connect(server.port);
        const data = payload(kind, size);
        client.sendFrame({ opcode: kind === 'text' ? Opcode.Text : Opcode.Binary, payload: data });
        // How long 16 MiB takes is for the benchmarks; here only a stuck echo fails (one step, QUIET_MS).
        const [message] = await client.waitMessages(1, QUIET_MS);
        assert.equal(message!.isBinary, kind === 'binary');
        assertSameBytes(message!.data, data);
        assert.deepEqual(client.protocolErrors, [], 'the server frames are well formed (unmasked, §5.1)');
        if (size < MiB) {
          assert.equal(client.frames.length, 1);
          assert.equal(client.frames[0]!.masked, false, 'a server never masks (§5.1)');
          assert.equal(client.frames[0]!.fin, true);
        }
      });
    }
  }

  for (const kind of ['text', 'binary'] as const) {
    it(`${kind} message of 16 MiB sent in 256 fragments of 64 KiB comes back whole`, async () => {
      const client = await RawClient.connect(server.port);
      const data = payload(kind, 16 * MiB);
      const fragment = 64 * 1024;
      for (let start = 0; start < data.length; start += fragment) {
        const first = start === 0;
        const last = start + fragment >= data.length;
        client.sendFrame({
          opcode: first ? (kind === 'text' ? Opcode.Text : Opcode.Binary) : Opcode.Continuation,
          payload: data.subarray(start, start + fragment),
          fin: last,
        });
      }
      const [message] = await client.waitMessages(1, QUIET_MS);
      assert.equal(message!.isBinary, kind === 'binary');
      assertSameBytes(message!.data, data);
    });
  }

  it('text fragments may split a multi-byte character (§5.6: only the whole message must be UTF-8)', async () => {
    const client = await RawClient.connect(server.port);
    const text = Buffer.from('a😀b€c', 'utf8');
    // Cut inside the 4-byte emoji and inside the 3-byte euro sign.
    client.sendFrame({ opcode: Opcode.Text, payload: text.subarray(0, 3), fin: false });
    client.sendFrame({ opcode: Opcode.Continuation, payload: text.subarray(3, 7), fin: false });
    client.sendFrame({ opcode: Opcode.Continuation, payload: text.subarray(7), fin: true });
    const [message] = await client.waitMessages(1);
    assert.equal(message!.data.toString(), 'a😀b€c');
  });

  it('empty fragments, including an empty final one, are fine', async () => {
    const client = await RawClient.connect(server.port);
    client.sendFrame({ opcode: Opcode.Binary, payload: Buffer.alloc(0), fin: false });
    client.sendFrame({ opcode: Opcode.Continuation, payload: Buffer.from([1, 2, 3]), fin: false });
    client.sendFrame({ opcode: Opcode.Continuation, payload: Buffer.alloc(0), fin: true });
    const [message] = await client.waitMessages(1);
    assert.deepEqual([...message!.data], [1, 2, 3]);
    assert.equal(message!.isBinary, true);
  });

  it('many messages in one TCP write come back in order', async () => {
    const client = await RawClient.connect(server.port);
    const frames: Buffer[] = [];
    for (let i = 0; i < 500; i++)
      frames.push(clientFrame({ opcode: i % 2 === 0 ? Opcode.Text : Opcode.Binary, payload: `message ${i}` }));
    client.write(Buffer.concat(frames));
    const messages = await client.waitMessages(500);
    messages.forEach((m, i) => {
      assert.equal(m.data.toString(), `message ${i}`);
      assert.equal(m.isBinary, i % 2 === 1);
    });
  });

  it('frames split at every byte still echo', async () => {
    const client = await RawClient.connect(server.port);
    const frame = clientFrame({ opcode: Opcode.Text, payload: 'byte by byte: ñ' });
    await client.writeChunked(frame, 1);
    const [message] = await client.waitMessages(1);
    assert.equal(message!.data.toString(), 'byte by byte: ñ');
  });
});

describe('RFC 6455 §5.4 "control frames MAY be injected in the middle of a fragmented message", §5.5.2, §5.5.3', () => {
  it('pings between fragments are answered at once with their payload, and the message is reassembled', async () => {
    const client = await RawClient.connect(server.port);
    const connection = await server.connectionOf(client);
    const serverPings: string[] = [];
    connection.ws.on('ping', (data) => serverPings.push(data.toString()));

    client.sendFrame({ opcode: Opcode.Text, payload: 'Hel', fin: false });
    client.sendPing('p1');
    // The pong comes back while the message is still open: not held until the message ends.
    await client.until(() => client.pongs.length === 1, 3000, 'the first pong');
    client.sendFrame({ opcode: Opcode.Continuation, payload: 'lo, ', fin: false });
    client.sendPing(Buffer.from([0, 1, 2, 0xff]));
    await client.until(() => client.pongs.length === 2, 3000, 'the second pong');
    client.sendFrame({ opcode: Opcode.Continuation, payload: 'World', fin: true });
    const [message] = await client.waitMessages(1);

    assert.equal(message!.data.toString(), 'Hello, World');
    assert.equal(message!.isBinary, false);
    assert.equal(client.pongs[0]!.toString(), 'p1');
    assert.deepEqual([...client.pongs[1]!], [0, 1, 2, 0xff]);
    assert.deepEqual(serverPings, ['p1', '\u0000\u0001\u0002\ufffd']);
    assert.equal(client.messages.length, 1);
  });

  it('a ping with a 125-byte payload (the maximum) gets a pong with the same 125 bytes', async () => {
    const client = await RawClient.connect(server.port);
    const data = binaryPayload(125);
    client.sendPing(data);
    await client.until(() => client.pongs.length === 1, 3000, 'a pong');
    assertSameBytes(client.pongs[0]!, data);
  });

  it('an empty ping gets an empty pong; an unsolicited pong gets no answer', async () => {
    const client = await RawClient.connect(server.port);
    const connection = await server.connectionOf(client);
    const pongs: Buffer[] = [];
    connection.ws.on('pong', (data) => pongs.push(data));
    client.sendPong('heartbeat');
    client.sendPing();
    await client.until(() => client.pongs.length === 1, 3000, 'a pong');
    assert.equal(client.pongs[0]!.length, 0);
    assert.equal(pongs.length, 1);
    assert.equal(pongs[0]!.toString(), 'heartbeat');
    // Send a message and wait for its echo: by then a (wrong) answer to the pong would have arrived too.
    client.sendText('sync');
    await client.waitMessages(1);
    assert.equal(client.pongs.length, 1);
    assert.equal(client.pings.length, 0);
  });

  it('a ping in the middle of a large fragmented binary message', async () => {
    const client = await RawClient.connect(server.port);
    const data = binaryPayload(300_000);
    client.sendFrame({ opcode: Opcode.Binary, payload: data.subarray(0, 100_000), fin: false });
    client.sendPing('mid');
    client.sendFrame({ opcode: Opcode.Continuation, payload: data.subarray(100_000, 200_000), fin: false });
    client.sendPing('mid2');
    client.sendFrame({ opcode: Opcode.Continuation, payload: data.subarray(200_000), fin: true });
    const [message] = await client.waitMessages(1);
    assertSameBytes(message!.data, data);
    assert.deepEqual(client.pongs.map(String), ['mid', 'mid2']);
  });
});

describe('echo through our own client (connect())', () => {
  const clients: WebSocket[] = [];
  afterEach(() => {
    for (const ws of clients.splice(0)) ws.terminate();
  });

  async function open(options: Parameters<typeof connect>[1] = {}): Promise<WebSocket> {
    const ws = await connect(server.url, options);
    clients.push(ws);
    return ws;
  }

  function nextMessage(ws: WebSocket, ms = QUIET_MS): Promise<[Buffer, boolean]> {
    return withTimeout(once(ws, 'message') as Promise<[Buffer, boolean]>, ms, 'a message');
  }

  for (const size of SIZES) {
    it(`text and binary messages of ${label(size)}`, async () => {
      const ws = await open();
      const text = payload('text', size);
      const textString = text.toString('utf8');
      const received = nextMessage(ws);
      ws.send(textString);
      const [echoedText, textIsBinary] = await received;
      assert.equal(textIsBinary, false);
      assertSameBytes(echoedText, text);

      const bin = payload('binary', size);
      const receivedBinary = nextMessage(ws);
      ws.send(bin);
      const [echoedBinary, isBinary] = await receivedBinary;
      assert.equal(isBinary, true);
      assertSameBytes(echoedBinary, bin);
    });
  }

  it('16 MiB sent fragmented by our client (fragmentSize 1 MiB) comes back whole', async () => {
    const ws = await open();
    const data = payload('binary', 16 * MiB);
    const received = nextMessage(ws);
    ws.send(data, { fragmentSize: MiB });
    const [echoed] = await received;
    assertSameBytes(echoed, data);
  });

  it('a ping from our client gets a pong with its payload', async () => {
    const ws = await open();
    const pong = withTimeout(once(ws, 'pong') as Promise<[Buffer]>, 3000, 'a pong');
    ws.ping('are you there');
    const [data] = await pong;
    assert.equal(data.toString(), 'are you there');
  });

  it('a fragmented message (fragmentSize 10) with a ping queued after it', async () => {
    const ws = await open();
    const received = nextMessage(ws);
    const pong = withTimeout(once(ws, 'pong') as Promise<[Buffer]>, 3000, 'a pong');
    ws.send('a fragmented message of some length: ünïcödé', { fragmentSize: 10 });
    ws.ping('after');
    const [data, isBinary] = await received;
    assert.equal(data.toString(), 'a fragmented message of some length: ünïcödé');
    assert.equal(isBinary, false);
    assert.equal((await pong)[0].toString(), 'after');
  });

  it('async iteration yields the echoes in order', async () => {
    const ws = await open();
    for (let i = 0; i < 20; i++) ws.send(`n${i}`);
    const seen: string[] = [];
    for await (const { data, isBinary } of ws) {
      assert.equal(isBinary, false);
      seen.push(data.toString());
      if (seen.length === 20) break;
    }
    assert.deepEqual(
      seen,
      Array.from({ length: 20 }, (_, i) => `n${i}`),
    );
  });

  it('an ArrayBuffer and a typed array view go as binary, byte for byte; a number is a TypeError', async () => {
    const ws = await open();
    const buffer = new ArrayBuffer(6);
    new Uint8Array(buffer).set([1, 2, 3, 250, 251, 252]);
    let received = nextMessage(ws);
    ws.send(buffer);
    let [data, isBinary] = await received;
    assert.equal(isBinary, true);
    assert.deepEqual([...data], [1, 2, 3, 250, 251, 252]);
    // A view of the middle of a larger buffer: only the viewed bytes.
    received = nextMessage(ws);
    ws.send(new Uint16Array(buffer, 2, 1));
    [data, isBinary] = await received;
    assert.equal(isBinary, true);
    assert.deepEqual([...data], [3, 250]);
    assert.throws(() => ws.send(42 as never), TypeError);
  });

  it('sendAsync resolves once the data is written, and the echo follows', async () => {
    const ws = await open();
    const received = nextMessage(ws);
    await ws.sendAsync(Buffer.from('async'));
    const [data, isBinary] = await received;
    assert.equal(data.toString(), 'async');
    assert.equal(isBinary, true);
  });
});

describe('the trace option: "Called with every frame received and sent, decoded"', () => {
  it('the tracer sees incoming (masked) and outgoing (unmasked) frames with their direction', async () => {
    const frames: { direction: string; opcode: number; masked: boolean; payload: string }[] = [];
    const traced = await startServer({
      trace: (frame) =>
        frames.push({
          direction: frame.direction,
          opcode: frame.opcode,
          masked: frame.masked,
          payload: frame.payload.toString(),
        }),
    });
    try {
      const client = await RawClient.connect(traced.port);
      client.sendText('traced');
      client.sendPing('tp');
      await client.waitMessages(1);
      await client.until(() => client.pongs.length === 1, 2000, 'the pong');
      assert.deepEqual(
        frames.filter((f) => f.direction === 'out'),
        [
          { direction: 'out', opcode: Opcode.Text, masked: false, payload: 'traced' },
          { direction: 'out', opcode: Opcode.Pong, masked: false, payload: 'tp' },
        ],
      );
      assert.deepEqual(
        frames.filter((f) => f.direction === 'in'),
        [
          { direction: 'in', opcode: Opcode.Text, masked: true, payload: 'traced' },
          { direction: 'in', opcode: Opcode.Ping, masked: true, payload: 'tp' },
        ],
        'incoming frames are traced too',
      );
    } finally {
      await traced.close();
    }
  });
});

describe('formatFrame, the one-line description the trace option and --trace use', () => {
  it('names a reserved opcode by number, shows RSV bits, the masking key, direction, and cuts a long payload', () => {
    const line = formatFrame({
      direction: 'in',
      fin: false,
      rsv1: true,
      rsv2: true,
      rsv3: true,
      opcode: 0x3,
      masked: true,
      maskKey: Uint8Array.from([0x37, 0xfa, 0x21, 0x3d]),
      payload: Buffer.from('Hello, twenty bytes!'),
    });
    assert.match(line, /^<- 0x3 /);
    assert.match(line, / fin=0 rsv=111 mask=37fa213d len=20 /);
    assert.match(line, /48656c6c6f2c207477656e7479206279…/, 'the first 16 bytes in hex, then an ellipsis');
    assert.match(line, /\|Hello, twenty by…\|$/);
    const out = formatFrame({
      direction: 'out',
      fin: true,
      rsv1: false,
      rsv2: false,
      rsv3: false,
      opcode: Opcode.Text,
      masked: false,
      maskKey: null,
      payload: Buffer.from('hi\n'),
    });
    assert.equal(out, '-> TEXT   fin=1 rsv=000 unmasked len=3 68690a |hi.|');
  });
});

describe('server-side async iteration: for await (const { data, isBinary } of ws)', () => {
  it('yields every message in order and ends when the connection closes', async () => {
    const wss = (await startServer({}, false)).wss;
    const port = wss.address()!.port;
    const done = new Promise<string[]>((resolve) => {
      wss.on('connection', async (ws) => {
        const seen: string[] = [];
        for await (const { data, isBinary } of ws) {
          seen.push(`${isBinary ? 'b' : 't'}:${data.toString()}`);
          ws.send(data, { binary: isBinary });
        }
        resolve(seen);
      });
    });
    try {
      const client = await RawClient.connect(port);
      for (let i = 0; i < 50; i++) client.sendFrame({ opcode: i % 2 ? Opcode.Binary : Opcode.Text, payload: `m${i}` });
      await client.waitMessages(50);
      client.sendClose(1000);
      const seen = await withTimeout(done, 3000, 'the loop to end');
      assert.deepEqual(
        seen,
        Array.from({ length: 50 }, (_, i) => `${i % 2 ? 'b' : 't'}:m${i}`),
      );
    } finally {
      destroyRawClients();
      await wss.close(100);
    }
  });

  it('a slow loop pauses reading once its buffer fills (16 messages), and everything still arrives', async () => {
    const s = await startServer({}, false);
    try {
      let paused = false;
      const done = new Promise<number>((resolve) => {
        s.wss.on('connection', async (ws) => {
          let count = 0;
          for await (const _ of ws) {
            count++;
            if (ws.isPaused) paused = true;
            await new Promise((r) => setTimeout(r, 2));
            if (count === 200) break;
          }
          resolve(count);
        });
      });
      const client = await RawClient.connect(s.port);
      const frames = Array.from({ length: 200 }, (_, i) =>
        clientFrame({ opcode: Opcode.Binary, payload: Buffer.alloc(1000, i) }),
      );
      client.write(Buffer.concat(frames));
      assert.equal(await withTimeout(done, 5000, 'all 200 messages'), 200);
      assert.equal(paused, true, 'reading was paused while the loop was behind');
    } finally {
      await s.close();
    }
  });
});

describe("the 'message' event's data is a Buffer (as in ws): views into what was read, not copies", () => {
  it('small messages sharing one read are each a Buffer in every way an application can tell', async () => {
    const seen: Buffer[] = [];
    const local = await startServer({}, (ws) => ws.on('message', (data) => seen.push(data as Buffer)));
    try {
      const client = await RawClient.connect(local.port);
      const texts = ['first ñ', 'second', 'third €'];
      // One write: the server reads the three frames in one chunk, so each message is a view into it.
      client.write(Buffer.concat(texts.map((payload) => clientFrame({ opcode: Opcode.Text, payload }))));
      await waitUntil(() => seen.length === 3, 3000, 'three messages');
      seen.forEach((data, i) => {
        assert.ok(Buffer.isBuffer(data), 'Buffer.isBuffer');
        assert.ok(data instanceof Buffer && data instanceof Uint8Array, 'instanceof Buffer and Uint8Array');
        assert.equal(data.toString('utf8'), texts[i]);
        assert.ok(data.equals(Buffer.from(texts[i]!)), 'equals');
        assert.equal(inspect(data), inspect(Buffer.from(texts[i]!)), 'util.inspect shows a Buffer');
        assert.deepEqual(data.toJSON(), Buffer.from(texts[i]!).toJSON(), 'toJSON');
        const part = data.subarray(1, 3);
        assert.ok(Buffer.isBuffer(part) && part.equals(Buffer.from(texts[i]!).subarray(1, 3)), 'subarray is a Buffer');
        assert.equal(data.readUInt8(0), Buffer.from(texts[i]!)[0], 'Buffer methods work');
      });
      assert.equal(Buffer.concat(seen).toString(), texts.join(''), 'Buffer.concat takes them');
    } finally {
      await local.close();
    }
  });
});
