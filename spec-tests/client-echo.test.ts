/**
 * Full sessions of our client against our own server, echoing: every payload size where the
 * length encoding changes (RFC 6455 §5.2: 7-bit up to 125, 16-bit up to 65535, 64-bit above),
 * up to 16 MiB, text and binary, fragmented and not, pings, and many messages in flight.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  Opcode,
  WebSocket,
  WebSocketServer,
  connect,
  type ClientOptions,
  type ServerOptions,
  type TracedFrame,
} from '../src/index.js';
import { record, type Recorder } from './helpers/client-events.js';
import { withTimeout } from './helpers/library.js';

const SIZES = [0, 1, 125, 126, 127, 65535, 65536, 65537, 16 * 1024 * 1024];
const T = { timeout: 15_000 };

/** An echo server: every message back as it came. */
async function startEcho(options: ServerOptions = {}): Promise<{ server: WebSocketServer; url: string }> {
  const server = new WebSocketServer({ pingInterval: 0, ...options });
  server.on('connection', (connection) => {
    connection.on('message', (data, isBinary) => connection.send(data, { binary: isBinary }));
  });
  const address = await server.listen(0, '127.0.0.1');
  return { server, url: `ws://127.0.0.1:${address.port}/echo` };
}

/** A text payload of exactly `bytes` UTF-8 bytes, with 1- to 4-byte characters. */
function textOfSize(bytes: number): string {
  const unit = 'aé€😀'; // 1 + 2 + 3 + 4 = 10 bytes
  return unit.repeat(Math.floor(bytes / 10)) + 'a'.repeat(bytes % 10);
}

function binaryOfSize(bytes: number): Buffer {
  const buffer = Buffer.allocUnsafe(bytes);
  for (let i = 0; i < bytes; i++) buffer[i] = (i * 31 + 7) & 0xff;
  return buffer;
}

interface Client {
  ws: WebSocket;
  events: Recorder;
}

async function openClient(url: string, options: ClientOptions = {}): Promise<Client> {
  const ws = new WebSocket(url, [], { pingInterval: 0, ...options });
  const events = record(ws);
  await withTimeout(events.opened, 5_000, "'open'");
  return { ws, events };
}

async function closeClient(client: Client): Promise<void> {
  client.ws.close(1000);
  const closed = await withTimeout(client.events.closed, 5_000, "'close'");
  assert.equal(closed.wasClean, true);
}

for (const mode of [
  { name: 'unfragmented', client: {}, server: {} },
  // Both sides fragment: the client sends odd-sized fragments that split UTF-8 sequences, and
  // the server's echo comes back in other fragment sizes, which the client reassembles.
  {
    name: 'fragmented (client fragmentSize 1000, server 4093)',
    client: { fragmentSize: 1000 },
    server: { fragmentSize: 4093 },
  },
  // permessage-deflate (RFC 7692) on both sides: messages of 1024 bytes and more go compressed.
  {
    name: 'compressed (permessage-deflate, fragmentSize 7000)',
    client: { perMessageDeflate: true, fragmentSize: 7000 },
    server: { perMessageDeflate: true },
    deflate: true,
  },
] as { name: string; client: ClientOptions; server: ServerOptions; deflate?: boolean }[]) {
  describe(`echo against our server, ${mode.name}`, () => {
    let echo: { server: WebSocketServer; url: string };
    let client: Client;
    before(async () => {
      echo = await startEcho(mode.server);
      client = await openClient(echo.url, mode.client);
      assert.equal(
        client.ws.extensions.startsWith('permessage-deflate'),
        mode.deflate === true,
        `extensions: "${client.ws.extensions}"`,
      );
    });
    after(async () => {
      await closeClient(client);
      await echo.server.close();
    });

    for (const size of SIZES) {
      for (const kind of ['text', 'binary'] as const) {
        it(`${kind}, ${size} bytes`, T, async () => {
          const payload = kind === 'text' ? textOfSize(size) : binaryOfSize(size);
          assert.equal(Buffer.byteLength(payload), size);
          client.ws.send(payload);
          const echoed = await withTimeout(client.events.nextMessage(), 10_000, 'the echo');
          assert.equal(echoed.isBinary, kind === 'binary');
          assert.equal(echoed.data.length, size);
          const expected = typeof payload === 'string' ? Buffer.from(payload) : payload;
          assert.ok(echoed.data.equals(expected), 'the echo differs from what was sent');
          if (kind === 'text') assert.equal(echoed.data.toString('utf8'), payload);
        });
      }
    }
  });
}

