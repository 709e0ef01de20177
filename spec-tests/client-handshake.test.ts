/**
 * RFC 6455 §4.1, the client's side of the opening handshake, against a raw TCP server that plays
 * the WebSocket server (the independent peer, helpers/peer/): what the client writes, which URLs it takes,
 * and every server answer that must fail the connection.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { HandshakeError, InvalidStateError, Opcode, WebSocket, connect, type ClientOptions } from '../src/index.js';
import { parseWebSocketUrl } from '../src/websocket/client.js';
import { record } from './helpers/client-events.js';
import {
  RawServer,
  acceptFor,
  acceptResponse,
  closedPort,
  delay,
  encodeFrame,
  httpResponse,
  withTimeout,
  type ParsedRequest,
  type Responder,
} from './helpers/peer/index.js';

const T = { timeout: 8_000 };

/** Connect a client to `server` and return the request the server read, then close both ends. */
async function requestFor(
  server: RawServer,
  url: string,
  options: ClientOptions = {},
  protocols?: string | string[],
): Promise<ParsedRequest> {
  const ws = new WebSocket(url, protocols, { handshakeTimeout: 3_000, ...options });
  const events = record(ws);
  const peer = await withTimeout(server.nextPeer(), 3_000, 'the request');
  await withTimeout(events.opened, 3_000, "the client's 'open'");
  ws.terminate();
  await withTimeout(events.closed, 3_000, "the client's 'close'");
  return peer.request!;
}

