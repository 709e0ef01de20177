/**
 * The second driver (src/driver/web-streams.ts): the same protocol core driven over a WHATWG stream
 * pair instead of a node:stream, here Node's `Duplex.toWeb(socket)`, checked by the independent
 * test peer (helpers/peer/) in both roles: the opening handshake, every length encoding,
 * fragmentation with pings between fragments, close codes 1002/1007/1009, the closing handshake
 * started by either side. The runtime matrix runs it under Deno with `Deno.connect()` too.
 */
import assert from 'node:assert/strict';
import { createServer, connect as netConnect, type AddressInfo, type Server, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { after, afterEach, describe, it } from 'node:test';
import {
  acceptWebStream,
  connectWebStream,
  type WebStreamOptions,
  type WebStreamPair,
  type WebStreamSocket,
} from '../src/web-streams.js';
import { RawClient, destroyRawClients } from './helpers/peer/client.js';
import { OP } from './helpers/peer/frames.js';
import { RawServer } from './helpers/peer/server.js';
import { withTimeout } from './helpers/peer/wait.js';

const KiB = 1024;

/**
 * Node's own adapter. The sockets are not half-open: before Node 24, Duplex.toWeb's readable ends
 * only once the writable side has finished too, so on a half-open socket a client would never see
 * the server's FIN; without half-open, Node ends our side when the peer ends its (what the driver
 * would do then anyway, RFC 6455 §7.1.1).
 */
function pairOf(socket: Socket): WebStreamPair {
  return Duplex.toWeb(socket) as unknown as WebStreamPair;
}

/** A TCP server whose connections run on the second driver, echoing every message. */
async function echoServer(options: WebStreamOptions = {}): Promise<{ port: number; sockets: WebStreamSocket[] }> {
  const sockets: WebStreamSocket[] = [];
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    acceptWebStream(pairOf(socket), { pingInterval: 0, ...options }).then(
      async (ws) => {
        sockets.push(ws);
        for await (const message of ws) await ws.send(message.data, { binary: message.isBinary }).catch(() => {});
      },
      () => {},
    );
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, sockets };
}

const servers: Server[] = [];
const rawServers: RawServer[] = [];
afterEach(() => destroyRawClients());
after(async () => {
  for (const server of servers) server.close();
  await Promise.all(rawServers.map((server) => server.close()));
});

describe('the WHATWG-streams driver, server role, against the independent test peer', () => {
  it('§4.2: answers the handshake (the peer checks Sec-WebSocket-Accept) and picks a subprotocol it speaks', async () => {
    const { port } = await echoServer({ protocols: ['chat'] });
    const client = await RawClient.connect(port, { protocols: ['other', 'chat'] });
    assert.equal(client.response!.header('sec-websocket-protocol'), 'chat');
    assert.equal(client.response!.header('sec-websocket-extensions'), undefined, 'no extension agreed');
  });

  it('§4.2.1: a request that is no handshake gets 400, and the connection ends', async () => {
    const { port } = await echoServer();
    const client = await RawClient.request(port, { headers: { 'Sec-WebSocket-Key': null } });
    assert.equal(client.response!.status, 400);
    await client.waitClosed();
  });

  it('§5.2: echoes every length encoding (7, 16 and 64 bits: 0, 125, 126, 65535, 65536 and 1 MiB)', async () => {
    const { port } = await echoServer({ maxMessageSize: 2 * 1024 * KiB });
    const client = await RawClient.connect(port);
    const sizes = [0, 125, 126, 65535, 65536, 1024 * KiB];
    for (const size of sizes) client.sendBinary(Buffer.alloc(size, size % 251));
    const echoes = await client.waitMessages(sizes.length, 10_000);
    assert.deepEqual(
      echoes.map((message) => message.data.length),
      sizes,
    );
    const encodings = client.frames.map((frame) => frame.lengthEncoding);
    assert.deepEqual(encodings, [7, 7, 16, 16, 64, 64]);
    for (const frame of client.frames) assert.equal(frame.masked, false, '§5.1: a server masks nothing');
  });

  it('§5.4, §5.5: a fragmented text message with pings between its fragments: each ping answered at once, the message whole', async () => {
    const { port } = await echoServer();
    const client = await RawClient.connect(port);
    client.sendText('frag', false);
    client.sendPing('one');
    client.sendContinuation('ment', false);
    client.sendPing('two');
    client.sendContinuation('ed', true);
    const [echo] = await client.waitMessages(1);
    assert.equal(echo!.data.toString(), 'fragmented');
    assert.deepEqual(
      client.pongs.map((pong) => pong.toString()),
      ['one', 'two'],
    );
  });

  for (const [name, send, code] of [
    ['RSV2 set, no extension agreed (§5.2)', (c: RawClient) => c.sendFrame({ opcode: OP.TEXT, rsv2: true }), 1002],
    ['a reserved opcode (§5.2)', (c: RawClient) => c.sendFrame({ opcode: 0x3, payload: 'x' }), 1002],
    ['invalid UTF-8 in a text message (§8.1)', (c: RawClient) => c.sendText(Buffer.from([0x68, 0xff])), 1007],
    ['a message over maxMessageSize (§10.4)', (c: RawClient) => c.sendBinary(Buffer.alloc(2 * KiB)), 1009],
  ] as const) {
    it(`fails the connection with ${code} for ${name}, and ends TCP`, async () => {
      const { port, sockets } = await echoServer({ maxMessageSize: KiB });
      const client = await RawClient.connect(port);
      send(client);
      const close = await client.waitCloseFrame();
      assert.equal(close.code, code);
      await client.waitClosed();
      const report = await withTimeout(sockets[0]!.closed, 3000, 'the close report');
      assert.equal(report.code, code);
      assert.equal(client.protocolErrors.length, 0, client.describe());
    });
  }

  it('§7.1.2: the peer starts the closing handshake: the close echoed, then the server ends TCP first (§7.1.1)', async () => {
    const { port, sockets } = await echoServer();
    const client = await RawClient.connect(port);
    client.sendClose(4000, 'bye');
    const close = await client.waitCloseFrame();
    assert.deepEqual([close.code, close.reason], [4000, 'bye']);
    const { peerEndedFirst } = await client.waitClosed();
    assert.equal(peerEndedFirst, true, 'the server ended TCP first');
    assert.deepEqual(await withTimeout(sockets[0]!.closed, 3000, 'the close report'), {
      code: 4000,
      reason: 'bye',
      wasClean: true,
    });
  });

  it('§7.1.2: the server starts the closing handshake; the peer answers; clean both ways', async () => {
    const { port, sockets } = await echoServer();
    const client = await RawClient.connect(port);
    await client.until(() => sockets.length === 1);
    sockets[0]!.close(1001, 'going away');
    const close = await client.waitCloseFrame();
    assert.deepEqual([close.code, close.reason], [1001, 'going away']);
    client.sendClose(1001, 'going away');
    await client.waitClosed();
    const report = await withTimeout(sockets[0]!.closed, 3000, 'the close report');
    assert.equal(report.wasClean, true);
  });
});

