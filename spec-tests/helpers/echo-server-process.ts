/**
 * Our echo server in a process of its own, for tests that measure the server alone (its memory),
 * on Node, Bun or Deno:
 *
 *   node --expose-gc --import tsx spec-tests/helpers/echo-server-process.ts '<ServerOptions JSON>' [LIBRARY]
 *   bun spec-tests/helpers/echo-server-process.ts '<ServerOptions JSON>' [LIBRARY]
 *   deno run --allow-all --v8-flags=--expose-gc spec-tests/helpers/echo-server-process.ts '<ServerOptions JSON>' [LIBRARY]
 *
 * LIBRARY is the file to take the WebSocketServer from (a packed package's dist/index.js, say); by
 * default this repository's src/index.ts. The server accepts TCP connections itself and hands each
 * socket to `handleSocket`, so that it can count what it read from each. Prints one JSON line once
 * listening: {"port":N,"pid":N,"runtime":"node"|"bun"|"deno"}. Answers each line on stdin with one line:
 * - "state": {"clients", "paused", "maxBuffered", "open", "openBytesRead", "closed", "maxBytesRead",
 *   "answers", "ended"}: the WebSocket connections, how many of them stopped reading, the most bytes
 *   queued on any of them; the TCP sockets still open and the bytes read from them; the sockets
 *   closed so far, the most bytes read from any of them, and how many got each first line written
 *   to them (a status line, "" for none); why connections ended (close codes and error messages,
 *   counted): so a test waits for what the server did, not for time, and knows what it answered
 *   even to a peer whose socket was reset before it could read the answer;
 * - "memory": {"live","rss","readable","writable","buffered"}: the bytes still reachable after a
 *   full garbage collection (JavaScript heap and buffers: the runtime's own count), the resident
 *   set, what the runtime's sockets hold unread and unwritten (their readableLength,
 *   writableLength), and what the connections have queued for their peers (their bufferedAmount:
 *   the sockets' unwritten bytes and ours not handed to them yet).
 * Exits on SIGTERM.
 */
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { pathToFileURL } from 'node:url';
import type * as Library from '../../src/index.js';

interface Bun {
  gc(force: boolean): void;
}
const bun = (globalThis as { Bun?: Bun }).Bun;
const runtime = bun !== undefined ? 'bun' : 'Deno' in globalThis ? 'deno' : 'node';

const options = JSON.parse(process.argv[2] ?? '{}') as Library.ServerOptions;
const library = process.argv[3] === undefined ? '../../src/index.js' : pathToFileURL(process.argv[3]).href;
const { WebSocketServer } = (await import(library)) as typeof Library;

const server = new WebSocketServer(options);
/** Why connections ended: close codes and errors, counted. */
const ended: Record<string, number> = {};
const count = (why: string): void => void (ended[why] = (ended[why] ?? 0) + 1);
server.on('connection', (socket) => {
  socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
  socket.on('error', (error) => count(`error: ${error.message}`));
  socket.on('close', (code) => count(`close ${code}`));
});
const open = new Set<Socket>();
let closed = 0;
let maxBytesRead = 0;
const answers: Record<string, number> = {};

/** The first line of the first bytes the server writes to `socket` (it answers with write or end). */
function watchFirstLine(socket: Socket): () => string {
  let first = '';
  const see = (chunk: unknown): void => {
    if (first === '' && (typeof chunk === 'string' || chunk instanceof Uint8Array) && chunk.length > 0)
      first = Buffer.from(chunk).toString('latin1').split('\r\n')[0]!;
  };
  const { write, end } = socket;
  socket.write = function (this: Socket, chunk: unknown, ...rest: unknown[]) {
    see(chunk);
    return write.apply(this, [chunk, ...rest] as Parameters<typeof write>);
  } as typeof write;
  socket.end = function (this: Socket, chunk?: unknown, ...rest: unknown[]) {
    see(chunk);
    return end.apply(this, [chunk, ...rest] as Parameters<typeof end>);
  } as typeof end;
  return () => first;
}

const tcp = createServer((socket) => {
  open.add(socket);
  const firstLine = watchFirstLine(socket);
  socket.on('close', () => {
    open.delete(socket);
    closed++;
    maxBytesRead = Math.max(maxBytesRead, socket.bytesRead);
    answers[firstLine()] = (answers[firstLine()] ?? 0) + 1;
  });
  server.handleSocket(socket);
});
tcp.listen(0, '127.0.0.1', () => {
  const { port } = tcp.address() as AddressInfo;
  reply({ port, pid: process.pid, runtime });
});

function state(): object {
  let paused = 0;
  let maxBuffered = 0;
  for (const socket of server.clients) {
    if (socket.isPaused) paused++;
    maxBuffered = Math.max(maxBuffered, socket.bufferedAmount);
  }
  let openBytesRead = 0;
  for (const socket of open) openBytesRead += socket.bytesRead;
  return {
    clients: server.clients.size,
    paused,
    maxBuffered,
    open: open.size,
    openBytesRead,
    closed,
    maxBytesRead,
    answers,
    ended,
  };
}

/** A full collection: Node and Deno with --expose-gc, Bun with its own call. */
function collect(): void {
  if (bun !== undefined) bun.gc(true);
  else (globalThis as { gc?: () => void }).gc?.();
}

function memory(): object {
  collect();
  collect();
  let readable = 0;
  let writable = 0;
  let buffered = 0;
  for (const socket of open) {
    readable += socket.readableLength;
    writable += socket.writableLength;
  }
  for (const connection of server.clients) buffered += connection.bufferedAmount;
  const usage = process.memoryUsage();
  // What is still reachable: on Bun heapUsed already counts buffers (external); Node and Deno count them apart.
  const live = runtime === 'bun' ? usage.heapUsed : usage.heapUsed + usage.external;
  return { live, rss: usage.rss, readable, writable, buffered };
}

function reply(answer: object): void {
  process.stdout.write(`${JSON.stringify(answer)}\n`);
}

let pending = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (text: string) => {
  pending += text;
  let newline: number;
  while ((newline = pending.indexOf('\n')) !== -1) {
    const question = pending.slice(0, newline).trim();
    pending = pending.slice(newline + 1);
    reply(question === 'state' ? state() : question === 'memory' ? memory() : { unknown: question });
  }
});
process.on('SIGTERM', () => process.exit(0));
