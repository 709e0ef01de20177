import {
  connect as h2connect,
  constants as h2,
  type ClientHttp2Session,
  type ClientHttp2Stream,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
} from 'node:http2';
import { isIP } from 'node:net';
import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import {
  CLIENT_DEFAULTS,
  ClientAttempt,
  agreedExtensions,
  parseWebSocketUrl,
  startClientHandshake,
  type ClientOptions,
  type HandshakeEvents,
  type Target,
} from './client.js';
import { WEBSOCKET_VERSION } from '../protocol/constants.js';
import { HandshakeError, RefusalBody, acceptedFields, offeredProtocols } from '../protocol/handshake.js';
import { assertSendableHeader, headersRecord } from '../protocol/http1.js';
import { headerMapOfHttp2 } from './http2-headers.js';
import { prepareWebSocketStream } from './http2-stream.js';
import { deflateOffer, deflateOptionsOf, type PerMessageDeflateOptions } from '../protocol/permessage-deflate.js';

/**
 * WebSockets over HTTP/2 (RFC 8441), client side: `connect(url, { http2: true })`. One HTTP/2
 * session per origin carries every WebSocket to it (one stream each); the session is opened on
 * the first, waits for the server's SETTINGS, and is closed when its last WebSocket is gone.
 */

const EMPTY = Buffer.alloc(0);

/** One HTTP/2 connection to an origin, shared by the WebSockets to it. */
interface Pooled {
  session: ClientHttp2Session;
  tls: TlsConnectionOptions | undefined;
  /** Settles once the server's first SETTINGS arrived (or the session failed first). */
  ready: Promise<void>;
  /** WebSockets (and handshakes) on it: the session closes when this drops to 0. */
  users: number;
}

const pool = new Map<string, Pooled>();

function sessionFor(origin: string, secure: boolean, host: string, tls: TlsConnectionOptions | undefined): Pooled {
  const existing = pool.get(origin);
  // Only a session made with the same TLS options is shared (a different `ca` is another trust decision).
  if (existing !== undefined && existing.tls === tls && !existing.session.closed && !existing.session.destroyed)
    return existing;
  const session = h2connect(origin, {
    // SNI takes a host name, never an IP address (RFC 6066 §3).
    ...(secure && isIP(host) === 0 ? { servername: host } : {}),
    ...tls,
  });
  const ready = new Promise<void>((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    const onClose = (): void => reject(new HandshakeError('the HTTP/2 connection closed before its SETTINGS arrived'));
    session.once('error', onError);
    session.once('close', onClose);
    // RFC 9113 §3.4: the server's connection preface is a SETTINGS frame; its values decide.
    session.once('remoteSettings', () => {
      session.off('error', onError);
      session.off('close', onClose);
      resolve();
    });
  });
  ready.catch(() => {});
  const pooled: Pooled = { session, tls, ready, users: 0 };
  pool.set(origin, pooled);
  // A session error is reported to the WebSockets through their streams; never thrown.
  session.on('error', () => {});
  const forget = (): void => {
    if (pool.get(origin) === pooled) pool.delete(origin);
  };
  // RFC 9113 §6.8: after GOAWAY no new stream may be opened on it; the next WebSocket opens another session.
  session.once('goaway', forget);
  session.once('close', forget);
  return pooled;
}

function release(pooled: Pooled): void {
  if (--pooled.users === 0 && !pooled.session.closed) pooled.session.close();
}

/**
 * Start a client handshake over HTTP/2 (on the next tick, as over HTTP/1.1). Returns the function
 * that aborts it. Throws a SyntaxError for a bad URL or protocol list, and a TypeError for a header
 * that cannot be sent, before anything happens.
 */
