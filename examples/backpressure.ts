// Send as fast as the peer reads, no faster: send() returns false past the high-water mark, and
// 'drain' says when to go on. Memory stays bounded however slow the peer is.
import { WebSocketServer, type WebSocket } from '../src/index.js';

function stream(socket: WebSocket, chunks: Iterator<Buffer>): void {
  for (;;) {
    const next = chunks.next();
    if (next.done === true) {
      socket.close(1000, 'done');
      return;
    }
    if (!socket.send(next.value)) {
      socket.once('drain', () => stream(socket, chunks));
      return;
    }
  }
}

function* chunksOf(total: number, size: number): Generator<Buffer> {
  for (let sent = 0; sent < total; sent += size) yield Buffer.alloc(size, sent & 0xff);
}

const server = new WebSocketServer({ highWaterMark: 256 * 1024 });
server.on('connection', (socket) => stream(socket, chunksOf(64 * 1024 * 1024, 64 * 1024)));
await server.listen(8080, '127.0.0.1');
console.log('ws://127.0.0.1:8080/ streams 64 MiB at the pace of the reader');
