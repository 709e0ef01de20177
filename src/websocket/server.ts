import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { CloseCode, Opcode, ReadyState } from '../protocol/constants.js';
import { PerMessageDeflate } from '../driver/deflate-zlib.js';
import { ExtensionHeaderError, parseExtensions } from '../protocol/extensions.js';
import { encodeFrame } from '../protocol/frame.js';
import { Http2Front, type DeflateAgreement, type Gatekeeper } from './http2.js';
import {
  describeRequest,
  selectProtocol,
  switchingProtocolsResponse,
  validateUpgradeRequest,
  type UpgradeFields,
  type UpgradeRequest,
} from '../protocol/handshake.js';
import {
  HeadReader,
  HttpError,
  errorResponse,
  headerMapOf,
  headersRecord,
  parseRequestHead,
  writeResponseHead,
  type RequestHead,
} from '../protocol/http1.js';
import { resolveConnectionOptions, toPayload, type Data, type ResolvedConnectionOptions } from '../protocol/options.js';
import {
  acceptDeflateOffer,
  deflateOptionsOf,
  type DeflateParams,
  type PerMessageDeflateOptions,
} from '../protocol/permessage-deflate.js';
import { sharedWheel, type WheelTarget } from '../driver/timer-wheel.js';
import {
  askHook,
  observedConfig,
  observedHandshake,
  type HandshakeRecord,
  type HttpRequestInfo,
  type PlainAnswer,
} from './hooks.js';
import {
  ClientSet,
  SERVER_DEFAULTS,
  type ServerOptions,
  type VerifyResult,
  type WebSocketServerEventMap,
} from './server-options.js';
import { EVERYONE, Topics, type PublishOptions } from './topics.js';
import { adoptStream, joinTopics, sendFramed, startReading, type WebSocket } from './websocket.js';

export { ClientSet, SERVER_DEFAULTS, type ServerOptions, type VerifyResult, type WebSocketServerEventMap };

/**
 * The server: reads each client's opening handshake off its socket (RFC 6455 §4.2), decides, answers,
 * and hands the socket to a connection; keeps the registry of live connections for `broadcast` and
 * the connection limit; shuts down gracefully.
 */

/** How long a refused client gets to read the error response before its socket is destroyed. */
const REFUSAL_LINGER_MS = 1_000;
/**
 * What a refused client may still send meanwhile: read and dropped (so its FIN is seen and our
 * response is not cut short by a reset), but no more than this, or a peer could keep us reading
 * whatever it streams for the whole linger.
 */
const REFUSAL_DRAIN_BYTES = 64 * 1024;
/** A request with any of these is a WebSocket handshake (maybe a broken one), never a plain request. */
const HANDSHAKE_FIELDS = ['upgrade', 'sec-websocket-key', 'sec-websocket-version'];

export class WebSocketServer extends EventEmitter<WebSocketServerEventMap> {
  /** The live connections (OPEN or CLOSING), a read-only Set keyed by connection (as in `ws`). */
  readonly clients: ClientSet;
  readonly #admission: Admission;
  readonly #http2: Http2Front;
  #netServer: NetServer | null = null;
  #closing: Promise<void> | null = null;

