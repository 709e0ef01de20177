/**
 * `wsrfc connect` (src/cli/connect.ts) against the independent test peer (helpers/peer/: RawServer,
 * which also checks that every frame the client sends is masked, RFC 6455 §5.1), each case a child
 * process on loopback: what it sends for piped lines and commands, what it prints of what arrives,
 * the closing handshake either way, bad input from the server, refusals, the request's fields,
 * --trace, --wait and --timeout, backpressure both ways, and the exit status of each ending.
 * Each case waits for what the program prints or what the peer receives, never for a fixed time.
 */
import assert from 'node:assert/strict';
import { after, afterEach, describe, it } from 'node:test';
import {
  Compressor,
  KiB,
  acceptFor,
  acceptResponse,
  closedPort,
  delay,
  httpResponse,
  upgradeWith,
  type ServerPeer,
} from './helpers/peer/index.js';
import {
  PROGRAM_MS,
  assertMasked,
  assertNoStack,
  closeServers,
  escape,
  killChildren,
  peerServer,
  wsrfc,
} from './helpers/cli-process.js';

afterEach(closeServers);
after(killChildren);

describe('wsrfc connect against the test peer', () => {
  it('piped lines arrive as masked text frames in order; the end of stdin closes with 1000 and waits for the close; exit 0', async () => {
    const server = await peerServer();
    const client = wsrfc(['connect', server.url('/chat?room=1')], 'first\nsecond line\n\nünïcødé ✓\n');
    const peer = await server.nextPeer();
    assert.equal(peer.request!.target, '/chat?room=1');
    const { code, stdout, stderr } = await client.finished();
    assert.equal(code, 0, stderr);
    assert.deepEqual(
      peer.messages.map((m) => [m.data.toString(), m.isBinary]),
      [
        ['first', false],
        ['second line', false],
        ['', false],
        ['ünïcødé ✓', false],
      ],
    );
    assertMasked(peer);
    assert.deepEqual([peer.closeFrame?.code, peer.closeFrame?.reason], [1000, '']);
    assert.match(stdout, /^closed: 1000 Normal Closure, cleanly \(close frames both ways\)$/m);
    assert.equal(stderr, '');
  });

  it("prints what arrives: text after '< ', binary in hex (a long one cut), pings (answered) and pongs", async () => {
    const big = Buffer.alloc(1000, 0xab);
    const server = await peerServer({
      autoPong: true,
      onPeer: (peer) => {
        peer.sendText('from the peer');
        peer.sendBinary(Buffer.from([0, 1, 255]));
        peer.sendBinary(big);
        peer.sendPing('are you there');
      },
    });
    const client = wsrfc(['connect', server.url()]);
    const peer = await server.nextPeer();
    // RFC 6455 §5.5.3: the pong carries the ping's data.
    await peer.until(() => peer.pongs.length === 1, PROGRAM_MS, "the client's pong");
    assert.equal(peer.pongs[0]!.toString(), 'are you there');
    client.child.stdin!.end('/ping hello?\n');
    const { code, stdout } = await client.finished();
    assert.equal(code, 0);
    assert.equal(peer.pings[0]?.toString(), 'hello?', 'the peer saw the ping and its data');
    const lines = stdout.split('\n');
    const at = (line: string): number => {
      const index = lines.indexOf(line);
      assert.ok(index >= 0, `stdout has ${JSON.stringify(line)}: ${stdout}`);
      return index;
    };
    const order = [
      at('< from the peer'),
      at('< binary, 3 bytes: 0001ff'),
      at(`< binary, 1000 bytes: ${'ab'.repeat(32)}…`),
      at('< ping "are you there" (answered with a pong)'),
      at('< pong "hello?"'),
    ];
    assert.deepEqual(
      order,
      [...order].sort((a, b) => a - b),
      'in the order they arrived',
    );
    assertMasked(peer);
  });

  it('/binary sends a binary message; // sends a line starting with /; bad commands are refused and nothing is sent', async () => {
    const server = await peerServer();
    const input = [
      '/binary 00 01 ff',
      '/binary 0G',
      '/close 1005',
      '/close 4000 ' + 'x'.repeat(124),
      '/frob',
      '//frob',
      '',
    ];
    const client = wsrfc(['connect', server.url()], input.join('\n'));
    const peer = await server.nextPeer();
    const { code, stderr } = await client.finished();
    assert.equal(code, 0);
    assert.deepEqual(
      peer.messages.map((m) => [m.isBinary ? m.data.toString('hex') : m.data.toString(), m.isBinary]),
      [
        ['0001ff', true],
        ['/frob', false],
      ],
    );
    assert.match(stderr, /^\/binary takes bytes in hex/m);
    assert.match(stderr, /^\/close: 1005 is not a close code an endpoint may send/m);
    assert.match(stderr, /^\/close: the reason is longer than 123 bytes/m);
    assert.match(stderr, /^unknown command \/frob/m);
    assert.deepEqual([peer.closeFrame?.code, peer.closes.length], [1000, 1], 'one close: the one at the end');
    assertMasked(peer);
  });

  it('/close 4000 bye: the peer gets that close frame, nothing after it is sent; a clean close with 4000 exits 3', async () => {
    const server = await peerServer();
    const client = wsrfc(['connect', server.url()], 'before\n/close 4000 bye\nafter\n');
    const peer = await server.nextPeer();
    const { code, stdout } = await client.finished();
    assert.equal(code, 3);
    assert.deepEqual([peer.closeFrame?.code, peer.closeFrame?.reason], [4000, 'bye']);
    assert.deepEqual(
      peer.messages.map((m) => m.data.toString()),
      ['before'],
    );
    assert.equal(peer.bytesAfterClose, 0, 'nothing after the close frame (§5.5.1)');
    assert.match(stdout, /^closed: 4000 private use "bye", cleanly/m);
    assertMasked(peer);
  });

  it('a server that closes with 1011 ends the program while stdin is still open: the close is answered, exit 3', async () => {
    const server = await peerServer({ onPeer: (peer) => peer.sendClose(1011, 'oops') });
    const client = wsrfc(['connect', server.url()]);
    const peer = await server.nextPeer();
    const { code, stdout } = await client.finished();
    assert.equal(code, 3);
    assert.match(stdout, /^closed: 1011 Internal Error "oops", cleanly/m);
    assert.equal(peer.closeFrame?.code, 1011, 'the client echoed the close code (§5.5.1)');
    assertMasked(peer);
  });

  for (const [name, send, code, closeName] of [
    [
      'a masked frame (RFC 6455 §5.1)',
      (peer: ServerPeer) => peer.sendFrame({ opcode: 0x1, payload: 'x', maskKey: Buffer.from([1, 2, 3, 4]) }),
      1002,
      'Protocol Error',
    ],
    [
      'invalid UTF-8 in a text message (§8.1)',
      (peer: ServerPeer) => peer.sendText(Buffer.from([0x68, 0xc3, 0x28])),
      1007,
      'Invalid Frame Payload Data',
    ],
  ] as const) {
    it(`a server that sends ${name}: the client fails the connection with ${code}, says why, exit 4`, async () => {
      const server = await peerServer({ onPeer: send });
      const client = wsrfc(['connect', server.url()]);
      const peer = await server.nextPeer();
      const { code: status, stdout, stderr } = await client.finished();
      assert.equal(peer.closeFrame?.code, code, "the client's close frame");
      // RFC 6455 §7.1.7: failing the connection is not a clean close, whatever the peer does next.
      assert.equal(status, 4);
      assert.match(stdout, new RegExp(`^closed: ${code} ${closeName}.*, not cleanly`, 'm'));
      assert.match(stderr, /^error: /m);
      assertNoStack(stderr);
      assert.doesNotMatch(stdout, /^< /m, 'nothing delivered');
    });
  }

  it('a server that drops TCP without a close frame: exit 4, "not cleanly"', async () => {
    const server = await peerServer({ onPeer: (peer) => peer.destroy() });
    const { code, stdout } = await wsrfc(['connect', server.url()]).finished();
    assert.equal(code, 4);
    assert.match(stdout, /^closed: 1006 Abnormal Closure, not cleanly/m);
  });

  it('a refused handshake (403) prints the status and the body, exits 1, no stack trace', async () => {
    const server = await peerServer({
      respond: () => httpResponse(403, 'Forbidden', 'no entry without a token', [['Content-Length', '24']]),
    });
    const { code, stdout, stderr } = await wsrfc(['connect', server.url()]).finished();
    assert.equal(code, 1);
    assert.equal(stdout, '');
    assert.match(stderr, /cannot connect to ws:\/\/127\.0\.0\.1:\d+\/: .*403 Forbidden: no entry without a token/);
    assertNoStack(stderr);
  });

  it('nothing listening, a 101 with a wrong Sec-WebSocket-Accept: exit 1 with a sentence, no stack trace', async () => {
    const refused = await wsrfc(['connect', `ws://127.0.0.1:${await closedPort()}/`]).finished();
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /cannot connect to .*ECONNREFUSED/);
    assertNoStack(refused.stderr);
    const server = await peerServer({
      respond: (request) => acceptResponse(request, { accept: 'bm90IHRoZSBhY2NlcHQ=' }),
    });
    const wrong = await wsrfc(['connect', server.url()]).finished();
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /cannot connect to .*Sec-WebSocket-Accept/i);
    assertNoStack(wrong.stderr);
  });

  it('--header, --subprotocol and --origin reach the peer; the subprotocol it picks is printed', async () => {
    const server = await peerServer({ respond: upgradeWith('Sec-WebSocket-Protocol: superchat') });
    const client = wsrfc(
      [
        'connect',
        server.url(),
        '--header',
        'Authorization: Bearer abc',
        '-H',
        'X-Trace: 1',
        '-H',
        'X-Trace: 2',
        '--subprotocol',
        'chat',
        '-s',
        'superchat',
        '--origin',
        'https://example.com',
      ],
      '',
    );
    const peer = await server.nextPeer();
    const { code, stdout } = await client.finished();
    assert.equal(code, 0);
    const request = peer.request!;
    assert.equal(request.header('authorization'), 'Bearer abc');
    assert.equal(request.header('x-trace'), '1, 2');
    assert.equal(request.header('sec-websocket-protocol'), 'chat, superchat');
    assert.equal(request.header('origin'), 'https://example.com');
    assert.match(stdout, /^connected to .*; subprotocol: superchat/m);
  });

  it('permessage-deflate is offered by default; --no-deflate offers no extension', async () => {
    const server = await peerServer();
    await wsrfc(['connect', server.url()], '').finished();
    await wsrfc(['connect', server.url(), '--no-deflate'], '').finished();
    const [offered, plain] = server.requests;
    assert.match(offered!.header('sec-websocket-extensions') ?? '', /^permessage-deflate\b/);
    assert.equal(plain!.header('sec-websocket-extensions'), undefined);
  });

  it('--trace prints the handshake answer and every frame both ways, decoded and explained', async () => {
    const server = await peerServer({ onPeer: (peer) => peer.sendText('hi there') });
    const client = wsrfc(['connect', server.url(), '--trace', '--no-deflate']);
    const peer = await server.nextPeer();
    await client.waitFor(/^< hi there$/m);
    client.child.stdin!.end('back\n');
    const { code, stdout } = await client.finished();
    assert.equal(code, 0);
    const key = peer.request!.key!;
    assert.match(stdout, /^ {3}<- 101 Switching Protocols$/m);
    assert.match(stdout, new RegExp(`^ {3}<- sec-websocket-accept: ${escape(acceptFor(key))}$`, 'm'));
    // In: unmasked, as a server sends (§5.1); out: masked with a key, the masked bytes shown.
    assert.match(stdout, /^<- TEXT +fin=1 rsv=000 unmasked len=8 /m);
    assert.match(stdout, /^ {3}header 8108 \| length 8 in the 7-bit field \| text "hi there"$/m);
    const out = /^-> TEXT +fin=1 rsv=000 mask=([0-9a-f]{8}) len=4 6261636b \|back\|$/m.exec(stdout);
    assert.ok(out !== null, stdout);
    assert.match(
      stdout,
      new RegExp(`^ {3}header 8184${out[1]} \\| length 4 in the 7-bit field \\| masked [0-9a-f]{8}`, 'm'),
    );
    assert.match(stdout, /^-> CLOSE .*\n {3}header 8882[0-9a-f]{8} .*\| close 1000 Normal Closure$/m);
    assert.match(stdout, /^<- CLOSE .*\n {3}header 8802 .*\| close 1000 Normal Closure$/m);
    // The masking key printed is the one on the wire.
    assert.equal(peer.frames[0]!.maskKey?.toString('hex'), out[1]);
  });

  it('--trace explains compressed messages with the window the server keeps (client_no_context_takeover agreed)', async () => {
    // The server keeps its context (RFC 7692 §7.1.1): its second message refers back into the first.
    const text = 'the same words again and again, '.repeat(40);
    const compressor = new Compressor({ contextTakeover: true });
    const server = await peerServer({
      respond: upgradeWith('Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover'),
      onPeer: (peer) => {
        peer.sendCompressed(compressor.compress(Buffer.from(text)));
        peer.sendCompressed(compressor.compress(Buffer.from(text)));
      },
    });
    const client = wsrfc(['connect', server.url(), '--trace']);
    await server.nextPeer();
    await client.waitFor(/(^< the same words.*\n[^]*){2}/m);
    client.child.stdin!.end();
    const { code, stdout } = await client.finished();
    assert.equal(code, 0);
    const explained = stdout.match(/^ {3}header c1.*compressed message: \d+ bytes on the wire, (\d+) inflated/gm) ?? [];
    assert.equal(explained.length, 2, stdout);
    for (const line of explained) assert.match(line, new RegExp(`, ${text.length} inflated`));
    assert.equal(stdout.match(new RegExp(`^< ${escape(text)}$`, 'gm'))?.length, 2);
  });

  it('--wait 2: after the input, the client waits for two messages before it closes', async () => {
    let closedBeforeSecond: boolean | null = null;
    const server = await peerServer({
      autoPong: false,
      onPeer: (peer) => {
        void peer.waitMessages(2, PROGRAM_MS).then(() => {
          peer.sendText('reply 1');
          // The pong proves the client has read reply 1 and is still open; only then comes reply 2.
          peer.sendPing('sync');
          peer.once('pong', () => {
            closedBeforeSecond = peer.closeFrame !== null;
            peer.sendText('reply 2');
          });
        });
      },
    });
    const client = wsrfc(['connect', server.url(), '-x', 'one', '-x', 'two', '--wait', '2'], null);
    const peer = await server.nextPeer();
    const { code, stdout } = await client.finished();
    assert.equal(code, 0);
    assert.equal(closedBeforeSecond, false, 'no close frame before the second reply');
    assert.match(stdout, /^< reply 1\n(?:.*\n)*< reply 2\n(?:.*\n)*closed: 1000/m);
    assert.equal(peer.closeFrame?.code, 1000);
  });

  it('--wait 1 --timeout 300 with a peer that never answers: closes with 1000 anyway and exits 5', async () => {
    const server = await peerServer();
    const client = wsrfc(['connect', server.url(), '--wait', '1', '--timeout', '300'], 'anyone?\n');
    const peer = await server.nextPeer();
    const { code, stderr } = await client.finished();
    assert.equal(code, 5);
    assert.match(stderr, /0 of 1 messages arrived within 300 ms/);
    assert.equal(peer.closeFrame?.code, 1000);
  });

  it('many lines from a pipe all arrive, in order (sending waits for the socket, memory stays bounded)', async () => {
    const server = await peerServer();
    const lines = Array.from({ length: 3000 }, (_, i) => `${i} ${'x'.repeat(1000)}`);
    const client = wsrfc(['connect', server.url(), '--no-deflate'], `${lines.join('\n')}\n`);
    const peer = await server.nextPeer();
    const { code } = await client.finished();
    assert.equal(code, 0);
    assert.equal(peer.messages.length, lines.length);
    assert.ok(
      peer.messages.every((m, i) => m.data.toString() === lines[i]),
      'every line, in order',
    );
  });

  it('a server sending faster than stdout is read: the client stops reading the socket (memory stays bounded), then catches up', async (t) => {
    // 64 MiB of text: more than the kernel buffers on both sides can hold, so that if the client
    // stops reading, some of it must still wait at the server.
    const size = 64 * KiB;
    const count = 1024;
    const text = 'x'.repeat(size - 8);
    const server = await peerServer({
      onPeer: (peer) => {
        for (let i = 0; i < count; i++) peer.sendText(`${String(i).padStart(7, '0')} ${text}`);
        peer.sendClose(1000, 'all sent');
      },
    });
    const client = wsrfc(['connect', server.url(), '--no-deflate']);
    client.child.stdout!.pause();
    const peer = await server.nextPeer();
    // Wait until the bytes stop moving (nothing new for 300 ms), as server-backpressure.test.ts does.
    let last = -1;
    while (peer.socket.writableLength !== last) {
      last = peer.socket.writableLength;
      await delay(300);
    }
    t.diagnostic(`with stdout unread, ${peer.socket.writableLength} of ${count * size} bytes still wait at the server`);
    assert.ok(peer.socket.writableLength > 0, 'the client read everything although its stdout was not read');
    client.child.stdout!.resume();
    const { code, stdout } = await client.finished();
    assert.equal(code, 0);
    const lines = stdout.split('\n').filter((line) => line.startsWith('< '));
    assert.equal(lines.length, count);
    assert.ok(
      lines.every((line, i) => line.startsWith(`< ${String(i).padStart(7, '0')} `) && line.length === size + 2),
      'every message, whole and in order',
    );
  });

  it('bad arguments exit 2 with a sentence: no URL, a URL that is not ws(s), a header without a colon, --timeout alone', async () => {
    const cases: [string[], RegExp][] = [
      [['connect'], /a URL is needed/],
      [['connect', 'ftp://example.com/'], /a WebSocket URL is ws:\/\/ or wss:\/\//],
      [['connect', 'ws://127.0.0.1:1/', '-H', 'no colon'], /--header takes "NAME: VALUE"/],
      [['connect', 'ws://127.0.0.1:1/', '--timeout', '5'], /--timeout goes with --wait/],
      [['connect', 'ws://127.0.0.1:1/', '--wait', 'some'], /--wait takes a whole number/],
    ];
    const runs = await Promise.all(cases.map(([args]) => wsrfc(args, null).finished()));
    runs.forEach(({ code, stderr }, i) => {
      assert.equal(code, 2, cases[i]![0].join(' '));
      assert.match(stderr, cases[i]![1]);
      assertNoStack(stderr);
    });
  });
});
