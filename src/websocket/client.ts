import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import {
  HandshakeError,
  RefusalBody,
  generateKey,
  offeredProtocols,
  upgradeRequest,
  validateUpgradeResponse,
} from '../protocol/handshake.js';
import {
  DEFAULT_MAX_HEAD_SIZE,
  HeadReader,
  HttpError,
  headersRecord,
  parseResponseHead,
  type HeaderMap,
  type ResponseHead,
} from '../protocol/http1.js';
import { ExtensionHeaderError, parseExtensions } from '../protocol/extensions.js';
import {
  acceptDeflateResponse,
  deflateOffer,
  deflateOptionsOf,
  type PerMessageDeflateOptions,
} from '../protocol/permessage-deflate.js';
import { PerMessageDeflate } from '../driver/deflate-zlib.js';
import type { Opened } from '../driver/connection.js';
import type { ConnectionOptions } from '../protocol/options.js';
import { sharedWheel, type WheelTarget } from '../driver/timer-wheel.js';

/**
 * The client side of the opening handshake (RFC 6455 §4.1) on a socket it opens itself. Once the
 * server's 101 is verified, it hands the socket over (`HandshakeEvents.onOpen`), and the same
 * driver as on the server (src/driver/connection.ts) runs the connection. What the HTTP/2 client
 * (client-http2.ts) shares with it lives here too: the options, the URL, the extensions agreed,
 * and `ClientAttempt`, a handshake's deadline and its refusal's body.
 */

export interface ClientOptions extends ConnectionOptions {
  /** Subprotocols to offer, most preferred first. */
  protocols?: string | readonly string[];
  /** Extra request headers. */
  headers?: Record<string, string>;
  /** The Origin header to send (browsers send their page's origin; other clients usually none). */
  origin?: string;
  /** Fail when the handshake has not completed within this many ms. Default 10 000. */
  handshakeTimeout?: number;
  /** Largest response head accepted. Default 16 KiB. */
  maxHeaderSize?: number;
  /** For wss:// URLs: TLS options (ca, rejectUnauthorized, servername, ...). */
  tls?: TlsConnectionOptions;
  /** Offer permessage-deflate (RFC 7692): true, or options. Default false. */
  perMessageDeflate?: boolean | PerMessageDeflateOptions;
  /**
   * Open the WebSocket as a stream of an HTTP/2 connection (RFC 8441; for ws://, h2c with prior
   * knowledge), shared with other WebSockets to the same origin. `fallback: true`: over HTTP/1.1
   * instead when the server does not offer it, rather than failing. Default false.
   */
  http2?: boolean | { fallback?: boolean };
}

export const CLIENT_DEFAULTS = Object.freeze({ handshakeTimeout: 10_000, maxHeaderSize: DEFAULT_MAX_HEAD_SIZE });

export interface Target {
  secure: boolean;
  host: string;
  port: number;
  /** The Host header: host, plus the port when not the default one. */
  authority: string;
  /** Path and query (RFC 6455 §3: the fragment is not part of a WebSocket URI). */
  path: string;
}

/** RFC 6455 §3: ws-URI = "ws:" "//" host [ ":" port ] path [ "?" query ]; wss likewise, on TLS. */
export function parseWebSocketUrl(address: string | URL): Target {
  let url: URL;
  try {
    url = new URL(address);
  } catch {
    throw new SyntaxError(`invalid WebSocket URL: ${String(address)}`);
  }
  // http(s) URLs are taken as ws(s), as browsers do now.
  const scheme = url.protocol === 'http:' ? 'ws:' : url.protocol === 'https:' ? 'wss:' : url.protocol;
  if (scheme !== 'ws:' && scheme !== 'wss:')
    throw new SyntaxError(`a WebSocket URL is ws:// or wss://, not ${url.protocol}//`);
  // (An empty fragment, `ws://host/#`, leaves `hash` empty but is still a fragment.)
  if (url.hash !== '' || url.href.includes('#')) {
    throw new SyntaxError('a WebSocket URL has no fragment (RFC 6455 §3)');
  }
  if (url.hostname === '') throw new SyntaxError('a WebSocket URL needs a host');
  const secure = scheme === 'wss:';
  const defaultPort = secure ? 443 : 80;
  const port = url.port === '' ? defaultPort : Number(url.port);
  // IPv6 literals come bracketed in URLs ([::1]) and go bare to the socket.
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const authority = port === defaultPort ? url.hostname : `${url.hostname}:${port}`;
  return { secure, host, port, authority, path: (url.pathname === '' ? '/' : url.pathname) + url.search };
}

