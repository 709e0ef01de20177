import type { IncomingHttpHeaders } from 'node:http2';
import type { HeaderMap } from '../protocol/http1.js';

/**
 * A node:http2 header block (a request on the server, a response on the client) as the HeaderMap
 * the handshake functions read, the same shape http1.ts's `headerMapOf` makes of raw HTTP/1.1
 * headers. Names come lower case already (RFC 9113 §8.2); pseudo-headers (`:status`, `:path`,
 * ...) are left out, for the caller to read; a field node:http2 gives as an array (repeated
 * `set-cookie`, say) keeps its values apart.
 */
export function headerMapOfHttp2(headers: IncomingHttpHeaders): HeaderMap {
  const map: HeaderMap = new Map();
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith(':') || value === undefined) continue;
    map.set(name, Array.isArray(value) ? [...value] : [String(value)]);
  }
  return map;
}