  constructor(options: ServerOptions = {}) {
    super();
    this.#admission = new Admission(this, options);
    this.clients = new ClientSet(this.#admission.byId);
    this.#http2 = new Http2Front(this.#admission, options.http2 ?? false);
  }

  /** Listen on a TCP port (0 for any free one). Resolves with the bound address. */
  listen(port = 0, host?: string): Promise<AddressInfo> {
    if (this.#netServer !== null) return Promise.reject(new Error('already listening'));
    const tls = this.#admission.options.tls;
    const onSocket = (socket: Socket): void => this.handleSocket(socket);
    const server = tls === undefined ? createNetServer(onSocket) : this.#http2.createTlsServer(tls, onSocket);
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
   * Take over an extended CONNECT (RFC 8441) from a `node:http2` server's 'stream' event (its settings
   * with `enableConnectProtocol: true`), like `handleUpgrade`: emits 'connection' or calls `callback`.
   */
  handleHttp2Stream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, callback?: ConnectionCallback): void {
    this.#http2.handleStream(stream, headers, callback);
  }

  /**
   * Send to every subscriber of `topic`, here and (through the broker) in other processes; framed once,
   * compressed once per group that can share it (src/websocket/topics.ts). Returns how many local subscribers got it.
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
      // RFC 8441 §6 and RFC 9113 §6.8: after the 1001s are written, GOAWAY to our HTTP/2 sessions.
      this.#http2.close();
      setImmediate(() => this.#http2.goAway());
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
class Admission implements Gatekeeper {
  readonly byId = new Map<number, WebSocket>();
  readonly topics: Topics;
  readonly handshakes = new Set<PendingHandshake>();
  readonly options: ServerOptions;
  /** Resolved once and frozen: every connection shares this object instead of a copy. */
  readonly connectionOptions: ResolvedConnectionOptions;
  readonly deflateOptions: PerMessageDeflateOptions | null;
  readonly handshakeTimeout: number;
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
    this.handshakeTimeout = options.handshakeTimeout ?? SERVER_DEFAULTS.handshakeTimeout;
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
    // A path we do not serve is "not found" whatever else is wrong with the request.
    this.checkPath(request);
    const fields = validateUpgradeRequest(head);
    request.protocols = fields.protocols;
    return { fields, request, deflate: this.decideFields(fields, request) };
  }

  checkPath(request: UpgradeRequest): void {
    const path = this.options.path;
    if (path === undefined) return;
    const served = typeof path === 'string' ? request.path === path : path(request.path, request);
    if (!served) throw new HttpError(404, 'no WebSocket endpoint at this path');
  }