export interface HandshakeEvents {
  onOpen(opened: Opened): void;
  /** The handshake failed (or was aborted): the connection never opened. */
  onFail(error: Error): void;
}

/**
 * Start a client handshake on the next tick (so listeners attached right after `new WebSocket()`
 * see everything). Returns the function that aborts it. Throws a SyntaxError for a bad URL or
 * protocol list, and a TypeError for a header that cannot be sent, before anything happens.
 */
export function startClientHandshake(
  address: string | URL,
  offered: string | readonly string[],
  options: ClientOptions,
  events: HandshakeEvents,
): () => void {
  const target = parseWebSocketUrl(address);
  const protocols = offeredProtocols(offered);
  const deflateOptions = deflateOptionsOf(options.perMessageDeflate);
  const handshake = new ClientHandshake(events, target, protocols, options, deflateOptions);
  // Built now, so a bad header or origin throws from the constructor (and rejects connect()).
  const request = handshake.buildRequest();
  process.nextTick(() => handshake.start(request));
  return () => handshake.fail(new HandshakeError('connection closed before the handshake completed'));
}

/**
 * The extensions an accepting response agreed to (over HTTP/1.1 and HTTP/2 alike): permessage-deflate
 * or none. Throws a HandshakeError (with `status` and `headers`) for anything the client cannot accept.
 */
export function agreedExtensions(
  values: readonly string[],
  deflateOptions: PerMessageDeflateOptions | null,
  status: number,
  headers: HeaderMap,
): { extensions: string; deflate: PerMessageDeflate | null } {
  try {
    const answered = parseExtensions(values);
    if (answered.length === 0) return { extensions: '', deflate: null };
    // RFC 6455 §4.1: "If the response includes a |Sec-WebSocket-Extensions| header field and this
    // header field indicates the use of an extension that was not present in the client's handshake
    // (the server has indicated an extension not requested by the client), the client MUST _Fail
    // the WebSocket Connection_."
    if (deflateOptions === null) throw new Error(`extension not offered: ${values.join(', ')}`);
    // RFC 7692 §7: and the parameters must be ones the client can live with.
    const deflate = new PerMessageDeflate(acceptDeflateResponse(answered, deflateOptions), deflateOptions);
    return { extensions: values.join(', '), deflate };
  } catch (error) {
    const message =
      error instanceof ExtensionHeaderError
        ? 'malformed Sec-WebSocket-Extensions header'
        : error instanceof Error
          ? error.message
          : String(error);
    throw new HandshakeError(`invalid handshake response: ${message}`, status, headers);
  }
}

/**
 * One client handshake in flight, over either transport: what both share is its deadline on the
 * shared timer wheel (the handshake timeout, brought forward to the refusal body's wait once a
 * refusal's head is in) and that refusal's body. Subclasses own the transport.
 */
export abstract class ClientAttempt implements WheelTarget {
  wheelTick = 0;
  wheelIndex = 0;
  /** Opened, failed or aborted: later events change nothing. */
  protected done = false;
  protected refusal: RefusalBody | null = null;
  private deadline = 0;

  constructor(protected readonly events: HandshakeEvents) {}

  /** The handshake timeout starts now (none when `timeout` is 0). */
  protected armTimeout(timeout: number): void {
    if (timeout <= 0) return;
    this.deadline = Date.now() + timeout;
    sharedWheel.schedule(this, this.deadline);
  }

  /** A refusal's head is in: read its body until it is all here, or for REFUSAL_BODY_WAIT_MS at most. */
  protected startRefusal(refusal: RefusalBody): void {
    this.refusal = refusal;
    this.deadline = this.deadline === 0 ? refusal.waitUntil : Math.min(this.deadline, refusal.waitUntil);
    sharedWheel.schedule(this, this.deadline);
  }

  /** Report the refusal with what came of its body. */
  protected refused(): void {
    if (this.refusal !== null) this.fail(this.refusal.error());
  }

  onWheel(now: number): void {
    if (this.done || this.deadline === 0) return;
    if (now < this.deadline) sharedWheel.schedule(this, this.deadline);
    else if (this.refusal !== null) this.refused();
    else this.fail(new HandshakeError('handshake timed out'));
  }

  /** The handshake is over, opened or not: off the wheel. */
  protected finish(): void {
    this.done = true;
    this.deadline = 0;
    sharedWheel.cancel(this);
  }

