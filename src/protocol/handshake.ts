import { createHash, randomBytes } from 'node:crypto';
import { WEBSOCKET_GUID, WEBSOCKET_VERSION } from './constants.js';
import {
  HttpError,
  assertSendableHeader,
  headerHasToken,
  headersRecord,
  isToken,
  listHeader,
  singleHeader,
  writeResponseHead,
  type HeaderMap,
  type RequestHead,
  type ResponseHead,
} from './http1.js';

/**
 * The opening handshake (RFC 6455 §4) as pure functions: a parsed HTTP request in, a verdict and
 * response bytes out; a key and a response in, a verdict out for the client. The server and client
 * modules do the I/O around them.
 */

/** RFC 6455 §4.2.2 item 5.4: base64(SHA-1(key + GUID)). */
export function acceptKey(key: string): string {
  return createHash('sha1')
    .update(key + WEBSOCKET_GUID)
    .digest('base64');
}

/** RFC 6455 §4.1: "a nonce consisting of a randomly selected 16-byte value that has been base64-encoded". */
export function generateKey(): string {
  return randomBytes(16).toString('base64');
}

// RFC 6455 §4.2.1 item 5: the key decodes to 16 bytes; 16 bytes are always 22 base64 digits and "==".
const KEY_PATTERN = /^[A-Za-z0-9+/]{21}[AQgw]==$/;

/** What a valid upgrade request asks for, once RFC 6455 §4.2.1 is satisfied. */
export interface UpgradeFields {
  key: string;
  /** Subprotocols the client offered, in its order of preference (§4.1). */
  protocols: string[];
  /** The raw Sec-WebSocket-Extensions offers, for the extension negotiation. */
  extensions: string[];
  /** The Origin header (§10.2), when the client sent one (browsers always do). */
  origin: string | undefined;
}

/**
 * RFC 6455 §4.2.1: check that a request is a valid WebSocket opening handshake.
 * Throws an HttpError: 405 for a method other than GET, 426 (with Sec-WebSocket-Version: 13) for
 * another protocol version, 400 for anything else malformed.
 */
export function validateUpgradeRequest(request: RequestHead): UpgradeFields {
  const { headers } = request;
  // §4.2.1 item 1: "An HTTP/1.1 or higher GET request".
  if (request.method !== 'GET') throw new HttpError(405, 'a WebSocket handshake is a GET request', { Allow: 'GET' });
  const [major, minor] = request.version;
  if (major < 1 || (major === 1 && minor < 1))
    throw new HttpError(400, 'a WebSocket handshake needs HTTP/1.1 or later');
  // §4.2.1 item 2: "A |Host| header field containing the server's authority."
  const host = singleHeader(headers, 'host');
  if (host === undefined || host === '') throw new HttpError(400, 'missing Host header');
  // §4.2.1 item 3: "An |Upgrade| header field containing the value "websocket", treated as an ASCII
  // case-insensitive value."
  if (!headerHasToken(headers, 'upgrade', 'websocket'))
    throw new HttpError(400, 'missing or invalid Upgrade header: expected "websocket"');
  // §4.2.1 item 4: "A |Connection| header field that includes the token "Upgrade"".
  if (!headerHasToken(headers, 'connection', 'upgrade'))
    throw new HttpError(400, 'missing or invalid Connection header: expected the "Upgrade" token');
  // §4.2.1 item 5: "A |Sec-WebSocket-Key| header field with a base64-encoded value that, when
  // decoded, is 16 bytes in length."
  const key = singleHeader(headers, 'sec-websocket-key');
  if (key === undefined || !KEY_PATTERN.test(key))
    throw new HttpError(400, 'missing or invalid Sec-WebSocket-Key header');
  return websocketFields(headers, key);
}

/**
 * RFC 6455 §4.2.1 items 6-9, the fields a WebSocket request carries over HTTP/1.1 and over HTTP/2
 * alike (RFC 8441 §5 drops only the key): the version, then what it asks for. Throws an HttpError.
 */
export function websocketFields(headers: HeaderMap, key: string): UpgradeFields {
  checkVersion(headers);
  const protocols = requestedProtocols(headers);
  const origin = singleHeader(headers, 'origin');
  return { key, protocols, extensions: headers.get('sec-websocket-extensions') ?? [], origin };
}

