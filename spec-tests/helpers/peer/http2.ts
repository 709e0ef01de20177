/**
 * The test peer over HTTP/2 (RFC 8441): node:http2 carries the streams, the peer's own code does
 * the rest. An extended CONNECT (`:protocol websocket`, §4) opens a stream; a 2xx answer (§5) makes
 * it a WebSocket, whose frames the peer encodes and decodes itself (PeerConnection, frames.ts).
 * Nothing here comes from src/.
 */
import { once } from 'node:events';
import {
  connect as h2connect,
  constants as h2,
  type ClientHttp2Session,
  type ClientHttp2Stream,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type SecureClientSessionOptions,
} from 'node:http2';
import type { Socket } from 'node:net';
import { PeerConnection, type PeerOptions } from './connection.js';
import { withTimeout } from './wait.js';

const sessions = new Set<ClientHttp2Session>();
const origins = new WeakMap<ClientHttp2Session, URL>();

/** Destroy every session the peer opened (for `after` hooks). */
export function destroyH2Sessions(): void {
  for (const session of sessions) session.destroy();
}

/** An HTTP/2 session to `origin` (https:// or http:// for h2c with prior knowledge), once the server's SETTINGS came. */
export async function openH2Session(
  origin: string,
  options: SecureClientSessionOptions = {},
): Promise<ClientHttp2Session> {
  const session = h2connect(origin, options);
  sessions.add(session);
  origins.set(session, new URL(origin));
  session.on('close', () => sessions.delete(session));
  session.on('error', () => {});
  await withTimeout(once(session, 'remoteSettings'), 5000, `the SETTINGS of ${origin}`);
  return session;
}

/** RFC 8441 §4: the headers of an extended CONNECT for a WebSocket at `path`. */
export function extendedConnect(
  session: ClientHttp2Session,
  path: string,
  extra: OutgoingHttpHeaders = {},
): OutgoingHttpHeaders {
  const origin = origins.get(session) ?? new URL('http://localhost');
  return {
    ':method': 'CONNECT',
    ':protocol': 'websocket',
    ':scheme': origin.protocol.replace(':', ''),
    ':authority': origin.host,
    ':path': path,
    'sec-websocket-version': '13',
    ...extra,
  };
}

export interface H2Answer {
  status: number;
  headers: IncomingHttpHeaders;
  /** The response body (a refusal's text); '' for an accepted WebSocket. */
  body: string;
  stream: ClientHttp2Stream;
}

/**
 * Send a request and read the answer: the status and headers, and for a non-2xx status the whole
 * body (until END_STREAM). A 2xx leaves the stream open and unread.
 */
export async function h2Request(session: ClientHttp2Session, headers: OutgoingHttpHeaders): Promise<H2Answer> {
  const stream = session.request(headers, { endStream: false });
  stream.on('error', () => {});
  const [response] = (await withTimeout(once(stream, 'response'), 5000, 'the response')) as [IncomingHttpHeaders];
  const status = Number(response[':status']);
  if (status >= 200 && status < 300) return { status, headers: response, body: '', stream };
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  await withTimeout(once(stream, 'close'), 5000, 'the end of the refusal');
  return { status, headers: response, body: Buffer.concat(chunks).toString('utf8'), stream };
}

/** A WebSocket on an HTTP/2 stream, in the client role (frames masked, §5.3 of RFC 6455). */
export class H2Peer extends PeerConnection {
  private constructor(
    readonly stream: ClientHttp2Stream,
    readonly response: IncomingHttpHeaders,
    options: PeerOptions,
  ) {
    // PeerConnection reads 'data', 'end', 'error' and 'close', writes and ends: a stream does all of them.
    super(stream as unknown as Socket, 'client', options);
    stream.on('data', (chunk: Buffer) => this.acceptFrameBytes(chunk));
  }

  /** Open a WebSocket at `path`; throws unless the server answers 2xx. */
  static async open(
    session: ClientHttp2Session,
    path: string,
    extra: OutgoingHttpHeaders = {},
    options: PeerOptions = {},
  ): Promise<H2Peer> {
    const answer = await h2Request(session, extendedConnect(session, path, extra));
    if (answer.status < 200 || answer.status >= 300) throw new Error(`refused: ${answer.status} ${answer.body}`);
    const peer = new H2Peer(answer.stream, answer.headers, options);
    const offered = String(extra['sec-websocket-extensions'] ?? '');
    const agreed = String(answer.headers['sec-websocket-extensions'] ?? '');
    peer.deflateAgreed = offered !== '' && agreed.split(';')[0]!.trim() === 'permessage-deflate';
    return peer;
  }

  /** RFC 8441 §6: abort the WebSocket as a TCP reset would, with RST_STREAM (CANCEL). */
  override reset(): void {
    if (!this.weEnded) {
      this.weEnded = true;
      this.weEndedAt = performance.now();
    }
    this.stream.close(h2.NGHTTP2_CANCEL);
  }

  override destroy(): void {
    this.reset();
  }
}