describe('RFC 6455 §4.1: the opening handshake request', () => {
  let server: RawServer;
  before(async () => {
    server = await RawServer.start();
  });
  after(() => server.close());

  it('is a GET of the path and query, HTTP/1.1, with Host carrying the non-default port', T, async () => {
    const request = await requestFor(server, `ws://127.0.0.1:${server.port}/chat/room?x=1&y=%20z&empty=`);
    assert.equal(request.requestLine, 'GET /chat/room?x=1&y=%20z&empty= HTTP/1.1');
    assert.equal(request.header('host'), `127.0.0.1:${server.port}`);
    assert.equal(request.headers.get('host')?.length, 1);
  });

  it('asks for / when the URL has no path, and keeps a query with no path', T, async () => {
    assert.equal((await requestFor(server, `ws://127.0.0.1:${server.port}`)).target, '/');
    assert.equal((await requestFor(server, `ws://127.0.0.1:${server.port}?a=b`)).target, '/?a=b');
  });

  it('sends Upgrade: websocket, Connection: Upgrade and Sec-WebSocket-Version: 13', T, async () => {
    const request = await requestFor(server, server.url('/'));
    assert.equal(request.header('upgrade')?.toLowerCase(), 'websocket');
    const connection = (request.header('connection') ?? '').split(',').map((token) => token.trim().toLowerCase());
    assert.ok(connection.includes('upgrade'), `Connection: ${request.header('connection')}`);
    assert.equal(request.header('sec-websocket-version'), '13');
    // The head is well-formed HTTP/1.1: CRLF line ends, no bare LF.
    assert.ok(!/[^\r]\n/.test(request.text), 'bare LF in the request head');
  });

  it('sends a fresh random 16-byte base64 key on every connection', T, async () => {
    const keys: string[] = [];
    for (let i = 0; i < 12; i++) {
      const request = await requestFor(server, server.url('/'));
      const key = request.key;
      assert.ok(key !== undefined, 'no Sec-WebSocket-Key');
      assert.match(key, /^[A-Za-z0-9+/]{22}==$/);
      assert.equal(Buffer.from(key, 'base64').length, 16);
      assert.equal(request.headers.get('sec-websocket-key')?.length, 1);
      keys.push(key);
    }
    assert.equal(new Set(keys).size, keys.length, 'a key was reused');
    // Random bytes: over 12 x 128 bits, about half the bits are set.
    const bits = keys.reduce(
      (sum, key) => sum + [...Buffer.from(key, 'base64')].reduce((n, b) => n + popcount(b), 0),
      0,
    );
    assert.ok(bits > 12 * 128 * 0.35 && bits < 12 * 128 * 0.65, `${bits} bits set out of ${12 * 128}`);
  });

  it('offers no subprotocol and no extension unless asked', T, async () => {
    const request = await requestFor(server, server.url('/'));
    assert.equal(request.header('sec-websocket-protocol'), undefined);
    assert.equal(request.header('sec-websocket-extensions'), undefined);
    assert.equal(request.header('origin'), undefined);
  });

  it(
    'offers the subprotocols in order of preference (constructor argument, string, or options.protocols)',
    T,
    async () => {
      const fromArray = await requestFor(server, server.url('/'), {}, ['chat', 'superchat']);
      assert.deepEqual(splitList(fromArray.header('sec-websocket-protocol')), ['chat', 'superchat']);
      const fromString = await requestFor(server, server.url('/'), {}, 'v2.json');
      assert.deepEqual(splitList(fromString.header('sec-websocket-protocol')), ['v2.json']);
      const fromOptions = await requestFor(server, server.url('/'), { protocols: ['mqtt', 'wamp.2.json'] });
      assert.deepEqual(splitList(fromOptions.header('sec-websocket-protocol')), ['mqtt', 'wamp.2.json']);
    },
  );

  it('sends custom headers and the origin option', T, async () => {
    const request = await requestFor(server, server.url('/'), {
      headers: { Authorization: 'Bearer abc.def', 'X-Trace-Id': '42' },
      origin: 'https://app.example',
    });
    assert.equal(request.header('authorization'), 'Bearer abc.def');
    assert.equal(request.header('x-trace-id'), '42');
    assert.equal(request.header('origin'), 'https://app.example');
    assert.equal(request.headers.get('origin')?.length, 1);
  });

  it('connects to ws://localhost:PORT with Host: localhost:PORT', T, async () => {
    const request = await requestFor(server, `ws://localhost:${server.port}/x`);
    assert.equal(request.header('host'), `localhost:${server.port}`);
    assert.equal(request.target, '/x');
  });

  it('connects to ws://[::1]:PORT with Host: [::1]:PORT', T, async (t) => {
    let v6: RawServer;
    try {
      v6 = await RawServer.start({ host: '::1' });
    } catch (error) {
      const reason = `IPv6 loopback (::1) is not available here: ${(error as Error).message}`;
      console.log(`# skipped: ${reason}`);
      t.skip(reason);
      return;
    }
    try {
      const request = await requestFor(v6, `ws://[::1]:${v6.port}/six?v=6`);
      assert.equal(request.header('host'), `[::1]:${v6.port}`);
      assert.equal(request.target, '/six?v=6');
    } finally {
      await v6.close();
    }
  });

  it('takes http:// as ws://', T, async () => {
    const request = await requestFor(server, `http://127.0.0.1:${server.port}/h?q=1`);
    assert.equal(request.target, '/h?q=1');
    assert.equal(request.header('host'), `127.0.0.1:${server.port}`);
  });

  it('leaves the port out of Host when it is the default one (parseWebSocketUrl)', () => {
    assert.equal(parseWebSocketUrl('ws://example.com:80/a').authority, 'example.com');
    assert.equal(parseWebSocketUrl('ws://example.com/a').authority, 'example.com');
    assert.equal(parseWebSocketUrl('ws://example.com/a').port, 80);
    assert.equal(parseWebSocketUrl('wss://example.com:443/').authority, 'example.com');
    assert.equal(parseWebSocketUrl('wss://example.com/').port, 443);
    assert.equal(parseWebSocketUrl('ws://example.com:443/').authority, 'example.com:443');
    assert.equal(parseWebSocketUrl('wss://example.com:80/').authority, 'example.com:80');
    assert.equal(parseWebSocketUrl('ws://[::1]:80/').authority, '[::1]');
    assert.equal(parseWebSocketUrl('ws://[::1]:8080/').authority, '[::1]:8080');
    assert.equal(parseWebSocketUrl('ws://[::1]:8080/').host, '::1');
    assert.equal(parseWebSocketUrl('https://example.com/x').secure, true);
    assert.equal(parseWebSocketUrl('http://example.com/x').secure, false);
    assert.equal(parseWebSocketUrl('ws://example.com').path, '/');
    assert.equal(parseWebSocketUrl('ws://example.com/p/q?r=s&t').path, '/p/q?r=s&t');
  });

  for (const url of [
    'ftp://example.com/',
    'file:///tmp/x',
    'ws://example.com/#frag',
    'ws://example.com/path#',
    'not a url',
    'ws://',
    'mailto:a@b.c',
  ]) {
    it(`rejects ${JSON.stringify(url)} with a SyntaxError, sending nothing`, T, async () => {
      const before = server.peers.length;
      assert.throws(() => new WebSocket(url), SyntaxError);
      await assert.rejects(connect(url), SyntaxError);
      await delay(20);
      assert.equal(server.peers.length, before);
    });
  }

  for (const protocols of [['chat', 'chat'], ['a b'], [''], ['chat,superchat'], ['ü']]) {
    it(`rejects the subprotocol list ${JSON.stringify(protocols)} with a SyntaxError`, () => {
      assert.throws(() => new WebSocket(server.url('/'), protocols), SyntaxError);
    });
  }

  // Header injection: CR or LF in anything written into the head must never reach the wire.
  const injections: [string, ClientOptions][] = [
    ['a header value with CRLF', { headers: { 'X-Evil': 'a\r\nX-Injected: 1' } }],
    ['a header name with a space', { headers: { 'Bad Name': 'x' } }],
    ['a header name with CRLF', { headers: { 'X-A\r\nX-Injected': '1' } }],
    ['an origin with CRLF', { origin: 'https://a.example\r\nX-Injected: 1' }],
    // U+010D U+010A pass a /[\r\n]/ check but become 0x0D 0x0A when written as Latin-1.
    [
      'a header value with U+010D U+010A (CR LF once cut to Latin-1)',
      { headers: { 'X-Evil': 'a\u010d\u010aX-Injected: 1' } },
    ],
  ];
  for (const [what, options] of injections) {
    it(`refuses ${what}: throws or fails the connection, never crashes, never sends it`, T, async () => {
      // Either form of refusal is fine: a synchronous throw, or a failed connection ('close' 1006).
      // An exception thrown later from inside the library (an uncaught error) is not.
      let ws: WebSocket | null = null;
      try {
        ws = new WebSocket(server.url('/inj'), [], { ...options, handshakeTimeout: 1_000 });
      } catch (error) {
        assert.ok(error instanceof TypeError || error instanceof SyntaxError, String(error));
      }
      if (ws !== null) {
        const events = record(ws);
        const outcome = await withTimeout(
          Promise.race([events.closed.then(() => 'closed'), events.opened.then(() => 'opened')]),
          3_000,
          "'close'",
        );
        if (outcome === 'opened') {
          const sent = server.peers.at(-1)?.request;
          ws.terminate();
          assert.fail(`the connection opened; the server read: ${JSON.stringify(sent?.text)}`);
        }
        assert.equal((await events.closed).code, 1006);
      }
      const viaConnect = await withTimeout(
        connect(server.url('/inj'), { ...options, handshakeTimeout: 1_000 }).then(
          (ws) => {
            ws.terminate();
            return 'opened';
          },
          () => 'rejected',
        ),
        3_000,
        'connect() to settle',
      );
      assert.equal(viaConnect, 'rejected');
      await delay(50);
      for (const peer of server.peers) {
        assert.equal(peer.request?.header('x-injected'), undefined, 'an injected header reached the server');
      }
    });
  }
});

