/**
 * The protocol explorer without a browser (explorer-chromium.test.ts has the browser): the page
 * served only when asked for (the library's default and --no-explorer serve nothing but
 * upgrades), refusals unchanged with it on, the observer token (only the page that got it can
 * watch or drive its connection), what an observer is told about frames (checked against the
 * test peer's own encoding), the requests a page may make, and bounded memory with an observer
 * that does not read. Over HTTPS: the page whether ALPN picks h2 or http/1.1, and an HTTP/2
 * connection's handshake shown as the extended CONNECT it is (RFC 8441), on a library server and
 * on the echo CLI with TLS (which gives the https:// URL).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import type { ClientHttp2Session } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { after, afterEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Explorer } from '../src/explorer.js';
import { WebSocketServer } from '../src/index.js';
import { MAX_REQUESTED_SIZE, OBSERVER_BUFFER_LIMIT } from '../src/learn/explorer.js';
import { Opcode, skipBecause, startServer, waitUntil, withTimeout, type TestServer } from './helpers/library.js';
import {
  FrameDecoder,
  H2Peer,
  RawClient,
  acceptFor,
  destroyH2Sessions,
  destroyRawClients,
  handshakeRequest,
  headEnd,
  naiveMask,
  openH2Session,
  type RequestSpec,
} from './helpers/peer/index.js';
import { makeTestCertificate, type TestCertificate } from './helpers/tls.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** A plain browser navigation: none of the handshake's fields. */
const PLAIN_GET: RequestSpec = {
  headers: { Upgrade: null, Connection: null, 'Sec-WebSocket-Key': null, 'Sec-WebSocket-Version': null },
};

const servers: TestServer[] = [];
afterEach(() => destroyRawClients());
const closers: (() => unknown)[] = [];
after(async () => {
  destroyH2Sessions();
  await Promise.all(servers.map((server) => server.close()));
  for (const close of closers.splice(0).reverse()) await close();
});

async function server(explorer: boolean): Promise<TestServer> {
  const started = await startServer({ explorer, perMessageDeflate: true, pingInterval: 0 });
  servers.push(started);
  return started;
}

interface Event {
  type: string;
  [field: string]: unknown;
}

/** An observer socket: its token, and the events it has received. */
async function observer(port: number): Promise<{ client: RawClient; token: string; events: () => Event[] }> {
  const client = await RawClient.connect(port, { path: '/?explorer=observe' });
  const [hello] = await client.waitMessages(1);
  const event = JSON.parse(hello!.data.toString()) as Event;
  assert.equal(event.type, 'hello');
  return {
    client,
    token: event['token'] as string,
    events: () => client.messages.map((message) => JSON.parse(message.data.toString()) as Event),
  };
}

async function eventsOf(watch: { client: RawClient; events: () => Event[] }, count: number): Promise<Event[]> {
  await watch.client.waitMessages(count + 1, 5000);
  return watch.events().slice(1);
}

