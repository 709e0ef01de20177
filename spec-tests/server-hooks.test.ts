/**
 * The server's two public hooks (src/websocket/hooks.ts), on their own, without the explorer:
 *
 * - `onHttpRequest` answers requests that are no WebSocket handshake, over HTTP/1.1 and over HTTP/2
 *   on the server's own TLS listener: what it is told, what goes out (Content-Length added, the
 *   hook's framing fields dropped, no content for HEAD, 204 and 304), which requests never reach it
 *   (anything with a handshake field, HTTP/1.0, no single Host), and what a hook that throws or
 *   answers something unsendable gets (500 and the server's 'error' event, the server unharmed).
 * - `observe` is told each accepted handshake as it went: the HTTP/1.1 heads byte for byte, or
 *   over HTTP/2 the extended CONNECT's real fields (RFC 8441 §4, §5), and its tracer gets the frames.
 *
 * The peers are independent of src/: the raw peer's HTTP/1.1 (helpers/peer/), and node:http2's
 * client with the peer's frame codec (helpers/peer/http2.ts). The HTTP/2 tests need openssl for
 * their certificate and are skipped, saying why, without it.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import {
  createServer as createH2cServer,
  type ClientHttp2Session,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
} from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import {
  WebSocketServer,
  type HttpRequestInfo,
  type HttpResponseInfo,
  type ObservedHandshake,
  type ServerOptions,
  type TracedFrame,
} from '../src/index.js';
import { Opcode, startServer, waitUntil, withTimeout, type TestServer } from './helpers/library.js';
import {
  H2Peer,
  RawClient,
  acceptFor,
  destroyH2Sessions,
  destroyRawClients,
  handshakeRequest,
  openH2Session,
  type RequestSpec,
} from './helpers/peer/index.js';
import { makeTestCertificate, type TestCertificate } from './helpers/tls.js';

/** A plain request: none of the handshake's fields. */
const PLAIN: RequestSpec = {
  headers: { Upgrade: null, Connection: null, 'Sec-WebSocket-Key': null, 'Sec-WebSocket-Version': null },
};

let made: TestCertificate | null = null;
let noCertificate = '';
before(() => {
  const certificate = makeTestCertificate('wsrfc-hooks-');
  if (typeof certificate === 'string') noCertificate = certificate;
  else made = certificate;
});
const cleanups: (() => unknown)[] = [];
afterEach(() => destroyRawClients());
after(async () => {
  destroyH2Sessions();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  made?.remove();
});

/** Skip (saying why) when no certificate could be made. */
function needsTls(t: { skip(message: string): void }): boolean {
  if (made !== null) return false;
  console.log(`# skipped: ${noCertificate}`);
  t.skip(noCertificate);
  return true;
}

/** A server (HTTP/1.1 on plain TCP) whose hook records what it is asked and answers with `answer`. */
async function hooked(
  answer: (request: HttpRequestInfo) => HttpResponseInfo | undefined,
  options: ServerOptions = {},
): Promise<{ server: TestServer; asked: HttpRequestInfo[]; errors: Error[] }> {
  const asked: HttpRequestInfo[] = [];
  const server = await startServer({
    ...options,
    explorer: false,
    onHttpRequest: (request) => {
      asked.push(request);
      return answer(request);
    },
  });
  cleanups.push(() => server.close());
  const errors: Error[] = [];
  server.wss.on('error', (error) => errors.push(error));
  return { server, asked, errors };
}

/** Our server on its own TLS listener, HTTP/2 and HTTP/1.1 by ALPN. */
async function tlsServer(options: ServerOptions): Promise<{ wss: WebSocketServer; port: number; errors: Error[] }> {
  const wss = new WebSocketServer({ pingInterval: 0, ...options, tls: { key: made!.key, cert: made!.cert } });
  const errors: Error[] = [];
  wss.on('error', (error) => errors.push(error));
  wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
  const { port } = await wss.listen(0, '127.0.0.1');
  cleanups.push(() => wss.close(200));
  return { wss, port, errors };
}

interface H2Response {
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** The response's HEADERS frame ended the stream: nothing came after it. */
  endedWithHeaders: boolean;
}

