import {
  constants as h2,
  createServer as createH2cServer,
  type Http2Session,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type ServerHttp2Stream,
  type Settings,
} from 'node:http2';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket, type TlsOptions } from 'node:tls';
import { describeRequest, websocketFields, type UpgradeFields, type UpgradeRequest } from '../protocol/handshake.js';
import { HttpError, headersRecord, type HeaderMap } from '../protocol/http1.js';
import type { DeflateParams } from '../protocol/permessage-deflate.js';
import { sharedWheel, type WheelTarget } from '../driver/timer-wheel.js';
import { headerMapOfHttp2 } from './http2-headers.js';
import { prepareWebSocketStream } from './http2-stream.js';
import type { WebSocket } from './websocket.js';
import type { HandshakeRecord, HttpRequestInfo, PlainAnswer } from './hooks.js';

/**
 * WebSockets over HTTP/2 (RFC 8441), server side. A WebSocket is one HTTP/2 stream opened with an
 * extended CONNECT (`:method CONNECT`, `:protocol websocket`); the server answers `:status 200`
 * and from then on the stream's DATA frames carry WebSocket frames, exactly as TCP does over
 * HTTP/1.1. So the same driver runs the connection (an Http2Stream is a stream.Duplex), and the
 * same decisions admit it (path, origin, subprotocols, permessage-deflate, `verify`, the limits):
 * this file turns the stream's headers into what the server's admission reads, and its verdict
 * into an HTTP/2 response.
 */

/** For the server's own `listen()` with `tls` (RFC 8441 needs nothing more; these are optional). */
export interface Http2Options {
  /**
   * Streams that are not WebSocket handshakes (a browser's GET for the page that opens the
   * WebSocket, say). Without it they get 405.
   */
  onRequest?: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => void;
  /** More HTTP/2 settings for the sessions (`enableConnectProtocol` is always on). */
  settings?: Settings;
}

/** What a permessage-deflate agreement is made of (the server's Admission decides it). */
export type DeflateAgreement = { response: string; params: DeflateParams } | null;

/** The server's admission, as the HTTP/2 way in uses it (src/websocket/server.ts implements it). */
export interface Gatekeeper {
  readonly handshakeTimeout: number;
  /** 404 (an HttpError) for a path the server does not serve. */
  checkPath(request: UpgradeRequest): void;
  /** Origin, connection limit, permessage-deflate: the policy after the handshake's own checks. */
  decideFields(fields: UpgradeFields, request: UpgradeRequest): DeflateAgreement;
  chooseProtocol(offered: readonly string[], request: UpgradeRequest): string | undefined;
  /** Run `verify` (if any), then exactly one of `accept` or `refuse`. */
  verifyThen(request: UpgradeRequest, accept: (data: unknown) => void, refuse: (error: HttpError) => void): void;
  internalError(error: unknown): HttpError;
  admit(
    stream: Duplex,
    rest: Buffer,
    protocol: string | undefined,
    verdict: { request: UpgradeRequest; deflate: DeflateAgreement },
    data: unknown,
    callback: ((connection: WebSocket, request: UpgradeRequest) => void) | undefined,
    /** The handshake as it went, for observers. */
    seen: HandshakeRecord,
  ): void;
  emitRejected(status: number, message: string, remoteAddress: string | undefined): void;
  emitError(error: Error): void;
  /** The server's `onHttpRequest`, its answer checked (a 500 if it throws or is unsendable), or undefined. */
  answerPlain(request: HttpRequestInfo): PlainAnswer | undefined;
}

const EMPTY = Buffer.alloc(0);

/** A plain request on our own listener, through `onHttpRequest`: true when it answered. */
function answerPlainStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, gate: Gatekeeper): boolean {
  const answer = gate.answerPlain({
    method: String(headers[':method']),
    target: String(headers[':path'] ?? ''),
    httpVersion: '2.0',
    headers: headersRecord(requestHeaderMap(headers)),
    remoteAddress: stream.session?.socket?.remoteAddress,
  });
  if (answer === undefined) return false;
  if (stream.destroyed || stream.closed) return true;
  const out: OutgoingHttpHeaders = { ':status': answer.status };
  for (const [name, value] of answer.headers) out[name] = value;
  try {
    if (answer.body.length === 0) stream.respond(out, { endStream: true });
    else {
      stream.respond(out);
      stream.end(answer.body);
    }
  } catch (error) {
    // What node:http2 refuses to send after our checks: report it, end the stream.
    gate.emitError(error instanceof Error ? error : new Error(String(error)));
    stream.close(h2.NGHTTP2_INTERNAL_ERROR);
  }
  return true;
}

