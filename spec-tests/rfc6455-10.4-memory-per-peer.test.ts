/**
 * RFC 6455 §10.4: "Implementations that have implementation- and/or platform-specific limitations
 * regarding the frame size or total message size after reassembly from multiple frames MUST protect
 * themselves against exceeding those limits." Here the limits are on memory: what a crowd of
 * hostile peers can make a fresh echo server hold, against what the README's limits say one peer
 * can cost:
 *
 * - a handshake that never ends: at most `maxHeaderSize` of request head, refused with 431; after
 *   a refusal the server reads at most 64 KiB more (so the client's FIN is seen), then drops it;
 * - a peer that floods pings and never reads the pongs: queued pongs count against `highWaterMark`
 *   like any frame, and reading from that peer pauses once they pass it.
 *
 * "Hold" is measured as the server's live memory (V8 heap and Buffers still reachable after a full
 * garbage collection), the server running in a process of its own
 * (spec-tests/helpers/echo-server-process.ts). Its resident set also shows what it read and threw
 * away before the garbage collector caught up: checked for the refused handshakes, where reading
 * and discarding everything a peer sends was the problem, and reported for the ping flood, where
 * the kernel's socket buffers decide how much is read before the pongs back up.
 *
 * Every wait is for what the server process reports it did (heads read, readings paused, sockets
 * closed), never for a time: a step is given up only when nothing at all changes for QUIET_MS.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { connect, type ServerOptions } from '../src/index.js';
import { OP, clientFrame, handshakeRequest } from './helpers/peer/index.js';
import { QUIET_MS, whileAlive } from './helpers/alive.js';
import { delay, KiB, MiB, skipBecause, withTimeout } from './helpers/library.js';

const SERVER = fileURLToPath(new URL('./helpers/echo-server-process.ts', import.meta.url));
const PEERS = 100;
/** One read from a socket: what Node allocates per 'data' event at most. */
const READ_BYTES = 64 * KiB;
/** What a refused handshake may still read (src/websocket/server.ts, REFUSAL_DRAIN_BYTES; the README says so). */
const REFUSAL_DRAIN_BYTES = 64 * KiB;
/** The writer's slab: small frames of every connection are views of one (src/protocol/writer.ts, SLAB_SIZE). */
const SLAB_BYTES = 64 * KiB;
/** The heap's and the allocator's own growth under a burst of 100 connections, whatever they send. */
const SLACK = 12 * MiB;

const why = existsSync('/proc/self/status') ? null : 'needs /proc to read the server process memory (Linux)';

function rss(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match![1]) * 1024;
}

interface ServerProcess {
  child: ChildProcessWithoutNullStreams;
  port: number;
  pid: number;
  /** The next line it prints (its answers come one line per question, in order). */
  nextLine(): Promise<string>;
}

/** What the server process reports (spec-tests/helpers/echo-server-process.ts). */
interface ServerState {
  clients: number;
  paused: number;
  maxBuffered: number;
  open: number;
  openBytesRead: number;
  closed: number;
  maxBytesRead: number;
  answers: Record<string, number>;
}

const children: ChildProcessWithoutNullStreams[] = [];
const sockets: Socket[] = [];
after(() => {
  for (const socket of sockets) socket.destroy();
  for (const child of children) child.kill('SIGKILL');
});

async function startServer(options: ServerOptions): Promise<ServerProcess> {
  const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', SERVER, JSON.stringify(options)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.push(child);
  const lines: string[] = [];
  const waiters: { resolve: (line: string) => void; reject: (error: Error) => void }[] = [];
  let exited: Error | null = null;
  let buffered = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => {
    buffered += text;
    let newline: number;
    while ((newline = buffered.indexOf('\n')) !== -1) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      const waiter = waiters.shift();
      if (waiter !== undefined) waiter.resolve(line);
      else lines.push(line);
    }
  });
  child.on('exit', (code) => {
    exited = new Error(`the server process exited with ${code}`);
    for (const waiter of waiters.splice(0)) waiter.reject(exited);
  });
  const nextLine = (): Promise<string> => {
    if (lines.length > 0) return Promise.resolve(lines.shift()!);
    if (exited !== null) return Promise.reject(exited);
    return new Promise((resolve, reject) => waiters.push({ resolve, reject }));
  };
  const first = JSON.parse(await whileAlive(child, nextLine(), 'the server process to listen')) as {
    port: number;
    pid: number;
  };
  return { child, port: first.port, pid: first.pid, nextLine };
}

