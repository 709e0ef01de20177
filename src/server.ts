import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer, type TlsOptions } from 'node:tls';
import { CloseCode, Opcode, ReadyState } from './constants.js';
import type { Broker } from './broker.js';
import { PerMessageDeflate } from './deflate-zlib.js';
import { ExtensionHeaderError, parseExtensions } from './extensions.js';
import { encodeFrame } from './frame.js';
import {
  describeRequest,
  selectProtocol,
  switchingProtocolsResponse,
  validateUpgradeRequest,
  type UpgradeFields,
  type UpgradeRequest,
} from './handshake.js';
import {
  DEFAULT_MAX_HEAD_SIZE,
  HeadReader,
  HttpError,
  errorResponse,
  headerMapOf,
  parseRequestHead,
  type RequestHead,
} from './http1.js';
import {
  resolveConnectionOptions,
  toPayload,
  type ConnectionOptions,
  type Data,
  type ResolvedConnectionOptions,
} from './options.js';
import {
  acceptDeflateOffer,
  deflateOptionsOf,
  type DeflateParams,
  type PerMessageDeflateOptions,
} from './permessage-deflate.js';
import { sharedWheel, type WheelTarget } from './timer-wheel.js';
import { EVERYONE, Topics, type PublishOptions } from './topics.js';
import { adoptStream, joinTopics, sendFramed, startReading, type WebSocket } from './websocket.js';

/**
 * The server: reads each client's opening handshake off its socket (RFC 6455 §4.2), decides, answers,
 * and hands the socket to a connection; keeps the registry of live connections for `broadcast` and
 * the connection limit; shuts down gracefully.
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
  /**
   * permessage-deflate (RFC 7692): true, or options, to accept clients' offers. Default false:
   * compression costs CPU and up to ~300 KiB of zlib state per connection that uses it.
   */
  perMessageDeflate?: boolean | PerMessageDeflateOptions;
  /** Carries `publish` and `broadcast` to other processes (src/broker.ts). Default: this process only. */
  broker?: Broker;
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

/** How long a refused client gets to read the error response before its socket is destroyed. */
const REFUSAL_LINGER_MS = 1_000;
/**
 * What a refused client may still send meanwhile: read and dropped (so its FIN is seen and our
 * response is not cut short by a reset), but no more than this, or a peer could keep us reading
 * whatever it streams for the whole linger.
 */
const REFUSAL_DRAIN_BYTES = 64 * 1024;

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

export class WebSocketServer extends EventEmitter<WebSocketServerEventMap> {
  /** The live connections (OPEN or CLOSING), a read-only Set keyed by connection (as in `ws`). */
  readonly clients: ClientSet;
  readonly #admission: Admission;
  #netServer: NetServer | null = null;
  #closing: Promise<void> | null = null;