  /** The server's policy once the handshake itself is valid (over HTTP/1.1 or HTTP/2). */
  decideFields(fields: UpgradeFields, request: UpgradeRequest): DeflateAgreement {
    const options = this.options;
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
    return deflate;
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

  /** Run `verify` (when set), counting the handshake against the connection limit meanwhile. */
  verifyThen(request: UpgradeRequest, accept: (data: unknown) => void, refuse: (error: HttpError) => void): void {
    const verify = this.options.verify;
    if (verify === undefined) {
      accept(undefined);
      return;
    }
    this.reserved++;
    let settled = false;
    const conclude = (result: VerifyResult): void => {
      if (settled) return;
      settled = true;
      this.reserved--;
      if (result === undefined || result === true) accept(undefined);
      else if (result === false) refuse(new HttpError(403, 'connection refused'));
      else if ('status' in result)
        refuse(new HttpError(result.status, result.message ?? 'connection refused', result.headers ?? {}));
      else accept(result.data);
    };
    const fail = (error: unknown): void => {
      if (settled) return;
      settled = true;
      this.reserved--;
      refuse(this.internalError(error));
    };
    try {
      const result = verify(request);
      if (result instanceof Promise) result.then(conclude, fail).catch(fail);
      else conclude(result);
    } catch (error) {
      fail(error);
    }
  }

  internalError(error: unknown): HttpError {
    this.emitError(error instanceof Error ? error : new Error(String(error)));
    return new HttpError(500, 'internal server error');
  }

  /** The handshake is done: make it a connection, register it, announce it, start reading. */
  admit(
    stream: Duplex,
    rest: Buffer,
    protocol: string | undefined,
    verdict: Pick<Verdict, 'request' | 'deflate'>,
    data: unknown,
    callback: ConnectionCallback | undefined,
    /** The handshake as it went (over HTTP/1.1 or HTTP/2), for observers. */
    seen: HandshakeRecord,
  ): void {
    const { deflate, request } = verdict;
    const id = this.nextId++;
    // Only a server with an observer (the explorer, --trace) spends anything on the handshake's text.
    const observe = this.options.observe;
    const config =
      observe === undefined
        ? this.connectionOptions
        : observedConfig(
            this.connectionOptions,
            observe,
            observedHandshake(id, request, deflate?.response ?? '', seen),
          );
    const connection = adoptStream(config, {
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

  /**
   * `onHttpRequest`'s answer to an HTTP/1.1 request that is no WebSocket handshake, as bytes; null
   * to judge it as a handshake. Only requests that carry no handshake field qualify (a broken
   * handshake still gets its 400), and only HTTP/1.1 ones with their one Host (RFC 9112 §3.2).
   */
  plainResponse(head: RequestHead, socket: Duplex): Buffer | null {
    if (this.options.onHttpRequest === undefined || head.version[0] !== 1 || head.version[1] < 1) return null;
    const host = head.headers.get('host');
    if (host === undefined || host.length !== 1 || host[0] === '') return null;
    for (const field of HANDSHAKE_FIELDS) if (head.headers.has(field)) return null;
    const answer = this.answerPlain({
      method: head.method,
      target: head.target,
      httpVersion: `${head.version[0]}.${head.version[1]}`,
      headers: headersRecord(head.headers),
      remoteAddress: remoteAddressOf(socket),
    });
    if (answer === undefined) return null;
    answer.headers.push(['Connection', 'close']);
    return Buffer.concat([Buffer.from(writeResponseHead(answer.status, answer.headers), 'latin1'), answer.body]);
  }

  /** `onHttpRequest` (HTTP/1.1 and HTTP/2): its answer checked, a 500 if it throws or is unsendable, or undefined. */
  answerPlain(request: HttpRequestInfo): PlainAnswer | undefined {
    const hook = this.options.onHttpRequest;
    return hook === undefined ? undefined : askHook(hook, request, (error) => this.internalError(error).status);
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
  // A client that ends its side mid-head never completes it; a half-open Duplex would stay open.
  private readonly onEnd = (): void => void (this.decided || this.socket.destroy());

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
    this.socket.on('data', this.onData).on('end', this.onEnd);
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
    this.decide(head, result.rest, undefined, result.head);
  }

  private decide(head: RequestHead, rest: Buffer, callback?: ConnectionCallback, raw?: Buffer): void {
    const admission = this.admission;
    const plain = admission.plainResponse(head, this.socket);
    if (plain !== null) return this.answer(plain);
    let verdict: Verdict;
    let protocol: string | undefined;
    try {
      verdict = admission.evaluate(head, this.socket);
      protocol = admission.chooseProtocol(verdict.fields.protocols, verdict.request);
    } catch (error) {
      this.refuse(error instanceof HttpError ? error : admission.internalError(error));
      return;
    }
    const accept = (data: unknown): void => {
      if (this.decided || this.socket.destroyed) return;
      this.decided = true;
      this.detach();
      const response = switchingProtocolsResponse(verdict.fields.key, protocol, verdict.deflate?.response);
      this.socket.write(response);
      admission.admit(this.socket, rest, protocol, verdict, data, callback, {
        http2: false,
        head,
        raw,
        response,
        key: verdict.fields.key,
      });
    };
    admission.verifyThen(verdict.request, accept, (error) => this.refuse(error));
  }

  /**
   * Answer with an HTTP error and close (RFC 6455 §4.2.1: "return an HTTP response with an
   * appropriate error code").
   */
  private refuse(error: HttpError): void {
    if (this.decided) return;
    this.decided = true;
    this.admission.emitRejected(error.status, error.message, remoteAddressOf(this.socket));
    let response: Buffer;
    try {
      response = errorResponse(error.status, error.message, error.headers);
    } catch (invalid) {
      // Headers from a `verify` hook that cannot be sent (a CR or LF in a value, say).
      this.admission.emitError(invalid instanceof Error ? invalid : new Error(String(invalid)));
      response = errorResponse(500, 'internal server error');
    }
    this.answer(response);
  }

  /** Send a complete response (a refusal, or `onHttpRequest`'s answer) and end the connection. */
  private answer(response: Buffer): void {
    this.decided = true;
    const socket = this.socket;
    this.reader = null;
    if (socket.destroyed) return;
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
    this.socket.off('end', this.onEnd);
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