describe('RFC 6455 §4.1: accepting the server response', () => {
  it('accepts header names and tokens in any case, and a status line without a reason phrase', T, async () => {
    const server = await RawServer.start({
      respond: (request) =>
        `HTTP/1.1 101\r\nupgrade: WebSocket\r\nCONNECTION: keep-alive, UPGRADE\r\nsec-websocket-accept: ${acceptFor(request.key!)}\r\n\r\n`,
    });
    try {
      const ws = await connect(server.url('/'), { handshakeTimeout: 3_000 });
      assert.equal(ws.readyState, WebSocket.OPEN);
      assert.equal(ws.protocol, '');
      const events = record(ws);
      ws.terminate();
      await withTimeout(events.closed, 3_000, "'close'");
    } finally {
      await server.close();
    }
  });

  it("sets protocol to the server's choice, or '' when the server chooses none", T, async () => {
    const server = await RawServer.start({
      respond: (request) =>
        acceptResponse(request, {
          headers: request.target === '/choose' ? [['Sec-WebSocket-Protocol', 'superchat']] : [],
        }),
    });
    try {
      const chosen = await connect(server.url('/choose'), { protocols: ['chat', 'superchat'] });
      assert.equal(chosen.protocol, 'superchat');
      const none = await connect(server.url('/none'), { protocols: ['chat', 'superchat'] });
      assert.equal(none.protocol, '');
      for (const ws of [chosen, none]) {
        const events = record(ws);
        ws.terminate();
        await withTimeout(events.closed, 3_000, "'close'");
      }
    } finally {
      await server.close();
    }
  });

  it('offers permessage-deflate when asked, and records the agreed extension', T, async () => {
    const server = await RawServer.start({
      respond: (request) =>
        acceptResponse(request, {
          headers: [['Sec-WebSocket-Extensions', 'permessage-deflate; client_max_window_bits=10']],
        }),
    });
    try {
      const ws = await connect(server.url('/'), { perMessageDeflate: true });
      const peer = await withTimeout(server.nextPeer(), 3_000, 'the peer');
      const offer = peer.request!.header('sec-websocket-extensions') ?? '';
      assert.match(offer, /^permessage-deflate\b/);
      assert.match(ws.extensions, /^permessage-deflate/);
      const events = record(ws);
      ws.terminate();
      await withTimeout(events.closed, 3_000, "'close'");
    } finally {
      await server.close();
    }
  });

  it(
    "emits 'upgrade' with the response headers (lower-case names), then 'open'; readyState goes 0 -> 1",
    T,
    async () => {
      const server = await RawServer.start({
        respond: (request) =>
          acceptResponse(request, {
            headers: [
              ['X-Server', 'hostile/1.0'],
              ['Set-Cookie', 'a=b'],
            ],
          }),
      });
      try {
        const ws = new WebSocket(server.url('/'));
        assert.equal(ws.readyState, WebSocket.CONNECTING);
        assert.throws(() => ws.send('too early'), InvalidStateError);
        const events = record(ws);
        await withTimeout(events.opened, 3_000, "'open'");
        assert.equal(ws.readyState, WebSocket.OPEN);
        assert.deepEqual(
          events.events.map((e) => e.type),
          ['upgrade', 'open'],
        );
        const upgrade = events.events[0] as { type: 'upgrade'; headers: Record<string, string> };
        assert.equal(upgrade.headers['x-server'], 'hostile/1.0');
        assert.equal(upgrade.headers['upgrade'], 'websocket');
        ws.terminate();
        await withTimeout(events.closed, 3_000, "'close'");
      } finally {
        await server.close();
      }
    },
  );
});

