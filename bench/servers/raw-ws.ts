/**
 * The floor for F (idle memory) and broadcast: the least a Node server can do. It answers the
 * opening handshake by hand (no validation beyond finding the key), then keeps plain `net` sockets
 * in a Set; a broadcast writes one pre-built frame to every socket (one `socket.write` each, as
 * every Node server must). Whatever a client sends after its handshake can only be a close frame
 * here (the server never pings): it gets a close frame back and the end of TCP.
 *   node --import tsx bench/servers/raw-ws.ts [--port N]
 */
import { createHash } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import { WEBSOCKET_GUID as GUID } from '../../src/protocol/constants.js';
import { announce, exitOnSignals, onBroadcastCommand, portArg } from './common.js';

const CLOSE = Buffer.from([0x88, 0x02, 0x03, 0xe8]);
const sockets = new Set<Socket>();

function onClientData(this: Socket): void {
  this.end(CLOSE);
}

function onClientClose(this: Socket): void {
  sockets.delete(this);
}

const server = createServer((socket) => {
  socket.setNoDelay(true);
  socket.on('error', () => {});
  let head = '';
  const onHead = (chunk: Buffer): void => {
    head += chunk.toString('latin1');
    const end = head.indexOf('\r\n\r\n');
    if (end === -1) {
      if (head.length > 16384) socket.destroy();
      return;
    }
    socket.off('data', onHead);
    const key = /\r\nsec-websocket-key:[ \t]*([^\r\n]*)/i.exec(head)?.[1]?.trim();
    if (key === undefined || key === '') {
      socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      return;
    }
    const accept = createHash('sha1')
      .update(key + GUID)
      .digest('base64');
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    sockets.add(socket);
    socket.on('data', onClientData);
    socket.on('close', onClientClose);
  };
  socket.on('data', onHead);
});

onBroadcastCommand(
  () => sockets.size,
  (message) => {
    const payload = Buffer.from(message);
    // A server's frame (RFC 6455 §5.2): FIN + text, unmasked, length < 126.
    const frame = Buffer.concat([Buffer.from([0x81, payload.length]), payload]);
    for (const socket of sockets) socket.write(frame);
  },
);
server.listen(portArg(), '127.0.0.1', () => {
  exitOnSignals();
  const address = server.address();
  announce(typeof address === 'object' && address !== null ? address.port : 0, { impl: 'raw-ws', broadcast: true });
});
