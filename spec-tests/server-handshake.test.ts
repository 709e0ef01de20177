/**
 * The server's opening handshake over real sockets (RFC 6455 §4.2): what it accepts, the exact 101
 * it answers, and the HTTP error it answers every malformed or refused request with.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createConnection, createServer as createNetServer, type AddressInfo } from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import { errorResponse, parseRequestHead as parseCoreRequestHead, switchingProtocolsResponse } from '../src/core.js';
import { connect, HandshakeError, WebSocketServer, type ServerOptions, type UpgradeRequest } from '../src/index.js';
import {
  KiB,
  Opcode,
  assertEchoes,
  delay,
  startServer,
  waitUntil,
  withTimeout,
  type TestServer,
} from './helpers/library.js';
import {
  RFC_ACCEPT,
  RFC_KEY,
  RawClient,
  acceptFor,
  clientFrame,
  destroyRawClients,
  handshakeRequest,
  header,
  parseResponseHead,
  type RequestSpec,
  type ParsedResponse,
} from './helpers/peer/index.js';

afterEach(() => destroyRawClients());

/** Send `request` on a fresh connection and read the (refusal) response. */
async function exchange(
  port: number,
  request: Buffer | string,
): Promise<{ client: RawClient; response: ParsedResponse }> {
  const client = await RawClient.open(port);
  client.write(request);
  const response = await client.readResponse();
  return { client, response };
}

/**
 * RFC 6455 §4.2.1: "If the server, while reading the handshake, finds that the client did not send a
 * handshake that matches the description below ..., the server MUST stop processing the client's
 * handshake and return an HTTP response with an appropriate error code (such as 400 Bad Request)."
 * A real HTTP/1.1 response: status line, Connection: close, a short body whose length is
 * Content-Length; then the server closes the connection.
 */
async function assertRefusal(port: number, request: Buffer | string, status: number): Promise<ParsedResponse> {
  const { client, response } = await exchange(port, request);
  assert.equal(response.httpVersion, 'HTTP/1.1', response.statusLine);
  assert.equal(response.status, status, `expected ${status}, got ${response.statusLine}: ${response.body.toString()}`);
  assert.ok(response.statusText.length > 0, `a reason phrase: ${response.statusLine}`);
  assert.equal(header(response, 'connection')?.toLowerCase(), 'close');
  assert.equal(header(response, 'upgrade'), undefined, 'no Upgrade header in a refusal');
  assert.equal(header(response, 'sec-websocket-accept'), undefined, 'no Sec-WebSocket-Accept in a refusal');
  const length = header(response, 'content-length');
  assert.ok(length !== undefined && /^\d+$/.test(length), `Content-Length: ${String(length)}`);
  // The server ends the connection after the response: what we read up to EOF is the whole body.
  await client.waitPeerEnd(3000);
  await client.until(() => client.closed, 3000, 'the socket to close');
  assert.equal(response.body.length, Number(length), 'the body is exactly Content-Length bytes');
  assert.ok(response.body.length > 0 && response.body.length < 512, `a short body (${response.body.length} bytes)`);
  return response;
}