/**
 * RFC 6455 §4.1 item 9: "|Sec-WebSocket-Version|. The value of this header field MUST be 13."
 * §4.2.1 item 6 and §4.4: another version gets a 426 naming the one we speak; none at all is a
 * malformed request (400), told the version too.
 */
export function checkVersion(headers: HeaderMap): void {
  const version = headers.get('sec-websocket-version');
  const speaks = { 'Sec-WebSocket-Version': String(WEBSOCKET_VERSION) };
  if (version === undefined) throw new HttpError(400, 'missing Sec-WebSocket-Version header', speaks);
  if (version.length !== 1 || version[0] !== String(WEBSOCKET_VERSION)) {
    throw new HttpError(426, `unsupported WebSocket version; this server speaks ${WEBSOCKET_VERSION}`, speaks);
  }
}

/**
 * RFC 6455 §4.1 item 10: the subprotocols of a Sec-WebSocket-Protocol header are tokens (RFC 9110
 * §5.6.2, which replaced RFC 2616's rule the RFC cites) and "MUST all be unique strings". The rule
 * for both ends: what a server reads, what a client offers.
 */
export function isValidProtocolList(protocols: readonly string[]): boolean {
  return protocols.every(isToken) && new Set(protocols).size === protocols.length;
}

/** The server's side: the subprotocols a request offers, in its order of preference. HttpError 400. */
export function requestedProtocols(headers: HeaderMap): string[] {
  const protocols = listHeader(headers, 'sec-websocket-protocol');
  if (!isValidProtocolList(protocols)) throw new HttpError(400, 'invalid Sec-WebSocket-Protocol header');
  return protocols;
}

/** The client's side: the subprotocols to offer, as given to `connect()`. Throws a SyntaxError. */
export function offeredProtocols(offered: string | readonly string[]): string[] {
  const protocols = typeof offered === 'string' ? [offered] : [...offered];
  if (!isValidProtocolList(protocols)) throw new SyntaxError('invalid subprotocol list');
  return protocols;
}

/** What the server knows about an upgrade request, passed to every hook and to 'connection'. */
export interface UpgradeRequest {
  method: string;
  /** The request target as sent: path and query. */
  url: string;
  /** The path part of the target, without the query. */
  path: string;
  /** The query part of the target. */
  query: URLSearchParams;
  httpVersion: string;
  /** Header names in lower case; repeated headers joined with ", ". */
  headers: Record<string, string>;
  remoteAddress: string | undefined;
  remotePort: number | undefined;
  /** The Origin header (RFC 6455 §10.2); browsers always send it. */
  origin: string | undefined;
  /** Subprotocols the client offered, in its order of preference. */
  protocols: string[];
}

/**
 * RFC 9112 §3.2: the target of a GET is origin-form (/path?query), or absolute-form
 * (http://host/path?query, as sent to proxies). Origin-form is split by hand: a URL parser would
 * read `//evil/ws` as a host and a path, and route it as `/ws`.
 */
function splitTarget(target: string): { path: string; search: string } {
  if (target.startsWith('/')) {
    const question = target.indexOf('?');
    return question === -1
      ? { path: target, search: '' }
      : { path: target.slice(0, question), search: target.slice(question) };
  }
  if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(target)) {
    try {
      const url = new URL(target);
      return { path: url.pathname, search: url.search };
    } catch {
      // fall through
    }
  }
  throw new HttpError(400, 'malformed request target');
}

/** What a server knows of a request once its head is parsed (RFC 6455 §4.2.1), for its hooks. */
export function describeRequest(
  head: RequestHead,
  remoteAddress: string | undefined,
  remotePort: number | undefined,
): UpgradeRequest {
  const { path, search } = splitTarget(head.target);
  return {
    method: head.method,
    url: head.target,
    path,
    query: new URLSearchParams(search),
    httpVersion: `${head.version[0]}.${head.version[1]}`,
    headers: headersRecord(head.headers),
    remoteAddress,
    remotePort,
    origin: head.headers.get('origin')?.[0],
    protocols: [],
  };
}