describe('serving the page: only when asked for', () => {
  it('the library default (explorer off): a plain GET / gets the 400 it always got, no page', async () => {
    const { port } = await server(false);
    const client = await RawClient.request(port, PLAIN_GET);
    assert.equal(client.response!.status, 400);
    assert.doesNotMatch(client.response!.body.toString(), /<html/i);
  });

  it('explorer on: GET / gets the page, one self-contained document (nothing loaded from elsewhere), then the connection ends', async () => {
    const { port } = await server(true);
    const client = await RawClient.request(port, PLAIN_GET);
    const response = client.response!;
    assert.equal(response.status, 200);
    assert.equal(response.header('content-type'), 'text/html; charset=utf-8');
    assert.match(response.header('content-security-policy') ?? '', /default-src 'none'/);
    const html = response.body.toString();
    assert.equal(Buffer.byteLength(html), Number(response.header('content-length')));
    assert.match(html, /<title>wsrfc protocol explorer<\/title>/);
    // Scripts and styles inline: no element loads anything, no stylesheet imports anything.
    assert.doesNotMatch(html, /<script[^>]+src=|<link|<img|<iframe|@import|url\(/i);
    await client.waitPeerEnd(3000);
  });

  it('explorer on: other paths, other methods, HTTP/1.0, no Host, and broken handshakes are answered as without it', async () => {
    const off = await server(false);
    const on = await server(true);
    const cases: [string, RequestSpec][] = [
      ['GET /other', { ...PLAIN_GET, path: '/other' }],
      ['POST /', { ...PLAIN_GET, method: 'POST' }],
      ['HEAD /', { ...PLAIN_GET, method: 'HEAD' }],
      ['GET / HTTP/1.0', { ...PLAIN_GET, httpVersion: 'HTTP/1.0' }],
      ['GET / without Host', { headers: { ...PLAIN_GET.headers, Host: null } }],
      ['a handshake without Upgrade', { headers: { Upgrade: null } }],
      ['a handshake with version 8', { headers: { 'Sec-WebSocket-Version': '8' } }],
      ['Upgrade: h2c', { ...PLAIN_GET, headers: { ...PLAIN_GET.headers, Upgrade: 'h2c' } }],
    ];
    for (const [name, spec] of cases) {
      const expected = (await RawClient.request(off.port, spec)).response!.status;
      const got = (await RawClient.request(on.port, spec)).response!.status;
      assert.ok(expected >= 400 && expected < 500, `${name}: ${expected} without the explorer`);
      assert.equal(got, expected, `${name}: ${got} with the explorer, ${expected} without`);
    }
  });

  it("explorer on: the handshake tests' malformed requests, oversize heads and timeouts all get what they got without it (server-handshake.test.ts, rerun)", async () => {
    // The whole file, every test server with the explorer on (helpers/library.ts reads the variable).
    // TAP asked for by name: Node 23 and later report in 'spec' by default, whatever stdout is.
    const args = ['--import', 'tsx', '--test', '--test-reporter=tap', 'spec-tests/server-handshake.test.ts'];
    const run = spawnSync(process.execPath, args, {
      cwd: ROOT,
      // Without NODE_TEST_CONTEXT, the child reports to us rather than to our test runner.
      env: { ...process.env, NODE_TEST_CONTEXT: undefined, WSRFC_TEST_EXPLORER: '1' },
      encoding: 'utf8',
      timeout: 120_000,
    });
    assert.equal(
      run.status,
      0,
      run.stdout
        .split('\n')
        .filter((line) => /^\s*not ok|fail/.test(line))
        .join('\n'),
    );
    assert.match(run.stdout, /^# fail 0$/m);
    assert.match(run.stdout, /^# pass [1-9]\d+$/m);
  });
});

describe('the observer: a token only its page knows', () => {
  it('an observer gets a 192-bit token; the connection that presents it is shown: handshake, then every frame as it was on the wire', async () => {
    const { port } = await server(true);
    const watch = await observer(port);
    assert.match(watch.token, /^[A-Za-z0-9_-]{32}$/, '24 random bytes, base64url');
    const own = await RawClient.connect(port, { path: `/?explorer=${watch.token}` });
    const [handshake] = await eventsOf(watch, 1);
    assert.equal(handshake!.type, 'handshake');
    assert.match(handshake!['request'] as string, new RegExp(`^GET /\\?explorer=${watch.token} HTTP/1\\.1\\r\\n`));
    assert.equal(handshake!['accept'], acceptFor(own.key!));
    assert.ok((handshake!['response'] as string).includes(`Sec-WebSocket-Accept: ${acceptFor(own.key!)}\r\n`));

    // A 300-byte text frame in the 7+64-bit form the peer forces, and its echo.
    const key = Buffer.from([1, 2, 3, 4]);
    const text = 'x'.repeat(300);
    const bytes = own.frame({ opcode: Opcode.Text, payload: text, maskKey: key, lengthEncoding: 64 });
    own.write(bytes);
    await own.waitMessages(1);
    const [, inFrame, outFrame] = await eventsOf(watch, 3);
    assert.equal(inFrame!['direction'], 'in');
    assert.equal(inFrame!['opcodeName'], 'text');
    assert.equal(inFrame!['lengthBits'], 64);
    assert.equal(inFrame!['length'], 300);
    assert.equal(inFrame!['header'], bytes.subarray(0, 14).toString('hex'));
    assert.equal(inFrame!['maskKey'], '01020304');
    const masked = naiveMask(Buffer.from(text), key).subarray(0, 64).toString('hex');
    assert.equal(inFrame!['wire'], `${masked}… (+236 bytes)`);
    assert.match(inFrame!['text'] as string, /^x+$/);
    assert.equal(outFrame!['direction'], 'out');
    assert.equal(outFrame!['lengthBits'], 16, "the server's echo uses the minimal form");
    assert.equal(outFrame!['masked'], false);

    // Close codes by name.
    own.sendClose(4001, 'bye');
    await own.waitCloseFrame();
    await watch.client.until(() => watch.events().some((event) => event.type === 'closed'), 3000, 'closed');
    const frames = watch.events().filter((event) => event.type === 'frame');
    const closeIn = frames.find((event) => event['direction'] === 'in' && event['opcodeName'] === 'close');
    assert.deepEqual(closeIn!['close'], { code: 4001, name: 'private use', reason: 'bye' });
  });

  it('a wrong token, a used token and another observer see nothing; the connections are ordinary echoes', async () => {
    const { port } = await server(true);
    const watch = await observer(port);
    const other = await observer(port);
    const stranger = await RawClient.connect(port, { path: '/?explorer=not-a-token' });
    stranger.sendText('hi', true);
    await stranger.waitMessages(1);
    const own = await RawClient.connect(port, { path: `/?explorer=${watch.token}` });
    const second = await RawClient.connect(port, { path: `/?explorer=${watch.token}` });
    second.sendText('second');
    await second.waitMessages(1);
    own.sendText('mine');
    await own.waitMessages(1);
    // The observer saw its own connection only: one handshake, "mine" in and out.
    await watch.client.until(() => watch.events().length >= 4, 3000, 'the events');
    const events = watch.events().slice(1);
    assert.equal(events.filter((event) => event.type === 'handshake').length, 1);
    const texts = events.filter((event) => event.type === 'frame').map((event) => event['text']);
    assert.deepEqual(texts, ['mine', 'mine']);
    assert.equal(other.events().length, 1, 'the other observer got its hello and nothing else');
  });
});

describe('what a page may ask the server to do on its connection', () => {
  async function pair(): Promise<{ watch: Awaited<ReturnType<typeof observer>>; own: RawClient }> {
    const { port } = await server(true);
    const watch = await observer(port);
    const own = await RawClient.connect(port, { path: `/?explorer=${watch.token}` });
    await eventsOf(watch, 1);
    return { watch, own };
  }
  const ask = (watch: { client: RawClient }, request: object): void => watch.client.sendText(JSON.stringify(request));

  it('RFC 6455 §5.4: one message in N frames, a ping between the first two', async () => {
    const { watch, own } = await pair();
    ask(watch, { do: 'fragments', count: 3, size: 10, ping: true });
    await own.waitFrames(4);
    assert.deepEqual(
      own.frames.map((frame) => [frame.opcode, frame.fin, frame.payload.length]),
      [
        [Opcode.Text, false, 3],
        [Opcode.Ping, true, 7],
        [Opcode.Continuation, false, 3],
        [Opcode.Continuation, true, 4],
      ],
    );
    const [message] = await own.waitMessages(1);
    assert.equal(message!.data.toString(), 'fragmented');
  });

  it('a ping, and a close with a code and reason of the page', async () => {
    const { watch, own } = await pair();
    ask(watch, { do: 'ping', data: 'are you there?' });
    await own.until(() => own.pings.length === 1, 3000, 'the ping');
    assert.equal(own.pings[0]!.toString(), 'are you there?');
    ask(watch, { do: 'close', code: 4000, reason: 'goodbye' });
    const close = await own.waitCloseFrame();
    assert.equal(close.code, 4000);
    assert.equal(close.reason, 'goodbye');
  });

  it('an invalid frame goes out as asked (a reserved opcode, RFC 6455 §5.2), with the rule it breaks', async () => {
    const { watch, own } = await pair();
    ask(watch, { do: 'invalid', kind: 'reserved-opcode' });
    await own.waitFrames(1);
    assert.equal(own.frames[0]!.opcode, 0x3);
    await watch.client.until(() => watch.events().some((event) => event.type === 'note'), 3000, 'the note');
    const note = watch.events().find((event) => event.type === 'note')!;
    assert.match(note['text'] as string, /^the server sends 83026869: RFC 6455 §5\.2/);
  });

  it('a page whose connection does not read cannot make the server queue its requests without bound', async () => {
    const test = await server(true);
    const watch = await observer(test.port);
    const own = await RawClient.connect(test.port, { path: `/?explorer=${watch.token}` });
    await eventsOf(watch, 1);
    own.pauseReading();
    for (let i = 0; i < 30; i++) ask(watch, { do: 'fragments', count: 4, size: MAX_REQUESTED_SIZE });
    await watch.client.until(
      () => watch.events().some((event) => event.type === 'error'),
      10_000,
      'a refusal once the connection is behind',
    );
    const error = watch.events().find((event) => event.type === 'error')!;
    assert.equal(error['message'], 'your connection has not read what it was sent');
    const held = Math.max(...[...test.wss.clients].map((client) => client.bufferedAmount));
    assert.ok(held <= 2 * MAX_REQUESTED_SIZE + 64 * 1024, `the server holds ${held} bytes for the connection`);
  });

  it('malformed or refused requests are answered with an error event; nothing is sent, nothing crashes', async () => {
    const { watch, own } = await pair();
    const requests = [
      'not json',
      '42',
      JSON.stringify({ do: 'close', code: 1005 }),
      JSON.stringify({ do: 'fragments', count: 0, size: 10 }),
      JSON.stringify({ do: 'fragments', count: 3, size: 1e9 }),
      JSON.stringify({ do: 'ping', data: 'p'.repeat(126) }),
      JSON.stringify({ do: 'invalid', kind: 'nope' }),
      JSON.stringify({ do: 'launch' }),
    ];
    for (const request of requests) watch.client.sendText(request);
    await watch.client.until(
      () => watch.events().filter((event) => event.type === 'error').length === requests.length,
      3000,
      'an error event for each request',
    );
    own.sendText('still open');
    const [echo] = await own.waitMessages(1);
    assert.equal(echo!.data.toString(), 'still open');
    assert.equal(own.frames.length, 1, 'nothing but the echo reached the connection');
  });
});

/**
 * An observer's stream that takes bytes only while `flowing`: stalled, its writes wait and pile up
 * in the server (as a page that does not read would make them, without depending on how much the
 * kernel buffers). What it was sent is decoded with the test peer's decoder.
 */
class StallingStream extends Duplex {
  flowing = true;
  private readonly held: (() => void)[] = [];
  private head: Buffer | null = Buffer.alloc(0);
  readonly events: Event[] = [];
  private readonly decoder = new FrameDecoder((frame) => {
    if (frame.opcode === Opcode.Text) this.events.push(JSON.parse(frame.payload.toString()) as Event);
  });

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    if (this.head !== null) {
      // The 101 response head, then frames.
      this.head = Buffer.concat([this.head, chunk]);
      const end = headEnd(this.head);
      if (end < 0) return callback();
      chunk = this.head.subarray(end);
      this.head = null;
    }
    this.decoder.push(Buffer.from(chunk));
    if (this.flowing) callback();
    else this.held.push(callback);
  }

  flow(): void {
    this.flowing = true;
    for (const callback of this.held.splice(0)) callback();
  }
}

describe('RFC 6455 §10.4: an observer that does not read', () => {
  it('the server holds at most its limit of events for it, drops the rest and says how many once it reads again', async () => {
    const test = await server(true);
    const stream = new StallingStream();
    test.wss.handleSocket(stream);
    stream.push(handshakeRequest({ path: '/?explorer=observe' }));
    await waitUntil(() => stream.events.length === 1, 3000, 'the hello');
    const own = await RawClient.connect(test.port, { path: `/?explorer=${stream.events[0]!['token'] as string}` });
    await waitUntil(() => stream.events.length === 2, 3000, 'the handshake event');
    stream.flowing = false;
    // Each message makes two frame events of over a kilobyte: 1000 of them are far past the limit.
    for (let i = 0; i < 1000; i++) own.sendText('y'.repeat(1000));
    await own.waitMessages(1000, 20_000);
    const observerSide = [...test.wss.clients].find((client) => client.bufferedAmount > 0);
    assert.ok(observerSide !== undefined, 'the stalled observer has bytes waiting');
    const held = observerSide.bufferedAmount;
    assert.ok(held <= OBSERVER_BUFFER_LIMIT + 4 * 1024, `the server holds ${held} bytes for the observer`);
    stream.flow();
    await waitUntil(() => stream.events.some((event) => event.type === 'dropped'), 5000, 'the count of dropped events');
    const dropped = stream.events.find((event) => event.type === 'dropped')!;
    const frames = stream.events.filter((event) => event.type === 'frame').length;
    assert.equal(frames + (dropped['count'] as number), 2000, 'every frame event was either sent or counted');
    assert.ok((dropped['count'] as number) > 1000, `dropped ${String(dropped['count'])}`);
  });
});

describe('the echo CLI: the explorer on by default, --no-explorer', () => {
  async function cliStatus(args: string[]): Promise<number> {
    const off = args.includes('--no-explorer');
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'src/cli/echo.ts', '--host', '127.0.0.1', '--port', '0', ...args],
      {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    try {
      let output = '';
      child.stdout.setEncoding('utf8');
      const port = await withTimeout(
        new Promise<number>((resolve) =>
          child.stdout.on('data', (chunk: string) => {
            output += chunk;
            const match = /listening on ws:\/\/127\.0\.0\.1:(\d+)\//.exec(output);
            // With the explorer on, the line that announces it follows the one that gives the port.
            if (match !== null && (off || output.includes('protocol explorer'))) resolve(Number(match[1]));
          }),
        ),
        20_000,
        'the CLI to listen',
      );
      const status = (await RawClient.request(port, PLAIN_GET)).response!.status;
      if (off) assert.doesNotMatch(output, /protocol explorer/);
      else assert.match(output, /protocol explorer: http:\/\/127\.0\.0\.1:\d+\//);
      return status;
    } finally {
      child.kill('SIGKILL');
    }
  }

  it('GET / is the page by default, and 400 (upgrades only) with --no-explorer', async () => {
    const [on, off] = await Promise.all([cliStatus([]), cliStatus(['--no-explorer'])]);
    assert.equal(on, 200);
    assert.equal(off, 400);
  });
});

/** A certificate for the HTTPS tests, made once; a string says why there is none (they skip). */
let certificate: TestCertificate | string | undefined;
function testCertificate(): TestCertificate | string {
  if (certificate === undefined) {
    certificate = makeTestCertificate('wsrfc-explorer-tls-');
    if (typeof certificate === 'object') closers.push(() => (certificate as TestCertificate).remove());
  }
  return certificate;
}

interface Page {
  status: number;
  contentType: string;
  body: string;
  /** What carried it: 'h2' or 'http/1.1' (ALPN). */
  protocol: string;
}

/** GET / over HTTP/2 (node:http2's client; ALPN h2). */
async function pageOverH2(session: ClientHttp2Session, path = '/'): Promise<Page> {
  const stream = session.request({ ':method': 'GET', ':path': path }, { endStream: true });
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  const [headers] = (await withTimeout(once(stream, 'response'), 5000, 'the page')) as [Record<string, unknown>];
  await withTimeout(once(stream, 'close'), 5000, 'the end of the page');
  const body = Buffer.concat(chunks).toString();
  return { status: Number(headers[':status']), contentType: String(headers['content-type']), body, protocol: 'h2' };
}

/** GET / over HTTP/1.1 on the same TLS port (node:https, offering only http/1.1 by ALPN). */
function pageOverHttp1(port: number, ca: Buffer, path = '/'): Promise<Page> {
  return withTimeout(
    new Promise<Page>((resolve, reject) => {
      const options = { host: '127.0.0.1', servername: 'localhost', port, path, ca, ALPNProtocols: ['http/1.1'] };
      const request = httpsRequest({ ...options, agent: false }, (response) => {
        let body = '';
        response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            contentType: String(response.headers['content-type']),
            body,
            protocol: String((response.socket as { alpnProtocol?: string | false }).alpnProtocol),
          }),
        );
      });
      request.on('error', reject);
      request.end();
    }),
    5000,
    'the page over HTTP/1.1',
  );
}

