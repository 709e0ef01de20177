/**
 * Broadcast with our server: clients connect and stay idle; on `go K GAP_MS` (stdin) the server
 * sends one 32-byte text message to all of them K times, GAP_MS apart, and prints the time from the
 * call until the writes have all been issued (`wss.broadcast(msg)` frames the message once and
 * queues it on every connection; the writes happen in a microtask, hence the await of setImmediate).
 *   node --import tsx bench/servers/ours-broadcast.ts [--port N]
 */
import { pathToFileURL } from 'node:url';
import type * as Wsrfc from '../../src/index.js';
import { announce, exitOnSignals, onBroadcastCommand, portArg } from './common.js';

// The code under test: src/ through tsx by default; bench/server.ts points WSRFC_BENCH_ENTRY at a
// fresh tsc build of src/ (what the package ships), so tsx's transform is not what gets measured.
const entry = process.env.WSRFC_BENCH_ENTRY || undefined;
const { WebSocketServer } = (
  entry ? await import(pathToFileURL(entry).href) : await import('../../src/index.js')
) as typeof Wsrfc;

const server = new WebSocketServer({});
const address = await server.listen(portArg(), '127.0.0.1');
onBroadcastCommand(
  () => server.clients.size,
  (message) => {
    server.broadcast(message);
  },
);
exitOnSignals();
announce(address.port, { impl: 'ours', broadcast: true, entry: entry ?? 'src (tsx)' });