/**
 * RFC 6455 §4.2.2 item 5: the 101 response. `protocol` is the one subprotocol chosen (it must be
 * one the client offered), `extensions` the negotiated Sec-WebSocket-Extensions value.
 */
export function switchingProtocolsResponse(
  key: string,
  protocol?: string,
  extensions?: string,
  extraHeaders: Iterable<[string, string]> = [],
): Buffer {
  const headers: [string, string][] = [
    ['Upgrade', 'websocket'],
    ['Connection', 'Upgrade'],
    ['Sec-WebSocket-Accept', acceptKey(key)],
  ];
  if (protocol !== undefined) headers.push(['Sec-WebSocket-Protocol', protocol]);
  if (extensions !== undefined && extensions !== '') headers.push(['Sec-WebSocket-Extensions', extensions]);
  for (const header of extraHeaders) headers.push(header);
  return Buffer.from(writeResponseHead(101, headers), 'latin1');
}

/**
 * Pick the subprotocol from the server's own list: the client's most preferred offer that the
 * server supports (§4.1: the client lists them "ordered by preference"). Never a protocol the
 * server did not list (unlike `ws` and uWebSockets, which default to the client's first offer),
 * and none at all when nothing matches (§4.2.2: the server then omits the header).
 */
export function selectProtocol(offered: readonly string[], supported: readonly string[]): string | undefined {
  return offered.find((protocol) => supported.includes(protocol));
}

export interface ClientRequestOptions {
  /** The Host header value: host, and port when not the scheme's default. */
  host: string;
  /** Path and query. */
  path: string;
  key: string;
  protocols?: readonly string[];
  /** The Sec-WebSocket-Extensions offer. */
  extensions?: string;
  origin?: string;
  headers?: Iterable<[string, string]>;
}

/** RFC 6455 §4.1: the client's opening handshake. */
export function upgradeRequest(options: ClientRequestOptions): Buffer {
  const lines = [
    `GET ${options.path} HTTP/1.1`,
    `Host: ${options.host}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${options.key}`,
    `Sec-WebSocket-Version: ${WEBSOCKET_VERSION}`,
  ];
  if (options.protocols !== undefined && options.protocols.length > 0) {
    lines.push(`Sec-WebSocket-Protocol: ${options.protocols.join(', ')}`);
  }
  if (options.extensions !== undefined && options.extensions !== '')
    lines.push(`Sec-WebSocket-Extensions: ${options.extensions}`);
  if (options.origin !== undefined) lines.push(`Origin: ${options.origin}`);
  for (const [name, value] of options.headers ?? []) lines.push(`${name}: ${value}`);
  // Everything from the caller is checked, so no option can smuggle in a line of its own.
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    assertSendableHeader(line.slice(0, colon), line.slice(colon + 2));
  }
  return Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1');
}

/** Why a client refused the server's handshake response. */
export class HandshakeError extends Error {
  override readonly name = 'HandshakeError';
  constructor(
    message: string,
    /** The HTTP status the server answered with, when it answered. */
    readonly status?: number,
    readonly headers?: HeaderMap,
    /** The first bytes of the response body, when the server refused (not 101; over HTTP/2, not 2xx). */
    readonly body?: string,
  ) {
    super(message);
  }
}

/** How much of a refusal's body a client keeps for its HandshakeError (over HTTP/1.1 and HTTP/2). */
export const REFUSAL_BODY_BYTES = 1024;
/** How long a client waits for a refusal's body once the head is in, before it reports what it has. */
export const REFUSAL_BODY_WAIT_MS = 500;

/**
 * A refused handshake (a status other than 101 over HTTP/1.1, other than 2xx over HTTP/2, RFC 8441
 * §5): the start of its body, which usually says why, for the HandshakeError. Bounded whatever the
 * server sends: at most REFUSAL_BODY_BYTES, fewer when Content-Length says the body is shorter.
 * No clock here: the client passes the time, and its timer wakes it at `waitUntil`.
 */
export class RefusalBody {
  /** When to give up waiting for more of the body and report what came. */
  readonly waitUntil: number;
  private readonly wanted: number;
  private readonly chunks: Buffer[] = [];
  private kept = 0;

