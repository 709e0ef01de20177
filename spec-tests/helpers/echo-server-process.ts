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
 * listening: {"port":N,"pid":N,"runtime":"node"|"bun"|"deno"}. Answers lines on stdin:
 * - "clients": {"clients":N,"sockets":N,"paused":N,"ended":{...}}: the live connections, the TCP
 *   sockets, those the server stopped reading from, and why connections ended (close codes and
 *   error messages, counted);
 * - "memory": {"live":N,"rss":N,"readable":N,"writable":N,"buffered":N}: the bytes still reachable
 *   after a full garbage collection (JavaScript heap and buffers: the runtime's own count), the
 *   resident set, what the runtime's sockets hold unread and unwritten (their readableLength,
 *   writableLength), and what the connections have queued for their peers (their bufferedAmount:
 *   the sockets' unwritten bytes and ours not handed to them yet);
 * - "read": {"closed":N,"maxBytesRead":N}: the sockets closed so far, the most read from any of them.
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
const sockets = new Set<Socket>();
let closed = 0;
let maxBytesRead = 0;
const tcp = createServer((socket) => {
  sockets.add(socket);
  socket.on('close', () => {
    sockets.delete(socket);
    closed++;
    maxBytesRead = Math.max(maxBytesRead, socket.bytesRead);
  });
  server.handleSocket(socket);
});
tcp.listen(0, '127.0.0.1', () => {
  const { port } = tcp.address() as AddressInfo;
  reply({ port, pid: process.pid, runtime });
});

/** A full collection: Node and Deno with --expose-gc, Bun with its own call. */
function collect(): void {
  if (bun !== undefined) bun.gc(true);
  else (globalThis as { gc?: () => void }).gc?.();
}

/** What is still reachable: on Bun heapUsed already counts buffers (external); Node and Deno count them apart. */
function live(): number {
  const usage = process.memoryUsage();
  return runtime === 'bun' ? usage.heapUsed : usage.heapUsed + usage.external;
}

function reply(answer: object): void {
  process.stdout.write(`${JSON.stringify(answer)}\n`);
}

process.stdin.setEncoding('utf8');
process.stdin.on('data', (text: string) => {
  if (text.includes('clients')) {
    let paused = 0;
    for (const socket of sockets) if (socket.isPaused()) paused++;
    reply({ clients: server.clients.size, sockets: sockets.size, paused, ended });
  }
  if (text.includes('read')) reply({ closed, maxBytesRead });
  if (text.includes('memory')) {
    collect();
    collect();
    let readable = 0;
    let writable = 0;
    let buffered = 0;
    for (const socket of sockets) {
      readable += socket.readableLength;
      writable += socket.writableLength;
    }
    for (const connection of server.clients) buffered += connection.bufferedAmount;
    reply({ live: live(), rss: process.memoryUsage().rss, readable, writable, buffered });
  }
});
process.on('SIGTERM', () => process.exit(0));
