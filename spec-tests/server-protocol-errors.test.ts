/**
 * RFC 6455 §7.1.7 "Fail the WebSocket Connection", over a real socket: every protocol violation the
 * core detects makes the server send a close frame with the right code (§7.4.1), end TCP, and
 * report 'close' exactly once, while its other connections carry on.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { ProtocolError, WebSocketServer } from '../src/index.js';
import { CloseCode, Opcode, assertClosedOnce, assertEchoes, startServer, type TestServer } from './helpers/library.js';
import { RawClient, clientFrame, closePayload, destroyRawClients } from './helpers/peer/index.js';

const { ProtocolError: PROTOCOL, InvalidPayload: INVALID_DATA, MessageTooBig: TOO_BIG } = CloseCode;

afterEach(() => destroyRawClients());

/**
 * Connect a raw client and a bystander, send `bytes` (or run `send`) on the first, and check the
 * whole failure: the close frame's code, nothing after it, the server ending TCP first, one
 * 'close' event with the code, an 'error' event with a ProtocolError, and the bystander unaffected.
 */
async function expectFailure(
  server: TestServer,
  send: Buffer | ((client: RawClient) => Promise<void> | void),
  code: number,
): Promise<RawClient> {
  const bystander = await RawClient.connect(server.port);
  const client = await RawClient.connect(server.port);
  const connection = await server.connectionOf(client);
  if (Buffer.isBuffer(send)) client.write(send);
  else await send(client);

  const close = await client.waitCloseFrame();
  assert.equal(close.code, code, `close code ${close.code} "${close.reason}", expected ${code}`);
  assert.deepEqual(client.protocolErrors, [], 'the close frame itself is well formed');
  await client.waitClosed();
  assert.equal(client.peerEndedFirst, true, 'the server ends the TCP connection (§7.1.1: the server closes first)');
  assert.equal(client.bytesAfterClose, 0, 'nothing is sent after the close frame (§5.5.1)');

  const record = await assertClosedOnce(connection, code);
  assert.equal(record.wasClean, false, 'a failed connection is not closed cleanly');
  assert.equal(
    connection.errors.length,
    1,
    `one 'error' event, got ${connection.errors.map((e) => e.message).join('; ')}`,
  );
  const error = connection.errors[0]!;
  assert.ok(error instanceof ProtocolError, `a ProtocolError, got ${error.name}: ${error.message}`);
  assert.equal(error.closeCode, code);
  assert.equal(server.wss.clients.has(connection.ws), false, 'removed from the registry');

  await assertEchoes(bystander);
  return client;
}

function withFirstByte(frame: Buffer, orMask: number): Buffer {
  frame[0] = frame[0]! | orMask;
  return frame;
}

