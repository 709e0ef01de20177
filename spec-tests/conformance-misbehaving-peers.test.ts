/**
 * The conformance engine against peers that misbehave as a whole: a port nobody listens on, a
 * server that never answers the opening handshake, one that hangs up during it or right after it,
 * one that answers garbage, one that goes silent; and, the other way round, clients that send the
 * engine's fuzzing server garbage. Each case ends with the suite's verdict, the run goes on, and
 * nothing is left open. The engine's deadlines are scaled down here (the peers never answer, so
 * how long the engine waits cannot change a verdict).
 */
import assert from 'node:assert/strict';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { selectCases } from '../src/conformance/catalogue.js';
import type { CaseResult } from '../src/conformance/result.js';
import { ClientTester } from '../src/conformance/client-runner.js';
import { testServer } from '../src/conformance/server-runner.js';
import { acceptFor, closedPort, headEnd, parseRequestHead } from './helpers/peer/index.js';

const CASES = '1.1.1,2.5,5.19,6.4.1,7.1.6,7.9.1,9.7.1,12.1.1';
const open = new Set<Socket>();
const servers: Server[] = [];
after(async () => {
  for (const socket of open) socket.destroy();
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
});

/** A TCP server that does `behave` with each connection once its request head is in. */
async function rawServer(behave: (socket: Socket, key: string) => void): Promise<string> {
  const server = createServer((socket) => {
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    socket.on('error', () => {});
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const end = headEnd(head);
      if (end < 0) return;
      socket.off('data', onData);
      behave(socket, parseRequestHead(head.subarray(0, end)).headers.get('sec-websocket-key')?.[0] ?? '');
    };
    socket.on('data', onData);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `ws://127.0.0.1:${(server.address() as AddressInfo).port}/`;
}

const upgrade = (key: string): string =>
  `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptFor(key)}\r\n\r\n`;

/**
 * Run CASES against `url`. No time limit of its own: the engine's deadlines (the suite's, halved
 * here, or scaled by `timeScale`) end every case.
 */
async function runAll(url: string, timeScale = 0.5): Promise<Map<string, CaseResult>> {
  const results = await testServer({ url, cases: selectCases(CASES), timeScale });
  assert.deepEqual(
    results.map((r) => r.id),
    selectCases(CASES).map((c) => c.id),
    'every case ran and has a result',
  );
  return new Map(results.map((r) => [r.id, r]));
}

/** What a case gets when the connection never opened: FAILED both ways (7.1.6 stays informational). */
function neverOpened(results: Map<string, CaseResult>, why: RegExp): void {
  for (const [id, r] of results) {
    const want = id === '7.1.6' ? ['INFORMATIONAL', 'INFORMATIONAL'] : ['FAILED', 'FAILED'];
    assert.deepEqual([r.behavior, r.behaviorClose], want, id);
    assert.match(r.result, why, id);
  }
}

describe('servers that misbehave as a whole: each case gets its verdict and the run goes on', () => {
  it('nobody listening: every case FAILED, the handshake never completed', async () => {
    neverOpened(await runAll(`ws://127.0.0.1:${await closedPort()}/`), /opening handshake failed.*ECONNREFUSED/);
  });

  it('a server that never answers the handshake: FAILED at the opening handshake deadline', async () => {
    const results = await runAll(await rawServer(() => {}));
    neverOpened(results, /no complete answer/);
    for (const r of results.values()) assert.equal(r.wasOpenHandshakeTimeout, true);
  });

  it('a server that hangs up during the handshake, or answers garbage: FAILED', async () => {
    neverOpened(
      await runAll(await rawServer((socket) => socket.destroy())),
      /closed the connection during the opening handshake/,
    );
    neverOpened(
      await runAll(await rawServer((socket) => socket.end('SSH-2.0-OpenSSH_9.6\r\n\r\n'))),
      /not an HTTP\/1.1 status line/,
    );
    neverOpened(
      await runAll(await rawServer((socket) => socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n'))),
      /404/,
    );
  });

  it('a server that hangs up right after the handshake: the cases it should have answered FAILED', async () => {
    const results = await runAll(await rawServer((socket, key) => socket.end(upgrade(key))));
    // No echo, and the server, not the engine, ended it.
    assert.deepEqual([results.get('1.1.1')!.behavior, results.get('1.1.1')!.behaviorClose], ['FAILED', 'FAILED']);
    // 2.5 expects the server to end the connection, and ending TCP is a way to (no close needed).
    assert.deepEqual([results.get('2.5')!.behavior, results.get('2.5')!.behaviorClose], ['OK', 'OK']);
    assert.equal(results.get('1.1.1')!.wasNotCleanReason, 'the peer ended TCP without a closing handshake');
  });

  it('a server that sends garbage frames after the handshake: the engine fails the connection (1002) and drops it', async () => {
    const results = await runAll(
      await rawServer((socket, key) =>
        socket.write(Buffer.concat([Buffer.from(upgrade(key)), Buffer.alloc(64, 0xff)])),
      ),
    );
    for (const [id, r] of results) {
      assert.notDeepEqual([r.behavior, r.behaviorClose], ['OK', 'OK'], id);
      // The first violation fails the connection, the next drops TCP; the report says why.
      assert.equal(r.droppedByMe, true, id);
      const notes = r.wirelog.flatMap((e) => (e.kind === 'note' ? [e.text] : []));
      assert.ok(
        notes.some((text) => text.startsWith('protocol violation by the peer: RSV = 7')),
        `${id}: ${notes}`,
      );
    }
    // Where the garbage is the first thing to happen, the engine's close says 1002.
    assert.equal(results.get('1.1.1')!.localCloseCode, 1002);
  });

  it('a server that answers the handshake, then says nothing: the deadlines end each case, unclean', async () => {
    // Nothing but the engine's own deadlines happens here, so they are made short (12.1.1's a minute
    // would be 6 s): the verdicts depend on their order, not on their length.
    const results = await runAll(await rawServer((socket, key) => socket.write(upgrade(key))), 0.1);
    const echo = results.get('1.1.1')!;
    assert.deepEqual([echo.behavior, echo.behaviorClose], ['FAILED', 'UNCLEAN']);
    assert.equal(echo.wasCloseHandshakeTimeout, true);
    // 2.5 wanted the server to fail the connection; at the deadline the engine did.
    assert.deepEqual([results.get('2.5')!.behavior, results.get('2.5')!.behaviorClose], ['OK', 'FAILED']);
    assert.deepEqual(
      [results.get('7.1.6')!.behavior, results.get('7.1.6')!.behaviorClose],
      ['INFORMATIONAL', 'INFORMATIONAL'],
    );
  });
});

/**
 * Send `request` to the fuzzing server; resolve with everything it answered once it closed (it
 * closes after its answer, or at its own deadline for an incomplete head: no wait of ours).
 */
function ask(port: number, request: string | Buffer): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.on('data', (chunk) => (answer += chunk.toString('latin1')));
    socket.on('error', reject);
    socket.on('close', () => resolve(answer));
    socket.write(request);
  });
}

