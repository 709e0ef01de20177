/**
 * RFC 8441, WebSockets over HTTP/2: our server against the independent peer (node:http2 for the
 * streams, spec-tests/helpers/peer/ for the frames and zlib for compression; nothing from src/),
 * and our client against our server, over TLS (ALPN h2) and cleartext h2c with prior knowledge.
 * Many WebSockets share one HTTP/2 connection here, so the tests are about what that changes: one
 * stream per WebSocket, END_STREAM and RST_STREAM instead of FIN and RST, GOAWAY on shutdown, and
 * one stream's trouble (a stalled reader, a hostile peer, a reset) staying on that stream.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  constants as h2,
  createSecureServer,
  createServer as createH2cServer,
  type Http2Server,
  type ServerHttp2Stream,
} from 'node:http2';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { HandshakeError, WebSocketServer, connect, type ServerOptions, type WebSocket } from '../src/index.js';
import { closeEvent, delay, nextMessages, waitUntil, withTimeout } from './helpers/library.js';
import {
  Compressor,
  H2Peer,
  OP,
  StrictInflater,
  clientFrame,
  destroyH2Sessions,
  encodeFrame,
  extendedConnect,
  h2Request,
  negotiated,
  openH2Session,
  zeroBomb,
} from './helpers/peer/index.js';
import { makeTestCertificate, type TestCertificate } from './helpers/tls.js';

let made: TestCertificate | null = null;
let key: Buffer | null = null;
let cert: Buffer | null = null;
let noCertificate = '';
before(() => {
  const certificate = makeTestCertificate('wsrfc-h2-');
  if (typeof certificate === 'string') noCertificate = certificate;
  else ({ key, cert } = made = certificate);
});
const cleanups: (() => unknown)[] = [];
after(async () => {
  destroyH2Sessions();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  made?.remove();
});

/** Skip (saying why) when no certificate could be made. */
function needsTls(t: { skip(message: string): void }): boolean {
  if (key !== null && cert !== null) return false;
  console.log(`# skipped: ${noCertificate}`);
  t.skip(noCertificate);
  return true;
}

function echo(ws: WebSocket): void {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
}

/** Our server on its own TLS listen (ALPN h2 and http/1.1). */
async function tlsServer(options: ServerOptions): Promise<{ wss: WebSocketServer; port: number }> {
  const wss = new WebSocketServer({ pingInterval: 0, ...options, tls: { key: key!, cert: cert! } });
  const { port } = await wss.listen(0, '127.0.0.1');
  cleanups.push(() => wss.close(200));
  return { wss, port };
}

/** A cleartext node:http2 server (h2c, prior knowledge) whose streams go to our server's handleHttp2Stream. */
async function h2cServer(wss: WebSocketServer): Promise<{ port: number; h2server: Http2Server; sessions(): number }> {
  const h2server = createH2cServer({ settings: { enableConnectProtocol: true } });
  let sessions = 0;
  h2server.on('session', () => sessions++);
  h2server.on('stream', (stream: ServerHttp2Stream, headers) => wss.handleHttp2Stream(stream, headers));
  await new Promise<void>((resolve) => h2server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => h2server.close(resolve)));
  cleanups.push(() => wss.close(200));
  return { port: (h2server.address() as AddressInfo).port, h2server, sessions: () => sessions };
}

/** The peer's WebSocket (on a server that does not echo) is still open: a ping gets its pong. */
async function peerEchoesAfterBroadcast(peer: H2Peer): Promise<void> {
  const before = peer.pongs.length;
  peer.sendPing('still there?');
  await peer.until(() => peer.pongs.length > before, 5000, 'a pong');
}

/** The peer opens a WebSocket on `session` and checks it still echoes. */
async function peerEchoes(peer: H2Peer, text: string): Promise<void> {
  const before = peer.messages.length;
  peer.sendText(text);
  await peer.waitMessages(before + 1, 5000);
  assert.equal(peer.messages[before]!.data.toString(), text);
}