  constructor(options: ServerOptions = {}) {
    super();
    this.#admission = new Admission(this, options);
    this.clients = new ClientSet(this.#admission.byId);
  }

  /** Listen on a TCP port (0 for any free one). Resolves with the bound address. */
  listen(port = 0, host?: string): Promise<AddressInfo> {
    if (this.#netServer !== null) return Promise.reject(new Error('already listening'));
    const tls = this.#admission.options.tls;
    const onSocket = (socket: Socket): void => this.handleSocket(socket);
    const server = tls !== undefined ? createTlsServer(tls, onSocket) : createNetServer(onSocket);
    this.#netServer = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        server.on('error', (error) => this.#admission.emitError(error));
        resolve(server.address() as AddressInfo);
      });
    });
  }

  /** The bound address, once listening. */
  address(): AddressInfo | null {
    const address = this.#netServer?.address();
    return address !== null && typeof address === 'object' ? address : null;
  }

  /** The connection with this id, if it is still live. */
  getClient(id: number): WebSocket | undefined {
    return this.clients.get(id);
  }

  /**
   * Take a stream (a socket accepted by any `net` or `tls` server, or any stream.Duplex) whose first
   * bytes are an HTTP upgrade request: read and answer the handshake, then run the connection.
   */
  handleSocket(socket: Duplex): void {
    const admission = this.#admission;
    if (this.#closing !== null) {
      socket.destroy();
      return;
    }
    const handshake = new PendingHandshake(
      admission,
      socket,
      admission.options.maxHeaderSize ?? SERVER_DEFAULTS.maxHeaderSize,
    );
    admission.handshakes.add(handshake);
    handshake.start(admission.options.handshakeTimeout ?? SERVER_DEFAULTS.handshakeTimeout);
  }

  /**
   * Take over a request from a `node:http` or `node:https` server's 'upgrade' event:
   * `httpServer.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head))`.
   * Emits 'connection', or calls `callback` instead when given.
   */
  handleUpgrade(
    request: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    callback?: (connection: WebSocket, request: UpgradeRequest) => void,
  ): void {
    const admission = this.#admission;
    if (this.#closing !== null) {
      socket.destroy();
      return;
    }
    const handshake = new PendingHandshake(admission, socket, 0);
    admission.handshakes.add(handshake);
    const timeout = admission.options.handshakeTimeout ?? SERVER_DEFAULTS.handshakeTimeout;
    handshake.startFromParsed(fromIncomingMessage(request), head, timeout, callback);
  }

  /**
   * Send to every subscriber of `topic`, here and (through the broker) in other processes; framed once,
   * compressed once per group that can share it (src/topics.ts). Returns how many local subscribers got it.
   */
  publish(topic: string, data: Data, options: PublishOptions = {}): number {
    return this.#admission.topics.publish(topic, toPayload(data), options.binary ?? typeof data !== 'string', options);
  }

  /** How many connections of this process are subscribed to `topic`. */
  subscriberCount = (topic: string): number => this.#admission.topics.subscriberCount(topic);

  /**
   * Send one message to every open connection (that `filter` accepts), framed once; without a filter,
   * to every connection of the other processes too (through the broker). Returns how many here got it.
   */
  broadcast(data: Data, options: { binary?: boolean } = {}, filter?: (connection: WebSocket) => boolean): number {
    const binary = options.binary ?? typeof data !== 'string';
    const payload = toPayload(data);
    if (filter === undefined) this.#admission.topics.broker.publish(null, payload, binary);
    // One frame for everybody: a server's frames are unmasked (RFC 6455 §5.1), so the bytes are the same.
    const frame = encodeFrame({ opcode: binary ? Opcode.Binary : Opcode.Text, payload });
    let count = 0;
    for (const client of this.clients) {
      if (client.readyState !== ReadyState.OPEN || (filter !== undefined && !filter(client))) continue;
      if (sendFramed(client, frame) || client.readyState === ReadyState.OPEN) count++;
    }
    return count;
  }

  /**
   * Graceful shutdown: stop accepting, close every connection with 1001 (going away), destroy the
   * ones still there after `timeout` ms, and resolve when all are gone.
   */
  close(timeout = this.#admission.connectionOptions.closeTimeout): Promise<void> {
    if (this.#closing !== null) return this.#closing;
    this.#closing = new Promise<void>((resolve) => {
      const server = this.#netServer;
      let listening = server !== null && server.listening;
      let remaining = this.clients.size;
      const maybeDone = (): void => {
        if (remaining === 0 && !listening) {
          clearTimeout(timer);
          this.emit('close');
          resolve();
        }
      };
      const timer = setTimeout(() => {
        for (const client of this.clients) client.terminate();
      }, timeout);
      timer.unref();
      if (listening) {
        server!.close(() => {
          listening = false;
          maybeDone();
        });
      }
      for (const handshake of this.#admission.handshakes) handshake.abort();
      for (const client of this.clients) {
        client.once('close', () => {
          remaining--;
          maybeDone();
        });
        client.close(CloseCode.GoingAway, 'server shutting down');
      }
      maybeDone();
    }).then(() => this.#admission.topics.broker.close());
    return this.#closing;
  }
}