interface FailureCase {
  name: string;
  respond: Responder;
  options?: ClientOptions;
  protocols?: string[];
  /** What the error message must say. */
  message: RegExp;
  status?: number;
  body?: string;
  /** After answering: end the connection, or leave it open. */
  afterResponse?: 'end' | 'open';
  /** Upper bound on how long the failure may take (default: well under the handshake timeout). */
  maxMs?: number;
}

const bigHeader = 'x'.repeat(20 * 1024);

const failures: FailureCase[] = [
  {
    name: 'status 200 with a body (Content-Length)',
    respond: () =>
      httpResponse(200, 'OK', 'hello, this is not a websocket', [
        ['Content-Type', 'text/plain'],
        ['Content-Length', '30'],
      ]),
    message: /200[\s\S]*hello, this is not a websocket/,
    status: 200,
    body: 'hello, this is not a websocket',
    afterResponse: 'open',
  },
  {
    name: 'status 403 with a body, then the server closes',
    respond: () =>
      httpResponse(403, 'Forbidden', 'origin not allowed\n', [
        ['Connection', 'close'],
        ['Content-Length', '19'],
      ]),
    message: /403[\s\S]*origin not allowed/,
    status: 403,
    body: 'origin not allowed\n',
    afterResponse: 'end',
  },
  {
    name: 'status 500 with a body and no Content-Length, then the server closes',
    respond: () => httpResponse(500, 'Internal Server Error', 'database on fire', [['Connection', 'close']]),
    message: /500[\s\S]*database on fire/,
    status: 500,
    body: 'database on fire',
    afterResponse: 'end',
  },
  {
    name: 'status 404 with a body and no Content-Length, server keeps the connection open',
    respond: () => httpResponse(404, 'Not Found', 'no such endpoint'),
    message: /404[\s\S]*no such endpoint/,
    status: 404,
    body: 'no such endpoint',
    afterResponse: 'open',
    maxMs: 3_000,
  },
  {
    name: 'a 101 with the accept key of another key',
    respond: (request) => acceptResponse(request, { accept: acceptFor(Buffer.alloc(16, 7).toString('base64')) }),
    message: /accept/i,
    status: 101,
  },
  {
    name: 'a 101 whose accept value is the key itself',
    respond: (request) => acceptResponse(request, { accept: request.key! }),
    message: /accept/i,
    status: 101,
  },
  {
    name: 'a 101 without Sec-WebSocket-Accept',
    respond: (request) => acceptResponse(request, { omit: ['accept'] }),
    message: /accept/i,
    status: 101,
  },
  {
    name: 'a 101 with two Sec-WebSocket-Accept headers',
    respond: (request) => acceptResponse(request, { headers: [['Sec-WebSocket-Accept', acceptFor(request.key!)]] }),
    message: /accept/i,
    status: 101,
  },
  {
    name: 'a 101 without Upgrade',
    respond: (request) => acceptResponse(request, { omit: ['upgrade'] }),
    message: /upgrade/i,
    status: 101,
  },
  {
    name: 'a 101 with Upgrade: h2c',
    respond: (request) => acceptResponse(request, { upgrade: 'h2c' }),
    message: /upgrade/i,
    status: 101,
  },
  {
    name: 'a 101 without Connection',
    respond: (request) => acceptResponse(request, { omit: ['connection'] }),
    message: /connection/i,
    status: 101,
  },
  {
    name: 'a 101 with Connection: keep-alive',
    respond: (request) => acceptResponse(request, { connection: 'keep-alive' }),
    message: /connection/i,
    status: 101,
  },
  {
    name: 'a 101 choosing a subprotocol that was not offered',
    protocols: ['chat'],
    respond: (request) => acceptResponse(request, { headers: [['Sec-WebSocket-Protocol', 'superchat']] }),
    message: /subprotocol/i,
    status: 101,
  },
  {
    name: 'a 101 choosing a subprotocol when none was offered',
    respond: (request) => acceptResponse(request, { headers: [['Sec-WebSocket-Protocol', 'chat']] }),
    message: /subprotocol/i,
    status: 101,
  },
  {
    name: 'a 101 choosing two subprotocols in one header',
    protocols: ['chat', 'superchat'],
    respond: (request) => acceptResponse(request, { headers: [['Sec-WebSocket-Protocol', 'chat, superchat']] }),
    message: /subprotocol/i,
    status: 101,
  },
  {
    name: 'a 101 choosing two subprotocols in two headers',
    protocols: ['chat', 'superchat'],
    respond: (request) =>
      acceptResponse(request, {
        headers: [
          ['Sec-WebSocket-Protocol', 'chat'],
          ['Sec-WebSocket-Protocol', 'superchat'],
        ],
      }),
    message: /subprotocol/i,
    status: 101,
  },
  {
    name: 'a 101 with Sec-WebSocket-Extensions: permessage-deflate (not offered)',
    respond: (request) => acceptResponse(request, { headers: [['Sec-WebSocket-Extensions', 'permessage-deflate']] }),
    message: /extension/i,
    status: 101,
  },
  {
    name: 'a 101 with Sec-WebSocket-Extensions: x-webkit-deflate-frame (not offered)',
    respond: (request) =>
      acceptResponse(request, {
        headers: [['Sec-WebSocket-Extensions', 'x-webkit-deflate-frame; max_window_bits=10']],
      }),
    message: /extension/i,
    status: 101,
  },
  {
    name: 'a 101 answering a permessage-deflate offer with another extension',
    options: { perMessageDeflate: true },
    respond: (request) => acceptResponse(request, { headers: [['Sec-WebSocket-Extensions', 'x-custom']] }),
    message: /extension/i,
    status: 101,
  },
  {
    name: 'a 101 accepting permessage-deflate twice',
    options: { perMessageDeflate: true },
    respond: (request) =>
      acceptResponse(request, { headers: [['Sec-WebSocket-Extensions', 'permessage-deflate, permessage-deflate']] }),
    message: /extension|deflate/i,
    status: 101,
  },
  {
    name: 'a 101 accepting permessage-deflate with an unknown parameter (RFC 7692 §7)',
    options: { perMessageDeflate: true },
    respond: (request) =>
      acceptResponse(request, { headers: [['Sec-WebSocket-Extensions', 'permessage-deflate; x_unknown']] }),
    message: /parameter|deflate|extension/i,
    status: 101,
  },
  {
    name: 'a 101 accepting permessage-deflate with server_max_window_bits=7 (RFC 7692 §7.1.2)',
    options: { perMessageDeflate: true },
    respond: (request) =>
      acceptResponse(request, {
        headers: [['Sec-WebSocket-Extensions', 'permessage-deflate; server_max_window_bits=7']],
      }),
    message: /window|deflate|extension/i,
    status: 101,
  },
  {
    name: 'a 101 with a malformed Sec-WebSocket-Extensions header',
    options: { perMessageDeflate: true },
    respond: (request) => acceptResponse(request, { headers: [['Sec-WebSocket-Extensions', 'permessage-deflate;;=']] }),
    message: /extension|deflate/i,
    status: 101,
  },
  {
    name: 'a garbage response with a blank line',
    respond: () => 'SSH-2.0-OpenSSH_9.6 hello there\r\n\r\n',
    message: /malformed|invalid/i,
  },
  {
    name: 'binary garbage, then the server closes',
    respond: () => Buffer.from([0x00, 0xff, 0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x0d, 0x0a]),
    message: /closed|malformed|invalid/i,
    afterResponse: 'end',
  },
  {
    name: 'a status line with a non-numeric status',
    respond: (request) => acceptResponse(request, { statusLine: 'HTTP/1.1 1O1 Switching Protocols' }),
    message: /malformed|invalid/i,
  },
  {
    // RFC 9112 §4: status-code = 3DIGIT, then SP: "1010" is not 101 followed by a reason.
    name: 'a status line with a four-digit status',
    respond: (request) => acceptResponse(request, { statusLine: 'HTTP/1.1 1010 Switching Protocols' }),
    message: /malformed|invalid/i,
  },
  {
    // Found by the fuzz target http-response: RFC 9112 §4's reason-phrase has no control characters.
    name: 'a status line whose reason phrase has a control character (ESC)',
    respond: (request) => acceptResponse(request, { statusLine: 'HTTP/1.1 101 Switching \x1b[2JProtocols' }),
    message: /malformed|invalid|control/i,
  },
  {
    name: 'a 101 with bare LF line ends, then the server closes',
    respond: (request) =>
      `HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Accept: ${acceptFor(request.key!)}\n\n`,
    message: /closed|malformed|invalid/i,
    afterResponse: 'end',
  },
  {
    name: 'a complete 101 head over maxHeaderSize (default 16 KiB)',
    respond: (request) => acceptResponse(request, { headers: [['X-Padding', bigHeader]] }),
    message: /too large|header/i,
  },
  {
    name: 'a response head over maxHeaderSize (1 KiB) that never ends, connection left open',
    options: { maxHeaderSize: 1024, handshakeTimeout: 6_000 },
    respond: () => `HTTP/1.1 101 Switching Protocols\r\nX-Padding: ${'y'.repeat(4096)}`,
    message: /too large|header/i,
    afterResponse: 'open',
    maxMs: 3_000,
  },
  {
    name: 'a server that never answers (handshakeTimeout 250 ms)',
    options: { handshakeTimeout: 250 },
    respond: () => null,
    message: /timed out|timeout/i,
    afterResponse: 'open',
    maxMs: 3_000,
  },
  {
    name: 'a server that answers half a head and stalls (handshakeTimeout 250 ms)',
    options: { handshakeTimeout: 250 },
    respond: () => 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n',
    message: /timed out|timeout/i,
    afterResponse: 'open',
    maxMs: 3_000,
  },
  {
    name: 'a server that closes without answering',
    respond: () => null,
    message: /closed/i,
    afterResponse: 'end',
  },
];