describe('RFC 8441 §3 SETTINGS_ENABLE_CONNECT_PROTOCOL', () => {
  it('the TLS listen speaks h2 and http/1.1 on one port (ALPN) and sends SETTINGS_ENABLE_CONNECT_PROTOCOL = 1', async (t) => {
    if (needsTls(t)) return;
    const versions: string[] = [];
    const { wss, port } = await tlsServer({ http2: true });
    wss.on('connection', (ws, request) => {
      versions.push(request.httpVersion);
      echo(ws);
    });
    const session = await openH2Session(`https://localhost:${port}`, { ca: cert! });
    assert.equal(session.alpnProtocol, 'h2');
    assert.equal(session.remoteSettings.enableConnectProtocol, true);
    const peer = await H2Peer.open(session, '/');
    await peerEchoes(peer, 'over h2');
    // The same port, HTTP/1.1: our client offers no ALPN, so the TLS server hands it to the HTTP/1.1 handshake.
    const overHttp1 = await connect(`wss://localhost:${port}/`, { tls: { ca: cert! } });
    overHttp1.send('over http/1.1');
    assert.equal((await nextMessages(overHttp1, 1))[0]!.data.toString(), 'over http/1.1');
    overHttp1.close(1000);
    assert.deepEqual(versions, ['2.0', '1.1']);
  });

  it('our client says why when the server does not send it, and opens over HTTP/1.1 instead when told to', async (t) => {
    if (needsTls(t)) return;
    // A node:http2 server without the setting.
    const plain = createH2cServer();
    plain.on('stream', (stream) => stream.respond({ ':status': 404 }, { endStream: true }));
    await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => plain.close(resolve)));
    const plainPort = (plain.address() as AddressInfo).port;
    await assert.rejects(connect(`ws://127.0.0.1:${plainPort}/`, { http2: true }), (error: Error) => {
      assert.ok(error instanceof HandshakeError, String(error));
      assert.match(error.message, /SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 \(RFC 8441 §3\)/);
      return true;
    });
    // A TLS server without HTTP/2 at all: no h2 by ALPN; with `fallback` the WebSocket opens over HTTP/1.1.
    const versions: string[] = [];
    const { wss, port } = await tlsServer({ http2: false });
    wss.on('connection', (ws, request) => {
      versions.push(request.httpVersion);
      echo(ws);
    });
    await assert.rejects(connect(`wss://localhost:${port}/`, { http2: true, tls: { ca: cert! } }));
    const ws = await connect(`wss://localhost:${port}/`, { http2: { fallback: true }, tls: { ca: cert! } });
    ws.send('fell back');
    assert.equal((await nextMessages(ws, 1))[0]!.data.toString(), 'fell back');
    ws.close(1000);
    assert.deepEqual(versions, ['1.1']);
  });
});

