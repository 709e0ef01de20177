import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import { HandshakeError, generateKey, upgradeRequest, validateUpgradeResponse } from '../protocol/handshake.js';
import {
  DEFAULT_MAX_HEAD_SIZE,
  HeadReader,
  HttpError,
  headersRecord,
  isToken,
  parseResponseHead,
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
 * driver as on the server (src/websocket/websocket.ts) runs the connection.
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

/** How much of a refusal's body to keep for the error message. */
const BODY_PREVIEW_BYTES = 1024;
/** How long to wait for a refusal's body after its head. */
const BODY_WAIT_MS = 500;

interface Target {
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

/** The subprotocols to offer, checked (over HTTP/1.1 and HTTP/2 alike). Throws a SyntaxError. */
export function offeredProtocols(offered: string | readonly string[]): string[] {
  const protocols = typeof offered === 'string' ? [offered] : [...offered];
  // RFC 6455 §4.1: each offered subprotocol is a token, and "MUST all be unique strings".
  if (protocols.some((p) => !isToken(p)) || new Set(protocols).size !== protocols.length) {
    throw new SyntaxError('invalid subprotocol list');
  }
  return protocols;
}

/**
 * The extensions an accepting response agreed to (over HTTP/1.1 and HTTP/2 alike): permessage-deflate
 * or none. Throws a HandshakeError (with `status` and `headers`) for anything the client cannot accept.
 */
export function agreedExtensions(
  values: readonly string[],
  deflateOptions: PerMessageDeflateOptions | null,
  status: number,
  headers: ResponseHead['headers'],
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

class ClientHandshake implements WheelTarget {
  wheelTick = 0;
  wheelIndex = 0;
  private socket: Socket | null = null;
  private readonly key = generateKey();
  private reader: HeadReader;
  private deadline = 0;
  private done = false;
  private refusal: { response: ResponseHead; body: Buffer[]; bodyBytes: number; expected: number } | null = null;

  constructor(
    private readonly events: HandshakeEvents,
    private readonly target: Target,
    private readonly protocols: string[],
    private readonly options: ClientOptions,
    private readonly deflateOptions: PerMessageDeflateOptions | null,
  ) {
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
    const timeout = options.handshakeTimeout ?? CLIENT_DEFAULTS.handshakeTimeout;
    if (timeout > 0) {
      this.deadline = Date.now() + timeout;
      sharedWheel.schedule(this, this.deadline);
    }
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

  onWheel(now: number): void {
    if (this.done || this.deadline === 0) return;
    if (now < this.deadline) {
      sharedWheel.schedule(this, this.deadline);
      return;
    }
    if (this.refusal !== null) this.refused();
    else this.fail(new HandshakeError('handshake timed out'));
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.done) return;
    if (this.refusal !== null) {
      this.collectBody(chunk);
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
      const length = Number(response.headers.get('content-length')?.[0] ?? NaN);
      this.refusal = {
        response,
        body: [],
        bodyBytes: 0,
        expected: Number.isFinite(length) ? Math.min(length, BODY_PREVIEW_BYTES) : BODY_PREVIEW_BYTES,
      };
      this.deadline = Math.min(this.deadline === 0 ? Infinity : this.deadline, Date.now() + BODY_WAIT_MS);
      sharedWheel.schedule(this, this.deadline);
      this.collectBody(result.rest);
      return;
    }
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
    this.succeed(protocol, agreed.extensions, agreed.deflate, result.rest, response);
  };

  private readonly onError = (error: Error): void => {
    this.fail(error);
  };

  private readonly onEnd = (): void => {
    if (this.refusal !== null) this.refused();
  };

  private readonly onClose = (): void => {
    if (this.refusal !== null) this.refused();
    else this.fail(new HandshakeError('connection closed during the handshake'));
  };

  private collectBody(chunk: Buffer): void {
    const refusal = this.refusal!;
    if (chunk.length > 0 && refusal.bodyBytes < refusal.expected) {
      const piece = chunk.subarray(0, refusal.expected - refusal.bodyBytes);
      refusal.body.push(piece);
      refusal.bodyBytes += piece.length;
    }
    if (refusal.bodyBytes >= refusal.expected) this.refused();
  }

  private refused(): void {
    const { response, body } = this.refusal!;
    const text = Buffer.concat(body).toString('utf8');
    const detail = text.trim() === '' ? '' : `: ${text.trim()}`;
    this.fail(
      new HandshakeError(
        `server refused the WebSocket handshake: ${response.status} ${response.statusText}${detail}`,
        response.status,
        response.headers,
        text,
      ),
    );
  }

  private detach(): Socket {
    this.done = true;
    sharedWheel.cancel(this);
    const socket = this.socket!;
    socket.off('data', this.onData);
    socket.off('error', this.onError);
    socket.off('end', this.onEnd);
    socket.off('close', this.onClose);
    return socket;
  }

  private succeed(
    protocol: string,
    extensions: string,
    deflate: PerMessageDeflate | null,
    rest: Buffer,
    response: ResponseHead,
  ): void {
    const socket = this.detach();
    this.events.onOpen({ socket, protocol, extensions, deflate, headers: headersRecord(response.headers), rest });
  }

  /** The handshake failed: the connection never opened. */
  fail(error: Error): void {
    if (this.done) return;
    const socket = this.socket;
    if (socket !== null) {
      this.detach();
      // A late error from the socket we are abandoning must not go unhandled.
      socket.on('error', () => {});
      socket.destroy();
    } else {
      this.done = true;
      sharedWheel.cancel(this);
    }
    this.events.onFail(error);
  }
}
