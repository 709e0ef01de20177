/**
 * The opening handshake's rules hold the same over HTTP/1.1 (RFC 6455 §4) and over HTTP/2 (RFC 8441
 * §4-§5), in both roles: one rule, one answer, whichever transport carries the handshake. Against
 * independent peers: the raw peer (helpers/peer/) for HTTP/1.1, node:http2 driven by hand for HTTP/2.
 *
 * - the version (§4.1 item 9, §4.2.1 item 6, §4.4) and the subprotocol list (§4.1 item 10), as a
 *   server reads them: the same status and the same text for the same fault;
 * - the client's checks: the list it offers, the subprotocol the server picks (§4.1);
 * - a refusal's body, as the clients read it: at most 1 KiB, and not waited for forever;
 * - the handshake timeouts, both roles, both transports: on the shared timer wheel (one timer for
 *   the process), off it the moment the handshake ends, whichever way.
 *
 * The wheel is counted (`sharedWheel.size`) in the first group, which opens no WebSocket and runs
 * first in this file's own process: what the wheel holds then is the handshakes in flight.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import {
  constants as h2,
  createServer as createH2cServer,
  type Http2Server,
  type Http2Session,
  type IncomingHttpHeaders,
  type ServerHttp2Stream,
} from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterEach, before, describe, it } from 'node:test';
import { HandshakeError, WebSocket, WebSocketServer, connect, type ClientOptions } from '../src/index.js';
import { sharedWheel } from '../src/driver/timer-wheel.js';
import {
  RawClient,
  RawServer,
  acceptResponse,
  destroyH2Sessions,
  extendedConnect,
  h2Request,
  httpResponse,
  openH2Session,
  waitUntil,
  withTimeout,
  type RequestSpec,
  type Responder,
} from './helpers/peer/index.js';

const T = { timeout: 20_000 };
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  destroyH2Sessions();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A hand-written HTTP/2 server (h2c, RFC 8441 §3 setting on): `onStream` answers each stream. */
async function rawH2Server(
  onStream: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => void,
): Promise<{ url(path?: string): string; server: Http2Server; sessions: Http2Session[] }> {
  const server = createH2cServer({ settings: { enableConnectProtocol: true } });
  const sessions: Http2Session[] = [];
  server.on('session', (session) => sessions.push(session));
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    onStream(stream, headers);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => {
    for (const session of sessions) session.destroy();
    return new Promise((resolve) => server.close(resolve));
  });
  const port = (server.address() as AddressInfo).port;
  return { url: (path = '/') => `ws://127.0.0.1:${port}${path}`, server, sessions };
}

/** A raw HTTP/1.1 server (the peer) that answers with `respond`. */
async function rawHttp1Server(respond: Responder): Promise<RawServer> {
  const server = await RawServer.start({ decode: false, respond });
  cleanups.push(() => server.close());
  return server;
}

/** Our server, reachable over HTTP/1.1 (its own listen) and over h2c (a node:http2 server in front). */
async function serverOnBoth(
  options: ConstructorParameters<typeof WebSocketServer>[0],
): Promise<{ wss: WebSocketServer; http1Port: number; h2Origin: string }> {
  const wss = new WebSocketServer({ pingInterval: 0, ...options });
  const { port: http1Port } = await wss.listen(0, '127.0.0.1');
  const front = createH2cServer({ settings: { enableConnectProtocol: true } });
  const sessions: Http2Session[] = [];
  front.on('session', (session) => sessions.push(session));
  front.on('stream', (stream, headers) => wss.handleHttp2Stream(stream, headers));
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => wss.close(200));
  // Sessions destroyed first: a test that failed half-way must not leave close() waiting on them.
  cleanups.push(() => {
    for (const session of sessions) session.destroy();
    return new Promise((resolve) => front.close(resolve));
  });
  return { wss, http1Port, h2Origin: `http://127.0.0.1:${(front.address() as AddressInfo).port}` };
}

/** How a connect() that must fail failed. */
async function failure(pending: Promise<WebSocket>): Promise<HandshakeError> {
  const error = await withTimeout(
    pending.then(
      (ws) => {
        ws.terminate();
        throw new Error('connect() resolved');
      },
      (error: unknown) => error,
    ),
    10_000,
    'connect() to fail',
  );
  assert.ok(error instanceof HandshakeError, `expected a HandshakeError, got ${String(error)}`);
  return error;
}