describe('RFC 8441 §4-§5 the extended CONNECT and its 200', () => {
  it('the peer opens a WebSocket: 200 with no Sec-WebSocket-Accept, subprotocol and permessage-deflate answered, frames both ways', async (t) => {
    if (needsTls(t)) return;
    const { wss, port } = await tlsServer({ http2: true, protocols: ['chat'], perMessageDeflate: true });
    const closes: string[] = [];
    wss.on('connection', (ws, request) => {
      echo(ws);
      ws.on('close', (code, reason, wasClean) => closes.push(`${request.path} ${code} ${reason} ${wasClean}`));
      if (request.path === '/server-closes') ws.close(4002, 'server bye');
    });
    const session = await openH2Session(`https://localhost:${port}`, { ca: cert! });
    const peer = await H2Peer.open(session, '/chat', {
      'sec-websocket-protocol': 'x-other, chat',
      'sec-websocket-extensions': 'permessage-deflate; client_max_window_bits',
    });
    // RFC 8441 §5: a 2xx and no Sec-WebSocket-Accept (there was no key to answer).
    assert.equal(peer.response[':status'], 200);
    assert.equal(peer.response['sec-websocket-accept'], undefined);
    assert.equal(peer.response['sec-websocket-protocol'], 'chat');
    const agreed = String(peer.response['sec-websocket-extensions']);
    const deflate = negotiated(agreed);
    peer.inflateWith(new StrictInflater(deflate.serverBits, !deflate.serverNoContextTakeover));
    await peerEchoes(peer, 'héllo');
    // A compressed message from the peer (RFC 7692 §7.2.1), echoed compressed (it is over the threshold).
    const big = Buffer.from('a compressible line of text\n'.repeat(500));
    const compressor = new Compressor({
      windowBits: deflate.clientBits,
      contextTakeover: !deflate.clientNoContextTakeover,
    });
    peer.sendCompressed(compressor.compress(big), { binary: true });
    await peer.waitMessages(2, 5000);
    assert.ok(peer.messages[1]!.data.equals(big), 'the compressed binary message came back intact');
    assert.equal(peer.wire[1]!.compressed, true, 'the echo was compressed');
    // The peer closes: close frames both ways, then END_STREAM both ways (RFC 8441 §6), no reset.
    peer.sendClose(4001, 'peer bye');
    const close = await peer.waitCloseFrame(5000);
    assert.deepEqual([close.code, close.reason], [4001, 'peer bye']);
    await peer.waitClosed(5000);
    assert.equal(peer.stream.rstCode, h2.NGHTTP2_NO_ERROR);
    assert.equal(peer.peerEnded, true);
    // The server closes another, with its code.
    const second = await H2Peer.open(session, '/server-closes');
    const serverClose = await second.waitCloseFrame(5000);
    assert.deepEqual([serverClose.code, serverClose.reason], [4002, 'server bye']);
    second.sendClose(4002);
    await second.waitClosed(5000);
    assert.equal(second.stream.rstCode, h2.NGHTTP2_NO_ERROR);
    await waitUntil(() => closes.length === 2, 5000, 'both closes on the server');
    // (RFC 6455 §7.1.5: a close reports the code and reason of the close frame received, the peer's.)
    assert.deepEqual(closes, ['/chat 4001 peer bye true', '/server-closes 4002  true']);
    assert.deepEqual([peer.protocolErrors, second.protocolErrors], [[], []]);
    assert.equal(session.closed, false, 'the HTTP/2 connection outlives its WebSockets');
  });

  it('every refusal is an HTTP/2 response (400, 403, 404, 405, 426, 501, verify’s own), and the session goes on', async (t) => {
    if (needsTls(t)) return;
    const rejected: number[] = [];
    const { wss, port } = await tlsServer({
      http2: true,
      path: '/ws',
      checkOrigin: (origin) => origin !== 'https://evil.example',
      verify: (request) => (request.query.get('token') === 'bad' ? { status: 401, message: 'bad token' } : true),
    });
    wss.on('rejected', (status) => rejected.push(status));
    wss.on('connection', echo);
    const session = await openH2Session(`https://localhost:${port}`, { ca: cert! });
    const cases: [string, Record<string, string>, number, RegExp][] = [
      ['a path not served', { ':path': '/other' }, 404, /no WebSocket endpoint/],
      ['no Sec-WebSocket-Version', { 'sec-websocket-version': '' }, 400, /Sec-WebSocket-Version/],
      ['a repeated subprotocol', { 'sec-websocket-protocol': 'a, a' }, 400, /Sec-WebSocket-Protocol/],
      ['an origin not allowed', { origin: 'https://evil.example' }, 403, /origin/],
      ['Sec-WebSocket-Version 8', { 'sec-websocket-version': '8' }, 426, /speaks 13/],
      ['a :protocol other than websocket', { ':protocol': 'x-chat' }, 501, /not supported/],
      ['verify’s own refusal', { ':path': '/ws?token=bad' }, 401, /bad token/],
    ];
    for (const [what, change, status, body] of cases) {
      const headers = extendedConnect(session, '/ws', change);
      for (const [name, value] of Object.entries(headers)) if (value === '') delete headers[name];
      const answer = await h2Request(session, headers);
      assert.equal(answer.status, status, what);
      assert.match(answer.body, body, what);
      if (status === 426) assert.equal(answer.headers['sec-websocket-version'], '13');
    }
    // Not an extended CONNECT at all: a GET (405, naming CONNECT), a plain CONNECT (400: we are no proxy).
    const get = await h2Request(session, { ':method': 'GET', ':path': '/ws' });
    assert.deepEqual([get.status, get.headers['allow']], [405, 'CONNECT']);
    const plainConnect = await h2Request(session, { ':method': 'CONNECT', ':authority': `localhost:${port}` });
    assert.equal(plainConnect.status, 400);
    assert.deepEqual(rejected, [404, 400, 400, 403, 426, 501, 401, 405, 400]);
    assert.equal(wss.clients.size, 0);
    // Refusals are streams of their own: the connection still carries a WebSocket.
    await peerEchoes(await H2Peer.open(session, '/ws'), 'after the refusals');
    // Our client reads a refusal as a HandshakeError with the status and body.
    await assert.rejects(
      connect(`wss://localhost:${port}/ws`, { http2: true, tls: { ca: cert! }, origin: 'https://evil.example' }),
      (error: Error) =>
        error instanceof HandshakeError && error.status === 403 && /origin not allowed/.test(error.message),
    );
  });
});