type Verdict = {
  fields: UpgradeFields;
  request: UpgradeRequest;
  deflate: { response: string; params: DeflateParams } | null;
};
type ConnectionCallback = (connection: WebSocket, request: UpgradeRequest) => void;

/**
 * The server's decisions about handshakes (RFC 6455 §4.2.1, then its own policy) and its registry
 * of connections: what pending handshakes talk to, out of the public class's way.
 */
class Admission {
  readonly byId = new Map<number, WebSocket>();
  readonly topics: Topics;
  readonly handshakes = new Set<PendingHandshake>();
  readonly options: ServerOptions;
  /** Resolved once and frozen: every connection shares this object instead of a copy. */
  readonly connectionOptions: ResolvedConnectionOptions;
  readonly deflateOptions: PerMessageDeflateOptions | null;
  /** Handshakes past the connection-limit check that are not connections yet (being verified). */
  reserved = 0;
  private nextId = 1;

  constructor(
    private readonly server: WebSocketServer,
    options: ServerOptions,
  ) {
    this.options = { ...options };
    this.connectionOptions = resolveConnectionOptions(options);
    this.deflateOptions = deflateOptionsOf(options.perMessageDeflate);
    // A broadcast from another process reaches everyone here (a filter: not sent on again).
    const broadcast = (data: Buffer, binary: boolean): unknown => server.broadcast(data, { binary }, EVERYONE);
    this.topics = new Topics(options.broker, this.deflateOptions, broadcast);
  }

  /** The connection closed (its driver tells its registry): out of the registry and every topic. */
  delete(id: number): void {
    const connection = this.byId.get(id);
    if (connection !== undefined) this.topics.leaveAll(connection);
    this.byId.delete(id);
  }

  /** RFC 6455 §4.2.1, then this server's own policy. Throws an HttpError to refuse. */
  evaluate(head: RequestHead, socket: Duplex): Verdict {
    const request = describeRequest(head, remoteAddressOf(socket), (socket as Partial<Socket>).remotePort);
    const options = this.options;
    // A path we do not serve is "not found" whatever else is wrong with the request.
    if (options.path !== undefined) {
      const served =
        typeof options.path === 'string' ? request.path === options.path : options.path(request.path, request);
      if (!served) throw new HttpError(404, 'no WebSocket endpoint at this path');
    }
    const fields = validateUpgradeRequest(head);
    request.protocols = fields.protocols;
    // RFC 6455 §4.2.2 item 4, §10.2: "If the origin indicated is unacceptable to the server, then it
    // SHOULD respond to the WebSocket handshake with a reply containing an appropriate HTTP error
    // code (such as 403 Forbidden)".
    if (options.checkOrigin !== undefined && !options.checkOrigin(fields.origin, request)) {
      throw new HttpError(403, 'origin not allowed');
    }
    const limit = options.maxConnections ?? SERVER_DEFAULTS.maxConnections;
    if (this.byId.size + this.reserved >= limit)
      throw new HttpError(503, 'too many connections; try again later', { 'Retry-After': '1' });
    // RFC 7692 §5: accept the first permessage-deflate offer we can; ignore extensions we don't know.
    let deflate: Verdict['deflate'] = null;
    if (this.deflateOptions !== null && fields.extensions.length > 0) {
      try {
        deflate = acceptDeflateOffer(parseExtensions(fields.extensions), this.deflateOptions);
      } catch (error) {
        if (error instanceof ExtensionHeaderError)
          throw new HttpError(400, 'malformed Sec-WebSocket-Extensions header');
        throw error;
      }
    }
    return { fields, request, deflate };
  }

  /** Choose the subprotocol (RFC 6455 §4.2.2 item 5.4). Never one the client did not offer. */
  chooseProtocol(offered: readonly string[], request: UpgradeRequest): string | undefined {
    if (offered.length === 0) return undefined;
    if (this.options.handleProtocols !== undefined) {
      const chosen = this.options.handleProtocols(offered, request);
      if (chosen !== undefined && !offered.includes(chosen)) {
        throw new Error(`handleProtocols chose "${chosen}", which the client did not offer`);
      }
      return chosen;
    }
    return selectProtocol(offered, this.options.protocols ?? []);
  }

