/**
 * uWebSockets.js's echo server, for the benchmark (an optional peer: bench/server.ts installs it into
 * its cache when it can and passes the addon's path in WSRFC_BENCH_UWS).
 *   WSRFC_BENCH_UWS=/path/to/uws_linux_x64_115.node node --import tsx bench/servers/uws.ts [--port N]
 * The addon is loaded directly, never the package's `ws`-based fallback, so what is measured is the
 * C++ server. Compression off (A-F do not negotiate it); maxPayloadLength 100 MiB like our default
 * maxMessageSize; UTF-8 validation is always on in uWebSockets.js.
 */
import { createRequire } from 'node:module';
import { announce, exitOnSignals, portArg } from './common.js';

interface UwsSocket {
  send(message: ArrayBuffer, isBinary: boolean): number;
}
interface UwsApp {
  ws(pattern: string, behavior: Record<string, unknown>): UwsApp;
  listen(host: string, port: number, done: (token: unknown) => void): UwsApp;
}
interface Uws {
  App(): UwsApp;
  us_socket_local_port(token: unknown): number;
}

const addon = process.env.WSRFC_BENCH_UWS;
if (addon === undefined) throw new Error('WSRFC_BENCH_UWS: the path of the uWebSockets.js addon is not set');
const uws = createRequire(import.meta.url)(addon) as Uws;
const port = portArg();
uws
  .App()
  .ws('/*', {
    compression: 0,
    maxPayloadLength: 100 * 1024 * 1024,
    // uWebSockets.js drops a send beyond maxBackpressure (default 64 KiB); E keeps 2 MiB in flight.
    maxBackpressure: 256 * 1024 * 1024,
    idleTimeout: 0,
    message: (socket: UwsSocket, message: ArrayBuffer, isBinary: boolean) => {
      socket.send(message, isBinary);
    },
  })
  .listen('127.0.0.1', port, (token) => {
    if (!token) throw new Error(`uWebSockets.js could not listen on port ${port}`);
    exitOnSignals();
    announce(uws.us_socket_local_port(token), { impl: 'uws' });
  });