describe('our client and our server over HTTP/2', () => {
  it('wss:// (TLS, ALPN h2): echo text and binary with permessage-deflate, close with a code both ways, one session per origin', async (t) => {
    if (needsTls(t)) return;
    const { wss, port } = await tlsServer({ http2: true, perMessageDeflate: true, protocols: ['chat'] });
    const peers = new Set<string>();
    wss.on('connection', (ws, request) => {
      peers.add(`${ws.remoteAddress}:${ws.remotePort}`);
      assert.equal(request.httpVersion, '2.0');
      if (request.path === '/server-closes') ws.close(4002, 'server bye');
      else echo(ws);
    });
    const options = { http2: true, tls: { ca: cert! }, perMessageDeflate: true, protocols: ['chat'] };
    const ws = await connect(`wss://localhost:${port}/`, options);
    assert.deepEqual([ws.protocol, ws.extensions.split(';')[0]], ['chat', 'permessage-deflate']);
    const binary = Buffer.alloc(200_000, 7);
    ws.send('text ☃');
    ws.send(binary);
    const [text, bytes] = await nextMessages(ws, 2);
    assert.deepEqual([text!.data.toString(), text!.isBinary], ['text ☃', false]);
    assert.ok(bytes!.isBinary && bytes!.data.equals(binary));
    const other = await connect(`wss://localhost:${port}/server-closes`, options);
    assert.deepEqual(await closeEvent(other), { code: 4002, reason: 'server bye', wasClean: true });
    // Both WebSockets came over the same TCP connection (one HTTP/2 session per origin).
    assert.equal(peers.size, 1);
    const closed = closeEvent(ws);
    ws.close(4001, 'client bye');
    assert.deepEqual(await closed, { code: 4001, reason: 'client bye', wasClean: true });
  });

  it('attached to a node:http2 createSecureServer (allowHTTP1): streams to handleHttp2Stream, upgrades to handleUpgrade', async (t) => {
    if (needsTls(t)) return;
    const wss = new WebSocketServer({ pingInterval: 0 });
    const versions: string[] = [];
    wss.on('connection', (ws, request) => {
      versions.push(request.httpVersion);
      echo(ws);
    });
    const secure = createSecureServer({
      key: key!,
      cert: cert!,
      allowHTTP1: true,
      settings: { enableConnectProtocol: true },
    });
    secure.on('stream', (stream, headers) => {
      if (headers[':method'] === 'CONNECT') wss.handleHttp2Stream(stream, headers);
      else stream.respond({ ':status': 404 }, { endStream: true });
    });
    secure.on('upgrade', (request, socket, head) => wss.handleUpgrade(request, socket, head));
    await new Promise<void>((resolve) => secure.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => secure.close(resolve)));
    cleanups.push(() => wss.close(200));
    const port = (secure.address() as AddressInfo).port;
    for (const http2 of [true, false]) {
      const ws = await connect(`wss://localhost:${port}/`, { http2, tls: { ca: cert! } });
      ws.send(`http2 ${http2}`);
      assert.equal((await nextMessages(ws, 1))[0]!.data.toString(), `http2 ${http2}`);
      const closed = closeEvent(ws);
      ws.close(1000);
      assert.equal((await closed).wasClean, true);
    }
    assert.deepEqual(versions, ['2.0', '1.1']);
  });

  it('ws:// over h2c with prior knowledge (a node:http2 server whose streams go to handleHttp2Stream)', async () => {
    const wss = new WebSocketServer({ pingInterval: 0 });
    wss.on('connection', echo);
    const { port, sessions } = await h2cServer(wss);
    const ws = await connect(`ws://127.0.0.1:${port}/`, { http2: true });
    ws.send('h2c');
    assert.equal((await nextMessages(ws, 1))[0]!.data.toString(), 'h2c');
    const closed = closeEvent(ws);
    ws.close(1000);
    assert.equal((await closed).wasClean, true);
    assert.equal(sessions(), 1);
  });
});

