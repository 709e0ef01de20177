/**
 * Our echo server in a process of its own, for tests that measure the server alone (its memory):
 * `node --expose-gc --import tsx spec-tests/helpers/echo-server-process.ts '<ServerOptions JSON>'`.
 * It accepts TCP connections itself and hands each socket to `handleSocket`, so that it can count
 * what it read from each. Prints one JSON line once listening: {"port":N,"pid":N}. Answers lines
 * on stdin: "clients" with {"clients":N}; "memory" with {"live":N,"rss":N}, the bytes still
 * reachable after a full garbage collection (V8 heap and Buffers) and the resident set; "read"
 * with {"closed":N,"maxBytesRead":N}, the sockets closed so far and the most bytes read from any
 * of them. Exits on SIGTERM.
 */
import { createServer, type AddressInfo } from 'node:net';
import { WebSocketServer, type ServerOptions } from '../../src/index.js';

const options = JSON.parse(process.argv[2] ?? '{}') as ServerOptions;
const server = new WebSocketServer(options);
server.on('connection', (socket) => {
  socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
});
let closed = 0;
let maxBytesRead = 0;
const tcp = createServer((socket) => {
  socket.on('close', () => {
    closed++;
    maxBytesRead = Math.max(maxBytesRead, socket.bytesRead);
  });
  server.handleSocket(socket);
});
tcp.listen(0, '127.0.0.1', () => {
  const { port } = tcp.address() as AddressInfo;
  process.stdout.write(`${JSON.stringify({ port, pid: process.pid })}\n`);
});
process.stdin.setEncoding('utf8');
process.stdin.on('data', (text: string) => {
  if (text.includes('clients')) process.stdout.write(`${JSON.stringify({ clients: server.clients.size })}\n`);
  if (text.includes('read')) process.stdout.write(`${JSON.stringify({ closed, maxBytesRead })}\n`);
  if (text.includes('memory')) {
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    gc?.();
    const usage = process.memoryUsage();
    process.stdout.write(`${JSON.stringify({ live: usage.heapUsed + usage.external, rss: usage.rss })}\n`);
  }
});
process.on('SIGTERM', () => process.exit(0));
