/**
 * Receiving messages as streams (`streamMessages`, the 'stream' event), over TCP, from the
 * independent test peer (helpers/peer/: its own frames, masking and zlib). RFC 6455 §5.4: a
 * fragmented message arrives fragment by fragment, control frames between; the §5.2 note: "a part
 * of a frame can be delivered to the application". What a user of the stream sees: each piece in
 * order as it arrives, pings answered meanwhile, one message at a time, and the application's
 * reading as the backpressure: while it does not read, the server stops reading from the peer.
 */
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { after, afterEach, describe, it } from 'node:test';
import { connect, inflateBudget, WebSocketServer, type MessageStream, type WebSocket } from '../src/index.js';
import { prng, randomBuffer } from './helpers/data.js';
import { KiB, MiB, startServer, waitUntil, withTimeout, type TestServer } from './helpers/library.js';
import { Compressor, OP, RawClient, RawServer, destroyRawClients, zeroBomb } from './helpers/peer/index.js';

const DEFLATE = { extensions: ['permessage-deflate'] };
const servers: TestServer[] = [];
afterEach(async () => {
  destroyRawClients();
  for (const server of servers.splice(0)) await server.close();
});

/** What a stream delivered, chunk by chunk, as it came. */
interface Reader {
  stream: MessageStream;
  chunks: Buffer[];
  ended: Promise<Buffer>;
}

