/**
 * The server as a whole: its registry of connections (clients, getClient, ids), the connection
 * limit, broadcast, graceful shutdown (RFC 6455 §7.4.1 code 1001 "going away"), and the ways to
 * feed it sockets: its own listener, a node:http server's 'upgrade' event, and TLS (wss://, §11.1.2).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer as createHttpServer, get as httpGet, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { after, afterEach, before, describe, it } from 'node:test';
import { HandshakeError, WebSocketServer, connect, type WebSocket } from '../src/index.js';
import {
  CloseCode,
  Opcode,
  connectPair,
  delay,
  startServer,
  trackClose,
  waitUntil,
  withTimeout,
  type TestServer,
} from './helpers/library.js';
import { RawClient, clientFrame, destroyRawClients, handshakeRequest } from './helpers/peer/index.js';
import { makeTestCertificate, type TestCertificate } from './helpers/tls.js';

const servers: TestServer[] = [];
const sockets: WebSocket[] = [];
afterEach(async () => {
  destroyRawClients();
  for (const ws of sockets.splice(0)) ws.terminate();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function server(options: Parameters<typeof startServer>[0] = {}): Promise<TestServer> {
  const s = await startServer(options);
  servers.push(s);
  return s;
}

async function client(url: string, options: Parameters<typeof connect>[1] = {}): Promise<WebSocket> {
  const ws = await connect(url, options);
  sockets.push(ws);
  return ws;
}

function expectStatus(status: number) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof HandshakeError, `a HandshakeError, got ${String(error)}`);
    assert.equal(error.status, status);
    return true;
  };
}

async function echo(ws: WebSocket, text: string): Promise<string> {
  const reply = withTimeout(once(ws, 'message') as Promise<[Buffer, boolean]>, 3000, 'an echo');
  ws.send(text);
  return (await reply)[0].toString();
}

describe('maxConnections', () => {
  it('the connection one too many gets 503; a slot frees when a connection closes', async () => {
    const s = await server({ maxConnections: 3 });
    const first = await client(s.url);
    await client(s.url);
    await client(s.url);
    await assert.rejects(connect(s.url), expectStatus(503));
    assert.equal(s.wss.clients.size, 3);

    const serverSide = s.connections[0]!;
    first.close(1000);
    await withTimeout(serverSide.closed, 3000, 'the server-side close');
    const again = await client(s.url);
    assert.equal(await echo(again, 'in'), 'in');
    await assert.rejects(connect(s.url), expectStatus(503));
  });

  it('handshakes being verified count against the limit', async () => {
    const s = await server({ maxConnections: 1, verify: () => delay(100).then(() => true) });
    const results = await Promise.allSettled([connect(s.url), delay(20).then(() => connect(s.url))]);
    assert.equal(results[0].status, 'fulfilled');
    assert.equal(results[1].status, 'rejected');
    expectStatus(503)((results[1] as PromiseRejectedResult).reason);
    sockets.push((results[0] as PromiseFulfilledResult<WebSocket>).value);
  });

  it('a refused or dropped handshake does not use up a slot', async () => {
    const s = await server({ maxConnections: 1, verify: (request) => request.path !== '/deny' });
    await assert.rejects(connect(s.url + 'deny'), expectStatus(403));
    const raw = await RawClient.open(s.port);
    raw.write(handshakeRequest().subarray(0, 20));
    raw.destroy();
    await delay(20);
    const ws = await client(s.url);
    assert.equal(await echo(ws, 'x'), 'x');
  });
  it('a client that disconnects while verify is pending is never admitted, and frees its slot', async () => {
    let verified = 0;
    const s = await server({ maxConnections: 1, verify: () => delay(100).then(() => (verified++, true)) });
    const raw = await RawClient.open(s.port);
    raw.write(handshakeRequest());
    await delay(20);
    raw.destroy();
    await waitUntil(() => verified === 1, 2000, 'the verify to finish');
    await delay(20);
    assert.equal(s.connections.length, 0, 'the dead handshake was not admitted');
    const ws = await client(s.url);
    assert.equal(await echo(ws, 'slot'), 'slot');
  });
});

describe('the registry: clients and getClient(id)', () => {
  it('every connection is in clients with a unique, stable id that getClient finds; closed ones are removed', async () => {
    const s = await server();
    const pairs = [];
    for (let i = 0; i < 5; i++) pairs.push(await connectPair(s));
    for (const { ws } of pairs) sockets.push(ws);
    const ids = pairs.map((p) => p.connection.ws.id);
    assert.equal(new Set(ids).size, 5, `unique ids: ${ids.join(', ')}`);
    for (const id of ids) assert.ok(Number.isInteger(id) && id > 0, `id ${id}`);
    assert.equal(s.wss.clients.size, 5);
    for (const { connection } of pairs) {
      assert.ok(s.wss.clients.has(connection.ws), 's.wss.clients.has(connection.ws)');
      assert.equal(s.wss.getClient(connection.ws.id), connection.ws);
    }

    const [gone, ...rest] = pairs;
    const goneId = gone!.connection.ws.id;
    gone!.ws.close(1000);
    await withTimeout(gone!.connection.closed, 3000, 'close');
    assert.equal(s.wss.clients.has(gone!.connection.ws), false);
    assert.equal(s.wss.getClient(goneId), undefined);
    assert.equal(s.wss.clients.size, 4);
    // The others keep their ids.
    rest.forEach(({ connection }, i) => {
      assert.equal(connection.ws.id, ids[i + 1]);
      assert.equal(s.wss.getClient(ids[i + 1]!), connection.ws);
    });

    // A new connection never reuses an id.
    const fresh = await connectPair(s);
    sockets.push(fresh.ws);
    assert.ok(!ids.includes(fresh.connection.ws.id), `id ${fresh.connection.ws.id} reused`);
  });

  it('connections ended by errors and terminate() leave the registry too', async () => {
    const s = await server();
    const raw = await RawClient.connect(s.port);
    const a = await s.connectionOf(raw);
    const { connection: b } = await connectPair(s);
    raw.write(Buffer.from([0x83, 0x80, 0, 0, 0, 0])); // reserved opcode: 1002
    b.ws.terminate();
    await withTimeout(Promise.all([a.closed, b.closed]), 3000, 'both closes');
    assert.equal(s.wss.clients.size, 0);
    assert.equal(s.wss.getClient(a.ws.id), undefined);
    assert.equal(s.wss.getClient(b.ws.id), undefined);
  });
});

describe('broadcast', () => {
  it('100 clients each receive a broadcast exactly once; a filter selects who gets it', async () => {
    const s = await server();
    const received = new Map<WebSocket, string[]>();
    const clients = await Promise.all(Array.from({ length: 100 }, () => client(s.url)));
    for (const ws of clients) {
      const list: string[] = [];
      received.set(ws, list);
      ws.on('message', (data, isBinary) => list.push(`${isBinary ? 'b' : 't'}:${data.toString()}`));
    }
    await waitUntil(() => s.wss.clients.size === 100, 3000, '100 server connections');

    assert.equal(s.wss.broadcast('hello everyone'), 100);
    const evenIds = new Set([...s.wss.clients].filter((c) => c.id % 2 === 0));
    assert.equal(
      s.wss.broadcast(Buffer.from('evens only'), { binary: false }, (c) => evenIds.has(c)),
      evenIds.size,
    );
    assert.equal(s.wss.broadcast('as binary', { binary: true }), 100);
    // A final marker to everybody: once it has arrived, anything duplicated would have too.
    assert.equal(s.wss.broadcast(Buffer.from('end')), 100);
    await waitUntil(
      () => [...received.values()].every((list) => list.includes('b:end')),
      5000,
      'every client to get the marker',
    );

    const evens = evenIds.size;
    let withEvens = 0;
    for (const list of received.values()) {
      const hasEven = list.includes('t:evens only');
      if (hasEven) withEvens++;
      assert.deepEqual(
        list,
        hasEven
          ? ['t:hello everyone', 't:evens only', 'b:as binary', 'b:end']
          : ['t:hello everyone', 'b:as binary', 'b:end'],
      );
    }
    assert.equal(withEvens, evens);
  });

  it('broadcast skips connections that are closing', async () => {
    const s = await server();
    const { ws: a, connection: ca } = await connectPair(s);
    const { ws: b } = await connectPair(s);
    sockets.push(a, b);
    const got: string[] = [];
    b.on('message', (data) => got.push(data.toString()));
    const gotA: string[] = [];
    a.on('message', (data) => gotA.push(data.toString()));
    ca.ws.close(1000);
    assert.equal(s.wss.broadcast('only b'), 1);
    await waitUntil(() => got.length === 1, 3000, 'the broadcast');
    assert.deepEqual(gotA, []);
  });
});

describe('RFC 6455 §7.4.1 1001 "going away": graceful shutdown with wss.close()', () => {
  it('every client gets close 1001; the promise resolves when all are gone; the server emits close', async () => {
    const s = await startServer();
    const clients = await Promise.all([client(s.url), client(s.url), client(s.url)]);
    const closes = clients.map((ws) => trackClose(ws));
    let serverClosed = false;
    s.wss.on('close', () => (serverClosed = true));
    await withTimeout(s.wss.close(2000), 3000, 'wss.close()');
    assert.equal(s.wss.clients.size, 0);
    assert.equal(serverClosed, true);
    for (const { closes: list } of closes) {
      assert.equal(list.length, 1, 'each client closed once, before the promise resolved');
      assert.equal(list[0]!.code, CloseCode.GoingAway);
      assert.equal(list[0]!.wasClean, true);
    }
    for (const connection of s.connections) {
      assert.equal(connection.closes.length, 1);
      assert.equal(connection.closes[0]!.code, CloseCode.GoingAway);
    }
  });

  it('a client that never answers the close is terminated after the timeout', async () => {
    const s = await startServer({ closeTimeout: 10_000 });
    const polite = await client(s.url);
    const politeClose = trackClose(polite);
    const silent = await RawClient.connect(s.port, {}, { endOnPeerEnd: false });
    const started = Date.now();
    await withTimeout(s.wss.close(300), 3000, 'wss.close(300)');
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 250, `resolved after ${elapsed} ms, before the 300 ms timeout`);
    assert.ok(elapsed < 2500, `resolved after ${elapsed} ms`);
    assert.equal((await silent.waitCloseFrame()).code, CloseCode.GoingAway);
    await silent.waitPeerEnd();
    assert.equal((await politeClose.closed).code, CloseCode.GoingAway);
    const silentSide = s.connections.find((c) => c.request.remotePort === silent.socket.localPort)!;
    assert.equal(silentSide.closes.length, 1);
    assert.equal(silentSide.closes[0]!.wasClean, false);
  });

  it('new connections are refused once close has started; half-done handshakes are dropped', async () => {
    const s = await startServer({ verify: () => delay(50).then(() => true) });
    await client(s.url);
    const halfway = await RawClient.open(s.port);
    halfway.write(handshakeRequest().subarray(0, 30));
    await delay(20);
    const verifying = await RawClient.open(s.port);
    verifying.write(handshakeRequest());
    await delay(10);
    const closing = s.wss.close(1000);
    await assert.rejects(connect(s.url, { handshakeTimeout: 2000 }));
    await halfway.waitClosed();
    await verifying.waitClosed();
    assert.ok(verifying.response === null || verifying.response.status !== 101, 'no late 101 while shutting down');
    await withTimeout(closing, 3000, 'wss.close()');
    assert.equal(s.connections.length, 1, 'nothing admitted after close started');
    // Idempotent: a second close() is the same shutdown, already done.
    await withTimeout(s.wss.close(), 1000, 'a second close()');
  });

  it('close() on a server that never listened (handleSocket only) resolves once its connections are gone', async () => {
    const wss = new WebSocketServer();
    const net = createNetServer((socket) => wss.handleSocket(socket));
    net.listen(0, '127.0.0.1');
    await once(net, 'listening');
    try {
      const ws = await client(`ws://127.0.0.1:${(net.address() as AddressInfo).port}/`);
      const closed = trackClose(ws);
      await withTimeout(wss.close(1000), 3000, 'wss.close()');
      assert.equal((await closed.closed).code, CloseCode.GoingAway);
    } finally {
      net.close();
    }
  });
});

describe('handleUpgrade: WebSocket servers on a node:http server', () => {
  let http: HttpServer;
  let port: number;
  const wssA = new WebSocketServer({ path: '/a' });
  const wssB = new WebSocketServer({ path: '/b' });
  before(async () => {
    wssA.on('connection', (ws) => ws.on('message', (data) => ws.send(`A:${data.toString()}`)));
    wssB.on('connection', (ws) => ws.on('message', (data) => ws.send(`B:${data.toString()}`)));
    http = createHttpServer((request, response) => {
      response.setHeader('Content-Type', 'text/plain');
      response.end(`plain ${request.method} ${request.url}`);
    });
    http.on('upgrade', (request, socket, head) => {
      const path = new URL(request.url ?? '/', 'http://x').pathname;
      // Route by path; anything else goes to A, which answers 404 itself.
      (path === '/b' ? wssB : wssA).handleUpgrade(request, socket, head);
    });
    http.listen(0, '127.0.0.1');
    await once(http, 'listening');
    port = (http.address() as AddressInfo).port;
  });
  after(async () => {
    await Promise.all([wssA.close(200), wssB.close(200)]);
    http.closeAllConnections();
    await new Promise((resolve) => http.close(resolve));
  });

  it('path routing: /a and /b reach their own server', async () => {
    const a = await client(`ws://127.0.0.1:${port}/a`);
    const b = await client(`ws://127.0.0.1:${port}/b?x=1`);
    assert.equal(await echo(a, 'one'), 'A:one');
    assert.equal(await echo(b, 'two'), 'B:two');
    assert.equal(wssA.clients.size, 1);
    assert.equal(wssB.clients.size, 1);
  });

  it('a field repeated in the request reaches the handler joined, as node:http read it (RFC 9110 §5.3)', async () => {
    const connected = once(wssA, 'connection');
    const client = await RawClient.open(port);
    client.write(
      handshakeRequest({
        path: '/a',
        extraFields: [
          ['X-Trace', 'one'],
          ['X-Trace', 'two'],
        ],
      }),
    );
    assert.equal((await client.readResponse()).status, 101);
    const [, request] = (await connected) as [WebSocket, { headers: Record<string, string> }];
    assert.equal(request.headers['x-trace'], 'one, two');
    client.destroy();
  });

  it('an unserved path gets 404 from the WebSocket server', async () => {
    await assert.rejects(connect(`ws://127.0.0.1:${port}/c`), expectStatus(404));
  });

  it('the http server still serves plain GETs', async () => {
    const body = await new Promise<string>((resolve, reject) => {
      httpGet(`http://127.0.0.1:${port}/hello`, (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () => resolve(text));
      }).on('error', reject);
    });
    assert.equal(body, 'plain GET /hello');
  });

  it('frames sent with the upgrade request (the head buffer) are not lost', async () => {
    const raw = await RawClient.connect(
      port,
      { path: '/b' },
      {},
      clientFrame({ opcode: Opcode.Text, payload: 'early' }),
    );
    await raw.waitMessages(1);
    assert.equal(raw.messages[0]!.data.toString(), 'B:early');
  });

  it('a malformed upgrade request is refused with an HTTP error by handleUpgrade', async () => {
    const raw = await RawClient.open(port);
    raw.write(handshakeRequest({ path: '/a', headers: { 'Sec-WebSocket-Version': '8' } }));
    const response = await raw.readResponse();
    assert.equal(response.status, 426);
  });

  it('with a callback, handleUpgrade hands the connection to it instead of emitting connection', async () => {
    const wss = new WebSocketServer();
    let emitted = 0;
    wss.on('connection', () => emitted++);
    const http2 = createHttpServer();
    http2.on('upgrade', (request, socket, head) => {
      wss.handleUpgrade(request, socket, head, (ws, req) => {
        ws.on('message', (data) => ws.send(`cb ${req.path}:${data.toString()}`));
      });
    });
    http2.listen(0, '127.0.0.1');
    await once(http2, 'listening');
    try {
      const ws = await client(`ws://127.0.0.1:${(http2.address() as AddressInfo).port}/cb`);
      assert.equal(await echo(ws, 'x'), 'cb /cb:x');
      assert.equal(emitted, 0);
      assert.equal(wss.clients.size, 1);
    } finally {
      await wss.close(200);
      http2.closeAllConnections();
      http2.close();
    }
  });
});

describe('RFC 6455 §11.1.2 wss://: the server over TLS', () => {
  let key: Buffer | null = null;
  let cert: Buffer | null = null;
  let skipReason = '';
  let made: TestCertificate | null = null;
  before(() => {
    const certificate = makeTestCertificate('wsrfc-tls-');
    if (typeof certificate === 'string') skipReason = certificate;
    else ({ key, cert } = made = certificate);
  });
  after(() => made?.remove());

  it('new WebSocketServer({ tls }) + listen(): wss:// echo with our client', async (t) => {
    if (key === null || cert === null) return t.skip(skipReason);
    const wss = new WebSocketServer({ tls: { key, cert } });
    wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
    const { port } = await wss.listen(0, '127.0.0.1');
    try {
      const ws = await client(`wss://localhost:${port}/`, { tls: { ca: cert } });
      assert.equal(await echo(ws, 'over tls'), 'over tls');
      const big = Buffer.alloc(3 * 1024 * 1024, 7);
      const reply = withTimeout(once(ws, 'message') as Promise<[Buffer]>, 5000, 'the big echo');
      ws.send(big);
      assert.ok((await reply)[0].equals(big), '(await reply)[0].equals(big)');
      ws.close(1000);
      await once(ws, 'close');
    } finally {
      await wss.close(200);
    }
  });

  it('a tls.createServer whose sockets go to wss.handleSocket()', async (t) => {
    if (key === null || cert === null) return t.skip(skipReason);
    const wss = new WebSocketServer();
    wss.on('connection', (ws) => ws.on('message', (data) => ws.send(`tls:${data.toString()}`)));
    const tls = createTlsServer({ key, cert }, (socket) => wss.handleSocket(socket));
    tls.listen(0, '127.0.0.1');
    await once(tls, 'listening');
    try {
      const ws = await client(`wss://localhost:${(tls.address() as AddressInfo).port}/`, { tls: { ca: cert } });
      assert.equal(await echo(ws, 'hello'), 'tls:hello');
      const closed = trackClose(ws);
      ws.close(1000, 'tls bye');
      const record = await withTimeout(closed.closed, 3000, 'close');
      assert.deepEqual([record.code, record.reason, record.wasClean], [1000, 'tls bye', true]);
    } finally {
      await wss.close(200);
      await new Promise((resolve) => tls.close(resolve));
    }
  });

  it('a TLS client that does not trust the certificate never reaches the WebSocket server', async (t) => {
    if (key === null || cert === null) return t.skip(skipReason);
    const wss = new WebSocketServer({ tls: { key, cert } });
    let connections = 0;
    wss.on('connection', () => connections++);
    const { port } = await wss.listen(0, '127.0.0.1');
    try {
      await assert.rejects(connect(`wss://localhost:${port}/`, { handshakeTimeout: 3000 }));
      assert.equal(connections, 0);
    } finally {
      await wss.close(200);
    }
  });
});
