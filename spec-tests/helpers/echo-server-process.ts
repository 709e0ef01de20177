/**
 * Our echo server in a process of its own, for tests that measure the server alone (its memory):
 * `node --expose-gc --import tsx spec-tests/helpers/echo-server-process.ts '<ServerOptions JSON>'`.
 * It accepts TCP connections itself and hands each socket to `handleSocket`, so that it can count
 * what it read from each. Prints one JSON line once listening: {"port":N,"pid":N}. Answers each line
 * on stdin with one line:
 * - "state": {"clients", "paused", "maxBuffered", "open", "openBytesRead", "closed", "maxBytesRead",
 *   "answers"}: the WebSocket connections, how many of them stopped reading, the most bytes queued on
 *   any of them; the TCP sockets still open and the bytes read from them; the sockets closed so far,
 *   the most bytes read from any of them, and how many got each first line written to them (a status
 *   line, "" for none): so a test waits for what the server did, not for time, and knows what it
 *   answered even to a peer whose socket was reset before it could read the answer;
 * - "memory": {"live":N,"rss":N}, the bytes still reachable after a full garbage collection (V8 heap
 *   and Buffers) and the resident set.
 * Exits on SIGTERM.
 */
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { WebSocketServer, type ServerOptions } from '../../src/index.js';

const options = JSON.parse(process.argv[2] ?? '{}') as ServerOptions;
const server = new WebSocketServer(options);
server.on('connection', (socket) => {
  socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
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
  process.stdout.write(`${JSON.stringify({ port, pid: process.pid })}\n`);
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
  };
}

function memory(): object {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
  const usage = process.memoryUsage();
  return { live: usage.heapUsed + usage.external, rss: usage.rss };
}

let pending = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (text: string) => {
  pending += text;
  let newline: number;
  while ((newline = pending.indexOf('\n')) !== -1) {
    const question = pending.slice(0, newline).trim();
    pending = pending.slice(newline + 1);
    const answer = question === 'state' ? state() : question === 'memory' ? memory() : { unknown: question };
    process.stdout.write(`${JSON.stringify(answer)}\n`);
  }
});
process.on('SIGTERM', () => process.exit(0));