  /** The handshake is done: make it a connection, register it, announce it, start reading. */
  admit(
    stream: Duplex,
    rest: Buffer,
    protocol: string | undefined,
    verdict: Verdict,
    data: unknown,
    callback?: ConnectionCallback,
  ): void {
    const { deflate, request } = verdict;
    const id = this.nextId++;
    const connection = adoptStream(this.connectionOptions, {
      stream,
      protocol: protocol ?? '',
      extensions: deflate?.response ?? '',
      deflate: deflate === null ? null : new PerMessageDeflate(deflate.params, this.deflateOptions!),
      id,
      data,
      registry: this,
    });
    this.byId.set(id, connection);
    joinTopics(connection, this.topics);
    if (callback !== undefined) callback(connection, request);
    else this.server.emit('connection', connection, request);
    startReading(connection, rest);
  }

  emitRejected(status: number, message: string, remoteAddress: string | undefined): void {
    if (this.server.listenerCount('rejected') > 0) this.server.emit('rejected', status, message, remoteAddress);
  }

  /** Never throw into a socket callback: report, if anyone listens. */
  emitError(error: Error): void {
    if (this.server.listenerCount('error') > 0) this.server.emit('error', error);
  }
}

/**
 * One stream between accept and the 101 response: reads the request head incrementally, asks
 * for a verdict, answers. Lives on the timer wheel for the handshake timeout.
 */
class PendingHandshake implements WheelTarget {
  wheelTick = 0;
  wheelIndex = 0;
  private reader: HeadReader | null;
  /** A verdict was reached (accepted or refused): later events change nothing. */
  private decided = false;
  private deadline = 0;
  /** Bytes read and dropped after a refusal. */
  private drained = 0;
  private readonly onData = (chunk: Buffer): void => this.receive(chunk);
  // Errors before the handshake completes (resets, say) end the attempt quietly; 'close' follows.
  private readonly onError = (): void => {
    this.socket.destroy();
  };
  private readonly onClose = (): void => this.release();

  constructor(
    private readonly admission: Admission,
    private readonly socket: Duplex,
    maxHeaderSize: number,
  ) {
    this.reader = maxHeaderSize > 0 ? new HeadReader(maxHeaderSize) : null;
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
  }

  start(timeout: number): void {
    this.arm(timeout);
    this.socket.on('data', this.onData);
  }

  startFromParsed(head: RequestHead, rest: Buffer, timeout: number, callback?: ConnectionCallback): void {
    this.arm(timeout);
    this.decide(head, rest, callback);
  }

  /** Handshake timeout, server shutdown, or the end of a refused client's grace period. */
  abort(): void {
    this.decided = true;
    this.socket.destroy();
  }

  onWheel(now: number): void {
    if (this.deadline === 0) return;
    if (now >= this.deadline) this.abort();
    else sharedWheel.schedule(this, this.deadline);
  }

  private arm(timeout: number): void {
    if (timeout <= 0) return;
    this.deadline = Date.now() + timeout;
    sharedWheel.schedule(this, this.deadline);
  }

  private receive(chunk: Buffer): void {
    if (this.decided) {
      // Refused: drop what still comes, up to the allowance.
      this.drained += chunk.length;
      if (this.drained > REFUSAL_DRAIN_BYTES) this.abort();
      return;
    }
    let result: { head: Buffer; rest: Buffer } | null;
    try {
      result = this.reader!.push(chunk);
    } catch (error) {
      this.refuse(error instanceof HttpError ? error : new HttpError(400, 'malformed request'));
      return;
    }
    if (result === null) return;
    this.socket.off('data', this.onData);
    this.reader = null;
    // Hold any further bytes in the socket until the connection takes over.
    this.socket.pause();
    let head: RequestHead;
    try {
      head = parseRequestHead(result.head);
    } catch (error) {
      this.refuse(error instanceof HttpError ? error : new HttpError(400, 'malformed request'));
      return;
    }
    this.decide(head, result.rest);
  }