describe('RFC 6455 §7.1.7, §7.4.1: protocol errors close with 1002', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  it('§5.1: an unmasked frame from the client', async () => {
    await expectFailure(server, clientFrame({ opcode: Opcode.Text, payload: 'not masked', maskKey: null }), PROTOCOL);
  });

  for (const opcode of [0x3, 0x7, 0xb, 0xf]) {
    it(`§5.2: reserved opcode 0x${opcode.toString(16)}`, async () => {
      await expectFailure(server, clientFrame({ opcode, payload: 'x' }), PROTOCOL);
    });
  }

  for (const [name, bit] of [
    ['RSV1', 0x40],
    ['RSV2', 0x20],
    ['RSV3', 0x10],
  ] as const) {
    it(`§5.2: ${name} set with no extension negotiated`, async () => {
      await expectFailure(server, withFirstByte(clientFrame({ opcode: Opcode.Text, payload: 'x' }), bit), PROTOCOL);
    });
  }

  it('§5.5: a control frame (ping) with a 126-byte payload', async () => {
    await expectFailure(server, clientFrame({ opcode: Opcode.Ping, payload: Buffer.alloc(126) }), PROTOCOL);
  });

  it('§5.5: a close frame with a 126-byte payload', async () => {
    await expectFailure(
      server,
      clientFrame({ opcode: Opcode.Close, payload: closePayload(1000, 'r'.repeat(124)) }),
      PROTOCOL,
    );
  });

  it('§5.5: a fragmented control frame (ping without FIN)', async () => {
    await expectFailure(server, clientFrame({ opcode: Opcode.Ping, payload: 'p', fin: false }), PROTOCOL);
  });

  it('§5.4: a continuation frame with no message open', async () => {
    await expectFailure(server, clientFrame({ opcode: Opcode.Continuation, payload: 'orphan' }), PROTOCOL);
  });

  it('§5.4: a continuation after a complete message', async () => {
    await expectFailure(
      server,
      Buffer.concat([
        clientFrame({ opcode: Opcode.Text, payload: 'done' }),
        clientFrame({ opcode: Opcode.Continuation, payload: 'more' }),
      ]),
      PROTOCOL,
    );
  });

  it('§5.4: a new data frame while a fragmented message is open', async () => {
    await expectFailure(
      server,
      Buffer.concat([
        clientFrame({ opcode: Opcode.Text, payload: 'start', fin: false }),
        clientFrame({ opcode: Opcode.Binary, payload: 'intruder' }),
      ]),
      PROTOCOL,
    );
  });

  it('§5.2: a 64-bit length with the most significant bit set', async () => {
    // FIN+binary, MASK + 127, then 0x80 00 00 00 00 00 00 01, a key; no payload needed.
    await expectFailure(server, Buffer.from([0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4]), PROTOCOL);
  });

  for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535]) {
    it(`§7.4: a close frame with the invalid code ${code}`, async () => {
      await expectFailure(server, clientFrame({ opcode: Opcode.Close, payload: closePayload(code) }), PROTOCOL);
    });
  }

  it('§5.5.1: a close frame with a 1-byte payload', async () => {
    await expectFailure(server, clientFrame({ opcode: Opcode.Close, payload: Buffer.from([0x03]) }), PROTOCOL);
  });

  it('a violation in the middle of valid traffic: earlier messages are echoed, nothing after', async () => {
    const client = await expectFailure(
      server,
      Buffer.concat([
        clientFrame({ opcode: Opcode.Text, payload: 'one' }),
        clientFrame({ opcode: Opcode.Text, payload: 'two' }),
        clientFrame({ opcode: 0x5, payload: 'bad' }),
        clientFrame({ opcode: Opcode.Text, payload: 'three' }),
      ]),
      PROTOCOL,
    );
    assert.deepEqual(
      client.messages.map((m) => m.data.toString()),
      ['one', 'two'],
    );
  });
});

describe('RFC 6455 §8.1: invalid UTF-8 closes with 1007', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  const invalid: [string, Buffer][] = [
    ['a lone continuation byte', Buffer.from([0x61, 0x80, 0x62])],
    ['an overlong encoding of "/"', Buffer.from([0xc0, 0xaf])],
    ['a UTF-16 surrogate (U+D800)', Buffer.from([0xed, 0xa0, 0x80])],
    ['a code point above U+10FFFF', Buffer.from([0xf4, 0x90, 0x80, 0x80])],
    ['the byte 0xFF', Buffer.from([0xff])],
  ];
  for (const [name, bytes] of invalid) {
    it(`a single text frame with ${name}`, async () => {
      await expectFailure(server, clientFrame({ opcode: Opcode.Text, payload: bytes }), INVALID_DATA);
    });
  }

  it('a text message that ends in the middle of a multi-byte character', async () => {
    await expectFailure(
      server,
      clientFrame({ opcode: Opcode.Text, payload: Buffer.from([0x61, 0xe2, 0x82]) }),
      INVALID_DATA,
    );
  });

  it('a fragmented text message whose fragments join into invalid UTF-8', async () => {
    await expectFailure(
      server,
      Buffer.concat([
        clientFrame({ opcode: Opcode.Text, payload: Buffer.from([0x61, 0xe2]), fin: false }),
        clientFrame({ opcode: Opcode.Continuation, payload: Buffer.from([0x28, 0xa1]), fin: true }),
      ]),
      INVALID_DATA,
    );
  });

  it('fail fast, single frame: the close arrives before the rest of a 1 MiB frame is sent', async () => {
    const payload = Buffer.alloc(1024 * 1024, 0x61);
    payload[100] = 0xff;
    const frame = clientFrame({ opcode: Opcode.Text, payload });
    await expectFailure(
      server,
      async (client) => {
        // Header, key and the first 1000 payload bytes (with the invalid byte) only.
        client.write(frame.subarray(0, 14 + 1000));
        await client.waitCloseFrame();
      },
      INVALID_DATA,
    );
  });

  it('fail fast, fragmented: the close arrives after the first bad fragment, before the message ends', async () => {
    await expectFailure(
      server,
      async (client) => {
        client.sendFrame({ opcode: Opcode.Text, payload: 'valid start, ', fin: false });
        client.sendFrame({ opcode: Opcode.Continuation, payload: Buffer.from([0x62, 0xc3, 0x28]), fin: false });
        await client.waitCloseFrame();
        assert.equal(client.messages.length, 0);
      },
      INVALID_DATA,
    );
  });

  it('§5.5.1: a close frame whose reason is not UTF-8', async () => {
    await expectFailure(
      server,
      clientFrame({
        opcode: Opcode.Close,
        payload: Buffer.concat([closePayload(1000), Buffer.from([0xce, 0xba, 0xe1, 0xbd])]),
      }),
      INVALID_DATA,
    );
  });
});