describe('RFC 6455 §4.1: server answers that fail the connection', () => {
  for (const failure of failures) {
    it(`fails on ${failure.name}`, T, async () => {
      const server = await RawServer.start({
        decode: false,
        respond: failure.respond,
        onPeer: (peer) => {
          if (failure.afterResponse === 'end') peer.end();
        },
      });
      const options: ClientOptions = { handshakeTimeout: 2_000, ...failure.options };
      const maxMs = failure.maxMs ?? 1_500;
      try {
        // 1. connect(): rejects with a HandshakeError that says why.
        const started = performance.now();
        const error = await withTimeout(
          connect(server.url('/'), { ...options, ...(failure.protocols ? { protocols: failure.protocols } : {}) }).then(
            (ws) => {
              ws.terminate();
              throw new Error('connect() resolved');
            },
            (error: unknown) => error,
          ),
          5_000,
          'connect() to settle',
        );
        assert.ok(error instanceof HandshakeError, `expected a HandshakeError, got ${String(error)}`);
        assert.match(error.message, failure.message);
        if (failure.status !== undefined) assert.equal(error.status, failure.status);
        if (failure.body !== undefined) assert.equal(error.body, failure.body);
        if (failure.status !== undefined && failure.status !== 101)
          assert.ok(error.headers !== undefined, 'the refusal headers are kept');
        assert.ok(performance.now() - started < maxMs, `took ${Math.round(performance.now() - started)} ms`);
        const peer1 = await withTimeout(server.nextPeer(), 2_000, 'the first peer');
        await peer1.waitClosed(3_000);

        // 2. new WebSocket with an 'error' listener: 'error' (the same kind), then 'close' 1006 once.
        const ws = new WebSocket(server.url('/'), failure.protocols, options);
        const events = record(ws);
        const closed = await withTimeout(events.closed, 5_000, "'close'");
        assert.deepEqual(
          { code: closed.code, reason: closed.reason, wasClean: closed.wasClean },
          { code: 1006, reason: '', wasClean: false },
        );
        assert.equal(ws.readyState, WebSocket.CLOSED);
        const types = events.events.map((e) => e.type);
        assert.deepEqual(types, ['error', 'close']);
        assert.ok(events.errors()[0] instanceof HandshakeError, 'events.errors()[0] instanceof HandshakeError');
        const peer2 = await withTimeout(server.nextPeer(), 2_000, 'the second peer');
        await peer2.waitClosed(3_000);

        // 3. Without an 'error' listener: no exception, just 'close' 1006 once.
        const quiet = new WebSocket(server.url('/'), failure.protocols, options);
        const quietEvents = record(quiet, false);
        assert.equal((await withTimeout(quietEvents.closed, 5_000, "'close'")).code, 1006);
        const peer3 = await withTimeout(server.nextPeer(), 2_000, 'the third peer');
        await peer3.waitClosed(3_000);

        // Nothing more, ever.
        await delay(60);
        assert.equal(events.count('close'), 1);
        assert.equal(quietEvents.count('close'), 1);
        assert.equal(events.count('open') + quietEvents.count('open'), 0);
      } finally {
        await server.close();
      }
    });
  }

  it('fails with the network error (ECONNREFUSED) when nothing listens', T, async () => {
    const port = await closedPort();
    const url = `ws://127.0.0.1:${port}/`;
    const error = await connect(url).then(
      () => assert.fail('connected to a closed port'),
      (error: unknown) => error as NodeJS.ErrnoException,
    );
    assert.equal(error.code, 'ECONNREFUSED');

    const ws = new WebSocket(url);
    const events = record(ws);
    const closed = await withTimeout(events.closed, 3_000, "'close'");
    assert.equal(closed.code, 1006);
    assert.equal(closed.wasClean, false);
    assert.deepEqual(
      events.events.map((e) => e.type),
      ['error', 'close'],
    );
    assert.equal((events.errors()[0] as NodeJS.ErrnoException).code, 'ECONNREFUSED');

    const quiet = new WebSocket(url);
    const quietEvents = record(quiet, false);
    assert.equal((await withTimeout(quietEvents.closed, 3_000, "'close'")).code, 1006);
    await delay(50);
    assert.equal(events.count('close') + quietEvents.count('close'), 2);
  });

  it(
    'fails at once, not at the handshake timeout, when the answer does not start with HTTP/ (a TLS server on a ws:// URL)',
    T,
    async () => {
      // A TLS alert record (handshake failure): what a TLS-only port sends back to plain text.
      const server = await RawServer.start({ decode: false, respond: () => Buffer.from('15030100020228', 'hex') });
      try {
        const started = Date.now();
        const error = await connect(server.url('/'), { handshakeTimeout: 5_000 }).then(
          () => assert.fail('connected'),
          (error: unknown) => error as Error,
        );
        assert.match(error.message, /malformed HTTP response/);
        assert.ok(Date.now() - started < 2_000, `failed after ${Date.now() - started} ms`);
      } finally {
        await server.close();
      }
    },
  );

  it('fails when the server resets the connection during the handshake', T, async () => {
    const server = await RawServer.start({
      decode: false,
      respond: () => null,
      onPeer: (peer) => peer.socket.resetAndDestroy(),
    });
    try {
      await assert.rejects(connect(server.url('/')));
      const ws = new WebSocket(server.url('/'));
      const events = record(ws, false);
      assert.equal((await withTimeout(events.closed, 3_000, "'close'")).code, 1006);
    } finally {
      await server.close();
    }
  });
});

