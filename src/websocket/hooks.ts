import type { UpgradeRequest } from '../protocol/handshake.js';
import type { RequestHead } from '../protocol/http1.js';
import type { ResolvedConnectionOptions } from '../protocol/options.js';
import type { FrameTracer } from '../protocol/trace.js';

/**
 * The server's public hooks, through which the echo CLI's --trace and the protocol explorer plug
 * in: `observe` (what an observer is told of each accepted handshake, and how the tracer it returns
 * reaches that connection's frames) and `onHttpRequest` (requests that are not handshakes).
 */

/** What the server tells an observer hook about an accepted handshake. */
export interface ObservedHandshake {
  id: number;
  request: UpgradeRequest;
  /** The request head as received (or as node:http parsed it), and the response as sent. */
  requestHead: string;
  responseHead: string;
  /** Sec-WebSocket-Key (HTTP/1.1); '' over HTTP/2, where RFC 8441 §5 drops it. */
  key: string;
  /** The Sec-WebSocket-Extensions the server agreed to, or ''. */
  extensions: string;
}

/** Sees every accepted handshake and may return a tracer for that one connection's frames. */
export type ConnectionObserver = (handshake: ObservedHandshake) => FrameTracer | null;

/**
 * The options for one new connection: the shared ones as they are, or (when the observer wants
 * its frames) a copy whose `trace` also calls the observer's tracer.
 */
export function observedConfig(
  config: ResolvedConnectionOptions,
  observer: ConnectionObserver,
  handshake: ObservedHandshake,
): ResolvedConnectionOptions {
  const tracer = observer(handshake);
  if (tracer === null) return config;
  const own = config.trace;
  const trace: FrameTracer =
    own === null
      ? tracer
      : (frame) => {
          own(frame);
          tracer(frame);
        };
  return Object.freeze({ ...config, trace });
}

/** A request head as text, for a request node:http parsed (header names in lower case then). */
export function headText(head: RequestHead, raw: Buffer | undefined): string {
  if (raw !== undefined) return raw.toString('latin1');
  let text = `${head.method} ${head.target} HTTP/${head.version[0]}.${head.version[1]}\r\n`;
  for (const [name, values] of head.headers) for (const value of values) text += `${name}: ${value}\r\n`;
  return text;
}

/** A request that is not a WebSocket handshake, for `onHttpRequest`. */
export interface HttpRequestInfo {
  method: string;
  /** The request target: path and query (`:path` over HTTP/2). */
  target: string;
  /** '1.1' (or '1.0'), or '2.0'. */
  httpVersion: string;
  /** The header fields, names in lower case, repeated ones joined with ', '. */
  headers: Readonly<Record<string, string>>;
  remoteAddress: string | undefined;
}

/** What `onHttpRequest` answers. Content-Length is added. */
export interface HttpResponseInfo {
  status: number;
  headers?: Readonly<Record<string, string>>;
  body?: string | Uint8Array;
}
