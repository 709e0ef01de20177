/**
 * A raw TCP echo server in Node, the baseline: whatever arrives goes straight back.
 *   node --import tsx bench/servers/raw.ts [--port N]
 */
import { createServer } from 'node:net';
import { announce, exitOnSignals, portArg } from './common.js';

const server = createServer((socket) => {
  socket.setNoDelay(true);
  socket.on('error', () => {});
  socket.on('data', (data) => socket.write(data));
});
server.listen(portArg(), '127.0.0.1', () => {
  exitOnSignals();
  const address = server.address();
  announce(typeof address === 'object' && address !== null ? address.port : 0, { impl: 'raw' });
});