export function startHttp2Handshake(
  address: string | URL,
  offered: string | readonly string[],
  options: ClientOptions,
  events: HandshakeEvents,
): () => void {
  const target = parseWebSocketUrl(address);
  const protocols = offeredProtocols(offered);
  const deflateOptions = deflateOptionsOf(options.perMessageDeflate);
  const handshake = new Http2ClientHandshake(events, address, protocols, options, deflateOptions);
  // Built now, so a bad header or origin throws here (and rejects connect()), as over HTTP/1.1.
  const request = connectHeaders(target, protocols, options, deflateOptions);
  process.nextTick(() => handshake.start(target, request));
  return () => handshake.abort();
}

/** RFC 8441 §4-§5: the headers of an extended CONNECT; no Upgrade, Connection or Sec-WebSocket-Key. */
function connectHeaders(
  target: Target,
  protocols: readonly string[],
  options: ClientOptions,
  deflateOptions: PerMessageDeflateOptions | null,
): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(options.headers ?? {})) {
    assertSendableHeader(name, value);
    // RFC 9113 §8.2: field names are lower case in HTTP/2.
    headers[name.toLowerCase()] = value;
  }
  if (options.origin !== undefined) {
    assertSendableHeader('origin', options.origin);
    headers['origin'] = options.origin;
  }
  if (protocols.length > 0) headers['sec-websocket-protocol'] = protocols.join(', ');
  if (deflateOptions !== null) headers['sec-websocket-extensions'] = deflateOffer(deflateOptions);
  return Object.assign(headers, {
    ':method': 'CONNECT',
    ':protocol': 'websocket',
    ':scheme': target.secure ? 'https' : 'http',
    ':authority': target.authority,
    ':path': target.path,
    // RFC 8441 §5 keeps RFC 6455 §4.1 item 9.
    'sec-websocket-version': String(WEBSOCKET_VERSION),
  });
}

/**
 * One handshake over HTTP/2: a session to share (or open), its SETTINGS, an extended CONNECT on a
 * stream of it, and the response. A 2xx hands the stream to the driver; anything else is a
 * refusal, read as over HTTP/1.1 (`ClientAttempt`). A server without RFC 8441 makes it fail, or
 * with `http2: { fallback: true }` start again over HTTP/1.1.
 */
class Http2ClientHandshake extends ClientAttempt {
  private pooled: Pooled | null = null;
  private stream: ClientHttp2Stream | null = null;
  /** The HTTP/1.1 handshake that took over, when HTTP/2 was not on offer. */
  private abortFallback: (() => void) | null = null;

  constructor(
    events: HandshakeEvents,
    private readonly address: string | URL,
    private readonly protocols: string[],
    private readonly options: ClientOptions,
    private readonly deflateOptions: PerMessageDeflateOptions | null,
  ) {
    super(events);
  }

  start(target: Target, request: OutgoingHttpHeaders): void {
    // Closed or terminated before this tick: never connect at all.
    if (this.done) return;
    this.armTimeout(this.options.handshakeTimeout ?? CLIENT_DEFAULTS.handshakeTimeout);
    const origin = `${target.secure ? 'https' : 'http'}://${target.authority}`;
    const pooled = (this.pooled = sessionFor(origin, target.secure, target.host, this.options.tls));
    pooled.users++;
    pooled.ready.then(
      () => this.onSettings(origin, request),
      (error: Error) => this.unavailable(error),
    );
  }

  abort(): void {
    if (this.abortFallback !== null) this.abortFallback();
    else this.fail(new HandshakeError('connection closed before the handshake completed'));
  }