/** The headers of an extended CONNECT as a HeaderMap, with `host` for the hooks that read it. */
function requestHeaderMap(headers: IncomingHttpHeaders): HeaderMap {
  const map = headerMapOfHttp2(headers);
  // RFC 9113 §8.3.1: ":authority" takes the place of Host; hooks that read `headers.host` still find it.
  const authority = headers[':authority'];
  if (!map.has('host') && typeof authority === 'string') map.set('host', [authority]);
  return map;
}

/**
 * RFC 8441 §4-§5: check an extended CONNECT and read what it asks for. Throws an HttpError: 405 for
 * another method, 400 for a plain CONNECT or missing pseudo-headers, 501 for a `:protocol` other
 * than websocket (these first: such a request is no WebSocket handshake, whatever its path), 404
 * for a path not served, 426 for a Sec-WebSocket-Version other than 13 (RFC 6455 §4.4), 400 for the rest.
 */
export function validateExtendedConnect(
  headers: IncomingHttpHeaders,
  remoteAddress: string | undefined,
  remotePort: number | undefined,
  gate: Gatekeeper,
): { request: UpgradeRequest; fields: UpgradeFields } {
  const path = headers[':path'];
  const map = requestHeaderMap(headers);
  const method = headers[':method'] ?? '';
  const request = describeRequest(
    { method, target: path ?? '/', version: [2, 0], headers: map },
    remoteAddress,
    remotePort,
  );
  if (method !== 'CONNECT') {
    throw new HttpError(405, 'a WebSocket over HTTP/2 is opened with an extended CONNECT (RFC 8441 §4)', {
      allow: 'CONNECT',
    });
  }
  // (Not the subprotocol: the protocol the CONNECT asks to tunnel, RFC 8441 §4.)
  const tunnelled = headers[':protocol'];
  if (tunnelled === undefined) throw new HttpError(400, 'a CONNECT without :protocol: this server is not a proxy');
  // RFC 8441 §4: ":protocol" names the protocol; we speak only "websocket" (its registered token).
  if (tunnelled !== 'websocket') throw new HttpError(501, `the :protocol "${String(tunnelled)}" is not supported`);
  // RFC 8441 §4: "the :scheme and :path pseudo-header fields MUST be included".
  if (path === undefined || headers[':scheme'] === undefined) throw new HttpError(400, 'missing :scheme or :path');
  if (headers[':authority'] === undefined) throw new HttpError(400, 'missing :authority');
  // A WebSocket handshake, then: a path we do not serve is "not found" whatever else is wrong with it.
  gate.checkPath(request);
  // RFC 8441 §5: no Sec-WebSocket-Key (nor Accept); the version, subprotocols, extensions and
  // Origin are read and checked as over HTTP/1.1 (RFC 6455 §4.2.1 items 6-9).
  const fields = websocketFields(map, '');
  request.protocols = fields.protocols;
  return { request, fields };
}

/** The HTTP/2 side of one WebSocketServer: its handshakes, and the sessions of its own `listen()`. */
export class Http2Front {
  /** Extended CONNECTs waiting for their verdict. */
  private readonly pending = new Set<PendingStream>();
  /** Sessions of our own listen(): GOAWAY goes to these when the server closes. */
  private readonly sessions = new Set<Http2Session>();
  private closing = false;
  private readonly options: Http2Options | null;

  constructor(
    private readonly gate: Gatekeeper,
    options: boolean | Http2Options,
  ) {
    this.options = options === false ? null : options === true ? {} : options;
  }