describe('the explorer over HTTPS and HTTP/2 (RFC 8441), without a browser', () => {
  it('GET / is the page whether ALPN picks h2 or http/1.1; over HTTP/2 the handshake event is the extended CONNECT, with no key or accept', async (t) => {
    const made = testCertificate();
    if (typeof made === 'string') return void skipBecause(t, made);
    const explorer = new Explorer();
    const wss = new WebSocketServer({
      ...explorer.serverOptions,
      tls: { key: made.key, cert: made.cert },
      http2: true,
      perMessageDeflate: true,
      pingInterval: 0,
    });
    wss.on('connection', (socket, request) => {
      if (explorer.adopt(socket, request)) return;
      socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
    });
    const { port } = await wss.listen(0, '127.0.0.1');
    closers.push(() => wss.close(200));

    const session = await openH2Session(`https://localhost:${port}`, { ca: made.cert });
    for (const page of [await pageOverH2(session), await pageOverHttp1(port, made.cert)]) {
      assert.equal(page.status, 200, page.protocol);
      assert.equal(page.contentType, 'text/html; charset=utf-8', page.protocol);
      assert.match(page.body, /<title>wsrfc protocol explorer<\/title>/, page.protocol);
    }

    // The page's two WebSockets, over HTTP/2 as a browser that loaded it over HTTP/2 opens them.
    const observer = await H2Peer.open(session, '/?explorer=observe');
    const [hello] = await observer.waitMessages(1);
    const token = (JSON.parse(hello!.data.toString()) as Event)['token'] as string;
    const own = await H2Peer.open(session, `/?explorer=${token}`, {
      'sec-websocket-extensions': 'permessage-deflate; client_max_window_bits',
      origin: `https://localhost:${port}`,
    });
    const events = (): Event[] => observer.messages.map((message) => JSON.parse(message.data.toString()) as Event);
    await observer.waitMessages(2);
    const handshake = events()[1]!;
    assert.equal(handshake.type, 'handshake');
    assert.equal(handshake['httpVersion'], '2.0');
    assert.deepEqual(handshake['extendedConnect'], {
      method: 'CONNECT',
      protocol: 'websocket',
      scheme: 'https',
      path: `/?explorer=${token}`,
      authority: `localhost:${port}`,
      status: '200',
    });
    // RFC 8441 §5: no Sec-WebSocket-Key, so nothing to compute an accept from.
    assert.equal(handshake['key'], '');
    assert.equal(handshake['accept'], '');
    assert.match(handshake['request'] as string, /^:method = CONNECT\r\n/m);
    assert.match(handshake['request'] as string, /^:protocol = websocket\r\n/m);
    assert.match(handshake['response'] as string, /^:status = 200\r\n/);
    assert.doesNotMatch(`${handshake['request'] as string}${handshake['response'] as string}`, /sec-websocket-key/i);
    assert.equal(handshake['extensionsOffered'], 'permessage-deflate; client_max_window_bits');
    assert.equal(handshake['extensionsAgreed'], String(own.response['sec-websocket-extensions']));

    // Frames are reported as over HTTP/1.1: a masked text frame in, its echo out.
    own.sendText('over HTTP/2');
    await own.waitMessages(1);
    await observer.waitMessages(4);
    const [inFrame, outFrame] = events().slice(2);
    assert.equal(inFrame!['direction'], 'in');
    assert.equal(inFrame!['text'], 'over HTTP/2');
    assert.equal(inFrame!['masked'], true);
    assert.equal(outFrame!['direction'], 'out');
    assert.equal(outFrame!['text'], 'over HTTP/2');
  });
});