  /** RFC 8441 §3: extended CONNECT only once the server's SETTINGS_ENABLE_CONNECT_PROTOCOL is 1. */
  private onSettings(origin: string, request: OutgoingHttpHeaders): void {
    if (this.done) return;
    const session = this.pooled!.session;
    if (session.remoteSettings.enableConnectProtocol !== true) {
      this.unavailable(
        new HandshakeError(
          `${origin} does not accept WebSockets over HTTP/2: its SETTINGS lack ` +
            'SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 (RFC 8441 §3); connect without `http2`, ' +
            'or with `http2: { fallback: true }`',
        ),
      );
      return;
    }
    let stream: ClientHttp2Stream;
    try {
      stream = this.stream = session.request(request, { endStream: false });
    } catch (error) {
      this.fail(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    stream.on('error', this.onStreamError);
    stream.once('close', this.onStreamClose);
    stream.once('response', this.onResponse);
  }

  /** No WebSockets over HTTP/2 at this origin: over HTTP/1.1 when allowed, else fail with `error`. */
  private unavailable(error: Error): void {
    if (this.done) return;
    const fallback = typeof this.options.http2 === 'object' && this.options.http2.fallback === true;
    if (!fallback) {
      this.fail(error);
      return;
    }
    this.finish();
    this.releaseSession();
    // The same handshake over HTTP/1.1, on its own connection; its own timeout starts now.
    try {
      const options = { ...this.options, http2: false };
      this.abortFallback = startClientHandshake(this.address, this.protocols, options, this.events);
    } catch (fallbackError) {
      this.events.onFail(fallbackError as Error);
    }
  }

  private readonly onResponse = (response: IncomingHttpHeaders): void => {
    if (this.done) return;
    const status = Number(response[':status']);
    // RFC 8441 §5: "a 2xx series status code" accepts the WebSocket; anything else refuses it.
    if (status >= 200 && status < 300) this.accept(status, response);
    else this.startReadingRefusal(status, response);
  };

  /** A 2xx: the subprotocol and extensions checked (RFC 6455 §4.1), then the stream goes to the driver. */
  private accept(status: number, response: IncomingHttpHeaders): void {
    const headers = headerMapOfHttp2(response);
    let protocol: string;
    let agreed: ReturnType<typeof agreedExtensions>;
    try {
      const fields = acceptedFields(headers, this.protocols, status);
      protocol = fields.protocol;
      agreed = agreedExtensions(fields.extensions, this.deflateOptions, status, headers);
    } catch (error) {
      this.fail(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    this.finish();
    const stream = this.detachStream();
    // The WebSocket holds its place in the session from now on.
    const pooled = this.pooled!;
    this.pooled = null;
    stream.once('close', () => release(pooled));
    prepareWebSocketStream(stream, 'client');
    const record = { ...headersRecord(headers), ':status': String(status) };
    const { extensions, deflate } = agreed;
    this.events.onOpen({ socket: stream, protocol, extensions, deflate, headers: record, rest: EMPTY });
  }

  private startReadingRefusal(status: number, response: IncomingHttpHeaders): void {
    this.startRefusal(new RefusalBody(status, '', headerMapOfHttp2(response), Date.now()));
    const stream = this.stream!;
    stream.on('data', this.onRefusalData);
    stream.once('end', this.onRefusalEnd);
  }

  private readonly onRefusalData = (chunk: Buffer): void => {
    if (!this.done && this.refusal!.push(chunk)) this.refused();
  };

  private readonly onRefusalEnd = (): void => this.refused();

  private readonly onStreamError = (error: Error): void => this.fail(error);

  private readonly onStreamClose = (): void => {
    if (this.refusal !== null) this.refused();
    else this.fail(new HandshakeError('the stream closed during the handshake'));
  };

  private detachStream(): ClientHttp2Stream {
    const stream = this.stream!;
    stream.off('error', this.onStreamError);
    stream.off('close', this.onStreamClose);
    stream.off('response', this.onResponse);
    stream.off('data', this.onRefusalData);
    stream.off('end', this.onRefusalEnd);
    return stream;
  }

  /** RFC 8441 §6: a stream given up on is reset with CANCEL; the session is left to others. */
  protected abandon(): void {
    if (this.stream !== null) {
      const stream = this.detachStream();
      // A late error from the stream we are abandoning must not go unhandled.
      stream.on('error', () => {});
      if (!stream.destroyed) stream.close(h2.NGHTTP2_CANCEL);
    }
    this.releaseSession();
  }

  private releaseSession(): void {
    const pooled = this.pooled;
    this.pooled = null;
    if (pooled !== null) release(pooled);
  }
}
