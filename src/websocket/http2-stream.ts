import { constants as h2, type Http2Stream } from 'node:http2';
import { addAbortSignal } from 'node:stream';

/**
 * An HTTP/2 stream made ready to carry a WebSocket (RFC 8441), on either side: the driver
 * (src/driver/connection.ts) runs over it as over a socket, and these are the two places it differs.
 */

/**
 * RFC 8441 §6: "Orderly TCP-level closures are represented as END_STREAM flags", and "RST exceptions
 * are represented with the RST_STREAM frame ... with the CANCEL error code". END_STREAM is what the
 * stream's `end()` sends; the driver aborts with `destroy()`, which on a Node Http2Stream sends
 * RST_STREAM with NO_ERROR, and `close(CANCEL)` would send END_STREAM before the RST_STREAM (the
 * peer may see an orderly end). Node sends CANCEL alone for a stream destroyed with an AbortError,
 * which `addAbortSignal` with an aborted signal does. That error is our own doing, not news for the
 * application: the stream's 'error' listeners (the driver's) are set aside first, and the 'close'
 * that follows reports 1006 as a reset would. One shared function, set on the stream, so an idle
 * WebSocket carries no extra closure.
 */
function destroyWithCancel(this: Http2Stream, error?: Error | null): Http2Stream {
  const destroy = (Object.getPrototypeOf(this) as Http2Stream).destroy;
  if (error != null || this.closed || this.destroyed) return destroy.call(this, error ?? undefined);
  this.removeAllListeners('error');
  this.on('error', ignore);
  // Calls this.destroy(new AbortError()): this function again, with an error this time.
  addAbortSignal(AbortSignal.abort(), this);
  return this;
}

function ignore(): void {}

/**
 * The server ends its side (END_STREAM) once the closing handshake is done, or it failed the
 * connection (RFC 6455 §7.1.1: the server closes first). Over TCP the client then closes too; over
 * HTTP/2 a client may leave its half open (Chromium does), and the WebSocket would wait for its
 * close timeout. RFC 9113 §8.1 has the answer for a server whose response is complete while the
 * request is not: "a RST_STREAM with an error code of NO_ERROR after sending a complete response".
 */
function closeAfterEnd(this: Http2Stream): void {
  if (!this.closed && !this.destroyed) this.close(h2.NGHTTP2_NO_ERROR);
}

/** Make an Http2Stream ready for the WebSocket driver: aborts as CANCEL, the server's close, the peer's address. */
export function prepareWebSocketStream(stream: Http2Stream, role: 'server' | 'client'): void {
  const socket = stream.session?.socket;
  Object.assign(stream, {
    destroy: destroyWithCancel,
    remoteAddress: socket?.remoteAddress,
    remotePort: socket?.remotePort,
  });
  // 'finish': our END_STREAM is sent, after everything written before it (the close frame last).
  if (role === 'server') stream.once('finish', closeAfterEnd);
}
