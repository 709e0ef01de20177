// The layers composed by hand: an echo server on the pure protocol core (`wsrfc/core`) over a
// net.Socket, without the library's driver. The core reads bytes and decides; this file moves
// bytes and carries out its decisions (write, end, destroy), taken in one place after each step.
// What it leaves out (backpressure, deadlines, compression) is what src/driver/connection.ts adds.
// Run: npx tsx examples/core-echo.ts
import { createServer, type Socket } from 'node:net';
import * as core from '../src/core.js';

// No ping loop and no close deadline: this example keeps no timers (nextDeadline stays Infinity).
const options = core.resolveConnectionOptions({ pingInterval: 0, closeTimeout: 0 });

const server = createServer((socket) => {
  socket.on('error', () => socket.destroy());
  const reader = new core.HeadReader();
  const onHead = (chunk: Buffer): void => {
    try {
      const head = reader.push(chunk); // RFC 6455 §4.2.1: the request head, however it is cut
      if (head === null) return;
      const { key } = core.validateUpgradeRequest(core.parseRequestHead(head.head));
      socket.off('data', onHead);
      socket.write(core.switchingProtocolsResponse(key)); // §4.2.2: 101 and Sec-WebSocket-Accept
      run(socket, head.rest);
    } catch (error) {
      socket.off('data', onHead);
      socket.end(core.errorResponse(error instanceof core.HttpError ? error.status : 400, 'bad request'));
    }
  };
  socket.on('data', onHead);
});

/** The connection, from the end of the handshake to the end of TCP. */
function run(socket: Socket, first: Buffer): void {
  const protocol = new core.Protocol('server', options, Date.now());
  // After every step: what the core decided, carried out.
  const settle = (): void => {
    for (let event = protocol.nextEvent(); event !== null; event = protocol.nextEvent()) {
      if (event.type === 'message') protocol.sendData(event.data, { binary: event.isBinary });
      if (event.type === 'error') console.log(`protocol error: ${event.error.message}`);
    }
    for (const bytes of protocol.takeOutput()) socket.write(bytes);
    if (protocol.wantsDestroy) socket.destroy();
    else if (protocol.wantsEnd && !socket.writableEnded) socket.end(); // §7.1.1: the server ends TCP first
  };
  socket.on('data', (chunk: Buffer) => {
    protocol.receive(chunk, Date.now());
    settle();
  });
  socket.on('end', () => {
    protocol.receiveEnd(Date.now());
    settle();
  });
  socket.on('close', () => {
    const { code, reason, wasClean } = protocol.streamClosed(Date.now());
    console.log(`closed ${code} "${reason}" clean=${wasClean}`);
  });
  if (first.length > 0) protocol.receive(first, Date.now());
  settle();
}

server.listen(Number(process.env['PORT'] ?? 8080), '127.0.0.1', () => {
  const { port } = server.address() as { port: number };
  console.log(`listening on ws://127.0.0.1:${port}/`);
});
