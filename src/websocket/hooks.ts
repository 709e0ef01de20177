import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import type { UpgradeRequest } from '../protocol/handshake.js';
import { assertSendableHeader, type RequestHead } from '../protocol/http1.js';
import type { ResolvedConnectionOptions } from '../protocol/options.js';
import type { FrameTracer } from '../protocol/trace.js';

/**
 * The server's public hooks, through which the echo CLI's --trace and the protocol explorer plug
 * in: `observe` (what an observer is told of each accepted handshake, and how the tracer it returns
 * reaches that connection's frames) and `onHttpRequest` (requests that are not handshakes).
 */

/** One header field as it went: the name (lower case over HTTP/2), the value. */
export type HeaderField = readonly [name: string, value: string];

/** What the server tells an observer hook about an accepted handshake. */
export interface ObservedHandshake {
  id: number;
  request: UpgradeRequest;
  /**
   * What carried the handshake: '1.1' (RFC 6455 §4: a GET with Upgrade on the connection) or '2.0'
   * (RFC 8441: an extended CONNECT on one stream of an HTTP/2 connection).
   */
  httpVersion: string;
  /**
   * The request as received and the response as sent. Over HTTP/1.1, the heads (the request's as
   * node:http parsed it, for `handleUpgrade`); over HTTP/2, the HEADERS' fields in HTTP/2's own
   * notation, one `name = value` a line, pseudo-header fields first (RFC 8441 §5.1 writes them so).
   */
  requestHead: string;
  responseHead: string;
  /**
   * Over HTTP/2, the header fields themselves, in order: the request's (`:method`, `:protocol`,
   * `:scheme`, `:path`, `:authority`, then `sec-websocket-version`, `origin`...; repeated fields as
   * node:http2 joined them) and the response's (`:status`, ...). null over HTTP/1.1.
   */
  http2: { request: readonly HeaderField[]; response: readonly HeaderField[] } | null;
  /** Sec-WebSocket-Key (HTTP/1.1); '' over HTTP/2, where RFC 8441 §5 drops it. */
  key: string;
  /** The Sec-WebSocket-Extensions the server agreed to, or ''. */
  extensions: string;
}

/**
 * How an accepted handshake went, as its way in recorded it (cheap to keep): made into an
 * ObservedHandshake only for a server with an observer.
 */
export type HandshakeRecord =
  | { http2: false; head: RequestHead; raw: Buffer | undefined; response: Buffer; key: string }
  | { http2: true; request: IncomingHttpHeaders; response: OutgoingHttpHeaders };

/** What an observer is told: the record of the handshake, with its heads as text. */
export function observedHandshake(
  id: number,
  request: UpgradeRequest,
  extensions: string,
  record: HandshakeRecord,
): ObservedHandshake {
  if (!record.http2) {
    const [major, minor] = record.head.version;
    return {
      id,
      request,
      httpVersion: `${major}.${minor}`,
      requestHead: headText(record.head, record.raw),
      responseHead: record.response.toString('latin1'),
      http2: null,
      key: record.key,
      extensions,
    };
  }
  const fields = { request: headerFields(record.request), response: headerFields(record.response) };
  return {
    id,
    request,
    httpVersion: '2.0',
    requestHead: fieldsText(fields.request),
    responseHead: fieldsText(fields.response),
    http2: fields,
    key: '',
    extensions,
  };
}

/** node:http2's header object as fields, in its order (pseudo-header fields come first there). */
function headerFields(headers: IncomingHttpHeaders | OutgoingHttpHeaders): HeaderField[] {
  const fields: HeaderField[] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const one of value) fields.push([name, String(one)]);
    else fields.push([name, String(value)]);
  }
  return fields;
}