describe('handshake timeouts run on the shared timer wheel, both roles, both transports', () => {
  // Each case twice: with a timeout far beyond the test's, to see the handshake wait on the wheel
  // and leave it when it ends another way; with a short one, to see the timeout fire.
  before(async () => {
    await waitUntil(() => sharedWheel.size === 0, 5000, 'an empty wheel');
  });

  it(
    'our HTTP/1.1 client: on the wheel while it waits, off it when aborted; a server that never answers meets handshakeTimeout',
    T,
    async () => {
      const server = await rawHttp1Server(() => null);
      const waiting = new WebSocket(server.url('/'), [], { handshakeTimeout: 600_000 });
      waiting.on('error', () => {});
      const first = await withTimeout(server.nextPeer(), 5000, 'the request');
      assert.equal(sharedWheel.size, 1, 'the handshake waits on the wheel');
      waiting.terminate();
      assert.equal(sharedWheel.size, 0, 'aborted: off the wheel');
      await first.waitClosed(5000);
      const error = await failure(connect(server.url('/'), { handshakeTimeout: 300 }));
      assert.match(error.message, /handshake timed out/);
      await (await withTimeout(server.nextPeer(), 5000, 'the second request')).waitClosed(5000);
      assert.equal(sharedWheel.size, 0);
    },
  );

  it('our HTTP/2 client: the same; the stream is cancelled and the session closed', T, async () => {
    const held: ServerHttp2Stream[] = [];
    const { url, sessions } = await rawH2Server((stream) => held.push(stream));
    const waiting = new WebSocket(url('/'), [], { http2: true, handshakeTimeout: 600_000 });
    waiting.on('error', () => {});
    await waitUntil(() => held.length === 1, 5000, 'the CONNECT');
    assert.equal(sharedWheel.size, 1, 'the handshake waits on the wheel');
    waiting.terminate();
    assert.equal(sharedWheel.size, 0, 'aborted: off the wheel');
    const error = await failure(connect(url('/'), { http2: true, handshakeTimeout: 300 }));
    assert.match(error.message, /handshake timed out/);
    // RFC 8441 §6: a WebSocket given up on is reset with CANCEL; the sessions had no other user.
    await waitUntil(() => held.length === 2 && held.every((stream) => stream.closed), 5000, 'the streams to close');
    assert.deepEqual(
      held.map((stream) => stream.rstCode),
      [h2.NGHTTP2_CANCEL, h2.NGHTTP2_CANCEL],
    );
    await waitUntil(() => sessions.every((session) => session.closed), 5000, 'the sessions to close');
    assert.equal(sharedWheel.size, 0);
  });

  it(
    'our server over HTTP/1.1: on the wheel while a client says nothing, off it when the client goes; dropped at handshakeTimeout',
    T,
    async () => {
      const patient = await serverOnBoth({ handshakeTimeout: 600_000 });
      const leaving = await RawClient.open(patient.http1Port);
      await waitUntil(() => sharedWheel.size === 1, 5000, 'the handshake on the wheel');
      leaving.destroy();
      await waitUntil(() => sharedWheel.size === 0, 5000, 'the handshake to leave the wheel');
      const { http1Port } = await serverOnBoth({ handshakeTimeout: 300 });
      const silent = await RawClient.open(http1Port);
      cleanups.push(() => silent.destroy());
      await silent.waitClosed(5000);
      assert.equal(silent.response, null);
      assert.equal(sharedWheel.size, 0);
    },
  );

  it(
    'our server over HTTP/2: on the wheel while `verify` runs, off it the moment the client resets the stream',
    T,
    async () => {
      let verifying = 0;
      const { wss, h2Origin } = await serverOnBoth({
        handshakeTimeout: 600_000,
        verify: () => {
          verifying++;
          return new Promise<never>(() => {});
        },
      });
      const rejected: number[] = [];
      wss.on('rejected', (status) => rejected.push(status));
      const session = await openH2Session(h2Origin);
      const stream = session.request(extendedConnect(session, '/'), { endStream: false });
      stream.on('error', () => {});
      await waitUntil(() => verifying === 1, 5000, 'verify to be called');
      assert.equal(sharedWheel.size, 1, 'the handshake waits on the wheel');
      stream.close(h2.NGHTTP2_CANCEL);
      await waitUntil(() => sharedWheel.size === 0, 5000, 'the handshake to leave the wheel');
      assert.deepEqual(rejected, []);
      assert.equal(wss.clients.size, 0);
      session.close();
    },
  );

  it(
    'our server over HTTP/2: a `verify` that never answers meets handshakeTimeout; the stream is cancelled, unanswered',
    T,
    async () => {
      const { h2Origin } = await serverOnBoth({ handshakeTimeout: 300, verify: () => new Promise<never>(() => {}) });
      const session = await openH2Session(h2Origin);
      const stream = session.request(extendedConnect(session, '/'), { endStream: false });
      stream.on('error', () => {});
      const closed = once(stream, 'close');
      let answered = false;
      stream.on('response', () => (answered = true));
      await withTimeout(closed, 5000, 'the stream to be cancelled');
      assert.deepEqual([answered, stream.rstCode], [false, h2.NGHTTP2_CANCEL]);
      assert.equal(sharedWheel.size, 0);
      session.close();
    },
  );
});