describe('RFC 8441 §5 and RFC 6455 §4.1: our client checks the server’s answer', () => {
  it('fails on a subprotocol or extension it did not offer, or a status other than 2xx; a masked server frame fails that WebSocket only', async () => {
    // A hand-written server on node:http2: each path answers one way, frames by the peer's encoder.
    const raw = createH2cServer({ settings: { enableConnectProtocol: true } });
    raw.on('stream', (stream, headers) => {
      const path = headers[':path'];
      if (path === '/protocol') stream.respond({ ':status': 200, 'sec-websocket-protocol': 'never-offered' });
      else if (path === '/extension')
        stream.respond({ ':status': 200, 'sec-websocket-extensions': 'permessage-deflate' });
      else if (path === '/teapot') stream.respond({ ':status': 418 }, { endStream: true });
      else {
        stream.respond({ ':status': 200 });
        // RFC 6455 §5.1: "A client MUST close a connection if it detects a masked frame."
        if (path === '/masked')
          stream.write(encodeFrame({ opcode: OP.TEXT, payload: 'masked', maskKey: Buffer.from([1, 2, 3, 4]) }));
        else stream.write(encodeFrame({ opcode: OP.TEXT, payload: 'fine' }));
      }
      stream.on('error', () => {});
      stream.resume();
    });
    await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => raw.close(resolve)));
    const url = (path: string): string => `ws://127.0.0.1:${(raw.address() as AddressInfo).port}${path}`;
    const fine = connect(url('/fine'), { http2: true });
    cleanups.push(async () => (await fine).terminate());
    const gotFine = fine.then((ws) => nextMessages(ws, 1));
    for (const [path, pattern] of [
      ['/protocol', /subprotocol "never-offered" was not offered/],
      ['/extension', /extension not offered/],
      ['/teapot', /refused the WebSocket handshake: 418/],
    ] as const) {
      await assert.rejects(connect(url(path), { http2: true, protocols: ['chat'] }), (error: Error) => {
        assert.ok(error instanceof HandshakeError && pattern.test(error.message), `${path}: ${error.message}`);
        return true;
      });
    }
    // This server never ends its stream: after its close frame our client waits closeTimeout for
    // the END_STREAM (as it waits for a FIN over TCP), then resets the stream.
    const masked = await connect(url('/masked'), { http2: true, closeTimeout: 300 });
    masked.on('error', () => {});
    const maskedClose = await closeEvent(masked, 5000);
    assert.deepEqual([maskedClose.code, maskedClose.wasClean], [1002, false]);
    const ws = await fine;
    assert.equal((await gotFine)[0]!.data.toString(), 'fine');
    assert.equal(ws.readyState, 1, 'the other WebSocket is still open');
    ws.terminate();
  });
});

describe('RFC 8441 §6 closing: END_STREAM ends a WebSocket, RST_STREAM (CANCEL) aborts it', () => {
  it('a stream reset mid-message closes that WebSocket with 1006; the others on the session go on', async () => {
    const wss = new WebSocketServer({ pingInterval: 0 });
    const onServer: WebSocket[] = [];
    wss.on('connection', (ws) => {
      onServer.push(ws);
      echo(ws);
    });
    const { port } = await h2cServer(wss);
    const session = await openH2Session(`http://127.0.0.1:${port}`);
    const victim = await H2Peer.open(session, '/a');
    const bystander = await H2Peer.open(session, '/b');
    await waitUntil(() => onServer.length === 2, 3000, 'both WebSockets on the server');
    const victimClosed = closeEvent(onServer[0]!);
    // Half of a 1000-byte frame, then the reset.
    const frame = clientFrame({ opcode: OP.BINARY, payload: Buffer.alloc(1000, 1) });
    await new Promise<void>((resolve) => victim.stream.write(frame.subarray(0, 500), () => resolve()));
    await delay(50);
    victim.reset();
    assert.deepEqual(await victimClosed, { code: 1006, reason: '', wasClean: false });
    await peerEchoes(bystander, 'unaffected');
    assert.equal(wss.clients.size, 1);
    // And the other way: terminate() on the server aborts only its stream, with CANCEL.
    const third = await H2Peer.open(session, '/c');
    await waitUntil(() => onServer.length === 3, 3000, 'the third WebSocket on the server');
    const errors: Error[] = [];
    onServer[2]!.on('error', (error) => errors.push(error));
    const thirdClosed = closeEvent(onServer[2]!);
    onServer[2]!.terminate();
    await third.waitClosed(5000);
    assert.equal(third.stream.rstCode, h2.NGHTTP2_CANCEL);
    assert.deepEqual(await thirdClosed, { code: 1006, reason: '', wasClean: false });
    assert.deepEqual(errors, [], 'terminate() is no error');
    assert.equal(third.closeFrame, null);
    await peerEchoes(bystander, 'still unaffected');
    assert.equal(session.closed || session.destroyed, false);
  });

  it('a hostile stream closes only itself: a bad frame (1002), a 2^62-byte length (1009), a decompression bomb (1009)', async () => {
    const wss = new WebSocketServer({ pingInterval: 0, perMessageDeflate: true, maxMessageSize: 1024 * 1024 });
    const serverCloses: number[] = [];
    wss.on('connection', (ws) => {
      echo(ws);
      ws.on('close', (code) => serverCloses.push(code));
    });
    const { port } = await h2cServer(wss);
    const session = await openH2Session(`http://127.0.0.1:${port}`);
    const healthy = await H2Peer.open(session, '/healthy');
    const offer = { 'sec-websocket-extensions': 'permessage-deflate' };
    const [unmasked, huge, bomb] = await Promise.all([
      H2Peer.open(session, '/unmasked'),
      H2Peer.open(session, '/huge'),
      H2Peer.open(session, '/bomb', offer),
    ]);
    // RFC 6455 §5.1: a client frame must be masked.
    unmasked.sendFrame({ opcode: OP.TEXT, payload: 'not masked', maskKey: null });
    // A header announcing 2^62 bytes: refused from the header, nothing buffered (RFC 6455 §10.4).
    huge.write(clientFrame({ opcode: OP.BINARY, lengthEncoding: 64, declaredLength: 1n << 62n }));
    // 16 MiB of zeros in a few KiB (RFC 7692 §8.1): stopped at the message limit.
    bomb.sendCompressed(zeroBomb(16 * 1024 * 1024), { binary: true });
    const codes = await Promise.all(
      [unmasked, huge, bomb].map(async (peer) => (await peer.waitCloseFrame(10_000)).code),
    );
    assert.deepEqual(codes, [1002, 1009, 1009]);
    for (const peer of [unmasked, huge, bomb]) await peer.waitClosed(10_000);
    await peerEchoes(healthy, 'the healthy one is still here');
    assert.deepEqual(serverCloses.sort(), [1002, 1009, 1009]);
    assert.equal(wss.clients.size, 1);
    assert.equal(session.closed || session.destroyed, false);
  });
});

