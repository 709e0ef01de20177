import { constants as h2, type Http2Stream } from 'node:http2';

/**
 * An HTTP/2 stream made ready to carry a WebSocket (RFC 8441), on either side: the driver
 * (src/connection.ts) runs over it as over a socket, and these are the two places it differs.
 */

/**
 * RFC 8441 §6: "Orderly TCP-level closures are represented as END_STREAM flags", and "RST exceptions
 * are represented with the RST_STREAM frame ... with the CANCEL error code". END_STREAM is what the
 * stream's `end()` sends; the driver aborts by `destroy()`, which on a Node Http2Stream sends NO_ERROR:
 * so a WebSocket's stream gets this `destroy`, which closes with CANCEL first. One shared
 * function, set on the stream, so an idle WebSocket carries no extra closure.
 */
function destroyWithCancel(this: Http2Stream, error?: Error | null): Http2Stream {
  if (!this.closed && !this.destroyed) this.close(h2.NGHTTP2_CANCEL);
  return Object.getPrototypeOf(this).destroy.call(this, error) as Http2Stream;
}

/** Make an Http2Stream ready for the WebSocket driver: aborts as CANCEL, and the peer's address. */
export function prepareWebSocketStream(stream: Http2Stream): void {
  const socket = stream.session?.socket;
  Object.assign(stream, {
    destroy: destroyWithCancel,
    remoteAddress: socket?.remoteAddress,
    remotePort: socket?.remotePort,
  });
}
