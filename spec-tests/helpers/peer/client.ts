/**
 * The test peer in the client role: a TCP connection to a server, the opening handshake written
 * header by header (RFC 6455 §4.1) or as raw bytes, the response head (and a refusal's body) read
 * with the peer's own parser, then frames both ways (PeerConnection).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { PeerConnection, type PeerOptions } from './connection.js';
import {
  RFC_KEY,
  acceptFor,
  handshakeRequest,
  headEnd,
  parseResponseHead,
  type ParsedResponse,
  type RequestSpec,
} from './http.js';
import { withTimeout } from './wait.js';

export interface RawClientOptions extends PeerOptions {
  /** Default 127.0.0.1. */
  host?: string;
}

const openClients = new Set<RawClient>();

/** Destroy every raw client still open (for `after`/`afterEach` hooks). */
export function destroyRawClients(): void {
  for (const client of openClients) client.destroy();
}

/** Does a Sec-WebSocket-Extensions value accept permessage-deflate? */
function agreesDeflate(value: string | undefined): boolean {
  return (value ?? '').split(',').some((element) => element.split(';')[0]!.trim() === 'permessage-deflate');
}

export class RawClient extends PeerConnection {
  /** The response to our request, once its head has arrived. */
  response: ParsedResponse | null = null;
  /** True once a 101 arrived: later bytes are frames. */
  upgraded = false;
  /** The Sec-WebSocket-Key we sent. */
  key: string | undefined;
  private headBuffer = Buffer.alloc(0);

  private constructor(socket: Socket, options: RawClientOptions) {
    super(socket, 'client', options);
    openClients.add(this);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('close', () => openClients.delete(this));
  }

  /** Open a TCP connection (no handshake yet). */
  static async open(port: number, options: RawClientOptions = {}): Promise<RawClient> {
    const host = options.host ?? '127.0.0.1';
    const socket = netConnect({ port, host, allowHalfOpen: true });
    socket.setNoDelay(true);
    const client = new RawClient(socket, options);
    await withTimeout(once(socket, 'connect'), 2000, `TCP connect to ${host}:${port}`);
    return client;
  }

  /** Open a connection, send a handshake (`extra` bytes in the same write) and read the response, whatever it is. */
  static async request(
    port: number,
    spec: RequestSpec = {},
    options: RawClientOptions = {},
    extra?: Uint8Array,
  ): Promise<RawClient> {
    const client = await RawClient.open(port, options);
    client.handshake(spec, extra);
    await client.readResponse();
    return client;
  }

  /** Open a connection and complete a handshake; asserts the 101 and its Sec-WebSocket-Accept. */
  static async connect(
    port: number,
    spec: RequestSpec = {},
    options: RawClientOptions = {},
    extra?: Uint8Array,
  ): Promise<RawClient> {
    const client = await RawClient.request(port, spec, options, extra);
    const response = client.response!;
    assert.equal(response.status, 101, `handshake refused: ${response.statusLine} ${response.body.toString()}`);
    assert.equal(
      response.header('sec-websocket-accept'),
      acceptFor(client.key!),
      'Sec-WebSocket-Accept (RFC 6455 §4.2.2)',
    );
    return client;
  }

  /** Write an opening handshake (RFC 6455 §4.1) for this connection. */
  handshake(spec: RequestSpec = {}, extra?: Uint8Array): void {
    const host = this.socket.remoteAddress ?? '127.0.0.1';
    const port = this.socket.remotePort ?? 0;
    this.key = spec.key ?? RFC_KEY;
    const request = handshakeRequest(spec, host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);
    this.write(extra === undefined ? request : Buffer.concat([request, extra]));
  }

  /** A response field's value (repeated fields joined), or undefined. */
  header(name: string): string | undefined {
    return this.response?.header(name);
  }

  /** The response head (and, for a refusal, its body as far as Content-Length or EOF). */
  async readResponse(ms = 3000): Promise<ParsedResponse> {
    await this.until(() => this.response !== null || this.closed || this.socketError !== null, ms, 'the response head');
    const response = this.response;
    if (response === null)
      throw new Error(`no response: ${this.socketError?.message ?? 'connection closed'} (${this.describe()})`);
    if (response.status !== 101) {
      const length = Number(response.header('content-length') ?? NaN);
      await this.until(
        () => (Number.isFinite(length) && response.body.length >= length) || this.peerEnded || this.closed,
        ms,
        'the response body',
      );
    }
    return response;
  }

  override describe(): string {
    return `response=${this.response?.statusLine ?? 'none'} ${super.describe()}`;
  }

  private onData(chunk: Buffer): void {
    if (this.response === null) {
      this.headBuffer = Buffer.concat([this.headBuffer, chunk]);
      const end = headEnd(this.headBuffer);
      if (end < 0) {
        this.emit('progress');
        return;
      }
      const head = this.headBuffer.subarray(0, end - 4).toString('latin1');
      const rest = Buffer.from(this.headBuffer.subarray(end));
      this.headBuffer = Buffer.alloc(0);
      try {
        this.response = parseResponseHead(head);
      } catch (error) {
        this.socketError = error as Error;
        this.emit('progress');
        return;
      }
      if (this.response.status === 101) {
        this.upgraded = true;
        this.deflateAgreed = agreesDeflate(this.response.header('sec-websocket-extensions'));
        if (rest.length > 0) this.acceptFrameBytes(rest);
      } else {
        this.response.body = rest;
      }
    } else if (this.upgraded) {
      this.acceptFrameBytes(chunk);
    } else {
      this.response.body = Buffer.concat([this.response.body, chunk]);
    }
    this.emit('progress');
  }
}