describe('per-stream backpressure: 100 WebSockets on one HTTP/2 session', () => {
  it('one stalled reader on each side stalls only itself; the other 98 keep echoing; nothing is lost', async () => {
    const wss = new WebSocketServer({ pingInterval: 0, highWaterMark: 64 * 1024 });
    const byPath = new Map<string, WebSocket>();
    wss.on('connection', (ws, request) => {
      byPath.set(request.path, ws);
      if (request.path === '/stalled-server') ws.pause();
      else if (request.path !== '/stalled-client') echo(ws);
    });
    const { port, sessions } = await h2cServer(wss);
    const url = (path: string): string => `ws://127.0.0.1:${port}${path}`;
    const clients = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        connect(url(i === 0 ? '/stalled-server' : i === 1 ? '/stalled-client' : `/${i}`), {
          http2: true,
          highWaterMark: 64 * 1024,
        }),
      ),
    );
    assert.equal(sessions(), 1, 'all 100 WebSockets share one HTTP/2 session');
    assert.equal(wss.clients.size, 100);
    const chunk = Buffer.alloc(16 * 1024, 3);
    // The server does not read /stalled-server: HTTP/2 flow control holds our client's writes to it.
    const toStalled = clients[0]!;
    let sent = 0;
    while (toStalled.send(chunk)) sent++;
    sent++;
    await delay(200);
    assert.ok(toStalled.bufferedAmount > 0, 'writes to the stalled reader are held back');
    // Our client does not read /stalled-client: the server's writes to it are held back the same way.
    clients[1]!.pause();
    const fromStalled = byPath.get('/stalled-client')!;
    let pushed = 0;
    while (fromStalled.send(chunk)) pushed++;
    pushed++;
    // Meanwhile every other WebSocket on the session echoes.
    await Promise.all(
      clients.slice(2).map(async (ws, i) => {
        for (let n = 0; n < 5; n++) ws.send(`ws ${i} message ${n}`);
        const got = await nextMessages(ws, 5, 20_000);
        assert.deepEqual(
          got.map((m) => m.data.toString()),
          [0, 1, 2, 3, 4].map((n) => `ws ${i} message ${n}`),
        );
      }),
    );
    // Once they read again, everything held back arrives.
    let received = 0;
    const stalledServer = byPath.get('/stalled-server')!;
    stalledServer.on('message', () => received++);
    stalledServer.resume();
    const all = nextMessages(clients[1]!, pushed, 20_000);
    clients[1]!.resume();
    assert.equal((await all).length, pushed);
    await waitUntil(() => received === sent, 20_000, `${sent} messages on the stalled-server WebSocket`);
    await Promise.all(
      clients.map((ws) => {
        const closed = closeEvent(ws, 10_000);
        ws.close(1000);
        return closed;
      }),
    );
  });
});