describe('the WHATWG-streams driver, client role, against the independent test peer', () => {
  async function client(options: WebStreamOptions = {}) {
    const server = await RawServer.start();
    rawServers.push(server);
    const socket = netConnect({ port: server.port, host: '127.0.0.1' });
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    const ws = await connectWebStream(pairOf(socket), server.url('/path?q=1'), { pingInterval: 0, ...options });
    return { ws, peer: await server.nextPeer() };
  }

  it('§4.1: sends a valid handshake; every frame it sends is masked (§5.3), every length encoding', async () => {
    const { ws, peer } = await client();
    assert.equal(peer.request!.target, '/path?q=1');
    const sizes = [0, 125, 126, 65536];
    for (const size of sizes) await ws.send(Buffer.alloc(size, 7));
    const messages = await peer.waitMessages(sizes.length);
    assert.deepEqual(
      messages.map((message) => message.data.length),
      sizes,
    );
    for (const frame of peer.frames) assert.equal(frame.masked, true);
    assert.equal(peer.protocolErrors.length, 0, peer.describe());
  });

  it('§5.4: receives a fragmented message with pings between fragments, answering each', async () => {
    const { ws, peer } = await client();
    peer.sendText('a', false);
    peer.sendPing('p');
    peer.sendContinuation('b', true);
    const iterator = ws[Symbol.asyncIterator]();
    const first = await iterator.next();
    assert.equal((first.value as { data: Buffer }).data.toString(), 'ab');
    await peer.until(() => peer.pongs.length === 1);
  });

  it('§5.1: a masked frame from the server fails the connection with 1002', async () => {
    const { ws, peer } = await client();
    peer.sendFrame({ opcode: OP.TEXT, payload: 'x', maskKey: Buffer.from([1, 2, 3, 4]) });
    const close = await peer.waitCloseFrame();
    assert.equal(close.code, 1002);
    peer.end();
    assert.equal((await withTimeout(ws.closed, 3000, 'the close report')).code, 1002);
  });

  it('§7.1.1: the client closes and waits for the server to end TCP', async () => {
    const { ws, peer } = await client();
    ws.close(1000, 'done');
    const close = await peer.waitCloseFrame();
    assert.equal(close.code, 1000);
    peer.sendClose(1000, 'done');
    peer.end();
    const report = await withTimeout(ws.closed, 3000, 'the close report');
    assert.deepEqual(report, { code: 1000, reason: 'done', wasClean: true });
  });
});