describe("clients that misbehave: the fuzzing server's answers", () => {
  const get = (path: string, extra = ''): string =>
    `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`;

  it('refuses bad requests with the right status and closes; a head over 64 KiB gets 431', async () => {
    const tester = new ClientTester({ cases: selectCases('1.1.1,2.1') });
    const { port } = await tester.listen(0);
    try {
      assert.match(await ask(port, 'GARBAGE\r\n\r\n'), /^HTTP\/1.1 400 /);
      assert.match(await ask(port, get('/nowhere')), /^HTTP\/1.1 404 /);
      assert.match(
        await ask(port, get('/runCase?case=3&agent=a')),
        /^HTTP\/1.1 400 .*\r\n\r\ncase must be a number from 1 to 2/s,
      );
      assert.match(await ask(port, get('/runCase?case=1')), /^HTTP\/1.1 400 .*agent is required/s);
      assert.match(await ask(port, get('/getCaseCount').replace('13', '12')), /^HTTP\/1.1 400 .*Version is not 13/s);
      assert.match(await ask(port, `GET / HTTP/1.1\r\nX: ${'a'.repeat(70 * 1024)}\r\n\r\n`), /^HTTP\/1.1 431 /);
      assert.equal(tester.results.size, 0, 'no case ran');
    } finally {
      await tester.close();
    }
  });

  it('a client that sends unmasked frames or garbage in a case: the engine fails it with 1002 and records the case', async () => {
    const tester = new ClientTester({ cases: selectCases('1.1.1,2.1') });
    const { port } = await tester.listen(0);
    try {
      // An unmasked text frame (§5.1: a client masks everything), then garbage.
      const answer = await ask(
        port,
        Buffer.concat([
          Buffer.from(get('/runCase?case=1&agent=rogue')),
          Buffer.from([0x81, 0x02, 0x68, 0x69]),
          Buffer.alloc(32, 0xff),
        ]),
      );
      assert.match(answer, /^HTTP\/1.1 101 /);
      // The engine's close frame: 0x88, then 1002 after the length.
      const body = Buffer.from(answer.slice(answer.indexOf('\r\n\r\n') + 4), 'latin1');
      const close = body.indexOf(0x88);
      assert.ok(close >= 0, 'a close frame came');
      assert.equal(body.readUInt16BE(close + 2), 1002);
      const r = tester.results.get('rogue')?.get('1.1.1');
      assert.ok(r !== undefined, 'the case was recorded');
      assert.equal(r.failedByMe, true);
      assert.notEqual(r.behavior, 'OK');
    } finally {
      await tester.close();
    }
  });
});