describe('the server’s options hold over HTTP/2 as over HTTP/1.1', () => {
  it('verify attaches data, maxConnections refuses with 503, a stuck verify meets the handshake timeout, broadcast reaches both', async (t) => {
    if (needsTls(t)) return;
    const { wss, port } = await tlsServer({
      http2: true,
      maxConnections: 2,
      handshakeTimeout: 300,
      verify: async (request) => {
        if (request.path === '/stuck') return new Promise<never>(() => {});
        return { data: `user of ${request.path}` };
      },
    });
    const data: unknown[] = [];
    wss.on('connection', (ws) => data.push(ws.data));
    const session = await openH2Session(`https://localhost:${port}`, { ca: cert! });
    const overH2 = await H2Peer.open(session, '/a');
    const overHttp1 = await connect(`wss://localhost:${port}/b`, { tls: { ca: cert! } });
    assert.deepEqual(data, ['user of /a', 'user of /b']);
    // The limit counts WebSockets over both protocols.
    const third = await h2Request(session, extendedConnect(session, '/c'));
    assert.deepEqual([third.status, third.headers['retry-after']], [503, '1']);
    // One message framed once for both (the frames are the same bytes over TCP and over a stream).
    assert.equal(wss.broadcast('to everyone'), 2);
    await overH2.waitMessages(1, 5000);
    assert.equal(overH2.messages[0]!.data.toString(), 'to everyone');
    assert.equal((await nextMessages(overHttp1, 1))[0]!.data.toString(), 'to everyone');
    overHttp1.close(1000);
    await waitUntil(() => wss.clients.size === 1, 5000, 'the HTTP/1.1 client to go');
    // No answer from `verify` within handshakeTimeout: the stream is cancelled, nothing else.
    const stuck = session.request(extendedConnect(session, '/stuck'), { endStream: false });
    stuck.on('error', () => {});
    let answered = false;
    stuck.on('response', () => (answered = true));
    await withTimeout(new Promise((resolve) => stuck.once('close', resolve)), 5000, 'the stuck handshake to end');
    assert.deepEqual([answered, stuck.rstCode], [false, h2.NGHTTP2_CANCEL]);
    await peerEchoesAfterBroadcast(overH2);
  });

  it('a peer that never answers pings is dropped after pongTimeout, its stream cancelled', async () => {
    const wss = new WebSocketServer({ pingInterval: 100, pongTimeout: 400 });
    const closes: [number, boolean][] = [];
    wss.on('connection', (ws) => ws.on('close', (code, _reason, wasClean) => closes.push([code, wasClean])));
    const { port } = await h2cServer(wss);
    const session = await openH2Session(`http://127.0.0.1:${port}`);
    const silent = await H2Peer.open(session, '/');
    await silent.waitClosed(5000);
    assert.ok(silent.pings.length > 0, 'the server pinged');
    assert.equal(silent.stream.rstCode, h2.NGHTTP2_CANCEL);
    assert.deepEqual(closes, [[1006, false]]);
  });

  it('our client closes its session when its last WebSocket to the origin is gone', async () => {
    const wss = new WebSocketServer({ pingInterval: 0 });
    wss.on('connection', echo);
    const { h2server, port } = await h2cServer(wss);
    let sessionClosed = false;
    h2server.once('session', (session) => session.once('close', () => (sessionClosed = true)));
    const [a, b] = await Promise.all([1, 2].map(() => connect(`ws://127.0.0.1:${port}/`, { http2: true })));
    const closedA = closeEvent(a!);
    a!.close(1000);
    await closedA;
    await delay(50);
    assert.equal(sessionClosed, false, 'the session stays while b uses it');
    const closedB = closeEvent(b!);
    b!.close(1000);
    await closedB;
    await waitUntil(() => sessionClosed, 5000, 'the session to close');
  });
});

