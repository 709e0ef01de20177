/**
 * Our echo server, for the benchmark: the echo of src/cli/echo.ts without its logging.
 *   node --import tsx bench/servers/ours.ts [--port N] [--deflate]
 * WSRFC_BENCH_ENTRY=path/to/index.js runs a build instead of src/.
 * --deflate accepts permessage-deflate with the default settings (threshold 1024, zlib's default
 * level and memLevel, context takeover on). UTF-8 validation and the size limits stay on (defaults).
 */
import { pathToFileURL } from 'node:url';
import type * as Wsrfc from '../../src/index.js';
import { announce, exitOnSignals, hasFlag, portArg } from './common.js';

// The code under test: src/ through tsx by default; bench/server.ts points WSRFC_BENCH_ENTRY at a
// fresh tsc build of src/ (what the package ships), so tsx's transform is not what gets measured.
const entry = process.env.WSRFC_BENCH_ENTRY || undefined;
const { WebSocketServer } = (
  entry ? await import(pathToFileURL(entry).href) : await import('../../src/index.js')
) as typeof Wsrfc;

const deflate = hasFlag('--deflate');
const server = new WebSocketServer({ perMessageDeflate: deflate });
server.on('connection', (connection) => {
  connection.on('message', (data, isBinary) => {
    connection.send(data, { binary: isBinary });
  });
});
const address = await server.listen(portArg(), '127.0.0.1');
exitOnSignals();
announce(address.port, { impl: 'ours', deflate, entry: entry ?? 'src (tsx)' });
