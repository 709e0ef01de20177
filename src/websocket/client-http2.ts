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
  agreedExtensions,
  offeredProtocols,
  parseWebSocketUrl,
  startClientHandshake,
  type ClientOptions,
} from './client.js';
import type { HandshakeEvents } from './client.js';
import { WEBSOCKET_VERSION } from '../protocol/constants.js';
import { HandshakeError, acceptedFields } from '../protocol/handshake.js';
import { type HeaderMap } from '../protocol/http1.js';
import { prepareWebSocketStream } from './http2-stream.js';
import { deflateOffer, deflateOptionsOf } from '../protocol/permessage-deflate.js';

/**
 * WebSockets over HTTP/2 (RFC 8441), client side: `connect(url, { http2: true })`. One HTTP/2
 * session per origin carries every WebSocket to it (one stream each); the session is opened on
 * the first, waits for the server's SETTINGS, and is closed when its last WebSocket is gone.
 */

/** How much of a refusal's body to keep for the error message, and how long to wait for it. */
const BODY_PREVIEW_BYTES = 1024;
const BODY_WAIT_MS = 500;
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
 * that aborts it. Throws for a bad URL, protocol list or header before anything happens.
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
  // RFC 8441 §4-§5: an extended CONNECT; no Upgrade, Connection or Sec-WebSocket-Key.
  const headers: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(options.headers ?? {})) headers[name.toLowerCase()] = value;
  Object.assign(headers, {
    ':method': 'CONNECT',
    ':protocol': 'websocket',
    ':scheme': target.secure ? 'https' : 'http',
    ':authority': target.authority,
    ':path': target.path,
    'sec-websocket-version': String(WEBSOCKET_VERSION),
  });
  if (protocols.length > 0) headers['sec-websocket-protocol'] = protocols.join(', ');
  if (deflateOptions !== null) headers['sec-websocket-extensions'] = deflateOffer(deflateOptions);
  if (options.origin !== undefined) headers['origin'] = options.origin;
  const fallback = typeof options.http2 === 'object' && options.http2.fallback === true;

  let done = false;
  let stream: ClientHttp2Stream | null = null;
  let pooled: Pooled | null = null;
  let timer: NodeJS.Timeout | null = null;
  let abortFallback: (() => void) | null = null;
  let onStreamClose = (): void => {};
  const onStreamError = (error: Error): void => fail(error);
  const finish = (): void => {
    done = true;
    if (timer !== null) clearTimeout(timer);
  };
  const fail = (error: Error): void => {
    if (done) return;
    finish();
    if (stream !== null && !stream.destroyed) stream.close(h2.NGHTTP2_CANCEL);
    else if (pooled !== null) release(pooled);
    events.onFail(error);
  };
  const overHttp1 = (): void => {
    finish();
    // The same handshake over HTTP/1.1, on its own connection; its own timeout starts now.
    try {
      abortFallback = startClientHandshake(address, protocols, { ...options, http2: false }, events);
    } catch (error) {
      events.onFail(error as Error);
    }
  };

  const start = async (): Promise<void> => {
    const timeout = options.handshakeTimeout ?? CLIENT_DEFAULTS.handshakeTimeout;
    if (timeout > 0) {
      timer = setTimeout(() => fail(new HandshakeError('handshake timed out')), timeout);
      timer.unref();
    }
    const origin = `${target.secure ? 'https' : 'http'}://${target.authority}`;
    const current = (pooled = sessionFor(origin, target.secure, target.host, options.tls));
    current.users++;
    try {
      await current.ready;
    } catch (error) {
      if (done) return;
      release(current);
      pooled = null;
      if (fallback) overHttp1();
      else fail(error as Error);
      return;
    }
    if (done) return;
    // RFC 8441 §3: extended CONNECT only once the server's SETTINGS_ENABLE_CONNECT_PROTOCOL is 1.
    if (current.session.remoteSettings.enableConnectProtocol !== true) {
      release(current);
      pooled = null;
      if (fallback) overHttp1();
      else
        fail(
          new HandshakeError(
            `${origin} does not accept WebSockets over HTTP/2: its SETTINGS lack ` +
              'SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 (RFC 8441 §3); connect without `http2`, ' +
              'or with `http2: { fallback: true }`',
          ),
        );
      return;
    }
    let request: ClientHttp2Stream;
    try {
      request = stream = current.session.request(headers, { endStream: false });
    } catch (error) {
      fail(error as Error);
      return;
    }
    onStreamClose = (): void => {
      release(current);
      fail(new HandshakeError('the stream closed during the handshake'));
    };
    request.once('close', onStreamClose);
    request.on('error', onStreamError);
    request.once('response', (response) => {
      if (done) return;
      const status = Number(response[':status']);
      // RFC 8441 §5: "a 2xx series status code" accepts the WebSocket; anything else refuses it.
      if (status >= 200 && status < 300) accepted(request, response);
      else refused(request, status, response);
    });
  };

  const accepted = (request: ClientHttp2Stream, response: IncomingHttpHeaders): void => {
    const map = headerMapOf(response);
    const status = Number(response[':status']);
    let protocol: string;
    let agreed: ReturnType<typeof agreedExtensions>;
    try {
      const fields = acceptedFields(map, protocols, status);
      protocol = fields.protocol;
      agreed = agreedExtensions(fields.extensions, deflateOptions, status, map);
    } catch (error) {
      fail(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    const { extensions, deflate } = agreed;
    finish();
    request.off('close', onStreamClose);
    request.off('error', onStreamError);
    const current = pooled!;
    request.once('close', () => release(current));
    prepareWebSocketStream(request, 'client');
    const record: Record<string, string> = {};
    for (const [name, values] of map) record[name] = values.join(', ');
    record[':status'] = String(response[':status']);
    events.onOpen({ socket: request, protocol, extensions, deflate, headers: record, rest: EMPTY });
  };

  const refused = (request: ClientHttp2Stream, status: number, response: IncomingHttpHeaders): void => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    const report = (): void => {
      const text = Buffer.concat(chunks).toString('utf8');
      const detail = text.trim() === '' ? '' : `: ${text.trim()}`;
      fail(
        new HandshakeError(
          `server refused the WebSocket handshake: ${status}${detail}`,
          status,
          headerMapOf(response),
          text,
        ),
      );
    };
    request.on('data', (chunk: Buffer) => {
      if (bytes < BODY_PREVIEW_BYTES) chunks.push(chunk.subarray(0, BODY_PREVIEW_BYTES - bytes));
      bytes += chunk.length;
      if (bytes >= BODY_PREVIEW_BYTES) report();
    });
    request.once('end', report);
    request.off('close', onStreamClose);
    const current = pooled!;
    request.once('close', () => {
      report();
      release(current);
    });
    setTimeout(report, BODY_WAIT_MS).unref();
  };

  process.nextTick(() => {
    if (!done) void start();
  });
  return () => {
    if (abortFallback !== null) abortFallback();
    else fail(new HandshakeError('connection closed before the handshake completed'));
  };
}

/** Response headers as a HeaderMap, pseudo-headers left out. */
function headerMapOf(headers: IncomingHttpHeaders): HeaderMap {
  const map: HeaderMap = new Map();
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith(':') || value === undefined) continue;
    map.set(name, Array.isArray(value) ? [...value] : [String(value)]);
  }
  return map;
}