describe('echo against our server: the rest of a session', () => {
  let echo: { server: WebSocketServer; url: string };
  before(async () => {
    echo = await startEcho();
  });
  after(() => echo.server.close());

  it('fragments outgoing messages by fragmentSize (seen through trace)', T, async () => {
    const out: TracedFrame[] = [];
    const client = await openClient(echo.url, {
      fragmentSize: 1000,
      trace: (frame) => frame.direction === 'out' && out.push(frame),
    });
    try {
      client.ws.send(binaryOfSize(65536));
      client.ws.send('x'.repeat(999));
      client.ws.send(Buffer.alloc(2500), { fragmentSize: 0 });
      for (let i = 0; i < 3; i++) await withTimeout(client.events.nextMessage(), 5_000, 'the echo');
      const shape = out.map((f) => f.opcode);
      assert.equal(shape.length, 66 + 1 + 1);
      assert.equal(shape[0], Opcode.Binary);
      assert.ok(
        shape.slice(1, 66).every((opcode) => opcode === Opcode.Continuation),
        'shape.slice(1, 66).every((opcode) => opcode === Opcode.Continuation)',
      );
      assert.deepEqual(shape.slice(66), [Opcode.Text, Opcode.Binary]);
      assert.ok(
        out.every((f) => f.masked),
        'out.every((f) => f.masked)',
      );
      assert.deepEqual(
        out.map((f) => f.fin),
        [...Array(65).fill(false), true, true, true],
      );
    } finally {
      await closeClient(client);
    }
  });

  it('ping from the client: the server answers with a pong carrying the same payload', T, async () => {
    const client = await openClient(echo.url);
    try {
      const pongs: string[] = [];
      client.ws.on('pong', (data) => pongs.push(data.toString()));
      client.ws.ping('are you there?');
      client.ws.ping();
      client.ws.ping(Buffer.alloc(125, 0x61));
      await withTimeout(
        (async () => {
          while (pongs.length < 3) await new Promise((resolve) => setTimeout(resolve, 5));
        })(),
        5_000,
        'three pongs',
      );
      assert.deepEqual(pongs, ['are you there?', '', 'a'.repeat(125)]);
      assert.throws(() => client.ws.ping(Buffer.alloc(126)), RangeError);
    } finally {
      await closeClient(client);
    }
  });

  it('many messages in flight come back complete and in order', T, async () => {
    const client = await openClient(echo.url);
    try {
      const count = 3000;
      const expected: { data: Buffer; isBinary: boolean }[] = [];
      for (let i = 0; i < count; i++) {
        if (i % 3 === 0) {
          const data = Buffer.alloc(i % 300 === 0 ? 100_000 : (i % 200) + 4, i & 0xff);
          data.writeUInt32BE(i, 0);
          client.ws.send(data);
          expected.push({ data, isBinary: true });
        } else {
          const text = `message ${i} ${'ü'.repeat(i % 50)}`;
          client.ws.send(text);
          expected.push({ data: Buffer.from(text), isBinary: false });
        }
      }
      const received: { data: Buffer; isBinary: boolean }[] = [];
      for (let i = 0; i < count; i++)
        received.push(await withTimeout(client.events.nextMessage(), 10_000, `echo #${i}`));
      for (let i = 0; i < count; i++) {
        assert.equal(received[i]!.isBinary, expected[i]!.isBinary, `message ${i}: wrong type`);
        assert.ok(received[i]!.data.equals(expected[i]!.data), `message ${i} differs or is out of order`);
      }
    } finally {
      await closeClient(client);
    }
  });

  it('send callbacks run once the data is written; sendAsync resolves', T, async () => {
    const client = await openClient(echo.url);
    try {
      const done = await new Promise<Error | undefined>((resolve) => client.ws.send('with callback', resolve));
      assert.equal(done, undefined);
      await client.ws.sendAsync(Buffer.from([1, 2, 3]));
      assert.equal((await client.events.nextMessage()).data.toString(), 'with callback');
      assert.deepEqual([...(await client.events.nextMessage()).data], [1, 2, 3]);
    } finally {
      await closeClient(client);
    }
  });

  it('honours a frozen options object (its values, and the defaults for the rest)', T, async () => {
    // Constant option objects are often frozen; they are the application's options all the same.
    const options = Object.freeze({ pingInterval: 0, maxMessageSize: 1000 });
    const ws = new WebSocket(echo.url, [], options);
    const events = record(ws);
    try {
      await withTimeout(events.opened, 2_000, "'open'");
      ws.send('hello');
      assert.equal((await withTimeout(events.nextMessage(), 2_000, 'the echo')).data.toString(), 'hello');
      // The echo of 2000 bytes is over the client's maxMessageSize of 1000: 1009.
      ws.send('x'.repeat(2000));
      const closed = await withTimeout(events.closed, 2_000, "'close'");
      assert.equal(closed.code, 1009);
    } finally {
      ws.terminate();
    }
  });

  it('a clean close started by the client: both sides see the code and reason, wasClean', T, async () => {
    const serverSide = new Promise<[number, string, boolean]>((resolve) => {
      echo.server.once('connection', (connection) => connection.once('close', (...args) => resolve(args)));
    });
    const ws = await connect(echo.url, { pingInterval: 0 });
    const events = record(ws);
    ws.close(4321, 'client says bye');
    const closed = await withTimeout(events.closed, 5_000, "'close'");
    assert.deepEqual([closed.code, closed.reason, closed.wasClean], [4321, 'client says bye', true]);
    assert.deepEqual(await withTimeout(serverSide, 5_000, "the server's 'close'"), [4321, 'client says bye', true]);
  });

  it('a clean close started by the server: the client sees its code and reason, wasClean', T, async () => {
    echo.server.once('connection', (connection) => {
      connection.once('message', () => connection.close(4000, 'server says bye'));
    });
    const ws = await connect(echo.url, { pingInterval: 0 });
    const events = record(ws);
    ws.send('close me');
    const closed = await withTimeout(events.closed, 5_000, "'close'");
    assert.deepEqual([closed.code, closed.reason, closed.wasClean], [4000, 'server says bye', true]);
  });

  it('the server shutting down closes the client with 1001', T, async () => {
    const own = await startEcho();
    const ws = await connect(own.url, { pingInterval: 0 });
    const events = record(ws);
    await own.server.close();
    const closed = await withTimeout(events.closed, 5_000, "'close'");
    assert.equal(closed.code, 1001);
    assert.equal(closed.wasClean, true);
  });
});