/** Ask the server process something over its stdin; its answer is the next line it prints. */
async function ask<T>(server: ServerProcess, question: 'state' | 'memory'): Promise<T> {
  server.child.stdin.write(`${question}\n`);
  return JSON.parse(await withTimeout(server.nextLine(), QUIET_MS, `the answer to "${question}"`)) as T;
}

/** The server's live memory after a full garbage collection. */
async function liveOf(server: ServerProcess): Promise<number> {
  return (await ask<{ live: number }>(server, 'memory')).live;
}

/**
 * Until `done` holds for the server's state (and for ours: `local` is part of what counts as
 * progress). `check` runs on every state seen, to fail at once on what must never happen. Fails
 * only when neither state changes for QUIET_MS: a slow machine makes it wait longer, never fail.
 */
async function until(
  server: ServerProcess,
  what: string,
  done: (state: ServerState) => boolean,
  { check, local }: { check?: (state: ServerState) => void; local?: () => unknown } = {},
): Promise<ServerState> {
  let last = '';
  let changedAt = Date.now();
  for (;;) {
    const state = await ask<ServerState>(server, 'state');
    check?.(state);
    if (done(state)) return state;
    const seen = JSON.stringify([state, local?.()]);
    if (seen !== last) [last, changedAt] = [seen, Date.now()];
    assert.ok(Date.now() - changedAt < QUIET_MS, `nothing changed for ${QUIET_MS} ms waiting for ${what}: ${seen}`);
    await delay(20);
  }
}

/** Warm the server up (code compiled, first buffers made), so the baseline is not its cold start. */
async function warmUp(server: ServerProcess): Promise<void> {
  for (let i = 0; i < 3; i++) {
    const ws = await connect(`ws://127.0.0.1:${server.port}/`);
    const echoed = new Promise<Buffer>((resolve) => ws.once('message', resolve));
    ws.send(Buffer.alloc(200 * KiB, 7));
    await withTimeout(echoed, QUIET_MS, 'a warm-up echo');
    const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
    ws.close(1000);
    await withTimeout(closed, QUIET_MS, 'a warm-up close');
  }
  await until(server, 'the warm-up connections to be gone', (state) => state.open === 0 && state.clients === 0);
}

/** The server's peak RSS growth over its baseline while `during` runs. */
async function peakGrowth(pid: number, during: () => Promise<void>): Promise<number> {
  const baseline = rss(pid);
  let peak = baseline;
  const timer = setInterval(() => {
    // The process may be gone if the test failed meanwhile; the test reports that, not this.
    if (existsSync(`/proc/${pid}/status`)) peak = Math.max(peak, rss(pid));
  }, 10);
  try {
    await during();
  } finally {
    clearInterval(timer);
  }
  peak = Math.max(peak, rss(pid));
  return peak - baseline;
}

/** A fresh client still gets its echo: the server is not stuck behind the hostile crowd. */
async function assertServes(server: ServerProcess): Promise<void> {
  const ws = await withTimeout(connect(`ws://127.0.0.1:${server.port}/`), QUIET_MS, 'a fresh client to connect');
  const echoed = new Promise<Buffer>((resolve) => ws.once('message', resolve));
  ws.send('still serving');
  assert.equal((await withTimeout(echoed, QUIET_MS, 'the echo')).toString(), 'still serving');
  ws.terminate();
}