/** Header fields in HTTP/2's notation (RFC 8441 §5.1, RFC 9113's examples): `name = value`, a line each. */
function fieldsText(fields: readonly HeaderField[]): string {
  let text = '';
  for (const [name, value] of fields) text += `${name} = ${value}\r\n`;
  return text;
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
function headText(head: RequestHead, raw: Buffer | undefined): string {
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

/**
 * What `onHttpRequest` answers. The server adds Content-Length (and, over HTTP/1.1, Connection:
 * close); the hook's own framing and connection fields are dropped.
 */
export interface HttpResponseInfo {
  /** A final status, 200-599. */
  status: number;
  headers?: Readonly<Record<string, string>>;
  /** Not sent for HEAD, 204 or 304 (RFC 9110 §9.3.2, §15.3.5, §15.4.5). */
  body?: string | Uint8Array;
}

/** An `onHttpRequest` answer checked, ready to write over HTTP/1.1 or HTTP/2. */
export interface PlainAnswer {
  status: number;
  /** The hook's fields, but those the server writes itself; then Content-Length, unless a 204 or 304. */
  headers: [string, string][];
  /** What follows the head. */
  body: Buffer;
}

/**
 * Fields the server writes itself: the framing (RFC 9112 §6: Content-Length is ours, Transfer-Encoding
 * would contradict it) and the connection's management (the server closes an HTTP/1.1 connection
 * after the answer). Over HTTP/2, RFC 9113 §8.2.2 forbids every connection-specific field.
 */
const SERVER_FIELDS = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive']);
const HTTP2_CONNECTION_FIELDS = new Set([...SERVER_FIELDS, 'proxy-connection', 'upgrade']);
const EMPTY = Buffer.alloc(0);

/**
 * Check what `onHttpRequest` answered to a `method` request. Throws a TypeError (which the server
 * answers with 500 and reports as an 'error') for an answer that cannot be sent: a status that is
 * not a final one, a field name that is not a token, a value with CR, LF or NUL, a body of another type.
 */
export function plainAnswer(response: HttpResponseInfo, method: string, http2: boolean): PlainAnswer {
  if (typeof response !== 'object' || response === null) throw new TypeError('onHttpRequest answered no object');
  const status = response.status;
  // RFC 9110 §15: 1xx are interim responses (101 belongs to the upgrade), never the answer.
  if (!Number.isInteger(status) || status < 200 || status > 599)
    throw new TypeError(`onHttpRequest answered status ${String(status)}: a final status is 200-599`);
  const body = response.body;
  let bytes: Buffer;
  if (body === undefined) bytes = EMPTY;
  else if (typeof body === 'string') bytes = Buffer.from(body);
  else if (body instanceof Uint8Array) bytes = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  else throw new TypeError('onHttpRequest answered a body that is neither a string nor a Uint8Array');
  const dropped = http2 ? HTTP2_CONNECTION_FIELDS : SERVER_FIELDS;
  const headers: [string, string][] = [];
  for (const [name, value] of Object.entries(response.headers ?? {})) {
    if (typeof value !== 'string') throw new TypeError(`onHttpRequest answered a non-string value for ${name}`);
    assertSendableHeader(name, value);
    if (!dropped.has(name.toLowerCase())) headers.push([http2 ? name.toLowerCase() : name, value]);
  }
  // RFC 9110 §8.6, §15.3.5, §15.4.5: no content after a 204 or 304, and a 204 has no Content-Length.
  const noContent = status === 204 || status === 304;
  if (!noContent) headers.push([http2 ? 'content-length' : 'Content-Length', String(bytes.length)]);
  // RFC 9110 §9.3.2: a response to HEAD has the fields a GET would get, never the content.
  return { status, headers, body: noContent || method === 'HEAD' ? EMPTY : bytes };
}

/**
 * Ask an `onHttpRequest` hook: its answer checked (plainAnswer), or undefined. What it throws, and
 * an answer that cannot be sent, become the status `fail` gives (the server's 500, which also
 * reports the error).
 */
export function askHook(
  hook: (request: HttpRequestInfo) => HttpResponseInfo | undefined,
  request: HttpRequestInfo,
  fail: (error: unknown) => number,
): PlainAnswer | undefined {
  const http2 = request.httpVersion === '2.0';
  try {
    const response = hook(request);
    return response === undefined ? undefined : plainAnswer(response, request.method, http2);
  } catch (error) {
    const headers = { 'content-type': 'text/plain; charset=utf-8' };
    return plainAnswer({ status: fail(error), headers, body: 'internal server error\n' }, request.method, http2);
  }
}
