/**
 * The server's ping loop (RFC 6455 §5.5.2 "A Ping frame MAY serve either as a keepalive or as a
 * means to verify that the remote endpoint is still responsive"; §5.5.3 pong): a ping every
 * pingInterval, and a peer from which nothing at all arrives for pongTimeout is dropped.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { afterEach, describe, it } from 'node:test';
import { ConnectionTimeoutError } from '../src/index.js';
import { CloseCode, connectPair, delay, startServer, withTimeout, type TestServer } from './helpers/library.js';
import { RawClient, destroyRawClients } from './helpers/peer/index.js';

const servers: TestServer[] = [];
afterEach(async () => {
  destroyRawClients();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function server(options: Parameters<typeof startServer>[0]): Promise<TestServer> {
  const s = await startServer(options);
  servers.push(s);
  return s;
}

describe('RFC 6455 §5.5.2: the keepalive ping loop (pingInterval 50 ms, pongTimeout 200 ms)', () => {
  it('a silent peer (never answers pings, never sends) is dropped: close 1006, wasClean false, after pings were sent', async () => {
    const s = await server({ pingInterval: 50, pongTimeout: 200 });
    const client = await RawClient.connect(s.port, {}, { autoPong: false });
    const started = Date.now();
    const connection = await s.connectionOf(client);
    const record = await withTimeout(connection.closed, 3000, 'the silent peer to be dropped');
    const elapsed = record.at - started;
    assert.equal(record.code, CloseCode.Abnormal);
    assert.equal(record.wasClean, false);
    assert.ok(elapsed >= 150, `dropped after ${elapsed} ms, before pongTimeout (200 ms)`);
    assert.ok(elapsed < 2000, `dropped after ${elapsed} ms, long after pongTimeout (200 ms)`);
    assert.ok(client.pings.length >= 1, `the server pinged the peer (${client.pings.length} pings)`);
    assert.equal(connection.closes.length, 1);
    const timeout = connection.errors.find((e) => e instanceof ConnectionTimeoutError);
    assert.ok(
      timeout instanceof ConnectionTimeoutError,
      `a ConnectionTimeoutError was reported (${connection.errors.map((e) => e.message).join('; ')})`,
    );
    assert.equal(timeout.reason, 'pong');
    await client.waitPeerEnd();
  });

  it('a peer that answers every ping stays connected well past pongTimeout (4x)', async () => {
    const s = await server({ pingInterval: 50, pongTimeout: 200 });
    const client = await RawClient.connect(s.port, {}, { autoPong: true });
    const connection = await s.connectionOf(client);
    const pongs: Buffer[] = [];
    connection.ws.on('pong', (data) => pongs.push(data));
    await delay(800);
    assert.equal(connection.closes.length, 0, 'still connected');
    assert.equal(client.closed || client.peerEnded, false);
    assert.ok(client.pings.length >= 4, `pinged regularly (${client.pings.length} pings in 800 ms)`);
    assert.ok(pongs.length >= 3, `the server saw the pongs (${pongs.length})`);
    // The pong carries the ping's payload (§5.5.3), and the connection still works.
    client.sendText('alive');
    await client.waitMessages(1);
  });

  it('a peer that never pongs but keeps sending data frames stays alive (any frame shows it is there)', async () => {
    const s = await server({ pingInterval: 50, pongTimeout: 200 });
    const client = await RawClient.connect(s.port, {}, { autoPong: false });
    const connection = await s.connectionOf(client);
    const until = Date.now() + 800;
    let sent = 0;
    while (Date.now() < until) {
      client.sendText(`tick ${sent++}`);
      await delay(40);
    }
    assert.equal(connection.closes.length, 0, 'still connected');
    assert.ok(client.pings.length >= 3, `pinged anyway (${client.pings.length})`);
    assert.equal(client.pongs.length, 0);
    await client.until(() => client.messages.length === sent, 3000, 'every echo');
  });

  it('a peer that stops answering is dropped after it goes quiet, not before', async () => {
    const s = await server({ pingInterval: 50, pongTimeout: 200 });
    const client = await RawClient.connect(s.port, {}, { autoPong: false });
    const connection = await s.connectionOf(client);
    // Active for 400 ms (longer than pongTimeout), then silent.
    const activeUntil = Date.now() + 400;
    while (Date.now() < activeUntil) {
      client.sendPong('unsolicited');
      await delay(40);
    }
    const quietFrom = Date.now();
    assert.equal(connection.closes.length, 0, 'not dropped while active');
    const record = await withTimeout(connection.closed, 3000, 'the drop');
    const quiet = record.at - quietFrom;
    assert.ok(quiet >= 100 && quiet < 2000, `dropped ${quiet} ms after going quiet`);
    assert.equal(record.code, CloseCode.Abnormal);
  });

  it('our client answers pings by itself (autoPong) and stays connected', async () => {
    const s = await server({ pingInterval: 50, pongTimeout: 200 });
    const { ws, connection } = await connectPair(s);
    try {
      const pings: Buffer[] = [];
      ws.on('ping', (data) => pings.push(data));
      await delay(600);
      assert.equal(connection.closes.length, 0);
      assert.ok(pings.length >= 3, `${pings.length} pings`);
      const echoed = once(ws, 'message');
      ws.send('still here');
      assert.equal(String((await withTimeout(echoed, 2000, 'echo'))[0]), 'still here');
    } finally {
      ws.terminate();
    }
  });
});

describe('pingInterval 0 turns the ping loop off', () => {
  it('no pings, and a silent peer is not dropped however small pongTimeout is', async () => {
    const s = await server({ pingInterval: 0, pongTimeout: 50 });
    const client = await RawClient.connect(s.port, {}, { autoPong: false });
    const connection = await s.connectionOf(client);
    await delay(400);
    assert.equal(client.pings.length, 0);
    assert.equal(connection.closes.length, 0);
    client.sendText('still works');
    await client.waitMessages(1);
  });
});

describe('RFC 6455 §5.5.2 autoPong option', () => {
  it('with autoPong false the server does not answer pings, but reports them', async () => {
    const s = await server({ autoPong: false });
    const client = await RawClient.connect(s.port);
    const connection = await s.connectionOf(client);
    const pings: string[] = [];
    connection.ws.on('ping', (data) => pings.push(data.toString()));
    client.sendPing('one');
    client.sendText('sync');
    await client.waitMessages(1);
    assert.deepEqual(pings, ['one']);
    assert.equal(client.pongs.length, 0);
    // The application may answer by itself.
    connection.ws.pong('manual');
    await client.until(() => client.pongs.length === 1, 2000, 'the manual pong');
    assert.equal(client.pongs[0]!.toString(), 'manual');
  });

  it('server-side ping() reaches the client, and the client’s pong is reported by the pong event', async () => {
    const s = await server({});
    const client = await RawClient.connect(s.port, {}, { autoPong: true });
    const connection = await s.connectionOf(client);
    const pong = withTimeout(once(connection.ws, 'pong') as Promise<[Buffer]>, 2000, 'a pong');
    connection.ws.ping('payload');
    const [data] = await pong;
    assert.equal(data.toString(), 'payload');
    assert.equal(client.pings[0]!.toString(), 'payload');
  });
});
