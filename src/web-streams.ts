/**
 * `wsrfc/web-streams`: a WebSocket over a WHATWG stream pair (src/driver/web-streams.ts), for any
 * runtime whose sockets come as a `ReadableStream`/`WritableStream` of bytes: `Deno.connect()` and
 * `Deno.listen()`'s connections, Node's `Duplex.toWeb(socket)`. The same protocol core and
 * handshake functions as `wsrfc`, driven without node:net.
 *
 *     const ws = await acceptWebStream(await listener.accept());
 *     for await (const { data, isBinary } of ws) await ws.send(data, { binary: isBinary });
 */
export { acceptWebStream, connectWebStream, WebStreamSocket } from './driver/web-streams.js';
export type { WebStreamPair, WebStreamOptions, WebStreamMessage } from './driver/web-streams.js';
export type { CloseReport } from './protocol/protocol.js';