describe('frames that arrive with the 101', () => {
  /** A server that sends its 101 and two frames (text 'hello', then a ping) in one write. */
  const respondWithFrames: Responder = (request) =>
    Buffer.concat([
      acceptResponse(request),
      encodeFrame({ opcode: Opcode.Text, payload: 'hello' }),
      encodeFrame({ opcode: Opcode.Binary, payload: Buffer.from([1, 2, 3]) }),
      encodeFrame({ opcode: Opcode.Ping, payload: 'p' }),
    ]);

  it("delivers them to a 'message' listener attached in the 'open' handler", T, async () => {
    const server = await RawServer.start({ respond: respondWithFrames });
    try {
      const ws = new WebSocket(server.url('/'));
      const received: [string, boolean][] = [];
      ws.on('open', () => {
        ws.on('message', (data, isBinary) =>
          received.push([isBinary ? data.toString('hex') : data.toString(), isBinary]),
        );
      });
      const peer = await withTimeout(server.nextPeer(), 3_000, 'the peer');
      // The ping was answered (with its payload, masked).
      await withTimeout(
        new Promise((resolve) => (peer.pongs.length > 0 ? resolve(null) : peer.once('pong', resolve))),
        3_000,
        'the pong',
      );
      assert.deepEqual(received, [
        ['hello', false],
        ['010203', true],
      ]);
      assert.equal(peer.pongs[0]!.toString(), 'p');
      assert.equal(peer.protocolErrors.length, 0);
      const events = record(ws);
      ws.terminate();
      await withTimeout(events.closed, 3_000, "'close'");
    } finally {
      await server.close();
    }
  });

  it("delivers them to a 'message' listener attached right after `await connect()`", T, async () => {
    const server = await RawServer.start({ respond: respondWithFrames });
    try {
      const ws = await connect(server.url('/'));
      const received: string[] = [];
      ws.on('message', (data) => received.push(data.toString('hex')));
      const peer = await withTimeout(server.nextPeer(), 3_000, 'the peer');
      await withTimeout(
        new Promise((resolve) => (peer.pongs.length > 0 ? resolve(null) : peer.once('pong', resolve))),
        3_000,
        'the pong',
      );
      await delay(30);
      assert.deepEqual(
        received,
        [Buffer.from('hello').toString('hex'), '010203'],
        'messages sent with the 101 were lost',
      );
      const events = record(ws);
      ws.terminate();
      await withTimeout(events.closed, 3_000, "'close'");
    } finally {
      await server.close();
    }
  });
});

