/**
 * The server's ping loop (RFC 6455 §5.5.2 "A Ping frame MAY serve either as a keepalive or as a
 * means to verify that the remote endpoint is still responsive"; §5.5.3 pong): a ping every
 * pingInterval, and a peer from which nothing at all arrives for pongTimeout is dropped.
 *
 * The deadlines are what is tested, so they run on a virtual clock: node:test's mock timers stand
 * in for Date and setInterval, which is all the timer wheel (src/driver/timer-wheel.ts) and the
 * driver read the time from. Virtual time moves only when a test moves it, a few ms at a time, and
 * between two moves the test waits (in real time, for as long as it takes) until what the last move
 * caused has crossed the sockets: the pings sent have arrived, the pongs they asked for are back.
 * So a busy machine, which may hold the process still for longer than pongTimeout, slows these
 * tests down but cannot change what they see; and each bound is the option plus the wheel's own
 * lateness (under two of its ticks, see LATE), never a guess about the machine.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, afterEach, before, describe, it, mock } from 'node:test';
import { ConnectionTimeoutError, type ServerOptions, type TracedFrame } from '../src/index.js';
import { sharedWheel } from '../src/driver/timer-wheel.js';
import { CloseCode, connectPair, startServer, withTimeout, type TestServer } from './helpers/library.js';
import { RawClient, destroyRawClients } from './helpers/peer/index.js';
import { QUIET_MS } from './helpers/alive.js';

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

/** How far virtual time moves at a time. */
const STEP = 5;
/**
 * The timer wheel's resolution: a deadline is rounded up to a tick of it, and the wheel looks at its
 * ticks once per resolution, so a deadline fires less than two resolutions after it is due.
 */
const RESOLUTION = sharedWheel.resolution;
const LATE = 2 * RESOLUTION;
const OPCODE_PING = 0x9;
const OPCODE_PONG = 0xa;

/**
 * Run the tests of a describe() on virtual time (Date and setInterval), from its first test to its
 * last: the shared wheel keeps the interval it started with as long as it has deadlines, so the
 * mock stays in place while any may be left.
 */
function onVirtualTime(): void {
  before(() => mock.timers.enable({ apis: ['setInterval', 'Date'], now: Date.now() }));
  after(async () => {
    destroyRawClients();
    await Promise.all(servers.splice(0).map((s) => s.close()));
    // Let whatever the closes left on the wheel (a close handshake's deadline) run out, so that the
    // wheel stops its mocked interval before the real clock is back.
    for (let waited = 0; sharedWheel.size > 0 && waited < 60_000; waited += RESOLUTION) mock.timers.tick(RESOLUTION);
    mock.timers.reset();
    assert.equal(sharedWheel.size, 0, 'deadlines left on the wheel after every connection closed');
  });
}

/** The current virtual time. */
function now(): number {
  return Date.now();
}

/** Move virtual time one step, and let what that set off (pings, a drop) be written out. */
async function step(): Promise<void> {
  mock.timers.tick(STEP);
  await turn();
}

function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Until `done()`, in real time, looking at every turn of the event loop; one step is given QUIET_MS. */
async function settle(done: () => boolean, what: string): Promise<void> {
  const started = performance.now();
  while (!done()) {
    assert.ok(performance.now() - started < QUIET_MS, `${what}: not within ${QUIET_MS} ms`);
    await turn();
  }
}

/** A server whose ping loop the test can watch: how many pings it sent, how many pongs it got back. */
async function watchedServer(
  options: ServerOptions,
): Promise<{ s: TestServer; sent: () => number; pongs: () => number }> {
  let pings = 0;
  let pongs = 0;
  const trace = (frame: TracedFrame): void => {
    if (frame.direction === 'out' && frame.opcode === OPCODE_PING) pings++;
    if (frame.direction === 'in' && frame.opcode === OPCODE_PONG) pongs++;
  };
  const s = await server({ ...options, trace });
  return { s, sent: () => pings, pongs: () => pongs };
}