function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`;
}

describe('RFC 6455 §10.4: what 100 hostile peers can make a fresh echo server hold', () => {
  it(`${PEERS} peers each sending a never-ending request head: at most maxHeaderSize held for each, then 431, at most 64 KiB more read (and one read), and gone`, async (t) => {
    if (skipBecause(t, why)) return;
    const maxHeaderSize = 16 * KiB;
    // No handshake deadline: the heads must wait until the test has measured them, however long that takes.
    const server = await startServer({ maxHeaderSize, pingInterval: 0, handshakeTimeout: 0 });
    await warmUp(server);
    const baseline = await liveOf(server);
    const peers: { socket: Socket; answer: string; closed: boolean }[] = [];
    const head = Buffer.concat([
      handshakeRequest().subarray(0, -2),
      Buffer.from(`X-Long: ${'a'.repeat(maxHeaderSize - 1024)}`),
    ]);
    for (let i = 0; i < PEERS; i++) {
      const socket = netConnect(server.port, '127.0.0.1');
      sockets.push(socket);
      const peer = { socket, answer: '', closed: false };
      socket.on('close', () => (peer.closed = true));
      socket.setEncoding('latin1');
      socket.on('data', (text: string) => (peer.answer += text));
      socket.on('error', () => {});
      peers.push(peer);
      // A request head that does not end: just under the limit, for now.
      socket.write(head);
    }
    await until(
      server,
      'every unfinished head to be read',
      (state) => state.open === PEERS && state.openBytesRead >= PEERS * head.length,
    );
    const waiting = (await liveOf(server)) - baseline;
    const waitingBound = PEERS * (maxHeaderSize + 4 * KiB) + 2 * MiB;
    t.diagnostic(`live memory with ${PEERS} heads waiting: +${mib(waiting)} (bound ${mib(waitingBound)})`);
    assert.ok(
      waiting <= waitingBound,
      `${PEERS} unfinished heads hold ${mib(waiting)}, more than ${mib(waitingBound)}`,
    );

    // Then each goes on with 4 MiB more of the same line, as fast as TCP takes it.
    const growth = await peakGrowth(server.pid, async () => {
      for (const peer of peers) peer.socket.write('a'.repeat(4 * MiB));
      // Refused, then dropped once the drain allowance is read or the linger is over.
      await until(
        server,
        'the server to drop every refused peer, and each to see it',
        (state) => state.open === 0 && peers.every((peer) => peer.closed),
        { local: () => peers.map((peer) => [peer.closed, peer.socket.bytesWritten]) },
      );
    });
    const bound = PEERS * (maxHeaderSize + REFUSAL_DRAIN_BYTES + 2 * READ_BYTES) + SLACK;
    t.diagnostic(`resident memory grew by ${mib(growth)} while they were refused (bound ${mib(bound)})`);
    assert.ok(growth <= bound, `the server grew by ${mib(growth)}, more than ${mib(bound)}`);
    // A peer still sending when its socket goes gets a reset, which may arrive before it read the
    // response (how often depends on how busy the machine is): what the server wrote says it.
    const read = await ask<ServerState>(server, 'state');
    const written431 = Object.entries(read.answers)
      .filter(([line]) => line.startsWith('HTTP/1.1 431 '))
      .reduce((sum, [, count]) => sum + count, 0);
    assert.equal(written431, PEERS, `the server's answers: ${JSON.stringify(read.answers)}`);
    for (const peer of peers) {
      assert.ok(
        peer.answer === '' || peer.answer.startsWith('HTTP/1.1 431 '),
        `unexpected answer ${JSON.stringify(peer.answer.slice(0, 80))}`,
      );
    }
    // Each peer sent over 4 MiB; the server read its head up to the limit, at most the drain
    // allowance after the 431, then dropped it: each of the two limits is checked after a read,
    // which may bring up to a read's worth more.
    const readBound = maxHeaderSize + REFUSAL_DRAIN_BYTES + 2 * READ_BYTES;
    t.diagnostic(
      `the most read from one refused peer: ${(read.maxBytesRead / KiB).toFixed(0)} KiB (bound ${(readBound / KiB).toFixed(0)} KiB)`,
    );
    assert.ok(
      read.maxBytesRead <= readBound,
      `the server read ${read.maxBytesRead} bytes from a refused peer, more than ${readBound}`,
    );
    assert.ok(read.closed >= PEERS, `only ${read.closed} sockets closed on the server's side`);
    const after = (await liveOf(server)) - baseline;
    t.diagnostic(`live memory once they are gone: +${mib(after)}`);
    assert.ok(after <= 2 * MiB, `${mib(after)} still held after every refused peer is gone`);
    await assertServes(server);
  });

  it(`${PEERS} peers flooding pings and never reading: queued pongs count against highWaterMark, reading from each pauses, each holds at most highWaterMark and a read`, async (t) => {
    if (skipBecause(t, why)) return;
    const highWaterMark = 64 * KiB;
    // No write deadline: a flooder held back must stay until the test has measured it, however long that takes.
    const server = await startServer({ highWaterMark, pingInterval: 0, writeTimeout: 0 });
    await warmUp(server);
    const baseline = await liveOf(server);
    // Masked empty pings (6 bytes each), 64 KiB of them per write.
    const ping = clientFrame({ opcode: OP.PING, maskKey: Buffer.from([1, 2, 3, 4]) });
    const burst = Buffer.concat(Array.from({ length: Math.floor(READ_BYTES / ping.length) }, () => ping));
    const flooders: Socket[] = [];
    const growth = await peakGrowth(server.pid, async () => {
      for (let i = 0; i < PEERS; i++) {
        const socket = netConnect(server.port, '127.0.0.1');
        sockets.push(socket);
        flooders.push(socket);
        socket.on('error', () => {});
        // Never read a byte: the pongs pile up on the server's side.
        socket.pause();
        socket.write(handshakeRequest());
        const pump = (): void => {
          while (!socket.destroyed && socket.write(burst));
        };
        socket.on('drain', pump);
        pump();
      }
      // The server answers tens of thousands of pings per read meanwhile: every handshake gets
      // its turn, then reading from each pauses once its pongs pass highWaterMark. Never more
      // than highWaterMark and what one read of pings produces may wait for a flooder (a third of
      // the read, 2 bytes of pong per 6 of ping, and a read's worth of slack for the frames).
      const most = highWaterMark + Math.ceil(READ_BYTES / 3) + READ_BYTES;
      await until(
        server,
        'every flooder to be connected and held back',
        (state) => state.clients === PEERS && state.paused === PEERS,
        {
          check: (state) =>
            assert.ok(state.maxBuffered <= most, `${state.maxBuffered} bytes of pongs queued for one flooder`),
        },
      );
    });
    t.diagnostic(
      `resident memory grew by ${mib(growth)} while they flooded (read and thrown away before the garbage collector ran)`,
    );
    // Backpressure reached every flooder: the server stopped reading, so their writes back up.
    const stalled = flooders.filter((socket) => socket.writableLength > 0).length;
    assert.equal(stalled, PEERS, `only ${stalled} of ${PEERS} flooders were held back by the server`);
    // What the server holds for them: per peer the read, the connection itself, and the pongs
    // queued: up to highWaterMark plus those one read of pings produced on top (a third of it, 2
    // bytes of pong per 6 of ping; checked exactly above, as maxBuffered). In memory the pongs weigh
    // more than their bytes: the replies to one read are one view of the writer's 64 KiB slab, shared
    // by every connection (src/protocol/writer.ts), and a view still queued keeps its whole slab
    // alive. With full reads (the flooders keep the server's socket buffers full), a peer queues the
    // replies of at most this many reads, and so keeps at most that many slabs.
    const pongsPerRead = Math.ceil(READ_BYTES / 3);
    const slabsPerPeer = Math.ceil((highWaterMark + pongsPerRead) / pongsPerRead);
    const held = (await liveOf(server)) - baseline;
    const bound = PEERS * (slabsPerPeer * SLAB_BYTES + READ_BYTES + 8 * KiB) + 2 * MiB;
    t.diagnostic(`live memory with ${PEERS} flooders held back: +${mib(held)} (bound ${mib(bound)})`);
    assert.ok(held <= bound, `${PEERS} flooders hold ${mib(held)}, more than ${mib(bound)}`);
    assert.equal(
      (await ask<ServerState>(server, 'state')).clients,
      PEERS,
      'every flooder is connected (a ping flood is not a protocol error)',
    );
    await assertServes(server);
    for (const socket of flooders) socket.destroy();
    // The flooders are gone from the registry once they hang up.
    await until(server, 'the flooders to leave the registry', (state) => state.clients === 0);
    const after = (await liveOf(server)) - baseline;
    t.diagnostic(`live memory once they are gone: +${mib(after)}`);
    assert.ok(after <= 2 * MiB, `${mib(after)} still held after every flooder is gone`);
  });
});