describe('RFC 9113 §6.8 GOAWAY: the server closing', () => {
  it('close() sends 1001 on every WebSocket, then GOAWAY, and resolves once the sessions are gone', async (t) => {
    if (needsTls(t)) return;
    const wss = new WebSocketServer({ pingInterval: 0, http2: true, tls: { key: key!, cert: cert! } });
    wss.on('connection', echo);
    const { port } = await wss.listen(0, '127.0.0.1');
    const session = await openH2Session(`https://localhost:${port}`, { ca: cert! });
    const peers = await Promise.all([H2Peer.open(session, '/1'), H2Peer.open(session, '/2')]);
    await peerEchoes(peers[0]!, 'before');
    let goawayAt = 0;
    let goawayCode = -1;
    session.on('goaway', (code: number) => {
      goawayAt = performance.now();
      goawayCode = code;
    });
    // The peer answers each close frame with its own, as a WebSocket client does.
    for (const peer of peers) peer.on('closeFrame', () => peer.sendClose(1001));
    const closing = wss.close(5000);
    const frames = await Promise.all(peers.map((peer) => peer.waitCloseFrame(5000)));
    assert.deepEqual(
      frames.map((frame) => frame.code),
      [1001, 1001],
    );
    await withTimeout(closing, 10_000, 'the server to close');
    await waitUntil(() => goawayAt > 0, 5000, 'the GOAWAY');
    assert.equal(goawayCode, h2.NGHTTP2_NO_ERROR);
    for (const frame of frames) assert.ok(frame.at <= goawayAt, 'the 1001 came before the GOAWAY');
    await waitUntil(() => session.closed || session.destroyed, 5000, 'the session to close');
  });

  it('close() also abandons the handshakes still waiting for verify: REFUSED_STREAM at once, not at the handshake timeout', async (t) => {
    if (needsTls(t)) return;
    let asked = 0;
    const wss = new WebSocketServer({
      http2: true,
      tls: { key: key!, cert: cert! },
      // Long enough that only close() can end the handshake within the test's own waits.
      handshakeTimeout: 600_000,
      verify: () => {
        asked++;
        return new Promise<never>(() => {});
      },
    });
    const { port } = await wss.listen(0, '127.0.0.1');
    const session = await openH2Session(`https://localhost:${port}`, { ca: cert! });
    const stuck = session.request(extendedConnect(session, '/stuck'), { endStream: false });
    stuck.on('error', () => {});
    let answered = false;
    stuck.on('response', () => (answered = true));
    await waitUntil(() => asked === 1, 5000, 'verify to be asked');
    const closed = wss.close(5000);
    await withTimeout(new Promise((resolve) => stuck.once('close', resolve)), 5000, 'the stuck handshake to end');
    // RFC 9113 §8.7: REFUSED_STREAM says no WebSocket was made; the client may retry elsewhere.
    assert.deepEqual([answered, stuck.rstCode], [false, h2.NGHTTP2_REFUSED_STREAM]);
    await withTimeout(closed, 10_000, 'the server to close');
    session.destroy();
  });
});

describe('the echo CLI with --tls-cert and --tls-key', () => {
  it('serves wss:// over HTTP/2 and HTTP/1.1 on one port, and logs which carried each WebSocket', async (t) => {
    if (needsTls(t)) return;
    const args = ['--import', 'tsx', 'src/cli/echo.ts', '--host', '127.0.0.1', '--port', '0'];
    const cli = spawn(process.execPath, [...args, '--tls-cert', made!.certFile, '--tls-key', made!.keyFile], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    cleanups.push(() => {
      if (cli.exitCode === null && cli.signalCode === null) cli.kill('SIGKILL');
    });
    let stdout = '';
    cli.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
    await waitUntil(() => /listening on wss:/.test(stdout), 15_000, 'the CLI to listen', 20);
    const port = Number(/wss:\/\/127\.0\.0\.1:(\d+)\/ {2}\(HTTP\/2 and HTTP\/1\.1;/.exec(stdout)?.[1]);
    for (const http2 of [true, false]) {
      const ws = await connect(`wss://localhost:${port}/${http2 ? 'h2' : 'h1'}`, { http2, tls: { ca: cert! } });
      ws.send('echo me');
      assert.equal((await nextMessages(ws, 1))[0]!.data.toString(), 'echo me');
      const closed = closeEvent(ws);
      ws.close(1000);
      await closed;
    }
    await waitUntil(() => (stdout.match(/^- #/gm) ?? []).length === 2, 5000, 'both closes in the log');
    assert.match(stdout, /^\+ #1 \S+ \/h2 {2}over HTTP\/2 /m);
    assert.match(stdout, /^\+ #2 \S+ \/h1 {2}over HTTP\/1\.1 /m);
    cli.kill('SIGTERM');
    await once(cli, 'exit');
  });
});