describe('RFC 6455 §4.1 item 9, §4.2.1 item 6, §4.4 and §4.1 item 10: one answer over HTTP/1.1 and HTTP/2', () => {
  /** [what, the HTTP/1.1 request, the extended CONNECT's headers, the status both must get] */
  const faults: [string, RequestSpec, Record<string, string | string[] | null>, number][] = [
    [
      'no Sec-WebSocket-Version',
      { headers: { 'Sec-WebSocket-Version': null } },
      { 'sec-websocket-version': null },
      400,
    ],
    ['Sec-WebSocket-Version 8', { headers: { 'Sec-WebSocket-Version': '8' } }, { 'sec-websocket-version': '8' }, 426],
    [
      'Sec-WebSocket-Version "13, 8"',
      { headers: { 'Sec-WebSocket-Version': '13, 8' } },
      { 'sec-websocket-version': '13, 8' },
      426,
    ],
    ['a repeated subprotocol', { protocols: ['chat', 'chat'] }, { 'sec-websocket-protocol': 'chat, chat' }, 400],
    ['a subprotocol that is no token (a "/")', { protocols: ['chat/2'] }, { 'sec-websocket-protocol': 'chat/2' }, 400],
    ['a subprotocol with a space inside', { protocols: ['a b'] }, { 'sec-websocket-protocol': 'a b' }, 400],
    [
      'a subprotocol repeated across two fields',
      { protocols: ['chat'], extraFields: [['Sec-WebSocket-Protocol', 'chat']] },
      { 'sec-websocket-protocol': ['chat', 'chat'] },
      400,
    ],
  ];

  it(
    'each fault gets the same status and the same text on both, 426 naming version 13; the session goes on',
    T,
    async () => {
      const { wss, http1Port, h2Origin } = await serverOnBoth({ protocols: ['chat'] });
      const rejected: number[] = [];
      wss.on('rejected', (status) => rejected.push(status));
      const session = await openH2Session(h2Origin);
      for (const [what, spec, change, status] of faults) {
        const overHttp1 = await RawClient.request(http1Port, spec);
        cleanups.push(() => overHttp1.destroy());
        const response = overHttp1.response!;
        const headers = extendedConnect(session, '/');
        for (const [name, value] of Object.entries(change)) {
          if (value === null) delete headers[name];
          else headers[name] = value;
        }
        const overH2 = await h2Request(session, headers);
        assert.deepEqual([response.status, overH2.status], [status, status], what);
        assert.equal(overH2.body, response.body.toString(), `${what}: the same text`);
        if (status === 426) {
          assert.equal(response.header('sec-websocket-version'), '13', what);
          assert.equal(overH2.headers['sec-websocket-version'], '13', what);
        }
      }
      assert.deepEqual(
        rejected,
        faults.flatMap(([, , , status]) => [status, status]),
      );
      // And what is right is right on both: empty list elements are no fault (RFC 9110 §5.6.1).
      const fine = await RawClient.request(http1Port, { protocols: ['', 'x-other', 'chat'] });
      cleanups.push(() => fine.destroy());
      assert.deepEqual([fine.response!.status, fine.header('sec-websocket-protocol')], [101, 'chat']);
      const fineH2 = await h2Request(
        session,
        extendedConnect(session, '/', { 'sec-websocket-protocol': ', x-other, chat' }),
      );
      assert.deepEqual([fineH2.status, fineH2.headers['sec-websocket-protocol']], [200, 'chat']);
      fineH2.stream.close(h2.NGHTTP2_CANCEL);
      session.close();
    },
  );
});