/** One plain HTTP/2 request through node:http2's client, read to its end. */
async function h2Get(session: ClientHttp2Session, headers: OutgoingHttpHeaders): Promise<H2Response> {
  const stream = session.request({ ':method': 'GET', ...headers }, { endStream: true });
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  const [responseHeaders, flags] = (await withTimeout(once(stream, 'response'), 5000, 'the response')) as [
    IncomingHttpHeaders,
    number,
  ];
  await withTimeout(once(stream, 'close'), 5000, 'the end of the response');
  // HTTP/2 flags: END_STREAM is 0x1 (RFC 9113 §6.2).
  return { headers: responseHeaders, body: Buffer.concat(chunks), endedWithHeaders: (flags & 0x1) !== 0 };
}

/** The status and body a server without any hook gives `spec` (to compare a hook's undefined against). */
async function withoutHook(spec: RequestSpec): Promise<{ status: number; body: string }> {
  const server = await startServer({ explorer: false });
  cleanups.push(() => server.close());
  const response = (await RawClient.request(server.port, spec)).response!;
  return { status: response.status, body: response.body.toString() };
}

describe('onHttpRequest over HTTP/1.1', () => {
  it("a plain request gets the hook's answer: its status and fields, Content-Length, Connection: close, the body; then the connection ends", async () => {
    const { server, asked } = await hooked(() => ({
      status: 200,
      headers: { 'Content-Type': 'text/plain; charset=utf-8', 'X-Served-By': 'the hook' },
      body: 'hello, é',
    }));
    const client = await RawClient.request(server.port, {
      ...PLAIN,
      path: '/health?full=1',
      extraFields: [
        ['X-Twice', 'a'],
        ['X-Twice', 'b'],
      ],
    });
    const response = client.response!;
    assert.equal(response.statusLine, 'HTTP/1.1 200 OK');
    assert.equal(response.header('content-type'), 'text/plain; charset=utf-8');
    assert.equal(response.header('x-served-by'), 'the hook');
    assert.equal(response.header('content-length'), String(Buffer.byteLength('hello, é')));
    assert.equal(response.header('connection'), 'close');
    await client.waitPeerEnd(3000);
    assert.equal(response.body.toString(), 'hello, é', 'the body, and nothing after it');
    // What the hook was told.
    assert.equal(asked.length, 1);
    const request = asked[0]!;
    assert.equal(request.method, 'GET');
    assert.equal(request.target, '/health?full=1');
    assert.equal(request.httpVersion, '1.1');
    assert.equal(request.headers['host'], `127.0.0.1:${server.port}`);
    assert.equal(request.headers['x-twice'], 'a, b', 'repeated fields joined, names in lower case');
    assert.equal(request.remoteAddress, '127.0.0.1');
  });

  it("a Uint8Array body goes out as exactly its bytes (a view into a larger buffer); the hook's own Content-Length, Transfer-Encoding, Connection and Keep-Alive are dropped", async () => {
    const backing = Buffer.from('0123456789');
    const { server } = await hooked(() => ({
      status: 404,
      headers: {
        'content-length': '999',
        'Transfer-Encoding': 'chunked',
        Connection: 'keep-alive',
        'Keep-Alive': 'timeout=5',
        'X-Kept': '1',
      },
      body: new Uint8Array(backing.buffer, backing.byteOffset + 2, 5),
    }));
    const client = await RawClient.request(server.port, PLAIN);
    await client.waitPeerEnd(3000);
    const response = client.response!;
    assert.equal(response.status, 404);
    const names = response.fields.map(([name]) => name.toLowerCase());
    assert.deepEqual(
      names.filter((name) => name !== 'x-kept'),
      ['content-length', 'connection'],
      `only the server's own: ${response.text}`,
    );
    assert.equal(response.header('content-length'), '5');
    assert.equal(response.header('connection'), 'close');
    assert.equal(response.body.toString(), '23456');
  });

  it('RFC 9110 §9.3.2, §15.3.5: HEAD gets the fields and the Content-Length of a GET, never the content; 204 has neither', async () => {
    const { server } = await hooked((request) =>
      request.target === '/empty' ? { status: 204, body: 'dropped' } : { status: 200, body: 'twelve bytes' },
    );
    const head = await RawClient.request(server.port, { ...PLAIN, method: 'HEAD' });
    await head.waitPeerEnd(3000);
    assert.equal(head.response!.status, 200);
    assert.equal(head.response!.header('content-length'), '12');
    assert.equal(head.response!.body.length, 0, 'no content after the head');
    const empty = await RawClient.request(server.port, { ...PLAIN, path: '/empty' });
    await empty.waitPeerEnd(3000);
    assert.equal(empty.response!.statusLine, 'HTTP/1.1 204 No Content');
    assert.equal(empty.response!.header('content-length'), undefined);
    assert.equal(empty.response!.body.length, 0);
  });

  it('undefined: the request is judged as a handshake, and gets the same refusal as on a server without the hook', async () => {
    const { server, asked } = await hooked(() => undefined);
    const cases: [string, RequestSpec][] = [
      ['GET /', PLAIN],
      ['POST /form', { ...PLAIN, method: 'POST', path: '/form' }],
      ['GET /other?q', { ...PLAIN, path: '/other?q' }],
    ];
    for (const [name, spec] of cases) {
      const expected = await withoutHook(spec);
      const client = await RawClient.request(server.port, spec);
      await client.waitPeerEnd(3000);
      const got = client.response!;
      assert.ok(expected.status >= 400, `${name}: ${expected.status} without the hook`);
      assert.equal(got.status, expected.status, name);
      assert.equal(got.body.toString(), expected.body, name);
    }
    assert.equal(asked.length, cases.length, 'the hook was asked each time');
  });

  it('a request with any field of a handshake (Upgrade, Sec-WebSocket-Key, Sec-WebSocket-Version) never reaches the hook: a broken handshake keeps its refusal', async () => {
    const { server, asked } = await hooked(() => ({ status: 200, body: 'the hook' }));
    const cases: [string, RequestSpec][] = [
      ['Upgrade alone', { headers: { ...PLAIN.headers, Upgrade: 'websocket' } }],
      ['Upgrade: h2c', { headers: { ...PLAIN.headers, Upgrade: 'h2c', Connection: 'Upgrade' } }],
      ['Sec-WebSocket-Key alone', { headers: { ...PLAIN.headers, 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==' } }],
      ['Sec-WebSocket-Version alone', { headers: { ...PLAIN.headers, 'Sec-WebSocket-Version': '13' } }],
      ['a handshake with version 8', { headers: { 'Sec-WebSocket-Version': '8' } }],
      ['a POST handshake', { method: 'POST' }],
    ];
    for (const [name, spec] of cases) {
      const expected = await withoutHook(spec);
      const got = (await RawClient.request(server.port, spec)).response!;
      assert.ok(expected.status >= 400 && expected.status < 500, `${name}: ${expected.status} without the hook`);
      assert.equal(got.status, expected.status, name);
    }
    assert.equal(asked.length, 0, `the hook was asked: ${JSON.stringify(asked.map((r) => r.headers))}`);
    // A valid handshake still opens, hook or not.
    await RawClient.connect(server.port);
    assert.equal(asked.length, 0);
  });

  it('RFC 9112 §3.2: HTTP/1.0, no Host, two Hosts or an empty one never reach the hook', async () => {
    const { server, asked } = await hooked(() => ({ status: 200, body: 'the hook' }));
    const cases: [string, RequestSpec][] = [
      ['HTTP/1.0', { ...PLAIN, httpVersion: 'HTTP/1.0' }],
      ['no Host', { headers: { ...PLAIN.headers, Host: null } }],
      ['two Hosts', { ...PLAIN, extraFields: [['Host', 'example.com']] }],
      ['an empty Host', { headers: { ...PLAIN.headers, Host: '' } }],
    ];
    for (const [name, spec] of cases) {
      const expected = await withoutHook(spec);
      const got = (await RawClient.request(server.port, spec)).response!;
      assert.equal(got.status, expected.status, name);
      assert.ok(got.status >= 400, `${name}: ${got.status}`);
    }
    assert.equal(asked.length, 0);
  });

  it("a hook that throws: 500, the server's 'error' event with its error, and the server answers the next request", async () => {
    let calls = 0;
    const { server, errors } = await hooked(() => {
      if (++calls === 1) throw new Error('hook bug');
      return { status: 200, body: 'fine' };
    });
    const failed = await RawClient.request(server.port, PLAIN);
    await failed.waitPeerEnd(3000);
    assert.equal(failed.response!.status, 500);
    assert.equal(failed.response!.header('connection'), 'close');
    assert.equal(failed.response!.body.length, Number(failed.response!.header('content-length')));
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.message, 'hook bug');
    const next = await RawClient.request(server.port, PLAIN);
    assert.equal(next.response!.status, 200);
    await RawClient.connect(server.port);
  });

  it('an answer that cannot be sent (CR or LF in a value, a name that is no token, a status outside 200-599, a body of another type): 500 and an error event, nothing of it on the wire', async () => {
    const bad: [string, HttpResponseInfo][] = [
      ['CR LF in a value', { status: 200, headers: { 'X-Split': 'a\r\nSet-Cookie: evil=1' }, body: 'no' }],
      ['LF in a value', { status: 200, headers: { 'X-Split': 'a\nb' } }],
      ['a name with a space', { status: 200, headers: { 'Bad Name': 'x' } }],
      ['a pseudo-header name', { status: 200, headers: { ':status': '204' } }],
      ['status 101', { status: 101 }],
      ['status 99', { status: 99 }],
      ['status 600', { status: 600 }],
      ['status 200.5', { status: 200.5 }],
      ['a number as body', { status: 200, body: 42 as unknown as string }],
    ];
    let current: HttpResponseInfo = bad[0]![1];
    const { server, errors } = await hooked(() => current);
    for (const [name, answer] of bad) {
      current = answer;
      const before = errors.length;
      const client = await RawClient.request(server.port, PLAIN);
      await client.waitPeerEnd(3000);
      const response = client.response!;
      assert.equal(response.status, 500, name);
      assert.equal(response.header('x-split'), undefined, name);
      assert.equal(response.header('set-cookie'), undefined, name);
      assert.equal(errors.length, before + 1, `${name}: one error event`);
    }
    current = { status: 200, body: 'fine' };
    assert.equal((await RawClient.request(server.port, PLAIN)).response!.status, 200);
  });
});

describe("onHttpRequest over HTTP/2, on the server's own TLS listener (ALPN h2)", () => {
  it("a plain GET gets the hook's answer: :status, its fields in lower case, content-length, the body; the session goes on", async (t) => {
    if (needsTls(t)) return;
    const asked: HttpRequestInfo[] = [];
    const { port } = await tlsServer({
      http2: true,
      onHttpRequest: (request) => {
        asked.push(request);
        return { status: 200, headers: { 'Content-Type': 'text/plain', 'X-Served-By': 'the hook' }, body: 'hello, é' };
      },
    });
    const session = await openH2Session(`https://localhost:${port}`, { ca: made!.cert });
    assert.equal(session.alpnProtocol, 'h2');
    const response = await h2Get(session, { ':path': '/health?full=1', 'x-twice': ['a', 'b'] });
    assert.equal(response.headers[':status'], 200);
    assert.equal(response.headers['content-type'], 'text/plain');
    assert.equal(response.headers['x-served-by'], 'the hook');
    assert.equal(response.headers['content-length'], String(Buffer.byteLength('hello, é')));
    assert.equal(response.body.toString(), 'hello, é');
    assert.equal(asked.length, 1);
    const request = asked[0]!;
    assert.equal(request.method, 'GET');
    assert.equal(request.target, '/health?full=1');
    assert.equal(request.httpVersion, '2.0');
    // RFC 9113 §8.3.1: :authority stands for Host; no pseudo-header field among the headers.
    assert.equal(request.headers['host'], `localhost:${port}`);
    assert.equal(request.headers['x-twice'], 'a, b');
    assert.deepEqual(
      Object.keys(request.headers).filter((name) => name.startsWith(':')),
      [],
    );
    assert.equal(request.remoteAddress, '127.0.0.1');
    // Unlike HTTP/1.1, the connection stays: a WebSocket opens on the same session.
    const peer = await H2Peer.open(session, '/');
    peer.sendText('after the page');
    assert.equal((await peer.waitMessages(1))[0]!.data.toString(), 'after the page');
  });

  it("the hook's connection-specific fields are dropped (RFC 9113 §8.2.2); HEAD and 204 end the stream with the HEADERS", async (t) => {
    if (needsTls(t)) return;
    const { port, errors } = await tlsServer({
      http2: true,
      onHttpRequest: (request) => ({
        status: request.target === '/empty' ? 204 : 200,
        headers: {
          Connection: 'close',
          'Keep-Alive': '5',
          Upgrade: 'h2c',
          'Transfer-Encoding': 'chunked',
          'X-Kept': '1',
        },
        body: 'twelve bytes',
      }),
    });
    const session = await openH2Session(`https://localhost:${port}`, { ca: made!.cert });
    const get = await h2Get(session, { ':path': '/' });
    assert.equal(get.headers[':status'], 200);
    for (const name of ['connection', 'keep-alive', 'upgrade', 'transfer-encoding'])
      assert.equal(get.headers[name], undefined, name);
    assert.equal(get.headers['x-kept'], '1');
    assert.equal(get.body.toString(), 'twelve bytes');
    const head = await h2Get(session, { ':method': 'HEAD', ':path': '/' });
    assert.equal(head.headers[':status'], 200);
    assert.equal(head.headers['content-length'], '12');
    assert.equal(head.body.length, 0);
    assert.ok(head.endedWithHeaders, 'END_STREAM on the HEADERS');
    const empty = await h2Get(session, { ':path': '/empty' });
    assert.equal(empty.headers[':status'], 204);
    assert.equal(empty.headers['content-length'], undefined);
    assert.ok(empty.endedWithHeaders);
    assert.deepEqual(errors, []);
  });

  it('undefined: the same answer as without the hook (405 from the handshake, or the http2.onRequest handler)', async (t) => {
    if (needsTls(t)) return;
    let asked = 0;
    const onHttpRequest = (): undefined => void asked++;
    const plain = await tlsServer({ http2: true });
    const withHook = await tlsServer({ http2: true, onHttpRequest });
    const handled = await tlsServer({
      http2: { onRequest: (stream) => stream.respond({ ':status': 418 }, { endStream: true }) },
      onHttpRequest,
    });
    const statusOf = async (port: number): Promise<unknown> => {
      const session = await openH2Session(`https://localhost:${port}`, { ca: made!.cert });
      return (await h2Get(session, { ':path': '/' })).headers[':status'];
    };
    const expected = await statusOf(plain.port);
    assert.equal(expected, 405);
    assert.equal(await statusOf(withHook.port), expected);
    assert.equal(await statusOf(handled.port), 418);
    assert.equal(asked, 2);
  });

  it("a hook that throws or answers what cannot be sent: 500 and an 'error' event; the session goes on", async (t) => {
    if (needsTls(t)) return;
    const answers: (() => HttpResponseInfo)[] = [
      () => {
        throw new Error('hook bug');
      },
      () => ({ status: 200, headers: { 'x-split': 'a\r\nb' } }),
      () => ({ status: 200, headers: { ':path': '/elsewhere' } }),
      () => ({ status: 101 }),
    ];
    let next = 0;
    const { port, errors } = await tlsServer({ http2: true, onHttpRequest: () => answers[next++]!() });
    const session = await openH2Session(`https://localhost:${port}`, { ca: made!.cert });
    for (let i = 0; i < answers.length; i++) {
      const response = await h2Get(session, { ':path': '/' });
      assert.equal(response.headers[':status'], 500, `answer ${i}`);
      assert.equal(response.headers['x-split'], undefined);
      assert.equal(errors.length, i + 1, `answer ${i}: one error event`);
    }
    assert.equal(errors[0]!.message, 'hook bug');
    assert.equal(session.destroyed, false);
    const peer = await H2Peer.open(session, '/');
    peer.sendText('still here');
    await peer.waitMessages(1);
  });

  it('an extended CONNECT never reaches the hook: it is a WebSocket handshake', async (t) => {
    if (needsTls(t)) return;
    let asked = 0;
    const onHttpRequest = (): HttpResponseInfo => {
      asked++;
      return { status: 200 };
    };
    const { port } = await tlsServer({ http2: true, onHttpRequest });
    const session = await openH2Session(`https://localhost:${port}`, { ca: made!.cert });
    const peer = await H2Peer.open(session, '/?a=1');
    peer.sendText('echo');
    await peer.waitMessages(1);
    assert.equal(asked, 0);
  });
});

/** An observer that keeps what it is told and the frames its tracer gets. */
function recorder(): { observe: ServerOptions['observe']; seen: ObservedHandshake[]; frames: TracedFrame[] } {
  const seen: ObservedHandshake[] = [];
  const frames: TracedFrame[] = [];
  return {
    seen,
    frames,
    observe: (handshake) => {
      seen.push(handshake);
      return (frame) => frames.push(frame);
    },
  };
}

/** RFC 9113 §8.3: every pseudo-header field comes before the regular ones. */
function assertPseudoFirst(fields: readonly (readonly [string, string])[]): void {
  const firstRegular = fields.findIndex(([name]) => !name.startsWith(':'));
  if (firstRegular >= 0) assert.ok(fields.slice(firstRegular).every(([name]) => !name.startsWith(':')));
}

describe('observe: each accepted handshake as it went', () => {
  it('HTTP/1.1: the request head byte for byte, the 101 as sent, the key; its tracer gets the frames', async () => {
    const { observe, seen, frames } = recorder();
    const server = await startServer({ explorer: false, observe, perMessageDeflate: true });
    cleanups.push(() => server.close());
    const spec: RequestSpec = { path: '/chat?room=1', protocols: ['chat'], extensions: ['permessage-deflate'] };
    const client = await RawClient.connect(server.port, spec);
    assert.equal(seen.length, 1);
    const handshake = seen[0]!;
    assert.equal(handshake.httpVersion, '1.1');
    assert.equal(handshake.http2, null);
    // The head as it came, up to the blank line that ends it.
    const sent = handshakeRequest(spec, `127.0.0.1:${server.port}`).toString('latin1');
    assert.equal(`${handshake.requestHead}\r\n`, sent);
    assert.equal(handshake.responseHead, client.response!.rawHead);
    assert.match(handshake.responseHead, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
    assert.equal(handshake.key, client.key);
    assert.ok(handshake.responseHead.includes(`Sec-WebSocket-Accept: ${acceptFor(client.key!)}\r\n`));
    assert.equal(handshake.extensions, client.response!.header('sec-websocket-extensions'));
    assert.equal(handshake.request.path, '/chat');
    client.sendText('traced');
    await client.waitMessages(1);
    await waitUntil(() => frames.length >= 2, 3000, 'the traced frames');
    assert.deepEqual(
      frames.map((frame) => [frame.direction, frame.opcode, frame.payload.toString()]),
      [
        ['in', Opcode.Text, 'traced'],
        ['out', Opcode.Text, 'traced'],
      ],
    );
  });

  it("HTTP/2 (RFC 8441): the extended CONNECT's real fields, pseudo-header fields first, and the response's :status 200; no key", async (t) => {
    if (needsTls(t)) return;
    const { observe, seen, frames } = recorder();
    const { port } = await tlsServer({ http2: true, observe, perMessageDeflate: true, protocols: ['chat'] });
    const session = await openH2Session(`https://localhost:${port}`, { ca: made!.cert });
    const peer = await H2Peer.open(session, '/chat?room=1', {
      'sec-websocket-protocol': 'superchat, chat',
      'sec-websocket-extensions': 'permessage-deflate',
      origin: 'https://app.example',
    });
    assert.equal(seen.length, 1);
    const handshake = seen[0]!;
    assert.equal(handshake.httpVersion, '2.0');
    assert.equal(handshake.request.httpVersion, '2.0');
    assert.equal(handshake.key, '', 'RFC 8441 §5: no Sec-WebSocket-Key');
    const request = handshake.http2!.request;
    assertPseudoFirst(request);
    assert.deepEqual(
      new Map(request),
      new Map([
        [':method', 'CONNECT'],
        [':protocol', 'websocket'],
        [':scheme', 'https'],
        [':authority', `localhost:${port}`],
        [':path', '/chat?room=1'],
        ['sec-websocket-version', '13'],
        ['sec-websocket-protocol', 'superchat, chat'],
        ['sec-websocket-extensions', 'permessage-deflate'],
        ['origin', 'https://app.example'],
      ]),
    );
    const response = handshake.http2!.response;
    assert.deepEqual(response[0], [':status', '200']);
    assertPseudoFirst(response);
    // The fields the server sent are the ones the peer received.
    for (const [name, value] of response) assert.equal(String(peer.response[name]), value, name);
    assert.equal(new Map(response).get('sec-websocket-protocol'), 'chat');
    assert.equal(new Map(response).get('sec-websocket-extensions'), handshake.extensions);
    assert.match(handshake.extensions, /^permessage-deflate/);
    // The text, in HTTP/2's notation (RFC 8441 §5.1).
    assert.ok(handshake.requestHead.startsWith(`${request[0]![0]} = ${request[0]![1]}\r\n`), handshake.requestHead);
    for (const line of [
      ':method = CONNECT',
      ':protocol = websocket',
      ':path = /chat?room=1',
      'origin = https://app.example',
    ])
      assert.ok(handshake.requestHead.includes(`${line}\r\n`), `${line} in ${handshake.requestHead}`);
    assert.ok(handshake.responseHead.startsWith(':status = 200\r\n'), handshake.responseHead);
    assert.doesNotMatch(handshake.requestHead + handshake.responseHead, /sec-websocket-(key|accept)/i);
    peer.sendText('traced over h2');
    await peer.waitMessages(1);
    await waitUntil(() => frames.length >= 2, 3000, 'the traced frames');
    assert.deepEqual(
      frames.map((frame) => [frame.direction, frame.opcode]),
      [
        ['in', Opcode.Text],
        ['out', Opcode.Text],
      ],
    );
  });

  it("HTTP/2 through handleHttp2Stream on the application's own node:http2 server (h2c): the same fields, :scheme http", async () => {
    const { observe, seen } = recorder();
    const wss = new WebSocketServer({ observe, pingInterval: 0 });
    wss.on('connection', (ws) => ws.on('message', (data) => ws.send(data)));
    const h2server = createH2cServer({ settings: { enableConnectProtocol: true } });
    h2server.on('stream', (stream, headers) => wss.handleHttp2Stream(stream, headers));
    await new Promise<void>((resolve) => h2server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => h2server.close(resolve)));
    cleanups.push(() => wss.close(200));
    const port = (h2server.address() as AddressInfo).port;
    const session = await openH2Session(`http://127.0.0.1:${port}`);
    const peer = await H2Peer.open(session, '/plain');
    peer.sendText('h2c');
    await peer.waitMessages(1);
    const fields = new Map(seen[0]!.http2!.request);
    assert.equal(fields.get(':scheme'), 'http');
    assert.equal(fields.get(':path'), '/plain');
    assert.equal(fields.get(':protocol'), 'websocket');
    assert.equal(new Map(seen[0]!.http2!.response).get(':status'), '200');
  });

  it('a refused handshake is not observed, over either version', async (t) => {
    const { observe, seen } = recorder();
    const server = await startServer({ explorer: false, observe, path: '/only' });
    cleanups.push(() => server.close());
    assert.equal((await RawClient.request(server.port, { path: '/elsewhere' })).response!.status, 404);
    if (made !== null) {
      const { port } = await tlsServer({ http2: true, observe, path: '/only' });
      const session = await openH2Session(`https://localhost:${port}`, { ca: made.cert });
      await assert.rejects(H2Peer.open(session, '/elsewhere'), /refused: 404/);
    } else t.diagnostic(`HTTP/2 half skipped: ${noCertificate}`);
    assert.equal(seen.length, 0);
  });
});