  private decide(head: RequestHead, rest: Buffer, callback?: ConnectionCallback): void {
    const admission = this.admission;
    let verdict: Verdict;
    let protocol: string | undefined;
    try {
      verdict = admission.evaluate(head, this.socket);
      protocol = admission.chooseProtocol(verdict.fields.protocols, verdict.request);
    } catch (error) {
      this.refuse(error instanceof HttpError ? error : this.internalError(error));
      return;
    }
    const accept = (data: unknown): void => {
      if (this.decided || this.socket.destroyed) return;
      this.decided = true;
      this.detach();
      this.socket.write(switchingProtocolsResponse(verdict.fields.key, protocol, verdict.deflate?.response));
      admission.admit(this.socket, rest, protocol, verdict, data, callback);
    };
    const verify = admission.options.verify;
    if (verify === undefined) {
      accept(undefined);
      return;
    }
    // Count this one against the connection limit while it is being verified.
    admission.reserved++;
    let settled = false;
    const conclude = (result: VerifyResult): void => {
      if (settled) return;
      settled = true;
      admission.reserved--;
      if (result === undefined || result === true) accept(undefined);
      else if (result === false) this.refuse(new HttpError(403, 'connection refused'));
      else if ('status' in result)
        this.refuse(new HttpError(result.status, result.message ?? 'connection refused', result.headers ?? {}));
      else accept(result.data);
    };
    const fail = (error: unknown): void => {
      if (settled) return;
      settled = true;
      admission.reserved--;
      this.refuse(this.internalError(error));
    };
    try {
      const result = verify(verdict.request);
      if (result instanceof Promise) result.then(conclude, fail).catch(fail);
      else conclude(result);
    } catch (error) {
      fail(error);
    }
  }

  private internalError(error: unknown): HttpError {
    this.admission.emitError(error instanceof Error ? error : new Error(String(error)));
    return new HttpError(500, 'internal server error');
  }

  /**
   * Answer with an HTTP error and close (RFC 6455 §4.2.1: "return an HTTP response with an
   * appropriate error code").
   */
  private refuse(error: HttpError): void {
    if (this.decided) return;
    this.decided = true;
    const socket = this.socket;
    this.admission.emitRejected(error.status, error.message, remoteAddressOf(socket));
    this.reader = null;
    if (socket.destroyed) return;
    let response: Buffer;
    try {
      response = errorResponse(error.status, error.message, error.headers);
    } catch (invalid) {
      // Headers from a `verify` hook that cannot be sent (a CR or LF in a value, say).
      this.admission.emitError(invalid instanceof Error ? invalid : new Error(String(invalid)));
      response = errorResponse(500, 'internal server error');
    }
    socket.end(response);
    // Read and drop a little of whatever else comes, so the client's FIN is seen; give it a moment
    // to read the response, then the socket goes, whatever the client does.
    socket.off('data', this.onData);
    socket.on('data', this.onData);
    socket.resume();
    this.deadline = Date.now() + REFUSAL_LINGER_MS;
    sharedWheel.schedule(this, this.deadline);
  }

  /** The connection takes the socket over: drop every listener and timer of ours. */
  private detach(): void {
    this.socket.off('data', this.onData);
    this.socket.off('error', this.onError);
    this.socket.off('close', this.onClose);
    this.release();
  }

  private release(): void {
    this.deadline = 0;
    sharedWheel.cancel(this);
    this.admission.handshakes.delete(this);
  }
}

function remoteAddressOf(stream: Duplex): string | undefined {
  return (stream as Partial<Socket>).remoteAddress;
}

/** A request node:http already parsed, in the shape of ours. */
function fromIncomingMessage(request: IncomingMessage): RequestHead {
  return {
    method: request.method ?? 'GET',
    target: request.url ?? '/',
    version: [request.httpVersionMajor, request.httpVersionMinor],
    headers: headerMapOf(request.rawHeaders),
  };
}

export function createServer(options: ServerOptions = {}): WebSocketServer {
  return new WebSocketServer(options);
}