describe('RFC 6455 §10.4: size limits close with 1009', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({ maxFramePayload: 1000, maxMessageSize: 2500 });
  });
  after(() => server.close());

  it('a frame of maxFramePayload bytes is accepted', async () => {
    const client = await RawClient.connect(server.port);
    client.sendBinary(Buffer.alloc(1000, 7));
    const [message] = await client.waitMessages(1);
    assert.equal(message!.data.length, 1000);
  });

  it('a frame over maxFramePayload: 1009 from its header alone', async () => {
    await expectFailure(
      server,
      async (client) => {
        const frame = clientFrame({ opcode: Opcode.Binary, payload: Buffer.alloc(1001) });
        client.write(frame.subarray(0, 8));
        await client.waitCloseFrame();
      },
      TOO_BIG,
    );
  });

  it('a message over maxMessageSize in frames each within maxFramePayload', async () => {
    await expectFailure(
      server,
      async (client) => {
        client.sendFrame({ opcode: Opcode.Text, payload: 'a'.repeat(1000), fin: false });
        client.sendFrame({ opcode: Opcode.Continuation, payload: 'a'.repeat(1000), fin: false });
        client.sendFrame({ opcode: Opcode.Continuation, payload: 'a'.repeat(501), fin: true });
        await client.waitCloseFrame();
        assert.equal(client.messages.length, 0);
      },
      TOO_BIG,
    );
  });

  it('a message of exactly maxMessageSize is accepted', async () => {
    const client = await RawClient.connect(server.port);
    client.sendFrame({ opcode: Opcode.Text, payload: 'a'.repeat(1000), fin: false });
    client.sendFrame({ opcode: Opcode.Continuation, payload: 'a'.repeat(1000), fin: false });
    client.sendFrame({ opcode: Opcode.Continuation, payload: 'a'.repeat(500), fin: true });
    const [message] = await client.waitMessages(1);
    assert.equal(message!.data.length, 2500);
  });

  it('a 64-bit length of 2^40 is refused at once (no attempt to buffer it)', async () => {
    await expectFailure(server, Buffer.from([0x82, 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 9, 9, 9, 9]), TOO_BIG);
  });
});

describe("a protocol error on a connection with no 'error' listener", () => {
  it('still closes with the right code, and nothing is thrown', async () => {
    const wss = new WebSocketServer();
    const closed = new Promise<number>((resolve) =>
      wss.on('connection', (ws) => ws.on('close', (code) => resolve(code))),
    );
    const { port } = await wss.listen(0, '127.0.0.1');
    try {
      const client = await RawClient.connect(port);
      client.sendFrame({ opcode: Opcode.Text, payload: 'unmasked', maskKey: null });
      assert.equal((await client.waitCloseFrame()).code, PROTOCOL);
      assert.equal(await closed, PROTOCOL);
    } finally {
      destroyRawClients();
      await wss.close(100);
    }
  });
});