describe('RFC 6455 §4.1: both clients check the same things', () => {
  it(
    'the subprotocols offered: a repeat, a non-token, an empty one throw a SyntaxError before anything is sent',
    T,
    async () => {
      const server = await rawHttp1Server(() => null);
      const { url, sessions } = await rawH2Server(() => {});
      for (const offered of [['chat', 'chat'], ['chat/2'], ['a b'], [''], 'x,y']) {
        for (const [address, options] of [
          [server.url('/'), {}],
          [url('/'), { http2: true }],
        ] as [string, ClientOptions][]) {
          assert.throws(
            () => new WebSocket(address, offered, options),
            SyntaxError,
            JSON.stringify([offered, options]),
          );
        }
      }
      // Nothing reached either server.
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual([server.peers.length, sessions.length], [0, 0]);
    },
  );

  it(
    'a header that cannot be sent throws a TypeError before anything is sent, over HTTP/2 as over HTTP/1.1',
    T,
    async () => {
      const server = await rawHttp1Server(() => null);
      const { url, sessions } = await rawH2Server(() => {});
      const bad: ClientOptions[] = [
        { headers: { 'x-note': 'one\r\nx-smuggled: two' } },
        { headers: { 'bad name': 'x' } },
        { origin: 'https://a.example\r\nx-smuggled: two' },
      ];
      for (const options of bad) {
        assert.throws(() => new WebSocket(server.url('/'), [], options), TypeError, JSON.stringify(options));
        assert.throws(
          () => new WebSocket(url('/'), [], { ...options, http2: true }),
          TypeError,
          JSON.stringify(options),
        );
      }
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual([server.peers.length, sessions.length], [0, 0]);
    },
  );

  it('the subprotocol the server picks: one it was offered, and only one; the same error on both', T, async () => {
    for (const [picked, message] of [
      ['never-offered', 'invalid handshake response: subprotocol "never-offered" was not offered'],
      ['chat, x-other', 'invalid handshake response: more than one subprotocol selected'],
    ] as const) {
      const server = await rawHttp1Server((request) =>
        acceptResponse(request, { headers: [['Sec-WebSocket-Protocol', picked]] }),
      );
      const { url } = await rawH2Server((stream) =>
        stream.respond({ ':status': 200, 'sec-websocket-protocol': picked }),
      );
      const options = { protocols: ['chat', 'x-other'] };
      const overHttp1 = await failure(connect(server.url('/'), options));
      const overH2 = await failure(connect(url('/'), { ...options, http2: true }));
      assert.deepEqual([overHttp1.message, overH2.message], [message, message]);
      assert.deepEqual([overHttp1.status, overH2.status], [101, 200]);
    }
  });
});

describe('a refusal’s body, as both clients read it', () => {
  // Letters in a cycle: where a cut falls shows in the text.
  const long = Array.from({ length: 5000 }, (_, i) => String.fromCharCode(97 + (i % 26))).join('');

  it(
    'over HTTP/1.1: the first 1 KiB of a longer body is kept, and the socket closed without reading the rest',
    T,
    async () => {
      const server = await rawHttp1Server(() => httpResponse(403, 'Forbidden', long, [['Content-Length', '5000']]));
      const error = await failure(connect(server.url('/'), { handshakeTimeout: 600_000 }));
      assert.equal(error.status, 403);
      assert.equal(error.body, long.slice(0, 1024));
      assert.match(error.message, /^server refused the WebSocket handshake: 403 Forbidden: abcdefg/);
      await (await server.nextPeer()).waitClosed(5000);
    },
  );

  it('over HTTP/2: the first 1 KiB of a longer body is kept, and the stream cancelled', T, async () => {
    const refused: ServerHttp2Stream[] = [];
    const { url, sessions } = await rawH2Server((stream) => {
      refused.push(stream);
      stream.respond({ ':status': 403, 'content-type': 'text/plain' });
      // Written, never ended: the client stops at 1 KiB whatever comes after.
      stream.write(long);
    });
    const error = await failure(connect(url('/'), { http2: true, handshakeTimeout: 600_000 }));
    assert.equal(error.status, 403);
    assert.equal(error.body, long.slice(0, 1024));
    assert.equal(error.headers?.get('content-type')?.[0], 'text/plain');
    // (HTTP/2 has no reason phrase, RFC 9113 §8.3.2.)
    assert.match(error.message, /^server refused the WebSocket handshake: 403: abcdefg/);
    await waitUntil(() => refused[0]!.closed, 5000, 'the stream to close');
    assert.equal(refused[0]!.rstCode, h2.NGHTTP2_CANCEL);
    await waitUntil(() => sessions[0]!.closed || sessions[0]!.destroyed, 5000, 'the session to close');
  });

  it('a body that never ends: each client reports what came, without waiting for handshakeTimeout', T, async () => {
    // Nothing ends these refusals; a client that waited for the end would wait past the test's timeout.
    const server = await rawHttp1Server(() => 'HTTP/1.1 503 Service Unavailable\r\n\r\nback in a minute');
    const overHttp1 = await failure(connect(server.url('/'), { handshakeTimeout: 600_000 }));
    assert.deepEqual([overHttp1.status, overHttp1.body], [503, 'back in a minute']);
    const refused: ServerHttp2Stream[] = [];
    const { url } = await rawH2Server((stream) => {
      refused.push(stream);
      stream.respond({ ':status': 503 });
      stream.write('back in a minute');
    });
    const overH2 = await failure(connect(url('/'), { http2: true, handshakeTimeout: 600_000 }));
    assert.deepEqual([overH2.status, overH2.body], [503, 'back in a minute']);
    await waitUntil(() => refused[0]!.closed, 5000, 'the stream to close');
    assert.equal(refused[0]!.rstCode, h2.NGHTTP2_CANCEL);
  });
});