  constructor(
    readonly status: number,
    /** The reason phrase (HTTP/1.1 only; HTTP/2 has none, RFC 9113 §8.3.2). */
    readonly statusText: string,
    readonly headers: HeaderMap,
    now: number,
  ) {
    const length = singleContentLength(headers);
    this.wanted = length === undefined ? REFUSAL_BODY_BYTES : Math.min(length, REFUSAL_BODY_BYTES);
    this.waitUntil = now + REFUSAL_BODY_WAIT_MS;
  }

  /** Keep what fits of `chunk`. True once all that will be kept is in: the client reports then. */
  push(chunk: Buffer): boolean {
    if (chunk.length > 0 && this.kept < this.wanted) {
      // A copy: the chunk may be a view into a much larger buffer.
      const piece = Buffer.from(chunk.subarray(0, this.wanted - this.kept));
      this.chunks.push(piece);
      this.kept += piece.length;
    }
    return this.kept >= this.wanted;
  }

  /** The error that reports the refusal: its status, headers, and the body as far as it came. */
  error(): HandshakeError {
    const text = Buffer.concat(this.chunks).toString('utf8');
    const status = this.statusText === '' ? `${this.status}` : `${this.status} ${this.statusText}`;
    const detail = text.trim() === '' ? '' : `: ${text.trim()}`;
    return new HandshakeError(
      `server refused the WebSocket handshake: ${status}${detail}`,
      this.status,
      this.headers,
      text,
    );
  }
}

/** RFC 9110 §8.6: Content-Length is one run of digits; anything else is no length to trust. */
function singleContentLength(headers: HeaderMap): number | undefined {
  const values = headers.get('content-length');
  if (values === undefined || values.length !== 1 || !/^\d{1,15}$/.test(values[0]!)) return undefined;
  return Number(values[0]);
}

export interface ValidatedResponse {
  protocol: string;
  /** The Sec-WebSocket-Extensions value, for the extension module to check against its offer. */
  extensions: string[];
}

/**
 * RFC 6455 §4.1, the client's checks on the server's response ("If the status code received from
 * the server is not 101, ... If the response lacks an |Upgrade| header field ... the client MUST
 * _Fail the WebSocket Connection_."). Throws a HandshakeError.
 */
export function validateUpgradeResponse(
  response: ResponseHead,
  key: string,
  offeredProtocols: readonly string[],
): ValidatedResponse {
  const { headers } = response;
  if (response.status !== 101) {
    throw new HandshakeError(
      `server refused the WebSocket handshake: ${response.status} ${response.statusText}`,
      response.status,
      headers,
    );
  }
  const fail = (message: string): never => {
    throw new HandshakeError(`invalid handshake response: ${message}`, 101, headers);
  };
  if (!headerHasToken(headers, 'upgrade', 'websocket')) fail('the Upgrade header is not "websocket"');
  if (!headerHasToken(headers, 'connection', 'upgrade')) fail('the Connection header lacks "Upgrade"');
  let accept: string | undefined;
  try {
    accept = singleHeader(headers, 'sec-websocket-accept');
  } catch {
    fail('repeated Sec-WebSocket-Accept header');
  }
  if (accept !== acceptKey(key)) fail('Sec-WebSocket-Accept does not match the key sent');
  return acceptedFields(headers, offeredProtocols, 101);
}

/**
 * What an accepting response (a 101 over HTTP/1.1, a 2xx over HTTP/2, RFC 8441 §5) says about the
 * subprotocol and extensions. Throws a HandshakeError (with `status`) for a subprotocol not offered.
 */
export function acceptedFields(
  headers: HeaderMap,
  offeredProtocols: readonly string[],
  status: number,
): ValidatedResponse {
  // §4.1: a subprotocol "that was not present in the client's handshake" fails the connection.
  const protocols = listHeader(headers, 'sec-websocket-protocol');
  const fail = (message: string): never => {
    throw new HandshakeError(`invalid handshake response: ${message}`, status, headers);
  };
  if (protocols.length > 1) fail('more than one subprotocol selected');
  const protocol = protocols[0] ?? '';
  if (protocol !== '' && !offeredProtocols.includes(protocol)) fail(`subprotocol "${protocol}" was not offered`);
  return { protocol, extensions: headers.get('sec-websocket-extensions') ?? [] };
}
