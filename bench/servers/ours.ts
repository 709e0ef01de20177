/**
 * Our echo server, for the benchmark: the echo of src/cli/echo.ts without its logging.
 *   node --import tsx bench/servers/ours.ts [--port N] [--deflate] [--stream] [--max-message-size N]
 * WSRFC_BENCH_ENTRY=path/to/index.js runs a build instead of src/.
 * --stream echoes each message as a stream as it arrives, as the echo CLI's --stream does (bench/stream.ts);
 * --max-message-size raises the limit for a whole message (its frames, and maxBufferedBytes to twice it), to echo
 * huge ones whole.
 * --deflate accepts permessage-deflate with the default settings (threshold 1024, zlib's default
 * level and memLevel, context takeover on). UTF-8 validation and the size limits stay on (defaults).
 */
import { pathToFileURL } from 'node:url';
import type * as Wsrfc from '../../src/index.js';
import { announce, argValue, exitOnSignals, hasFlag, portArg } from './common.js';

// The code under test: src/ through tsx by default; bench/server.ts points WSRFC_BENCH_ENTRY at a
// fresh tsc build of src/ (what the package ships), so tsx's transform is not what gets measured.
const entry = process.env.WSRFC_BENCH_ENTRY || undefined;
const { WebSocketServer } = (
  entry ? await import(pathToFileURL(entry).href) : await import('../../src/index.js')
) as typeof Wsrfc;

const deflate = hasFlag('--deflate');
const stream = hasFlag('--stream');
const limit = argValue('--max-message-size');
const server = new WebSocketServer({
  perMessageDeflate: deflate,
  // A whole message echoed is also sent whole: maxBufferedBytes (128 MiB by default) has to let it wait.
  ...(limit === undefined
    ? {}
    : { maxMessageSize: Number(limit), maxFramePayload: Number(limit), maxBufferedBytes: 2 * Number(limit) }),
});
server.on('connection', (connection) => {
  connection.on('message', (data, isBinary) => {
    connection.send(data, { binary: isBinary });
  });
  if (stream) {
    connection.streamMessages = true;
    connection.on('stream', (message) => connection.send(message, { binary: message.isBinary }));
  }
});
const address = await server.listen(portArg(), '127.0.0.1');
exitOnSignals();
announce(address.port, { impl: 'ours', deflate, entry: entry ?? 'src (tsx)' });