  /**
   * The server's own TLS listener. With HTTP/2 on, it speaks HTTP/2 and HTTP/1.1 on one port: ALPN
   * (RFC 7301) picks; h2 goes to node:http2, anything else (http/1.1, or no ALPN) to `onHttp1` (the
   * server's own HTTP/1.1 handshake). Without, every socket goes to `onHttp1`.
   */
  createTlsServer(tls: TlsOptions, onHttp1: (socket: TLSSocket) => void): TlsServer {
    const options = this.options;
    if (options === null) return createTlsServer(tls, onHttp1);
    // Not listening itself: the TLS server hands it the sockets that chose h2.
    const h2server = createH2cServer({ settings: { ...options.settings, enableConnectProtocol: true } });
    h2server.on('session', (session) => {
      this.sessions.add(session);
      // Session errors (a peer that breaks HTTP/2 itself) end that session only; never throw.
      session.on('error', (error) => this.gate.emitError(error));
      session.once('close', () => this.sessions.delete(session));
      if (this.closing) session.close();
    });
    h2server.on('stream', (stream, headers) => {
      if (headers[':method'] !== 'CONNECT') {
        if (answerPlainStream(stream, headers, this.gate)) return;
        if (options.onRequest !== undefined) {
          options.onRequest(stream, headers);
          return;
        }
      }
      this.handleStream(stream, headers);
    });
    return createTlsServer({ ALPNProtocols: ['h2', 'http/1.1'], ...tls }, (socket) => {
      if (socket.alpnProtocol === 'h2') h2server.emit('connection', socket);
      else onHttp1(socket);
    });
  }

  /** RFC 8441 §6 and RFC 9113 §6.8: the server is closing; GOAWAY to every session we own. */
  goAway(): void {
    // close() sends GOAWAY and lets the streams already open finish (their 1001 close handshakes).
    for (const session of this.sessions) session.close();
  }

  /** A stream from an HTTP/2 server's 'stream' event: answer the handshake, and run the WebSocket. */
  handleStream(
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    callback?: (connection: WebSocket, request: UpgradeRequest) => void,
  ): void {
    if (this.closing) {
      // RFC 9113 §8.7: REFUSED_STREAM says nothing was processed; the client may retry elsewhere.
      if (!stream.destroyed) stream.close(h2.NGHTTP2_REFUSED_STREAM);
      return;
    }
    const pending = new PendingStream(this.gate, stream, callback, this.pending);
    this.pending.add(pending);
    pending.start(headers);
  }

  /**
   * The server is closing: new WebSocket streams are refused, new sessions closed at once, and the
   * handshakes still waiting for a verdict (a slow `verify`) are abandoned, as over HTTP/1.1.
   */
  close(): void {
    this.closing = true;
    for (const pending of this.pending) pending.abort();
  }
}

/**
 * One extended CONNECT between its arrival and the server's answer, as `PendingHandshake` is for
 * HTTP/1.1 (server.ts): checked, then `verify`, then a 200 or a refusal. Lives on the shared timer
 * wheel for the handshake timeout; a stream still unanswered then is reset with CANCEL.
 */
class PendingStream implements WheelTarget {
  wheelTick = 0;
  wheelIndex = 0;
  /** Answered or timed out: later events change nothing. */
  private decided = false;
  private deadline = 0;
  private remoteAddress: string | undefined;

  constructor(
    private readonly gate: Gatekeeper,
    private readonly stream: ServerHttp2Stream,
    private readonly callback: ((connection: WebSocket, request: UpgradeRequest) => void) | undefined,
    /** The front's set of handshakes waiting for a verdict, left once this one has its own. */
    private readonly pending: Set<PendingStream>,
  ) {}

  /** The server is closing before a verdict: RFC 9113 §8.7, REFUSED_STREAM (no WebSocket was made). */
  abort(): void {
    if (this.decided) return;
    this.settle();
    if (!this.stream.destroyed) this.stream.close(h2.NGHTTP2_REFUSED_STREAM);
  }

  start(headers: IncomingHttpHeaders): void {
    const { gate, stream } = this;
    // Until the WebSocket takes the stream over, a reset from the client just ends the attempt.
    stream.on('error', ignore);
    stream.once('close', this.onClose);
    const socket = stream.session?.socket;
    this.remoteAddress = socket?.remoteAddress;
    let request: UpgradeRequest;
    let fields: UpgradeFields;
    let deflate: DeflateAgreement;
    let protocol: string | undefined;
    try {
      ({ request, fields } = validateExtendedConnect(headers, socket?.remoteAddress, socket?.remotePort, gate));
      deflate = gate.decideFields(fields, request);
      protocol = gate.chooseProtocol(fields.protocols, request);
    } catch (error) {
      this.refuse(error instanceof HttpError ? error : gate.internalError(error));
      return;
    }
    if (gate.handshakeTimeout > 0) {
      this.deadline = Date.now() + gate.handshakeTimeout;
      sharedWheel.schedule(this, this.deadline);
    }
    gate.verifyThen(
      request,
      (data) => this.accept(data, headers, request, protocol, deflate),
      (error) => this.refuse(error),
    );
  }

