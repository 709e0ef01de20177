/**
 * Broadcast with ws: clients connect and stay idle; on `go K GAP_MS` (stdin) the server sends one
 * 32-byte text message to all of them K times, GAP_MS apart, with the loop of ws's README
 * (`for (const client of wss.clients) if (client.readyState === OPEN) client.send(msg)`), and prints
 * the time from the loop's start until the writes have all been issued (then setImmediate).
 *   node --import tsx bench/servers/ws-broadcast.ts [--port N]       (WS_NO_BUFFER_UTIL=1 for pure JS)
 */
import type * as Ws from 'ws';
import {
  announce,
  exitOnSignals,
  onBroadcastCommand,
  portArg,
  nativeMasking,
  wsEntry,
  wsUsesBufferutil,
} from './common.js';

const { WebSocket, WebSocketServer } = (await import(wsEntry())) as typeof Ws;

const server = new WebSocketServer({ port: portArg(), host: '127.0.0.1', perMessageDeflate: false });
server.on('connection', (socket) => socket.on('error', () => {}));
onBroadcastCommand(
  () => server.clients.size,
  (message) => {
    for (const client of server.clients) if (client.readyState === WebSocket.OPEN) client.send(message);
  },
);
server.on('listening', () => {
  exitOnSignals();
  const address = server.address();
  announce(typeof address === 'object' && address !== null ? address.port : 0, {
    impl: 'ws',
    broadcast: true,
    bufferutil: wsUsesBufferutil(),
    nativeMasking: nativeMasking(),
  });
});