function read(stream: MessageStream): Reader {
  const chunks: Buffer[] = [];
  const ended = new Promise<Buffer>((resolve, reject) => {
    stream.on('data', (chunk: Buffer) => chunks.push(Buffer.from(chunk)));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
  return { stream, chunks, ended };
}

/** A streaming echo-less server: each 'stream' goes to `streams`, for the test to read. */
async function streamingServer(options: object = {}): Promise<{ server: TestServer; streams: MessageStream[] }> {
  const streams: MessageStream[] = [];
  const server = await startServer({ streamMessages: true, pingInterval: 0, ...options }, (ws) => {
    ws.on('stream', (stream) => streams.push(stream));
  });
  servers.push(server);
  return { server, streams };
}

describe('receiving a message as a stream', () => {
  it('a fragmented message: each fragment reaches the stream as it arrives; a ping between them is answered before the message ends', async () => {
    const { server, streams } = await streamingServer();
    const raw = await RawClient.connect(server.port);
    raw.sendText('first fragment, ', false);
    await waitUntil(() => streams.length === 1, 3000, "the 'stream' event");
    const reader = read(streams[0]!);
    assert.equal(reader.stream.isBinary, false);
    await waitUntil(() => reader.chunks.length === 1, 3000, 'the first fragment');
    raw.sendPing('between');
    await raw.until(() => raw.pongs.length === 1, 3000, 'the pong, mid-message');
    assert.equal(raw.pongs[0]!.toString(), 'between');
    raw.sendContinuation('second, ', false);
    await waitUntil(() => reader.chunks.length === 2, 3000, 'the second fragment');
    raw.sendContinuation('last', true);
    assert.equal((await withTimeout(reader.ended, 3000, 'the end')).toString(), 'first fragment, second, last');
    assert.deepEqual(
      reader.chunks.map(String),
      ['first fragment, ', 'second, ', 'last'],
      'one chunk per fragment, in order',
    );
  });

  it('one message at a time: the next stream comes once the previous one is read to its end, and the parse waits meanwhile', async () => {
    const { server, streams } = await streamingServer();
    const raw = await RawClient.connect(server.port);
    const connection = await server.connectionOf(raw);
    raw.sendFrames(
      { opcode: OP.BINARY, payload: Buffer.from([1]) },
      { opcode: OP.BINARY, payload: Buffer.from([2]) },
      { opcode: OP.PING, payload: 'after both' },
    );
    await waitUntil(() => streams.length === 1, 3000, 'the first stream');
    // The first is complete but unread: the server reads nothing more from this peer.
    await waitUntil(() => connection.ws.isPaused, 3000, 'reading to pause behind the unread stream');
    assert.equal(streams.length, 1);
    assert.equal(raw.pongs.length, 0, 'the ping behind it is not read yet');
    assert.deepEqual([...(await read(streams[0]!).ended)], [1]);
    await waitUntil(() => streams.length === 2, 3000, 'the second stream, once the first is read');
    assert.deepEqual([...(await read(streams[1]!).ended)], [2]);
    await raw.until(() => raw.pongs.length === 1, 3000, 'the pong');
  });

  it('a stream the application destroys: the rest of its message is discarded, the connection goes on', async () => {
    const { server, streams } = await streamingServer();
    const raw = await RawClient.connect(server.port);
    const connection = await server.connectionOf(raw);
    raw.sendBinary(Buffer.alloc(1000, 1), false);
    await waitUntil(() => streams.length === 1, 3000, 'the stream');
    streams[0]!.destroy();
    raw.sendContinuation(Buffer.alloc(200 * KiB, 2), false);
    raw.sendPing('still there');
    raw.sendContinuation(Buffer.alloc(1000, 3), true);
    raw.sendText('the next message');
    await waitUntil(() => streams.length === 2, 3000, 'the next stream');
    assert.equal((await read(streams[1]!).ended).toString(), 'the next message');
    await raw.until(() => raw.pongs.length === 1, 3000, 'the pong');
    assert.equal(raw.pongs[0]!.toString(), 'still there');
    assert.equal(connection.closes.length, 0, 'still open');
    raw.sendClose(1000);
    assert.equal((await connection.closed).code, 1000);
  });

  it("no 'stream' listener: messages are discarded as they come, pings answered, the connection goes on", async () => {
    const server = await startServer({ streamMessages: true, pingInterval: 0 }, false);
    servers.push(server);
    const raw = await RawClient.connect(server.port);
    raw.sendBinary(Buffer.alloc(3 * MiB, 1));
    raw.sendText('and another');
    raw.sendPing('done?');
    await raw.until(() => raw.pongs.length === 1, 5000, 'the pong after the discarded messages');
  });

  it('compressed messages (context taken over from one to the next) are inflated as they arrive', async () => {
    const { server, streams } = await streamingServer({ perMessageDeflate: true });
    const raw = await RawClient.connect(server.port, DEFLATE);
    const compressor = new Compressor();
    const texts = ['the first message, '.repeat(50), 'the second one repeats the first: the first message, ', ''];
    for (const text of texts) {
      const compressed = compressor.compress(Buffer.from(text));
      // Each compressed message in three fragments (RSV1 on the first only).
      raw.sendCompressed(compressed, { cuts: [1, Math.floor(compressed.length / 2)] });
    }
    const got: string[] = [];
    for (let i = 0; i < texts.length; i++) {
      await waitUntil(() => streams.length > i, 3000, `stream ${i}`);
      got.push((await read(streams[i]!).ended).toString());
    }
    assert.deepEqual(got, texts);
  });

  it('our client streams what a server sends, as it does on the server side', async () => {
    const peerServer = await RawServer.start();
    try {
      const ws = await connect(peerServer.url(), { streamMessages: true, pingInterval: 0 });
      const peer = await peerServer.nextPeer();
      const streams: MessageStream[] = [];
      ws.on('stream', (stream) => streams.push(stream));
      peer.sendFrame({ opcode: OP.TEXT, payload: 'from ', fin: false });
      peer.sendFrame({ opcode: OP.PING, payload: 'p' });
      peer.sendFrame({ opcode: OP.CONT, payload: 'the server', fin: true });
      await waitUntil(() => streams.length === 1, 3000, 'the stream');
      const reader = read(streams[0]!);
      assert.equal((await reader.ended).toString(), 'from the server');
      assert.deepEqual(reader.chunks.map(String), ['from ', 'the server']);
      await peer.until(() => peer.pongs.length === 1, 3000, "the client's pong");
      ws.terminate();
    } finally {
      await peerServer.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// A slow reader: the application's reading is the backpressure
// ---------------------------------------------------------------------------------------------

describe('a slow application reader', () => {
  const tcpServers: { close(): void }[] = [];
  after(() => {
    for (const tcp of tcpServers) tcp.close();
  });

  /**
   * Our server behind a plain TCP listener, so that the test sees what was read from each socket
   * (`bytesRead`: what the server took from the kernel, whatever it did with it).
   */
  async function observedServer(
    options: object,
  ): Promise<{ port: number; sockets: Socket[]; connections: WebSocket[]; streams: MessageStream[] }> {
    const wss = new WebSocketServer({ streamMessages: true, pingInterval: 0, ...options });
    const sockets: Socket[] = [];
    const connections: WebSocket[] = [];
    const streams: MessageStream[] = [];
    wss.on('connection', (ws) => {
      connections.push(ws);
      ws.on('stream', (stream) => streams.push(stream));
    });
    const tcp = createServer((socket) => {
      sockets.push(socket);
      wss.handleSocket(socket);
    });
    await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', () => resolve()));
    tcpServers.push({ close: () => (tcp.close(), void wss.close(100)) });
    return { port: (tcp.address() as AddressInfo).port, sockets, connections, streams };
  }

  it(
    'the peer keeps sending a 64 MiB message nobody reads: the server reads at most highWaterMark and a few reads ahead, TCP backpressure reaches the peer; then it all arrives',
    { timeout: 120_000 },
    async () => {
      const highWaterMark = 256 * KiB;
      const { port, sockets, connections, streams } = await observedServer({ highWaterMark });
      const raw = await RawClient.connect(port);
      const total = 64 * MiB;
      const data = randomBuffer(total, prng(21));
      // One frame, written as fast as TCP takes it.
      const written = raw.writeAsync(raw.frame({ opcode: OP.BINARY, payload: data }));
      await waitUntil(() => streams.length === 1, 5000, 'the stream');
      await waitUntil(() => connections[0]!.isPaused, 10_000, 'the server to stop reading');
      // Held back: the peer's writes wait in its socket, the server read little.
      await waitUntil(() => raw.socket.writableLength > 0, 10_000, 'the peer to feel the backpressure');
      const read = sockets[0]!.bytesRead;
      const bound = highWaterMark + 3 * 64 * KiB + 1024;
      assert.ok(read <= bound, `the server read ${read} bytes while nothing was consumed (bound ${bound})`);
      assert.ok(
        streams[0]!.readableLength <= highWaterMark + 64 * KiB,
        `the stream holds ${streams[0]!.readableLength}`,
      );
      // Now the application reads, slowly at first: it all comes, in order.
      const got = await read64(streams[0]!);
      await written;
      assert.equal(got.length, total);
      assert.ok(got.equals(data), 'the message, byte for byte');
    },
  );

  it(
    'a deflate bomb nobody reads: zlib is paused, the stream holds about highWaterMark, no inflate budget is spent; then all of it arrives',
    { timeout: 120_000 },
    async () => {
      const highWaterMark = 256 * KiB;
      const { port, connections, streams } = await observedServer({ highWaterMark, perMessageDeflate: true });
      const raw = await RawClient.connect(port, DEFLATE);
      const total = 256 * MiB;
      raw.sendCompressed(zeroBomb(total), { binary: true });
      await waitUntil(() => streams.length === 1, 5000, 'the stream');
      await waitUntil(() => connections[0]!.isPaused, 10_000, 'the server to stop reading');
      // A moment for whatever zlib had in flight: the bound holds at any time, and here for 20 checks.
      for (let i = 0; i < 20; i++) {
        assert.ok(
          streams[0]!.readableLength <= highWaterMark + 64 * KiB,
          `the stream holds ${streams[0]!.readableLength}`,
        );
        assert.equal(inflateBudget.held, 0, 'a streamed message spends no inflate budget');
        await new Promise((resolve) => setImmediate(resolve));
      }
      let length = 0;
      let nonZero = 0;
      for await (const chunk of streams[0]!) {
        length += (chunk as Buffer).length;
        for (const byte of chunk as Buffer) nonZero |= byte;
      }
      assert.equal(length, total);
      assert.equal(nonZero, 0);
    },
  );
});

/** Read a stream to its end, pausing now and then, like a slow consumer. */
async function read64(stream: MessageStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of stream) {
    chunks.push(chunk as Buffer);
    if (++n % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  return Buffer.concat(chunks);
}