  onWheel(now: number): void {
    if (this.decided || this.deadline === 0) return;
    if (now < this.deadline) {
      sharedWheel.schedule(this, this.deadline);
      return;
    }
    // No verdict in time (a `verify` that never answers, say): the stream goes, nothing else does.
    this.settle();
    if (!this.stream.destroyed) this.stream.close(h2.NGHTTP2_CANCEL);
  }

  /** RFC 8441 §5: a 2xx status accepts; the subprotocol and extensions answer as in RFC 6455 §4.2.2. */
  private accept(
    data: unknown,
    headers: IncomingHttpHeaders,
    request: UpgradeRequest,
    protocol: string | undefined,
    deflate: DeflateAgreement,
  ): void {
    if (this.decided) return;
    this.settle();
    const { gate, stream } = this;
    if (stream.destroyed || stream.closed) return;
    const response: OutgoingHttpHeaders = { ':status': 200 };
    if (protocol !== undefined) response['sec-websocket-protocol'] = protocol;
    if (deflate !== null) response['sec-websocket-extensions'] = deflate.response;
    try {
      stream.respond(response);
    } catch (error) {
      gate.emitError(error instanceof Error ? error : new Error(String(error)));
      stream.close(h2.NGHTTP2_INTERNAL_ERROR);
      return;
    }
    stream.off('error', ignore);
    prepareWebSocketStream(stream, 'server');
    // For observers: the request's fields as received, the response's as node:http2 sent them (with its date).
    const seen: HandshakeRecord = { http2: true, request: headers, response: stream.sentHeaders ?? response };
    gate.admit(stream, EMPTY, protocol, { request, deflate }, data, this.callback, seen);
  }

  private refuse(error: HttpError): void {
    if (this.decided) return;
    this.settle();
    this.gate.emitRejected(error.status, error.message, this.remoteAddress);
    respondWithError(this.stream, error, this.gate);
  }

  /**
   * The stream closed before an answer (the client reset it, or its session went): no timeout to
   * wait for. A `verify` still running finds the stream gone when it answers.
   */
  private readonly onClose = (): void => {
    this.deadline = 0;
    sharedWheel.cancel(this);
    this.pending.delete(this);
  };

  /** The verdict is in: off the wheel, and the stream's 'close' is no longer ours to watch. */
  private settle(): void {
    this.decided = true;
    this.deadline = 0;
    sharedWheel.cancel(this);
    this.pending.delete(this);
    this.stream.off('close', this.onClose);
  }
}

function ignore(): void {}

/** A refusal as an HTTP/2 response: the status, headers, a short text body, END_STREAM. */
function respondWithError(stream: ServerHttp2Stream, error: HttpError, gate: Gatekeeper): void {
  if (stream.destroyed || stream.closed) return;
  const body = `${error.message}\n`;
  const base = { 'content-type': 'text/plain; charset=utf-8', 'content-length': String(Buffer.byteLength(body)) };
  const withHeaders: OutgoingHttpHeaders = { ...base, ':status': error.status };
  for (const [name, value] of Object.entries(error.headers)) withHeaders[name.toLowerCase()] = value;
  try {
    stream.respond(withHeaders);
  } catch (invalid) {
    // Headers from a `verify` hook that HTTP/2 cannot carry (a connection-specific one, say).
    gate.emitError(invalid instanceof Error ? invalid : new Error(String(invalid)));
    const fallback = 'internal server error\n';
    stream.respond({ ...base, 'content-length': String(fallback.length), ':status': 500 });
    stream.end(fallback);
    stream.close();
    return;
  }
  stream.end(body);
  // RFC 9113 §8.1: a complete response may come before the request ends; the stream then closes
  // (RST_STREAM NO_ERROR once our END_STREAM is out), so a client streaming on gets nowhere.
  stream.close();
}
