/**
 * The test peer in the server role: it listens on a loopback address with an ephemeral port, reads
 * each client's request head with its own parser, answers with whatever the test wants (a correct
 * 101 by default, a 101 with chosen fields, a refusal, garbage, or nothing), then speaks frames
 * (PeerConnection). Every frame a client sends must be masked (RFC 6455 §5.1): an unmasked one is
 * recorded as a protocol error, so every test using this server also checks the client masks.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { PeerConnection, type PeerOptions } from './connection.js';
import { acceptResponse, headEnd, parseRequestHead, type ParsedRequest } from './http.js';

/** One client connection as the server sees it. */
export class ServerPeer extends PeerConnection {
  /** The request, once its head arrived. */
  request: ParsedRequest | null = null;
  /** Bytes that arrived after the request head, as sent (masked). */
  readonly rawAfterHead: Buffer[] = [];
  private headBuffer = Buffer.alloc(0);
  private decoding = false;
  private held: Buffer[] = [];

  constructor(socket: Socket, options: PeerOptions) {
    super(socket, 'server', options);
  }

  /** Start decoding the client's frames (after our response), bytes already received first. */
  startDecoding(): void {
    if (this.decoding) return;
    this.decoding = true;
    for (const chunk of this.held.splice(0)) this.acceptFrameBytes(chunk);
  }

  /** @internal Bytes from the socket; emits 'request' once the head is complete. */
  onBytes(chunk: Buffer): void {
    if (this.request === null) {
      this.headBuffer = Buffer.concat([this.headBuffer, chunk]);
      const end = headEnd(this.headBuffer);
      if (end < 0) return;
      const rest = Buffer.from(this.headBuffer.subarray(end));
      this.request = parseRequestHead(Buffer.from(this.headBuffer.subarray(0, end)));
      this.headBuffer = Buffer.alloc(0);
      this.emit('request', this.request);
      if (rest.length > 0) this.onBytes(rest);
      this.emit('progress');
      return;
    }
    this.rawAfterHead.push(chunk);
    if (this.decoding) this.acceptFrameBytes(chunk);
    else this.held.push(chunk);
    this.emit('progress');
  }
}

/** What to answer a request with: bytes, or null to never answer. */
export type Responder = (request: ParsedRequest, peer: ServerPeer) => Uint8Array | string | null;

export interface RawServerOptions extends PeerOptions {
  /** Default: a correct 101 for the request. */
  respond?: Responder;
  /** Decode the client's frames after the response (default: when the response is a 101). */
  decode?: boolean;
  /** Default 127.0.0.1. */
  host?: string;
  /** Called once the response is written: the test's script for this connection. */
  onPeer?: (peer: ServerPeer) => void;
}

/** Does a 101 response accept permessage-deflate in its Sec-WebSocket-Extensions? */
function responseAgreesDeflate(response: Buffer): boolean {
  const head = response.toString('latin1').split('\r\n\r\n')[0]!;
  return head
    .split('\r\n')
    .filter((line) => /^sec-websocket-extensions\s*:/i.test(line))
    .some((line) =>
      line
        .slice(line.indexOf(':') + 1)
        .split(',')
        .some((element) => element.split(';')[0]!.trim() === 'permessage-deflate'),
    );
}

export class RawServer {
  readonly peers: ServerPeer[] = [];
  private readonly waiters: ((peer: ServerPeer) => void)[] = [];
  private handed = 0;

  private constructor(
    private readonly server: Server,
    readonly host: string,
    readonly port: number,
  ) {}

  /** Listen on an ephemeral loopback port. */
  static async start(options: RawServerOptions = {}): Promise<RawServer> {
    const host = options.host ?? '127.0.0.1';
    let self: RawServer | null = null;
    const server = createServer({ allowHalfOpen: true }, (socket) => self!.accept(socket, options));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    self = new RawServer(server, host, (server.address() as AddressInfo).port);
    return self;
  }

  /** A ws:// URL to this server (IPv6 hosts bracketed). */
  url(path = '/'): string {
    const host = this.host.includes(':') ? `[${this.host}]` : this.host;
    return `ws://${host}:${this.port}${path}`;
  }

  /** The next connection whose request head has been read (in arrival order). */
  nextPeer(): Promise<ServerPeer> {
    const ready = this.peers.filter((peer) => peer.request !== null);
    if (this.handed < ready.length) return Promise.resolve(ready[this.handed++]!);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** The requests read so far, in arrival order. */
  get requests(): ParsedRequest[] {
    return this.peers.flatMap((peer) => (peer.request === null ? [] : [peer.request]));
  }

  /** Destroy every connection and stop listening. */
  async close(): Promise<void> {
    for (const peer of this.peers) peer.socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: Socket, options: RawServerOptions): void {
    socket.setNoDelay(true);
    const peer = new ServerPeer(socket, options);
    this.peers.push(peer);
    peer.on('request', (request: ParsedRequest) => {
      const answer = options.respond === undefined ? acceptResponse(request) : options.respond(request, peer);
      if (answer !== null) {
        const bytes = typeof answer === 'string' ? Buffer.from(answer, 'latin1') : Buffer.from(answer);
        const isUpgrade = bytes.subarray(0, 12).toString('latin1') === 'HTTP/1.1 101';
        if (isUpgrade) peer.deflateAgreed = responseAgreesDeflate(bytes);
        peer.write(bytes);
        if (options.decode ?? isUpgrade) peer.startDecoding();
      }
      options.onPeer?.(peer);
      const waiter = this.waiters.shift();
      if (waiter !== undefined) {
        this.handed++;
        waiter(peer);
      }
    });
    socket.on('data', (chunk: Buffer) => peer.onBytes(chunk));
  }
}

/** A responder: a correct 101 with these extra field lines ("Name: value", in order). */
export function upgradeWith(...lines: string[]): Responder {
  const headers = lines.map((line): [string, string] => [
    line.slice(0, line.indexOf(':')),
    line.slice(line.indexOf(':') + 1).trim(),
  ]);
  return (request) => acceptResponse(request, { headers });
}

/** A port nothing listens on (bound, then released). */
export async function closedPort(host = '127.0.0.1'): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, host, () => resolve()));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