describe('RFC 6455 §4.2.2: the server answers a valid handshake with 101', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  it('101 Switching Protocols with Upgrade, Connection and the exact Sec-WebSocket-Accept of the RFC example key', async () => {
    const client = await RawClient.connect(server.port, { key: RFC_KEY });
    const response = client.response!;
    assert.equal(response.statusLine.startsWith('HTTP/1.1 101 '), true, response.statusLine);
    assert.equal(header(response, 'upgrade')?.toLowerCase(), 'websocket');
    assert.ok(
      header(response, 'connection')!
        .toLowerCase()
        .split(/\s*,\s*/)
        .includes('upgrade'),
      "header(response, 'connection')!.toLowerCase().split(/\\s*,\\s*/).includes('upgrade')",
    );
    // §1.3: base64(SHA-1("dGhlIHNhbXBsZSBub25jZQ==" + the GUID)).
    assert.equal(header(response, 'sec-websocket-accept'), RFC_ACCEPT);
    assert.equal(
      header(response, 'sec-websocket-protocol'),
      undefined,
      'no subprotocol was offered, so none is selected',
    );
    assert.equal(header(response, 'sec-websocket-extensions'), undefined, 'no extension was offered');
    await assertEchoes(client);
  });

  it('the accept value is base64(SHA-1(key + GUID)) for a random key too', async () => {
    const key = Buffer.from(Array.from({ length: 16 }, (_, i) => (i * 37 + 11) & 0xff)).toString('base64');
    const client = await RawClient.connect(server.port, { key });
    const expected = acceptFor(key);
    assert.equal(header(client.response!, 'sec-websocket-accept'), expected);
  });

  it('the request head may arrive one byte at a time', async () => {
    // Our own listener hands sockets to the server, and watches the bytes arrive: each byte is
    // written only after the server's socket saw the previous one, so the head really arrives in pieces.
    const wss = new WebSocketServer();
    let chunks = 0;
    const seen: (() => void)[] = [];
    const net = createNetServer((socket) => {
      socket.on('data', () => {
        chunks++;
        seen.shift()?.();
      });
      wss.handleSocket(socket);
    });
    net.listen(0, '127.0.0.1');
    await once(net, 'listening');
    try {
      const connected = once(wss, 'connection');
      const client = await RawClient.open((net.address() as AddressInfo).port);
      const request = handshakeRequest({ key: RFC_KEY });
      for (const byte of request) {
        const arrived = new Promise<void>((resolve) => seen.push(resolve));
        client.write(Buffer.from([byte]));
        await withTimeout(arrived, 2000, 'the byte to reach the server');
      }
      const response = await client.readResponse();
      assert.equal(response.status, 101);
      assert.equal(header(response, 'sec-websocket-accept'), RFC_ACCEPT);
      assert.ok(chunks >= request.length, `the server read ${chunks} chunks for ${request.length} bytes`);
      const [ws] = (await withTimeout(connected, 2000, 'connection')) as [import('../src/index.js').WebSocket];
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
      await assertEchoes(client);
    } finally {
      await wss.close(100);
      net.close();
    }
  });

  it('a client that ends its side mid-head is closed, on a half-open socket and with no handshake timeout', async () => {
    // Found by the fuzz target echo-server: a Duplex that stays half-open (allowHalfOpen) was held forever.
    const wss = new WebSocketServer({ handshakeTimeout: 0 });
    const net = createNetServer({ allowHalfOpen: true }, (socket) => wss.handleSocket(socket));
    net.listen(0, '127.0.0.1');
    await once(net, 'listening');
    try {
      const client = createConnection((net.address() as AddressInfo).port, '127.0.0.1');
      client.on('data', () => {});
      await once(client, 'connect');
      client.end('GET / HTTP/1.1\r\nHost: a\r\nUpgrade: web');
      await withTimeout(once(client, 'close'), 5000, 'the server to close the connection');
    } finally {
      await wss.close(100);
      net.close();
    }
  });

  it('frames sent in the same TCP write as the request head are not lost, and the connection handler sees them', async () => {
    const wss = new WebSocketServer();
    const received: string[] = [];
    wss.on('connection', (ws) => {
      // Attached in the 'connection' handler: must still see the first frame.
      ws.on('message', (data) => received.push(data.toString()));
    });
    const { port } = await wss.listen(0, '127.0.0.1');
    try {
      const frames = Buffer.concat([
        clientFrame({ opcode: Opcode.Text, payload: 'first' }),
        clientFrame({ opcode: Opcode.Text, payload: 'sec', fin: false }),
        clientFrame({ opcode: Opcode.Continuation, payload: 'ond' }),
      ]);
      const client = await RawClient.connect(port, {}, {}, frames);
      await waitUntil(() => received.length >= 2, 3000, 'two messages');
      assert.deepEqual(received, ['first', 'second']);
      assert.equal(client.upgraded, true);
    } finally {
      await wss.close(100);
    }
  });

  it('frames that arrive while an async verify is pending are kept for the connection', async () => {
    const wss = new WebSocketServer({ verify: () => delay(50).then(() => true) });
    const received: string[] = [];
    wss.on('connection', (ws) => ws.on('message', (data) => received.push(data.toString())));
    const { port } = await wss.listen(0, '127.0.0.1');
    try {
      const client = await RawClient.open(port);
      client.write(handshakeRequest());
      await delay(10);
      client.sendText('early 1');
      client.sendText('early 2');
      assert.equal((await client.readResponse()).status, 101);
      await waitUntil(() => received.length >= 2, 3000, 'two messages');
      assert.deepEqual(received, ['early 1', 'early 2']);
    } finally {
      await wss.close(100);
    }
  });

  const twoConnectionFields =
    'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: keep-alive\r\nConnection: Upgrade\r\n' +
    `Sec-WebSocket-Key: ${RFC_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
  const tolerated: [string, RequestSpec | string][] = [
    [
      'Connection: keep-alive, Upgrade (a comma list, as Firefox sends it)',
      { headers: { Connection: 'keep-alive, Upgrade' } },
    ],
    ['Connection: Upgrade,keep-alive', { headers: { Connection: 'Upgrade,keep-alive' } }],
    ['connection: UPGRADE (case-insensitive token and name)', { headers: { connection: 'UPGRADE' } }],
    ['upgrade: WebSocket (case-insensitive value and name)', { headers: { upgrade: 'WebSocket' } }],
    ['the Connection list split over two header fields (RFC 9110 §5.3)', twoConnectionFields],
    [
      'header names in any case',
      { headers: { 'sec-websocket-key': RFC_KEY, 'SEC-WEBSOCKET-VERSION': '13', HOST: '127.0.0.1' } },
    ],
    [
      'extra whitespace around header values',
      { headers: { Upgrade: '  websocket\t', 'Sec-WebSocket-Version': ' 13 ' } },
    ],
    ['a query string in the target', { path: '/?token=abc&x=1' }],
    ['an Origin header (browsers)', { headers: { Origin: 'https://example.com' } }],
    [
      'an extension offer the server does not support (ignored)',
      { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits' } },
    ],
    ['HTTP/1.2 (RFC 6455 §4.2.1: "HTTP/1.1 or higher")', { httpVersion: 'HTTP/1.2' }],
  ];
  for (const [name, spec] of tolerated) {
    it(`accepts ${name}`, async () => {
      const request = typeof spec === 'string' ? spec : handshakeRequest(spec);
      const { client, response } = await exchange(server.port, request);
      assert.equal(response.status, 101, `${response.statusLine}: ${response.body.toString()}`);
      assert.equal(header(response, 'sec-websocket-accept'), RFC_ACCEPT);
      await assertEchoes(client);
    });
  }

  it('passes the request to the connection handler: path, query, headers, origin, protocols', async () => {
    const client = await RawClient.connect(server.port, {
      path: '/room/7?user=ann&x=%20y',
      headers: { Origin: 'https://example.com', 'X-Custom': 'value' },
    });
    const { request } = await server.connectionOf(client);
    assert.equal(request.method, 'GET');
    assert.equal(request.url, '/room/7?user=ann&x=%20y');
    assert.equal(request.path, '/room/7');
    assert.equal(request.query.get('user'), 'ann');
    assert.equal(request.query.get('x'), ' y');
    assert.equal(request.httpVersion, '1.1');
    assert.equal(request.headers['x-custom'], 'value');
    assert.equal(request.origin, 'https://example.com');
    assert.equal(request.remoteAddress, '127.0.0.1');
    assert.equal(request.remotePort, client.socket.localPort);
    assert.deepEqual(request.protocols, []);
  });
});

describe('RFC 6455 §4.2.1: every requirement on the request, refused with an HTTP error', () => {
  let server: TestServer;
  const rejected: [number, string][] = [];
  before(async () => {
    server = await startServer();
    server.wss.on('rejected', (status, message) => rejected.push([status, message]));
  });
  after(() => server.close());

  const cases: [string, RequestSpec | string, number][] = [
    ['item 1: a method other than GET (POST) gets 405', { method: 'POST' }, 405],
    ['item 1: HEAD gets 405', { method: 'HEAD' }, 405],
    ['item 1: HTTP/1.0 gets 400', { httpVersion: 'HTTP/1.0' }, 400],
    ['item 2: no Host header gets 400', { headers: { Host: null } }, 400],
    ['item 2: an empty Host header gets 400', { headers: { Host: '' } }, 400],
    ['item 2 / RFC 9112 §3.2: two Host headers get 400', 'two-hosts', 400],
    ['item 3: no Upgrade header gets 400', { headers: { Upgrade: null } }, 400],
    ['item 3: Upgrade: h2c gets 400', { headers: { Upgrade: 'h2c' } }, 400],
    ['item 3: Upgrade: websockets (not the token) gets 400', { headers: { Upgrade: 'websockets' } }, 400],
    ['item 4: no Connection header gets 400', { headers: { Connection: null } }, 400],
    [
      'item 4: Connection: keep-alive without the Upgrade token gets 400',
      { headers: { Connection: 'keep-alive' } },
      400,
    ],
    ['item 4: Connection: Upgraded (not the token) gets 400', { headers: { Connection: 'Upgraded' } }, 400],
    ['item 5: no Sec-WebSocket-Key gets 400', { headers: { 'Sec-WebSocket-Key': null } }, 400],
    ['item 5: a key decoding to 15 bytes gets 400', { key: Buffer.alloc(15, 1).toString('base64') }, 400],
    ['item 5: a key decoding to 17 bytes gets 400', { key: Buffer.alloc(17, 1).toString('base64') }, 400],
    ['item 5: a key that is not base64 gets 400', { key: '!!!!!!!!!!!!!!!!!!!!!!==' }, 400],
    ['item 5: an empty key gets 400', { key: '' }, 400],
    ['item 5: a 16-character raw key (not base64 of 16 bytes) gets 400', { key: '0123456789abcdef' }, 400],
    ['item 5: two Sec-WebSocket-Key headers get 400', 'two-keys', 400],
    ['item 6: an empty Sec-WebSocket-Version gets 426', { headers: { 'Sec-WebSocket-Version': '' } }, 426],
    ['item 6: Sec-WebSocket-Version: 14 gets 426', { headers: { 'Sec-WebSocket-Version': '14' } }, 426],
  ];
  for (const [name, spec, status] of cases) {
    it(name, async () => {
      const request =
        spec === 'two-hosts'
          ? Buffer.from(
              `GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${RFC_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
            )
          : spec === 'two-keys'
            ? Buffer.from(
                `GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${RFC_KEY}\r\n` +
                  `Sec-WebSocket-Key: ${RFC_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
              )
            : handshakeRequest(spec as RequestSpec);
      const response = await assertRefusal(server.port, request, status);
      if (status === 405) assert.equal(header(response, 'allow'), 'GET');
    });
  }

  it('item 6 / §4.4: Sec-WebSocket-Version: 8 gets 426 Upgrade Required with Sec-WebSocket-Version: 13', async () => {
    const response = await assertRefusal(
      server.port,
      handshakeRequest({ headers: { 'Sec-WebSocket-Version': '8' } }),
      426,
    );
    assert.equal(header(response, 'sec-websocket-version'), '13');
  });

  it('item 6: no Sec-WebSocket-Version is refused (400 or 426), naming the version the server speaks', async () => {
    const { response } = await exchange(server.port, handshakeRequest({ headers: { 'Sec-WebSocket-Version': null } }));
    assert.ok(response.status === 400 || response.status === 426, response.statusLine);
    assert.equal(header(response, 'sec-websocket-version'), '13');
  });

  it("each refusal is reported by the server's 'rejected' event with its status", async () => {
    rejected.length = 0;
    await assertRefusal(server.port, handshakeRequest({ method: 'PUT' }), 405);
    await waitUntil(() => rejected.length > 0, 3000, "'rejected'");
    assert.equal(rejected[0]![0], 405);
    assert.equal(typeof rejected[0]![1], 'string');
  });

  it('after all those refusals the server still accepts a valid handshake', async () => {
    const client = await RawClient.connect(server.port);
    await assertEchoes(client);
  });
});

describe('RFC 9112 (via RFC 6455 §4.2.1 "return an HTTP response with an appropriate error code"): malformed requests get 400, never a crash', () => {
  let server: TestServer;
  const errors: Error[] = [];
  before(async () => {
    server = await startServer({ handshakeTimeout: 1000 });
    server.wss.on('error', (error) => errors.push(error));
  });
  after(() => server.close());

  const valid = handshakeRequest().toString('latin1');
  const cases: [string, string | Buffer][] = [
    ['a bare LF inside the head (one header line ends with LF only)', valid.replace('\r\nUpgrade:', '\nUpgrade:')],
    ['a bare CR inside the head', valid.replace('\r\nUpgrade:', '\rUpgrade:')],
    [
      'obsolete line folding (a header continued on an indented line)',
      valid.replace('Upgrade: websocket\r\n', 'Upgrade: websocket\r\n  , more\r\n'),
    ],
    ['a space between a header name and the colon', valid.replace('Upgrade: websocket', 'Upgrade : websocket')],
    ['a header line without a colon', valid.replace('Upgrade: websocket', 'Upgrade websocket')],
    ['an empty header name', valid.replace('Upgrade: websocket', ': websocket')],
    ['a control character in a header value', valid.replace('Upgrade: websocket', 'Upgrade: web\x01socket')],
    ['a request line with two spaces', valid.replace('GET / HTTP/1.1', 'GET  / HTTP/1.1')],
    ['a request line without a version', valid.replace('GET / HTTP/1.1', 'GET /')],
    ['a request line with an extra field', valid.replace('GET / HTTP/1.1', 'GET / HTTP/1.1 x')],
    ['a malformed version', valid.replace('HTTP/1.1', 'HTTP/one')],
    ['a lower-case protocol name', valid.replace('HTTP/1.1', 'http/1.1')],
    [
      'a target with a non-ASCII byte',
      Buffer.concat([
        Buffer.from('GET /\xff HTTP/1.1\r\n', 'latin1'),
        Buffer.from(valid.slice(valid.indexOf('\r\n') + 2), 'latin1'),
      ]),
    ],
    ['a method that is not a token', valid.replace('GET', 'G(E)T')],
    [
      'garbage bytes ending in a blank line',
      Buffer.concat([
        Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03]),
        Buffer.from('\r\n\r\n'),
      ]),
    ],
    ['an empty request line', '\r\n\r\n'],
    ['a lone request line with no headers', 'GET / HTTP/1.1\r\n\r\n'],
    ['an invalid subprotocol list', handshakeRequest({ protocols: ['a b', 'c'] })],
    ['a repeated subprotocol', handshakeRequest({ protocols: ['chat', 'chat'] })],
  ];
  for (const [name, request] of cases) {
    it(`${name}: 400`, async () => {
      await assertRefusal(server.port, request, 400);
    });
  }

  it('a request written entirely with bare LF line endings gets 400 promptly (not a wait for the handshake timeout)', async () => {
    const started = Date.now();
    const request = valid.replaceAll('\r\n', '\n');
    const { response } = await exchange(server.port, request);
    assert.equal(response.status, 400, response.statusLine);
    assert.ok(Date.now() - started < 700, `answered after ${Date.now() - started} ms`);
  });

  // RFC 9112 §3: a request line starts with a method token and a space. Bytes that cannot start
  // one are refused at once, not held until the head limit or the handshake timeout.
  const notHttp: [string, Buffer][] = [
    [
      'a TLS ClientHello sent to the plain port (no line ending at all)',
      Buffer.from('16030100a5010000a10303' + '41'.repeat(160), 'hex'),
    ],
    ['33 token characters and no space', Buffer.from('A'.repeat(33))],
    ['a space first', Buffer.from(' GET / HTTP/1.1')],
    ['a NUL byte first', Buffer.from([0])],
  ];
  for (const [name, bytes] of notHttp) {
    it(`${name}: 400 promptly (not a wait for the handshake timeout)`, async () => {
      const started = Date.now();
      const { response } = await exchange(server.port, bytes);
      assert.equal(response.status, 400, response.statusLine);
      assert.ok(Date.now() - started < 700, `answered after ${Date.now() - started} ms`);
    });
  }

  it('the server survived every malformed request: no error event, still accepting', async () => {
    assert.deepEqual(errors, []);
    const client = await RawClient.connect(server.port);
    await assertEchoes(client);
  });
});

describe('RFC 6455 §4.2.1 "The request MAY contain ... Origin" and §10.2: checkOrigin', () => {
  let server: TestServer;
  const seen: (string | undefined)[] = [];
  before(async () => {
    server = await startServer({
      checkOrigin: (origin) => {
        seen.push(origin);
        return origin === 'https://good.example';
      },
    });
  });
  after(() => server.close());

  it('an origin the server refuses gets 403 Forbidden', async () => {
    await assertRefusal(server.port, handshakeRequest({ headers: { Origin: 'https://evil.example' } }), 403);
    assert.equal(seen.at(-1), 'https://evil.example');
  });

  it('no Origin at all is passed as undefined (and refused here)', async () => {
    await assertRefusal(server.port, handshakeRequest(), 403);
    assert.equal(seen.at(-1), undefined);
  });

  it('an accepted origin gets 101', async () => {
    const client = await RawClient.connect(server.port, { headers: { Origin: 'https://good.example' } });
    await assertEchoes(client);
  });
});

describe("wsrfc/core's head functions, for servers built on the core (RFC 6455 §4.2.2 item 5, RFC 9112 §3)", () => {
  it('writes the 101 with the accept value, the subprotocol, the extensions and extra fields, in order', () => {
    const bytes = switchingProtocolsResponse(RFC_KEY, 'chat', 'permessage-deflate', [['X-Served-By', 'core']]);
    const text = bytes.toString('latin1');
    assert.ok(text.endsWith('\r\n\r\n'));
    const response = parseResponseHead(text.slice(0, -4));
    assert.equal(response.status, 101);
    assert.equal(header(response, 'sec-websocket-accept'), RFC_ACCEPT);
    assert.equal(header(response, 'sec-websocket-protocol'), 'chat');
    assert.equal(header(response, 'sec-websocket-extensions'), 'permessage-deflate');
    assert.deepEqual(response.fields.at(-1), ['X-Served-By', 'core']);
  });

  it('parseRequestHead, called on a head HeadReader did not check, still refuses a bad method or an empty head', () => {
    assert.throws(() => parseCoreRequestHead(Buffer.from('G(T / HTTP/1.1\r\nHost: a\r\n')), { status: 400 });
    assert.throws(() => parseCoreRequestHead(Buffer.alloc(0)), { status: 400 });
  });

  it('refuses an extra field that would smuggle in a line of its own (TypeError)', () => {
    assert.throws(() => switchingProtocolsResponse(RFC_KEY, undefined, undefined, [['X-A', 'a\r\nX-B: b']]), TypeError);
  });
});

describe('RFC 6455 §4.2.1 "/resource name/": unserved paths get 404', () => {
  it('with a string path, only that exact path (query ignored) is served', async () => {
    const server = await startServer({ path: '/ws' });
    try {
      await assertRefusal(server.port, handshakeRequest({ path: '/' }), 404);
      await assertRefusal(server.port, handshakeRequest({ path: '/ws/' }), 404);
      await assertRefusal(server.port, handshakeRequest({ path: '/wsx' }), 404);
      const client = await RawClient.connect(server.port, { path: '/ws?token=1' });
      await assertEchoes(client);
    } finally {
      await server.close();
    }
  });

  it('a target starting with "//" is a path, not a host: GET //evil/ws is not /ws (RFC 9112 §3.2.1 origin-form)', async () => {
    const server = await startServer({ path: '/ws' });
    try {
      const { response } = await exchange(server.port, handshakeRequest({ path: '//evil/ws' }));
      assert.notEqual(response.status, 101, 'the path "//evil/ws" was served as "/ws"');
      assert.ok(response.status === 404 || response.status === 400, response.statusLine);
    } finally {
      await server.close();
    }
  });

  it('absolute-form targets are accepted and routed by their path (RFC 9112 §3.2.2)', async () => {
    const server = await startServer({ path: '/ws' });
    try {
      const client = await RawClient.connect(server.port, { path: 'http://127.0.0.1/ws?x=2' });
      const { request } = await server.connectionOf(client);
      assert.equal(request.path, '/ws');
      assert.equal(request.query.get('x'), '2');
    } finally {
      await server.close();
    }
  });

  it('an absolute-form target that is no URL (http://[/ws, an unclosed IPv6 literal) gets 400', async () => {
    const server = await startServer();
    try {
      await assertRefusal(server.port, handshakeRequest({ path: 'http://[/ws' }), 400);
    } finally {
      await server.close();
    }
  });

  it('with a function path, the paths it accepts are served and it sees the request', async () => {
    const requests: UpgradeRequest[] = [];
    const server = await startServer({
      path: (path, request) => {
        requests.push(request);
        return path.startsWith('/rooms/');
      },
    });
    try {
      await assertRefusal(server.port, handshakeRequest({ path: '/lobby' }), 404);
      const client = await RawClient.connect(server.port, { path: '/rooms/42?x=1' });
      await assertEchoes(client);
      assert.equal(requests.at(-1)!.path, '/rooms/42');
      assert.equal(requests.at(-1)!.query.get('x'), '1');
    } finally {
      await server.close();
    }
  });
});

describe('RFC 6455 §10.4 / RFC 6585 §5: a request head over maxHeaderSize gets 431', () => {
  function withPadding(size: number): Buffer {
    // Pad with one long header so the whole head is `size` bytes (CRLFs included).
    const base = handshakeRequest({ headers: { 'X-Pad': '' } });
    return handshakeRequest({ headers: { 'X-Pad': 'p'.repeat(size - base.length) } });
  }

  it('the default limit is 16 KiB: a 17 KiB head gets 431, a 15 KiB head is accepted', async () => {
    const server = await startServer();
    try {
      const big = withPadding(17 * KiB);
      assert.equal(big.length, 17 * KiB);
      await assertRefusal(server.port, big, 431);
      const client = await RawClient.connect(server.port, { headers: { 'X-Pad': 'p'.repeat(15 * KiB) } });
      await assertEchoes(client);
    } finally {
      await server.close();
    }
  });

  it('a custom small limit (300 bytes) is enforced, also when the head is sent slowly', async () => {
    const server = await startServer({ maxHeaderSize: 300 });
    try {
      await assertRefusal(server.port, withPadding(400), 431);
      // Sent in small pieces: the limit applies to what has accumulated, before the end is seen.
      const client = await RawClient.open(server.port);
      const head = withPadding(400);
      for (let i = 0; i < head.length; i += 50) {
        if (client.response !== null) break;
        await client.writeAsync(head.subarray(i, i + 50));
        await delay(2);
      }
      const response = await client.readResponse();
      assert.equal(response.status, 431);
      await client.waitPeerEnd();
      const small = await RawClient.connect(server.port);
      await assertEchoes(small);
    } finally {
      await server.close();
    }
  });

  it('a head that never ends is cut off at the limit with 431 (memory stays bounded)', async () => {
    const server = await startServer({ maxHeaderSize: 1024 });
    try {
      const client = await RawClient.open(server.port);
      client.write('GET / HTTP/1.1\r\nX-Endless: ');
      for (let i = 0; i < 20 && client.response === null; i++) {
        client.write('a'.repeat(200));
        await delay(2);
      }
      const response = await client.readResponse();
      assert.equal(response.status, 431);
    } finally {
      await server.close();
    }
  });
});

describe('maxConnections: the one connection too many gets 503', () => {
  it('503 Service Unavailable (a real HTTP response) once the limit is reached', async () => {
    const server = await startServer({ maxConnections: 2 });
    try {
      const a = await RawClient.connect(server.port);
      const b = await RawClient.connect(server.port);
      const response = await assertRefusal(server.port, handshakeRequest(), 503);
      assert.ok(response.body.length > 0, 'response.body.length > 0');
      await assertEchoes(a);
      await assertEchoes(b);
    } finally {
      await server.close();
    }
  });
});

describe('RFC 6455 §4.2.2 item 5.4 and §1.9: subprotocol selection', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({ protocols: ['superchat', 'chat', 'v2.json'] });
  });
  after(() => server.close());

  it("the client's most preferred protocol among those the server supports is chosen", async () => {
    const client = await RawClient.connect(server.port, { protocols: ['unknown', 'chat', 'superchat'] });
    assert.equal(header(client.response!, 'sec-websocket-protocol'), 'chat');
    const connection = await server.connectionOf(client);
    assert.equal(connection.ws.protocol, 'chat');
    assert.deepEqual(connection.request.protocols, ['unknown', 'chat', 'superchat']);
  });

  it('the order of the server list does not override the client preference', async () => {
    const client = await RawClient.connect(server.port, { protocols: ['v2.json', 'superchat'] });
    assert.equal(header(client.response!, 'sec-websocket-protocol'), 'v2.json');
  });

  it('offers split over several header fields are one list', async () => {
    const request =
      `GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${RFC_KEY}\r\n` +
      'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: nope\r\nSec-WebSocket-Protocol: chat\r\n\r\n';
    const { response } = await exchange(server.port, request);
    assert.equal(response.status, 101);
    assert.equal(header(response, 'sec-websocket-protocol'), 'chat');
  });

  it('a client offering only unknown protocols gets no Sec-WebSocket-Protocol header (never one the server did not list)', async () => {
    const client = await RawClient.connect(server.port, { protocols: ['mqtt', 'wamp'] });
    assert.equal(header(client.response!, 'sec-websocket-protocol'), undefined);
    assert.equal((await server.connectionOf(client)).ws.protocol, '');
    await assertEchoes(client);
  });

  it('a server that lists no protocols selects none, whatever is offered', async () => {
    const plain = await startServer();
    try {
      const client = await RawClient.connect(plain.port, { protocols: ['chat'] });
      assert.equal(header(client.response!, 'sec-websocket-protocol'), undefined);
    } finally {
      await plain.close();
    }
  });

  it('our client sees the selected protocol as ws.protocol', async () => {
    const ws = await connect(server.url, { protocols: ['x', 'superchat', 'chat'] });
    try {
      assert.equal(ws.protocol, 'superchat');
    } finally {
      ws.terminate();
    }
  });

  it('handleProtocols overrides the list: its choice is sent; undefined means none', async () => {
    const calls: (readonly string[])[] = [];
    const custom = await startServer({
      protocols: ['a'],
      handleProtocols: (offered) => {
        calls.push([...offered]);
        return offered.includes('pick-me') ? 'pick-me' : undefined;
      },
    });
    try {
      const chosen = await RawClient.connect(custom.port, { protocols: ['a', 'pick-me'] });
      assert.equal(header(chosen.response!, 'sec-websocket-protocol'), 'pick-me');
      assert.deepEqual(calls.at(-1), ['a', 'pick-me']);
      const none = await RawClient.connect(custom.port, { protocols: ['a'] });
      assert.equal(
        header(none.response!, 'sec-websocket-protocol'),
        undefined,
        'handleProtocols said none; the list is not consulted',
      );
    } finally {
      await custom.close();
    }
  });

  it('handleProtocols choosing a protocol the client did not offer is a server error (500), not a bad 101', async () => {
    const errors: Error[] = [];
    const custom = await startServer({ handleProtocols: () => 'not-offered' });
    custom.wss.on('error', (error) => errors.push(error));
    try {
      await assertRefusal(custom.port, handshakeRequest({ protocols: ['a'] }), 500);
      assert.equal(errors.length, 1);
    } finally {
      await custom.close();
    }
  });
});

describe('the verify hook (RFC 6455 §4.2.2 item 4: the server may refuse; authentication)', () => {
  async function withServer(
    options: ServerOptions,
    body: (server: TestServer, errors: Error[]) => Promise<void>,
  ): Promise<void> {
    const server = await startServer(options);
    const errors: Error[] = [];
    server.wss.on('error', (error) => errors.push(error));
    try {
      await body(server, errors);
    } finally {
      await server.close();
    }
  }

  it('a sync verify returning true accepts, and sees the request', async () => {
    const seen: UpgradeRequest[] = [];
    await withServer({ verify: (request) => (seen.push(request), true) }, async (server) => {
      const client = await RawClient.connect(server.port, { path: '/auth?token=t1', protocols: ['p'] });
      await assertEchoes(client);
      assert.equal(seen.length, 1);
      assert.equal(seen[0]!.query.get('token'), 't1');
      assert.deepEqual(seen[0]!.protocols, ['p']);
    });
  });

  it('a sync verify returning nothing accepts', async () => {
    await withServer({ verify: () => undefined }, async (server) => {
      const client = await RawClient.connect(server.port);
      await assertEchoes(client);
    });
  });

  it('an async verify resolving true accepts', async () => {
    await withServer({ verify: async () => (await delay(30), true) }, async (server) => {
      const client = await RawClient.connect(server.port);
      await assertEchoes(client);
    });
  });

  it('verify returning false refuses with 403', async () => {
    await withServer({ verify: () => false }, async (server) => {
      await assertRefusal(server.port, handshakeRequest(), 403);
    });
  });

  it('an async verify resolving false refuses with 403', async () => {
    await withServer({ verify: async () => false }, async (server) => {
      await assertRefusal(server.port, handshakeRequest(), 403);
    });
  });

  it('a refusal with a custom status, message and headers is sent as such', async () => {
    await withServer(
      {
        verify: async (request) =>
          request.headers['authorization'] === undefined
            ? { status: 401, message: 'who are you?', headers: { 'WWW-Authenticate': 'Bearer realm="ws"' } }
            : true,
      },
      async (server) => {
        const response = await assertRefusal(server.port, handshakeRequest(), 401);
        assert.equal(header(response, 'www-authenticate'), 'Bearer realm="ws"');
        assert.match(response.body.toString(), /who are you\?/);
        const client = await RawClient.connect(server.port, { headers: { Authorization: 'Bearer x' } });
        await assertEchoes(client);
      },
    );
  });

  it('a sync refusal with status 429 and Retry-After', async () => {
    await withServer({ verify: () => ({ status: 429, headers: { 'Retry-After': '7' } }) }, async (server) => {
      const response = await assertRefusal(server.port, handshakeRequest(), 429);
      assert.equal(header(response, 'retry-after'), '7');
    });
  });

  it('{ data } accepts and attaches the data to the connection (connection.data)', async () => {
    const user = { name: 'alice', roles: ['admin'] };
    await withServer({ verify: async () => ({ data: user }) }, async (server) => {
      const client = await RawClient.connect(server.port);
      const { ws } = await server.connectionOf(client);
      assert.equal(ws.data, user);
    });
  });

  it('a verify that throws gets 500, reports an error event, and the server carries on', async () => {
    let calls = 0;
    await withServer(
      {
        verify: () => {
          if (calls++ === 0) throw new Error('database down');
          return true;
        },
      },
      async (server, errors) => {
        await assertRefusal(server.port, handshakeRequest(), 500);
        assert.equal(errors.length, 1);
        assert.match(errors[0]!.message, /database down/);
        const client = await RawClient.connect(server.port);
        await assertEchoes(client);
      },
    );
  });

  it('a verify that rejects gets 500, reports an error event, and the server carries on', async () => {
    let calls = 0;
    await withServer(
      {
        verify: async () => {
          await delay(5);
          if (calls++ === 0) throw new Error('token service unreachable');
          return true;
        },
      },
      async (server, errors) => {
        await assertRefusal(server.port, handshakeRequest(), 500);
        assert.equal(errors.length, 1);
        const client = await RawClient.connect(server.port);
        await assertEchoes(client);
      },
    );
  });

  it('a verify refusal with a header value containing CR LF (say, from user input) gets 500, not a crash or a hang', async () => {
    await withServer(
      {
        // Refuses only requests with ?q=..., so the follow-up connection shows the server carries on.
        verify: async (request) =>
          request.query.has('q') ? { status: 401, headers: { 'X-Echo': request.query.get('q')! } } : true,
      },
      async (server) => {
        const { response } = await exchange(server.port, handshakeRequest({ path: '/?q=a%0D%0ASet-Cookie:%20x=1' }));
        assert.equal(response.status, 500, response.statusLine);
        assert.equal(header(response, 'set-cookie'), undefined, 'no header injection');
        const client = await RawClient.connect(server.port);
        await assertEchoes(client);
      },
    );
  });

  it('a sync verify refusal with an invalid header name gets 500 at once, not a silent hang until the handshake timeout', async () => {
    await withServer(
      { handshakeTimeout: 1000, verify: () => ({ status: 401, headers: { 'Bad Name': 'x' } }) },
      async (server) => {
        const started = Date.now();
        const { response } = await exchange(server.port, handshakeRequest());
        assert.equal(response.status, 500, response.statusLine);
        assert.ok(Date.now() - started < 700, `answered after ${Date.now() - started} ms`);
      },
    );
  });

  it('our client gets a HandshakeError carrying the refusal status and body', async () => {
    await withServer({ verify: () => ({ status: 401, message: 'token expired' }) }, async (server) => {
      await assert.rejects(connect(server.url), (error: unknown) => {
        assert.ok(error instanceof HandshakeError, 'error instanceof HandshakeError');
        assert.equal(error.status, 401);
        assert.match(error.body ?? '', /token expired/);
        return true;
      });
    });
  });
});

describe('handshakeTimeout: a client that does not finish its handshake is dropped', () => {
  it('half a head then silence: the socket is closed within roughly the timeout', async () => {
    const server = await startServer({ handshakeTimeout: 150 });
    try {
      const client = await RawClient.open(server.port);
      const request = handshakeRequest();
      const started = performance.now();
      client.write(request.subarray(0, request.length >> 1));
      await client.waitClosed(3000);
      const elapsed = Math.round(client.closedAt! - started);
      assert.ok(elapsed >= 100, `dropped after ${elapsed} ms, before the 150 ms timeout`);
      assert.ok(elapsed < 2000, `dropped after ${elapsed} ms`);
      assert.equal(client.response, null, 'no response to an unfinished head');
    } finally {
      await server.close();
    }
  });

  it('a client that sends nothing at all is dropped too', async () => {
    const server = await startServer({ handshakeTimeout: 100 });
    try {
      const client = await RawClient.open(server.port);
      await client.waitClosed(3000);
    } finally {
      await server.close();
    }
  });

  it('a completed handshake is not affected by the timeout', async () => {
    const server = await startServer({ handshakeTimeout: 100 });
    try {
      const client = await RawClient.connect(server.port);
      await delay(300);
      assert.equal(client.closed, false);
      await assertEchoes(client);
    } finally {
      await server.close();
    }
  });

  it('an async verify that takes longer than the timeout ends with the socket dropped, not a late 101', async () => {
    const server = await startServer({ handshakeTimeout: 100, verify: () => delay(400).then(() => true) });
    try {
      const client = await RawClient.open(server.port);
      client.write(handshakeRequest());
      await client.waitClosed(3000);
      assert.ok(client.response === null || client.response.status !== 101, `got ${client.response?.statusLine}`);
      await delay(400);
      assert.equal(server.connections.length, 0, 'no connection was admitted');
    } finally {
      await server.close();
    }
  });
});

describe('hooks that throw are answered with 500, and the server survives', () => {
  const throwing: [string, ServerOptions][] = [
    [
      'checkOrigin',
      {
        checkOrigin: () => {
          throw new Error('origin hook bug');
        },
      },
    ],
    [
      'a path function',
      {
        path: () => {
          throw new Error('path hook bug');
        },
      },
    ],
    [
      'handleProtocols',
      {
        handleProtocols: () => {
          throw new Error('protocol hook bug');
        },
      },
    ],
  ];
  for (const [name, options] of throwing) {
    it(`${name} throwing: 500, an 'error' event, and the next valid handshake still works`, async () => {
      const server = await startServer(options);
      const errors: Error[] = [];
      server.wss.on('error', (error) => errors.push(error));
      try {
        await assertRefusal(server.port, handshakeRequest({ protocols: ['p'] }), 500);
        assert.equal(errors.length, 1);
        assert.match(errors[0]!.message, /hook bug/);
      } finally {
        await server.close();
      }
    });
  }

  it('with no error listener on the server, a throwing verify is still just a 500', async () => {
    const wss = new WebSocketServer({
      verify: () => {
        throw new Error('unobserved');
      },
    });
    const { port } = await wss.listen(0, '127.0.0.1');
    try {
      await assertRefusal(port, handshakeRequest(), 500);
    } finally {
      await wss.close(100);
    }
  });
});

describe('listening', () => {
  it('on the IPv6 loopback (::1): handshake and echo with our client', async () => {
    const server = await startServer({}, true, '::1');
    try {
      assert.equal(server.address.family, 'IPv6');
      assert.equal(server.url, `ws://[::1]:${server.port}/`);
      const ws = await connect(server.url);
      try {
        const echoed = once(ws, 'message');
        ws.send('v6');
        assert.equal(String((await withTimeout(echoed, 2000, 'echo'))[0]), 'v6');
        assert.equal((await server.nextConnection()).request.remoteAddress, '::1');
      } finally {
        ws.terminate();
      }
      const raw = await RawClient.connect(server.port, {}, { host: '::1' });
      await assertEchoes(raw);
    } finally {
      await server.close();
    }
  });

  it('address() is the bound address; listen() twice is refused', async () => {
    const server = await startServer();
    try {
      assert.deepEqual(server.wss.address(), server.address);
      await assert.rejects(server.wss.listen(0, '127.0.0.1'), /already listening/);
    } finally {
      await server.close();
    }
  });

  it('listen() on a port in use rejects', async () => {
    const server = await startServer();
    const other = new WebSocketServer();
    try {
      await assert.rejects(
        other.listen(server.port, '127.0.0.1'),
        (error: NodeJS.ErrnoException) => error.code === 'EADDRINUSE',
      );
    } finally {
      await server.close();
      await other.close(100);
    }
  });
});

describe('wsrfc/core errorResponse: any status an embedder refuses with', () => {
  it('a status the library has no reason phrase for gets an empty one (RFC 9112 §4: the reason-phrase is optional), and the head stays well formed', () => {
    const response = errorResponse(418, 'no coffee here').toString('latin1');
    const [head, body] = response.split('\r\n\r\n');
    const lines = head!.split('\r\n');
    // status-line = HTTP-version SP status-code SP [ reason-phrase ]
    assert.equal(lines[0], 'HTTP/1.1 418 ');
    assert.ok(lines.includes('Connection: close'));
    assert.ok(lines.includes(`Content-Length: ${Buffer.byteLength(body!)}`));
    assert.equal(body, 'no coffee here\n');
  });
});