  /** The handshake failed (or was aborted): the connection never opened. */
  fail(error: Error): void {
    if (this.done) return;
    this.finish();
    this.abandon();
    this.events.onFail(error);
  }

  /** Let go of the transport of a handshake that failed. */
  protected abstract abandon(): void;
}

/** The handshake over HTTP/1.1, on a TCP or TLS socket of its own. */
class ClientHandshake extends ClientAttempt {
  private socket: Socket | null = null;
  private readonly key = generateKey();
  private readonly reader: HeadReader;

  constructor(
    events: HandshakeEvents,
    private readonly target: Target,
    private readonly protocols: string[],
    private readonly options: ClientOptions,
    private readonly deflateOptions: PerMessageDeflateOptions | null,
  ) {
    super(events);
    this.reader = new HeadReader(options.maxHeaderSize ?? CLIENT_DEFAULTS.maxHeaderSize, 'response');
  }

  buildRequest(): Buffer {
    const { target, options } = this;
    return upgradeRequest({
      host: target.authority,
      path: target.path,
      key: this.key,
      protocols: this.protocols,
      ...(this.deflateOptions !== null ? { extensions: deflateOffer(this.deflateOptions) } : {}),
      ...(options.origin !== undefined ? { origin: options.origin } : {}),
      headers: Object.entries(options.headers ?? {}),
    });
  }

  start(request: Buffer): void {
    // Closed or terminated before this tick: never connect at all.
    if (this.done) return;
    const { target, options } = this;
    this.armTimeout(options.handshakeTimeout ?? CLIENT_DEFAULTS.handshakeTimeout);
    const socket = target.secure
      ? tlsConnect({
          host: target.host,
          port: target.port,
          // SNI takes a host name, never an IP address (RFC 6066 §3).
          ...(isIP(target.host) === 0 ? { servername: target.host } : {}),
          ...options.tls,
        })
      : netConnect({ host: target.host, port: target.port });
    this.socket = socket;
    socket.setNoDelay(true);
    // Written at once; the socket sends it as soon as it is connected.
    socket.write(request);
    socket.on('data', this.onData);
    socket.on('error', this.onError);
    socket.on('end', this.onEnd);
    socket.on('close', this.onClose);
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.done) return;
    if (this.refusal !== null) {
      if (this.refusal.push(chunk)) this.refused();
      return;
    }
    let result: { head: Buffer; rest: Buffer } | null;
    let response: ResponseHead;
    try {
      result = this.reader.push(chunk);
      if (result === null) return;
      response = parseResponseHead(result.head);
    } catch (error) {
      const message =
        error instanceof HttpError && error.status === 431 ? 'response head too large' : 'malformed HTTP response';
      this.fail(new HandshakeError(`invalid handshake response: ${message}`));
      return;
    }
    if (response.status !== 101) {
      // Keep the start of the body: it usually says why.
      this.startRefusal(new RefusalBody(response.status, response.statusText, response.headers, Date.now()));
      if (this.refusal!.push(result.rest)) this.refused();
      return;
    }
    this.accept(response, result.rest);
  };

  /** A 101: checked (RFC 6455 §4.1), then the socket goes to the driver. */
  private accept(response: ResponseHead, rest: Buffer): void {
    let protocol: string;
    let agreed: ReturnType<typeof agreedExtensions>;
    try {
      const accepted = validateUpgradeResponse(response, this.key, this.protocols);
      protocol = accepted.protocol;
      agreed = agreedExtensions(accepted.extensions, this.deflateOptions, 101, response.headers);
    } catch (error) {
      this.fail(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    this.finish();
    const socket = this.detach();
    const { extensions, deflate } = agreed;
    this.events.onOpen({ socket, protocol, extensions, deflate, headers: headersRecord(response.headers), rest });
  }

  private readonly onError = (error: Error): void => {
    this.fail(error);
  };

  private readonly onEnd = (): void => {
    this.refused();
  };

  private readonly onClose = (): void => {
    if (this.refusal !== null) this.refused();
    else this.fail(new HandshakeError('connection closed during the handshake'));
  };

  private detach(): Socket {
    const socket = this.socket!;
    socket.off('data', this.onData);
    socket.off('error', this.onError);
    socket.off('end', this.onEnd);
    socket.off('close', this.onClose);
    return socket;
  }

  protected abandon(): void {
    if (this.socket === null) return;
    const socket = this.detach();
    // A late error from the socket we are abandoning must not go unhandled.
    socket.on('error', () => {});
    socket.destroy();
  }
}
