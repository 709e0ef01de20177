/**
 * RFC 6455 §7: closing the connection, as the server does it over a real socket: the closing
 * handshake started by either side, the server closing TCP first, the timeouts for peers that do
 * not cooperate, aborts, and the 'close' event that fires exactly once whatever happens.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, afterEach, before, describe, it } from 'node:test';
import { ReadyState, WebSocketServer } from '../src/index.js';
import {
  CloseCode,
  Opcode,
  assertClosedOnce,
  assertEchoes,
  connectPair,
  delay,
  startServer,
  trackClose,
  waitUntil,
  withTimeout,
  type TestServer,
} from './helpers/library.js';
import { RawClient, clientFrame, closePayload, destroyRawClients, handshakeRequest } from './helpers/peer/index.js';

afterEach(() => destroyRawClients());

let server: TestServer;
before(async () => {
  server = await startServer({ closeTimeout: 300 });
});
after(() => server.close());

async function open(options: Parameters<typeof RawClient.connect>[2] = {}) {
  const client = await RawClient.connect(server.port, {}, options);
  const connection = await server.connectionOf(client);
  return { client, connection, ws: connection.ws };
}

describe('RFC 6455 §7.1.2, §5.5.1: the client starts the closing handshake', () => {
  for (const [code, reason] of [
    [1000, 'done'],
    [1001, ''],
    [3000, 'library code'],
    [4999, 'é'.repeat(61) + 'x'],
  ] as [number, string][]) {
    it(`close ${code} "${reason.length > 10 ? `${reason.slice(0, 10)}…` : reason}": the server echoes code and reason, closes TCP first, and reports a clean close`, async () => {
      const { client, connection } = await open();
      client.sendClose(code, reason);
      const close = await client.waitCloseFrame();
      assert.equal(close.code, code, '§5.5.1: "it typically echos the status code it received"');
      assert.equal(close.reason, reason);
      await client.waitClosed();
      assert.equal(
        client.peerEndedFirst,
        true,
        '§7.1.1: "the server SHOULD close the underlying TCP connection first"',
      );
      assert.equal(client.bytesAfterClose, 0);
      const record = await assertClosedOnce(connection, code, true);
      assert.equal(record.reason, reason);
      assert.equal(connection.ws.readyState, ReadyState.CLOSED);
    });
  }

  it('an empty close frame is answered with an empty close frame, and reported as 1005 (§7.1.5)', async () => {
    const { client, connection } = await open();
    client.sendClose();
    await client.waitCloseFrame();
    const frame = client.frames.find((f) => f.opcode === Opcode.Close)!;
    assert.equal(frame.payload.length, 0, 'no code in the answer: 1005 is never sent on the wire (§7.4.1)');
    await client.waitClosed();
    assert.equal(client.peerEndedFirst, true);
    await assertClosedOnce(connection, CloseCode.NoStatusReceived, true);
  });

  it('frames after the client’s close frame are ignored (§5.5.1: the close is the last frame)', async () => {
    const { client, connection } = await open();
    const messages: string[] = [];
    connection.ws.on('message', (data) => messages.push(data.toString()));
    client.write(
      Buffer.concat([
        clientFrame({ opcode: Opcode.Close, payload: closePayload(1000) }),
        clientFrame({ opcode: Opcode.Text, payload: 'too late' }),
      ]),
    );
    await client.waitClosed();
    await assertClosedOnce(connection, 1000, true);
    assert.deepEqual(messages, []);
    assert.equal(client.messages.length, 0);
  });

  it('a close frame followed at once by the client’s FIN: the server still answers with its close frame, and the close is clean', async () => {
    const { client, connection } = await open({ endOnPeerEnd: false });
    client.sendClose(1000, 'half');
    client.end();
    const close = await client.waitCloseFrame();
    assert.deepEqual([close.code, close.reason], [1000, 'half']);
    await client.waitPeerEnd();
    const record = await assertClosedOnce(connection, 1000, true);
    assert.equal(record.reason, 'half');
  });

  it('readyState: OPEN, then CLOSING when the close frame arrives, then CLOSED', async () => {
    const { client, ws } = await open({ endOnPeerEnd: false });
    assert.equal(ws.readyState, ReadyState.OPEN);
    client.sendClose(1000);
    await client.waitCloseFrame();
    // We hold our side of TCP open: the server has answered and waits for our FIN.
    assert.equal(ws.readyState, ReadyState.CLOSING);
    client.end();
    await once(ws, 'close');
    assert.equal(ws.readyState, ReadyState.CLOSED);
  });

  it('a peer that answers nothing after its close frame (keeps TCP half-open) is dropped after closeTimeout', async () => {
    const { client, connection } = await open({ endOnPeerEnd: false });
    const started = Date.now();
    client.sendClose(1000, 'bye');
    await client.waitCloseFrame();
    await client.waitPeerEnd();
    const record = await withTimeout(connection.closed, 3000, "'close'");
    const elapsed = record.at - started;
    assert.ok(elapsed >= 200 && elapsed < 2500, `closed after ${elapsed} ms with closeTimeout 300`);
    assert.equal(record.code, 1000);
    assert.equal(connection.closes.length, 1);
  });
});

describe('RFC 6455 §7.1.2: the server starts the closing handshake', () => {
  it('ws.close(4000, "bye"): close frame, the client answers, the server closes TCP, wasClean', async () => {
    const { client, connection, ws } = await open();
    ws.close(4000, 'bye');
    assert.equal(ws.readyState, ReadyState.CLOSING);
    const close = await client.waitCloseFrame();
    assert.equal(close.code, 4000);
    assert.equal(close.reason, 'bye');
    assert.equal(client.closed, false);
    client.sendClose(4000, 'bye');
    await client.waitClosed();
    assert.equal(client.peerEndedFirst, true, 'the server closes TCP first');
    const record = await assertClosedOnce(connection, 4000, true);
    assert.equal(record.reason, 'bye');
    assert.equal(ws.readyState, ReadyState.CLOSED);
  });

  it('messages sent before close() go out before the close frame, and nothing after it', async () => {
    const { client, ws } = await open();
    ws.send('last words');
    ws.send(Buffer.from([1, 2, 3]));
    ws.close(1000);
    assert.equal(ws.send('after close'), false);
    const close = await client.waitCloseFrame();
    assert.equal(close.code, 1000);
    assert.deepEqual(
      client.messages.map((m) => m.data.toString('hex')),
      [Buffer.from('last words').toString('hex'), '010203'],
    );
    assert.equal(client.frames.at(-1)!.opcode, Opcode.Close);
    client.sendClose(1000);
    await client.waitClosed();
    assert.equal(client.bytesAfterClose, 0);
  });

  it('data the client sends before answering the close is still delivered, but not echoed (no data after a close frame)', async () => {
    const { client, connection, ws } = await open();
    const received: string[] = [];
    ws.on('message', (data) => received.push(data.toString()));
    ws.close(1000);
    await client.waitCloseFrame();
    client.sendText('in flight');
    client.sendClose(1000);
    await client.waitClosed();
    await assertClosedOnce(connection, 1000, true);
    assert.deepEqual(received, ['in flight']);
    assert.equal(client.bytesAfterClose, 0, 'the echo handler’s send after close sent nothing');
  });

  it('a silent peer (never answers the close) is destroyed after closeTimeout: code 1006, wasClean false', async () => {
    const { client, connection, ws } = await open({ endOnPeerEnd: false });
    const started = Date.now();
    ws.close(4001, 'no answer expected');
    await client.waitCloseFrame();
    const record = await withTimeout(connection.closed, 3000, "'close'");
    const elapsed = record.at - started;
    assert.ok(elapsed >= 250, `closed after ${elapsed} ms, before closeTimeout (300 ms)`);
    assert.ok(elapsed < 2500, `closed after ${elapsed} ms`);
    assert.equal(record.code, CloseCode.Abnormal);
    assert.equal(record.wasClean, false);
    await client.waitPeerEnd();
    await delay(20);
    assert.equal(connection.closes.length, 1);
  });

  it('close() with an invalid code or a reason over 123 bytes throws, and the connection stays open', async () => {
    const { client, ws } = await open();
    for (const code of [999, 1004, 1005, 1006, 1015, 2000, 5000]) {
      assert.throws(() => ws.close(code), RangeError, `code ${code}`);
    }
    assert.throws(() => ws.close(1000, 'x'.repeat(124)), RangeError);
    assert.equal(ws.readyState, ReadyState.OPEN);
    await assertEchoes(client);
  });

  it('close() with no code sends an empty close frame', async () => {
    const { client, connection, ws } = await open();
    ws.close();
    await client.waitCloseFrame();
    assert.equal(client.frames.find((f) => f.opcode === Opcode.Close)!.payload.length, 0);
    client.sendClose();
    await client.waitClosed();
    await assertClosedOnce(connection, CloseCode.NoStatusReceived, true);
  });
});

describe('aborting, and calls that must be harmless', () => {
  it('terminate(): the socket is destroyed at once, no close frame, code 1006, wasClean false', async () => {
    const { client, connection, ws } = await open();
    ws.terminate();
    assert.equal(ws.readyState, ReadyState.CLOSING);
    await client.waitClosed();
    assert.equal(client.closeFrame, null);
    await assertClosedOnce(connection, CloseCode.Abnormal, false);
    assert.equal(ws.readyState, ReadyState.CLOSED);
  });

  it('close() twice sends one close frame; close event once', async () => {
    const { client, connection, ws } = await open();
    ws.close(1000, 'one');
    ws.close(1000, 'two');
    ws.close(4000);
    await client.waitCloseFrame();
    client.sendClose(1000, 'one');
    await client.waitClosed();
    await assertClosedOnce(connection, 1000, true);
    assert.equal(client.frames.filter((f) => f.opcode === Opcode.Close).length, 1);
    assert.equal(client.closeFrame!.reason, 'one');
  });

  it('close() after terminate(), terminate() after close(), and both after CLOSED do nothing', async () => {
    const a = await open();
    a.ws.terminate();
    a.ws.close(1000);
    a.ws.terminate();
    await assertClosedOnce(a.connection, CloseCode.Abnormal, false);
    a.ws.close(1000);
    a.ws.terminate();
    a.ws.close();

    const b = await open();
    b.ws.close(1000);
    b.ws.terminate();
    b.ws.close(1000);
    await assertClosedOnce(b.connection, CloseCode.Abnormal, false);
    b.ws.terminate();
    await delay(20);
    assert.equal(b.connection.closes.length, 1);
  });

  it('the peer destroys its socket without a close frame: 1006, wasClean false', async () => {
    const { client, connection } = await open();
    client.destroy();
    await assertClosedOnce(connection, CloseCode.Abnormal, false);
  });

  it('the peer ends TCP (FIN) without a close frame: 1006, and the server closes its side too', async () => {
    const { client, connection } = await open({ endOnPeerEnd: false });
    client.end();
    await assertClosedOnce(connection, CloseCode.Abnormal, false);
    await client.waitClosed();
  });

  it('the peer resets the connection (RST), with no error listener attached: 1006, no crash, no uncaught error', async () => {
    const wss = new WebSocketServer();
    const closed = new Promise<[number, string, boolean]>((resolve) => {
      wss.on('connection', (ws) => {
        // Deliberately no 'error' listener.
        ws.on('close', (code, reason, wasClean) => resolve([code, reason, wasClean]));
        ws.send(Buffer.alloc(512 * 1024));
      });
    });
    const { port } = await wss.listen(0, '127.0.0.1');
    try {
      const client = await RawClient.connect(port);
      client.sendText('hello');
      client.reset();
      const [code, , wasClean] = await withTimeout(closed, 3000, "'close'");
      assert.equal(code, CloseCode.Abnormal);
      assert.equal(wasClean, false);
      await delay(50);
    } finally {
      await wss.close(100);
    }
  });

  it('a reset with an error listener: the error is reported, then close 1006 once', async () => {
    const { client, connection, ws } = await open();
    ws.send(Buffer.alloc(2 * 1024 * 1024));
    client.pauseReading();
    await delay(20);
    client.reset();
    await assertClosedOnce(connection, CloseCode.Abnormal, false);
  });
});

describe('sending on a closing or closed connection', () => {
  it('send() after close() returns false, calls back with an error, does not throw', async () => {
    const { client, ws } = await open();
    ws.close(1000);
    const errors: (Error | undefined)[] = [];
    assert.equal(
      ws.send('x', (error) => errors.push(error)),
      false,
    );
    assert.equal(
      ws.send(Buffer.alloc(10), { binary: true }, (error) => errors.push(error)),
      false,
    );
    ws.ping('p', (error) => errors.push(error));
    await assert.rejects(ws.sendAsync('y'));
    await delay(5);
    assert.equal(errors.length, 3);
    for (const error of errors) assert.ok(error instanceof Error, 'error instanceof Error');
    client.sendClose(1000);
    await client.waitClosed();
  });

  it('send() after the close event returns false and calls back with an error', async () => {
    const { client, connection, ws } = await open();
    client.destroy();
    await connection.closed;
    const error = await new Promise<Error | undefined>((resolve) => {
      assert.equal(ws.send('x', resolve), false);
    });
    assert.ok(error instanceof Error, 'error instanceof Error');
    assert.doesNotThrow(() => ws.pong('late'));
    await assert.rejects(ws.sendAsync('late'));
  });

  it('a send callback reports success only for data actually handed to the OS: queued data lost to terminate() gets an error', async () => {
    const { client, connection, ws } = await open();
    client.pauseReading();
    const results: (Error | undefined)[] = [];
    // Far more than the kernel buffers take (a few MiB on loopback): most of it is still queued
    // in the process when the socket goes.
    const count = 16;
    for (let i = 0; i < count; i++) ws.send(Buffer.alloc(1024 * 1024, i), (error) => results.push(error));
    await delay(100);
    ws.terminate();
    await connection.closed;
    await waitUntil(() => results.length === count, 3000, 'every send callback');
    // Whatever the OS had accepted still reaches the client: read it all.
    client.resumeReading();
    await client.until(() => client.peerEnded, 3000, 'the end of the stream');
    const succeeded = results.filter((e) => e === undefined).length;
    assert.ok(
      succeeded <= client.messages.length,
      `${succeeded} of ${count} send callbacks reported success, but only ${client.messages.length} messages ever left the process`,
    );
  });
});

describe('RFC 6455 §7.1.1-§7.1.4 between our client and our server', () => {
  it('the client closes: both sides report the same code and reason, cleanly', async () => {
    const { ws, connection } = await connectPair(server);
    const client = trackClose(ws);
    ws.close(1000, 'client done');
    const [clientRecord, serverRecord] = await withTimeout(
      Promise.all([client.closed, connection.closed]),
      3000,
      'both close events',
    );
    assert.deepEqual([clientRecord.code, clientRecord.reason, clientRecord.wasClean], [1000, 'client done', true]);
    assert.deepEqual([serverRecord.code, serverRecord.reason, serverRecord.wasClean], [1000, 'client done', true]);
  });

  it('the server closes: both sides report the same code and reason, cleanly', async () => {
    const { ws, connection } = await connectPair(server);
    const client = trackClose(ws);
    connection.ws.close(4002, 'server done');
    const [clientRecord, serverRecord] = await withTimeout(
      Promise.all([client.closed, connection.closed]),
      3000,
      'both close events',
    );
    assert.deepEqual([clientRecord.code, clientRecord.reason, clientRecord.wasClean], [4002, 'server done', true]);
    assert.deepEqual([serverRecord.code, serverRecord.reason, serverRecord.wasClean], [4002, 'server done', true]);
  });
});

describe("closing from the 'connection' handler", () => {
  it('send() then close() in the handler: the client gets the message, then the close frame, right after the 101', async () => {
    const wss = new WebSocketServer();
    const records: ReturnType<typeof trackClose>[] = [];
    wss.on('connection', (ws) => {
      records.push(trackClose(ws));
      ws.send('welcome');
      ws.close(1008, 'not today');
    });
    const { port } = await wss.listen(0, '127.0.0.1');
    try {
      const client = await RawClient.connect(port);
      const close = await client.waitCloseFrame();
      assert.deepEqual([close.code, close.reason], [1008, 'not today']);
      assert.deepEqual(
        client.messages.map((m) => m.data.toString()),
        ['welcome'],
      );
      client.sendClose(1008);
      await client.waitClosed();
      assert.equal(client.peerEndedFirst, true);
      const record = await withTimeout(records[0]!.closed, 2000, 'close');
      assert.deepEqual([record.code, record.wasClean], [1008, true]);
    } finally {
      await wss.close(100);
    }
  });

  it('terminate() in the handler, with frames already received in the same segment: one close event (1006), no crash', async () => {
    const wss = new WebSocketServer();
    const records: ReturnType<typeof trackClose>[] = [];
    const messages: string[] = [];
    wss.on('connection', (ws) => {
      records.push(trackClose(ws));
      ws.on('message', (data) => {
        messages.push(data.toString());
        ws.send(data);
      });
      ws.terminate();
    });
    const { port } = await wss.listen(0, '127.0.0.1');
    try {
      const client = await RawClient.open(port);
      client.write(Buffer.concat([handshakeRequest(), clientFrame({ opcode: Opcode.Text, payload: 'early' })]));
      await client.waitClosed();
      const record = await withTimeout(records[0]!.closed, 2000, 'close');
      await delay(20);
      assert.equal(records[0]!.closes.length, 1);
      assert.deepEqual([record.code, record.wasClean], [CloseCode.Abnormal, false]);
      assert.equal(client.messages.length, 0, 'nothing echoed on a terminated connection');
      assert.equal(wss.clients.size, 0);
    } finally {
      await wss.close(100);
    }
  });
});