describe('the echo CLI with TLS: the explorer over HTTPS', () => {
  /** The CLI with TLS and `args`; resolves once it has said where it listens. */
  async function tlsCli(made: TestCertificate, args: string[] = []): Promise<{ port: number; output: string }> {
    const tlsArgs = ['--tls-cert', made.certFile, '--tls-key', made.keyFile];
    const child: ChildProcess = spawn(
      process.execPath,
      ['--import', 'tsx', 'src/cli/echo.ts', '--host', '127.0.0.1', '--port', '0', ...tlsArgs, ...args],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    closers.push(() => child.kill('SIGKILL'));
    let output = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    await waitUntil(() => /^protocol explorer: /m.test(output), 20_000, 'the CLI to listen');
    const port = Number(/listening on wss:\/\/127\.0\.0\.1:(\d+)\//.exec(output)?.[1]);
    return { port, output };
  }

  it('the log gives the https:// URL; GET / is the explorer over HTTP/2 and HTTP/1.1, and --page replaces it on both', async (t) => {
    const made = testCertificate();
    if (typeof made === 'string') return void skipBecause(t, made);
    const { port, output } = await tlsCli(made);
    assert.match(output, new RegExp(`^protocol explorer: https://127\\.0\\.0\\.1:${port}/ `, 'm'));
    assert.doesNotMatch(output, /http:\/\//);
    const session = await openH2Session(`https://localhost:${port}`, { ca: made.cert });
    const overH2 = await pageOverH2(session);
    const overHttp1 = await pageOverHttp1(port, made.cert);
    for (const [page, protocol] of [
      [overH2, 'h2'],
      [overHttp1, 'http/1.1'],
    ] as const) {
      assert.equal(page.protocol, protocol);
      assert.equal(page.status, 200, protocol);
      assert.match(page.body, /<title>wsrfc protocol explorer<\/title>/, protocol);
    }

    const file = join(made.dir, 'page.html');
    writeFileSync(file, '<!doctype html><title>my own page</title>');
    const own = await tlsCli(made, ['--page', file]);
    const ownSession = await openH2Session(`https://localhost:${own.port}`, { ca: made.cert });
    for (const page of [await pageOverH2(ownSession), await pageOverHttp1(own.port, made.cert)]) {
      assert.equal(page.status, 200, page.protocol);
      assert.equal(page.body, '<!doctype html><title>my own page</title>', page.protocol);
    }
  });
});
