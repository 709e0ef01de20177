/**
 * The `ws` package's echo server, for the benchmark.
 *   node --import tsx bench/servers/ws.ts [--port N] [--deflate] [--max-payload N]
 * With WS_NO_BUFFER_UTIL=1 in the environment ws masks and unmasks in JavaScript ("ws (pure JS)");
 * without it, with the native bufferutil addon ("ws + bufferutil"). The line printed once
 * listening says which one ws actually loaded. --deflate: permessage-deflate with the same settings
 * as ours (threshold 1024, zlib's default level and memLevel, context takeover on). UTF-8 validation
 * stays on (no skipUTF8Validation), and maxPayload at ws's default (100 MiB) unless --max-payload says.
 */
import type * as Ws from 'ws';
import {
  announce,
  argValue,
  exitOnSignals,
  hasFlag,
  portArg,
  nativeMasking,
  wsEntry,
  wsUsesBufferutil,
} from './common.js';

const { WebSocketServer } = (await import(wsEntry())) as typeof Ws;

const deflate = hasFlag('--deflate');
const server = new WebSocketServer({
  port: portArg(),
  host: '127.0.0.1',
  perMessageDeflate: deflate ? { threshold: 1024 } : false,
  ...(argValue('--max-payload') === undefined ? {} : { maxPayload: Number(argValue('--max-payload')) }),
});
server.on('connection', (socket) => {
  // ws emits 'error' for a peer's protocol errors; unheard, it would crash the process.
  socket.on('error', () => {});
  socket.on('message', (data, isBinary) => {
    socket.send(data as Buffer, { binary: isBinary });
  });
});
server.on('listening', () => {
  exitOnSignals();
  const address = server.address();
  announce(typeof address === 'object' && address !== null ? address.port : 0, {
    impl: 'ws',
    deflate,
    bufferutil: wsUsesBufferutil(),
    nativeMasking: nativeMasking(),
  });
});
