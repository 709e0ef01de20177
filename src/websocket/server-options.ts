import type { TlsOptions } from 'node:tls';
import type { Broker } from './broker.js';
import type { UpgradeRequest } from '../protocol/handshake.js';
import type { Http2Options } from './http2.js';
import { DEFAULT_MAX_HEAD_SIZE } from '../protocol/http1.js';
import type { ConnectionOptions } from '../protocol/options.js';
import type { PerMessageDeflateOptions } from '../protocol/permessage-deflate.js';
import type { ConnectionObserver, HttpRequestInfo, HttpResponseInfo } from './hooks.js';
import type { WebSocket } from './websocket.js';

/**
 * What a server is configured with and what it shows of itself: its options and their defaults,
 * its events, and `clients`, the registry seen as a read-only Set (src/websocket/server.ts is the server).
 */

/** What `verify` may answer. */
export type VerifyResult =
  /** true (or nothing): accept. false: refuse with 403. */
  | boolean
  | void
  /** Refuse with this status (and headers, and a short message for the body). */
  | { status: number; message?: string; headers?: Record<string, string> }
  /** Accept, and attach `data` to the connection (`connection.data`): the authenticated user, say. */
  | { data: unknown };

export interface ServerOptions extends ConnectionOptions {
  /**
   * Serve only this path (exact match on the path without the query), or the paths this function
   * accepts. Others get 404.
   */
  path?: string | ((path: string, request: UpgradeRequest) => boolean);
  /**
   * RFC 6455 §10.2: refuse cross-site connections a browser makes on a page's behalf. The default
   * allows every origin: set it in production (for example, to compare against your own origin).
   * Refusals get 403.
   */
  checkOrigin?: (origin: string | undefined, request: UpgradeRequest) => boolean;
  /** Subprotocols this server speaks. The client's most preferred one of these is chosen; never one not listed. */
  protocols?: readonly string[];
  /** Choose the subprotocol yourself: return one of `offered`, or undefined for none. Overrides `protocols`. */
  handleProtocols?: (offered: readonly string[], request: UpgradeRequest) => string | undefined;
  /** Decide whether to accept a connection (authenticate it, say); may be async. */
  verify?: (request: UpgradeRequest) => VerifyResult | Promise<VerifyResult>;
  /** Drop a client that has not completed its handshake within this many ms. Default 10 000. */
  handshakeTimeout?: number;
  /** Largest request head accepted; bigger ones get 431. Default 16 KiB. */
  maxHeaderSize?: number;
  /** Connections beyond this many (open, or accepted and being verified) get 503. Default: no limit. */
  maxConnections?: number;
  /** For `listen()`: serve wss:// with these TLS options (key, cert, ...). */
  tls?: TlsOptions;
  /** With `tls`: `listen()` serves WebSockets over HTTP/2 (RFC 8441) too, on the same port (ALPN). */
  http2?: boolean | Http2Options;
  /**
   * permessage-deflate (RFC 7692): true, or options, to accept clients' offers. Default false:
   * compression costs CPU and up to ~300 KiB of zlib state per connection that uses it.
   */
  perMessageDeflate?: boolean | PerMessageDeflateOptions;
  /** Carries `publish` and `broadcast` to other processes (src/websocket/broker.ts). Default: this process only. */
  broker?: Broker;
  /**
   * Answer requests that are not WebSocket handshakes (no Upgrade, Sec-WebSocket-Key or
   * Sec-WebSocket-Version field), over HTTP/1.1 and, on the server's own TLS listener, HTTP/2: a
   * page, a health check. Return a response, or undefined to have the request judged as a
   * handshake (and refused). HTTP/1.1 responses close the connection. The server adds Content-Length;
   * an answer it cannot send (or a hook that throws) gets 500 and an 'error' event (src/websocket/hooks.ts
   * `plainAnswer`). The protocol explorer plugs in here.
   */
  onHttpRequest?: (request: HttpRequestInfo) => HttpResponseInfo | undefined;
  /**
   * Sees every accepted handshake (its heads as received and sent; over HTTP/2, the extended CONNECT's
   * header fields and the response's) and may return a tracer for that connection's frames: the echo
   * CLI's --trace and the protocol explorer plug in here.
   */
  observe?: ConnectionObserver;
}

export interface WebSocketServerEventMap {
  /** A new connection, after a successful handshake. */
  connection: [socket: WebSocket, request: UpgradeRequest];
  /** A handshake refused with an HTTP error (for logging). */
  rejected: [status: number, message: string, remoteAddress: string | undefined];
  /** Errors of the listening socket, and exceptions thrown by hooks (answered with 500). */
  error: [error: Error];
  /** Emitted once by `close()` when everything is gone. */
  close: [];
}

export const SERVER_DEFAULTS = Object.freeze({
  handshakeTimeout: 10_000,
  maxHeaderSize: DEFAULT_MAX_HEAD_SIZE,
  maxConnections: Infinity,
});

/**
 * The live connections (OPEN or CLOSING) seen as the read-only Set `ws` users know
 * (`clients.size`, `for (const c of clients)`), over the server's own map from id to connection.
 */
export class ClientSet implements ReadonlySet<WebSocket> {
  readonly #byId: ReadonlyMap<number, WebSocket>;

  constructor(byId: ReadonlyMap<number, WebSocket>) {
    this.#byId = byId;
  }

  get size(): number {
    return this.#byId.size;
  }

  has(connection: WebSocket): boolean {
    return this.#byId.get(connection.id) === connection;
  }

  /** The connection with this id, if it is live. */
  get(id: number): WebSocket | undefined {
    return this.#byId.get(id);
  }

  forEach(callback: (value: WebSocket, key: WebSocket, set: ReadonlySet<WebSocket>) => void, thisArg?: unknown): void {
    for (const connection of this.#byId.values()) callback.call(thisArg, connection, connection, this);
  }

  values(): SetIterator<WebSocket> {
    return this.#byId.values();
  }

  keys(): SetIterator<WebSocket> {
    return this.#byId.values();
  }

  *entries(): SetIterator<[WebSocket, WebSocket]> {
    for (const connection of this.#byId.values()) yield [connection, connection];
  }

  [Symbol.iterator](): SetIterator<WebSocket> {
    return this.#byId.values();
  }
}