describe('close() and terminate() while CONNECTING', () => {
  it('close() right after the constructor: close 1006 once, and no connection is left behind', T, async () => {
    const server = await RawServer.start({ respond: () => null, decode: false });
    try {
      const ws = new WebSocket(server.url('/'));
      const events = record(ws);
      ws.close();
      const closed = await withTimeout(events.closed, 2_000, "'close'");
      assert.equal(closed.code, 1006);
      assert.equal(closed.wasClean, false);
      assert.equal(ws.readyState, WebSocket.CLOSED);
      // Give a stray connection attempt time to show up, then check none is still open.
      await delay(300);
      for (const peer of server.peers) {
        await peer.waitClosed(1_500);
      }
      assert.equal(events.count('close'), 1);
      assert.equal(events.count('open'), 0);
    } finally {
      await server.close();
    }
  });

  it('close() after the request was sent: the socket is destroyed, close 1006 once', T, async () => {
    const server = await RawServer.start({ respond: () => null, decode: false });
    try {
      const ws = new WebSocket(server.url('/'), [], { handshakeTimeout: 5_000 });
      const events = record(ws);
      const peer = await withTimeout(server.nextPeer(), 3_000, 'the request');
      ws.close(1000, 'never mind');
      const closed = await withTimeout(events.closed, 2_000, "'close'");
      assert.equal(closed.code, 1006);
      await peer.waitClosed(2_000);
      await delay(50);
      assert.equal(events.count('close'), 1);
      assert.equal(events.count('open'), 0);
      // Calling it again, or terminate(), changes nothing.
      ws.close();
      ws.terminate();
      await delay(20);
      assert.equal(events.count('close'), 1);
    } finally {
      await server.close();
    }
  });

  it('terminate() while connecting: the socket is destroyed, close 1006 once', T, async () => {
    const server = await RawServer.start({ respond: () => null, decode: false });
    try {
      const ws = new WebSocket(server.url('/'), [], { handshakeTimeout: 5_000 });
      const events = record(ws, false);
      const peer = await withTimeout(server.nextPeer(), 3_000, 'the request');
      ws.terminate();
      assert.equal((await withTimeout(events.closed, 2_000, "'close'")).code, 1006);
      await peer.waitClosed(2_000);
    } finally {
      await server.close();
    }
  });

  it('connect() rejects when the connection is closed before the handshake completes', T, async () => {
    const server = await RawServer.start({ respond: () => null, decode: false });
    try {
      const pending = connect(server.url('/'), { handshakeTimeout: 5_000 });
      const peer = await withTimeout(server.nextPeer(), 3_000, 'the request');
      peer.end();
      await assert.rejects(withTimeout(pending, 3_000, 'connect()'), HandshakeError);
    } finally {
      await server.close();
    }
  });
});

function splitList(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

function popcount(byte: number): number {
  let count = 0;
  for (let b = byte; b !== 0; b >>= 1) count += b & 1;
  return count;
}