describe('RFC 6455 §5.5.2: the keepalive ping loop (pingInterval 50 ms, pongTimeout 200 ms)', () => {
  onVirtualTime();

  it('a silent peer (never answers pings, never sends) is dropped: close 1006, wasClean false, after pings were sent', async () => {
    const { s, sent } = await watchedServer({ pingInterval: 50, pongTimeout: 200 });
    const client = await RawClient.connect(s.port, {}, { autoPong: false });
    const connection = await s.connectionOf(client);
    // Nothing has moved the clock since the connection opened: its last frame is "now".
    const opened = now();
    while (connection.ws.readyState === 1) {
      assert.ok(now() - opened < 200 + LATE, `still open ${now() - opened} ms after its last frame`);
      await step();
      // The pings sent so far reach the peer before the clock moves on.
      await settle(() => client.pings.length === sent() || client.closed, 'the pings');
    }
    const dropped = now() - opened;
    assert.ok(dropped >= 200, `dropped ${dropped} ms after its last frame, before pongTimeout (200 ms)`);
    const record = await withTimeout(connection.closed, QUIET_MS, 'the close event');
    assert.equal(record.code, CloseCode.Abnormal);
    assert.equal(record.wasClean, false);
    assert.ok(sent() >= 1, `the server pinged the peer (${sent()} pings)`);
    assert.equal(connection.closes.length, 1);
    const timeout = connection.errors.find((e) => e instanceof ConnectionTimeoutError);
    assert.ok(
      timeout instanceof ConnectionTimeoutError,
      `a ConnectionTimeoutError was reported (${connection.errors.map((e) => e.message).join('; ')})`,
    );
    assert.equal(timeout.reason, 'pong');
    await client.waitPeerEnd(QUIET_MS);
    assert.equal(client.pings.length, sent(), 'every ping reached the peer');
  });

  it('a peer that answers every ping stays connected well past pongTimeout (4x)', async () => {
    const { s, sent, pongs } = await watchedServer({ pingInterval: 50, pongTimeout: 200 });
    const client = await RawClient.connect(s.port, {}, { autoPong: true });
    const connection = await s.connectionOf(client);
    const pongEvents: Buffer[] = [];
    connection.ws.on('pong', (data) => pongEvents.push(data));
    const start = now();
    while (now() - start < 800) {
      await step();
      // Each ping reaches the peer and its pong comes back before the clock moves on.
      await settle(() => client.pings.length === sent() && pongs() === sent(), 'the pings and their pongs');
      assert.equal(connection.closes.length, 0, `dropped after ${now() - start} ms though it answered every ping`);
    }
    assert.equal(client.closed || client.peerEnded, false);
    // A ping at least every pingInterval plus the wheel's lateness.
    const least = Math.floor(800 / (50 + LATE));
    assert.ok(client.pings.length >= least, `pinged regularly (${client.pings.length} pings in 800 ms)`);
    assert.equal(pongEvents.length, sent(), 'the server saw every pong');
    // The connection still works.
    client.sendText('alive');
    await client.waitMessages(1, QUIET_MS);
  });

  it('a peer that never pongs but keeps sending data frames stays alive (any frame shows it is there)', async () => {
    const { s, sent } = await watchedServer({ pingInterval: 50, pongTimeout: 200 });
    const client = await RawClient.connect(s.port, {}, { autoPong: false });
    const connection = await s.connectionOf(client);
    const start = now();
    let texts = 0;
    while (now() - start < 800) {
      if ((now() - start) % 40 === 0) {
        client.sendText(`tick ${texts++}`);
        // Its echo shows the server read it, at this (virtual) time.
        await settle(() => client.messages.length === texts || client.closed, 'the echo');
      }
      await step();
      await settle(() => client.pings.length === sent() || client.closed, 'the pings');
      assert.equal(connection.closes.length, 0, `dropped after ${now() - start} ms though it kept sending`);
    }
    assert.ok(sent() >= Math.floor(800 / (50 + LATE)), `pinged anyway (${sent()})`);
    assert.equal(client.pongs.length, 0);
    assert.equal(client.messages.length, texts, 'every echo');
  });

  it('a peer that stops answering is dropped after it goes quiet, not before', async () => {
    const { s, pongs } = await watchedServer({ pingInterval: 50, pongTimeout: 200 });
    const client = await RawClient.connect(s.port, {}, { autoPong: false });
    const connection = await s.connectionOf(client);
    // Active for 400 ms (longer than pongTimeout): an unsolicited pong every 40 ms, each read by
    // the server before the clock moves on. Then silent.
    const start = now();
    let sentPongs = 0;
    let quietFrom = start;
    while (now() - start < 400) {
      if ((now() - start) % 40 === 0) {
        client.sendPong('unsolicited');
        sentPongs++;
        await settle(() => pongs() === sentPongs, 'the server to read the pong');
        quietFrom = now();
      }
      await step();
      assert.equal(connection.ws.readyState, 1, 'not dropped while active');
    }
    while (connection.ws.readyState === 1) {
      assert.ok(now() - quietFrom < 200 + LATE, `still open ${now() - quietFrom} ms after going quiet`);
      await step();
    }
    const quiet = now() - quietFrom;
    assert.ok(quiet >= 200, `dropped ${quiet} ms after going quiet, before pongTimeout (200 ms)`);
    const record = await withTimeout(connection.closed, QUIET_MS, 'the drop');
    assert.equal(record.code, CloseCode.Abnormal);
  });

  it('our client answers pings by itself (autoPong) and stays connected', async () => {
    const { s, sent, pongs } = await watchedServer({ pingInterval: 50, pongTimeout: 200 });
    const { ws, connection } = await connectPair(s);
    try {
      const pings: Buffer[] = [];
      ws.on('ping', (data) => pings.push(data));
      const start = now();
      while (now() - start < 600) {
        await step();
        await settle(() => pings.length === sent() && pongs() === sent(), 'the pings and their pongs');
        assert.equal(connection.closes.length, 0, `dropped after ${now() - start} ms though our client answered`);
      }
      assert.ok(pings.length >= Math.floor(600 / (50 + LATE)), `${pings.length} pings`);
      const echoed = once(ws, 'message');
      ws.send('still here');
      assert.equal(String((await withTimeout(echoed, QUIET_MS, 'echo'))[0]), 'still here');
    } finally {
      ws.terminate();
    }
  });
});

describe('pingInterval 0 turns the ping loop off', () => {
  onVirtualTime();

  it('no pings, and a silent peer is not dropped however small pongTimeout is', async () => {
    const { s, sent } = await watchedServer({ pingInterval: 0, pongTimeout: 50 });
    const client = await RawClient.connect(s.port, {}, { autoPong: false });
    const connection = await s.connectionOf(client);
    const start = now();
    while (now() - start < 400) await step();
    assert.equal(sent(), 0);
    assert.equal(connection.closes.length, 0);
    // An echo comes after anything sent before it (TCP keeps the order): no ping was on its way.
    client.sendText('still works');
    await client.waitMessages(1, QUIET_MS);
    assert.equal(client.pings.length, 0);
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
