import { EventEmitter } from 'node:events';
import { startClientHandshake, type ClientOptions } from './client.js';
import { startHttp2Handshake } from './client-http2.js';
import {
  Connection,
  PAUSED_BY_APPLICATION,
  PAUSED_BY_ITERATOR,
  type ConnectionEventMap,
  type ServerSide,
} from '../driver/connection.js';
import { MAX_CLOSE_REASON_BYTES, Opcode, ReadyState, isValidApplicationCloseCode } from '../protocol/constants.js';
import { InvalidStateError } from '../protocol/errors.js';
import { HandshakeError } from '../protocol/handshake.js';
import {
  resolveConnectionOptions,
  type Data,
  type ResolvedConnectionOptions,
  type SendOptions,
} from '../protocol/options.js';
import type { DeflateParams } from '../protocol/permessage-deflate.js';
import type { SendCallback } from '../protocol/sender.js';
import { isMessageSource, type MessageSourceData } from '../driver/streams.js';

/**
 * The public WebSocket: what applications hold, on both sides. Everything it does goes through its
 * driver (src/driver/connection.ts), kept in a private field; the protocol itself is src/protocol/protocol.ts.
 */

/** The events of a WebSocket, both sides. */
export interface WebSocketEventMap extends ConnectionEventMap {
  /** Client: the handshake succeeded; the connection is OPEN. */
  open: [];
  /** Client: the server's 101 response headers (lower-case names), just before 'open'. */
  upgrade: [headers: Record<string, string>];
}

export interface Message {
  data: Buffer;
  isBinary: boolean;
}

/** A server's topics (src/websocket/topics.ts), as a connection of it reaches them. */
export interface TopicMembership {
  subscribe(socket: WebSocket, topic: string): boolean;
  unsubscribe(socket: WebSocket, topic: string): boolean;
  topicsOf(socket: WebSocket): ReadonlySet<string>;
}

const SERVER_SIDE = Symbol('server side');
const EMPTY = Buffer.alloc(0);

// The server's way in (module-internal): set once by the class's static block.
let adopt: (config: ResolvedConnectionOptions, side: ServerSide) => WebSocket;
let driverOf: (socket: WebSocket) => Connection;
let setMembership: (socket: WebSocket, topics: TopicMembership) => void;

export class WebSocket extends EventEmitter<WebSocketEventMap> {
  static readonly CONNECTING = ReadyState.CONNECTING;
  static readonly OPEN = ReadyState.OPEN;
  static readonly CLOSING = ReadyState.CLOSING;
  static readonly CLOSED = ReadyState.CLOSED;

  /** Set by the server: what `verify` attached (the authenticated user, say). Yours to change. */
  data: unknown = undefined;
  readonly #connection: Connection;
  #topics: TopicMembership | null = null;

  /**
   * A client connection to `address` (ws:// or wss://), offering `protocols`; events tell how it
   * goes ('open', or 'error' then 'close'). `connect()` is the promise-returning form.
   */
  constructor(address: string | URL, protocols?: string | readonly string[], options: ClientOptions = {}) {
    super();
    const connection = (this.#connection = new Connection(this, resolveConnectionOptions(options)));
    if ((address as unknown) === SERVER_SIDE) return;
    // RFC 8441: over a stream of an HTTP/2 connection, when asked.
    const start = options.http2 !== undefined && options.http2 !== false ? startHttp2Handshake : startClientHandshake;
    connection.connecting(
      start(address, protocols ?? options.protocols ?? [], options, {
        onOpen: (opened) => {
          connection.opened(opened);
          this.emit('upgrade', opened.headers);
          this.emit('open');
        },
        onFail: (error) => connection.failConnecting(error),
      }),
    );
  }

  static {
    adopt = (config, side) => {
      const socket = new WebSocket(SERVER_SIDE as unknown as string, undefined, config);
      socket.data = side.data;
      socket.#connection.adopt(side);
      return socket;
    };
    driverOf = (socket) => socket.#connection;
    setMembership = (socket, topics) => (socket.#topics = topics);
  }

  /**
   * Server side: receive what `server.publish(topic, ...)` sends, here and (through the server's
   * broker) from other processes. Returns false if already subscribed or no longer open. A closed
   * connection leaves all its topics.
   */
  subscribe(topic: string): boolean {
    if (this.#topics === null) throw new InvalidStateError('topics are a server-side feature');
    return this.#topics.subscribe(this, topic);
  }

  /** Returns false if it was not subscribed. */
  unsubscribe(topic: string): boolean {
    return this.#topics?.unsubscribe(this, topic) ?? false;
  }

  /** The topics this connection is subscribed to (a copy). */
  get topics(): ReadonlySet<string> {
    return this.#topics?.topicsOf(this) ?? new Set();
  }

  /** CONNECTING, OPEN, CLOSING or CLOSED, as in the WebSocket API. */
  get readyState(): ReadyState {
    return this.#connection.readyState;
  }

  /** The subprotocol agreed in the handshake, or '' for none. */
  get protocol(): string {
    return this.#connection.subprotocol;
  }

  /** The extensions agreed in the handshake (the Sec-WebSocket-Extensions value), or ''. */
  get extensions(): string {
    return this.#connection.extensions;
  }

  /** Server side: the connection's id in the server's registry (`server.getClient(id)`); 0 for a client. */
  get id(): number {
    return this.#connection.id;
  }

  /** Bytes accepted by `send()` and not yet handed to the operating system. */
  get bufferedAmount(): number {
    return this.#connection.bufferedAmount;
  }

  /**
   * Whether data messages come as streams (the 'stream' event: a MessageStream each, as its frames
   * arrive, the next once it is read to its end) rather than whole ('message'). The option
   * `streamMessages` sets it for every connection; set it here for one, in the server's
   * 'connection' handler (before anything is read) or later: it applies from the next message.
   */
  get streamMessages(): boolean {
    return this.#connection.streamMessages;
  }

  set streamMessages(on: boolean) {
    this.#connection.streamMessages = on;
  }

  /** Whether reading is paused (by `pause()`, by a slow async iterator, or by the write side). */
  get isPaused(): boolean {
    return this.#connection.pausedBy !== 0;
  }

  get remoteAddress(): string | undefined {
    return this.#connection.remote('remoteAddress') as string | undefined;
  }

  get remotePort(): number | undefined {
    return this.#connection.remote('remotePort') as number | undefined;
  }

  /**
   * Queue a message. Strings go as text, buffers as binary (unless `options.binary` says otherwise;
   * a buffer sent as text must be valid UTF-8). Returns false when more than `highWaterMark` bytes
   * are now waiting: stop sending until `'drain'`. The callback runs once the data is handed to the
   * operating system, or with an error if the connection closes first.
   *
   * A Readable, or an (async) iterable of chunks (Buffers, typed arrays, strings), is sent as one
   * message whose fragments are its chunks, each as it comes (RFC 6455 §5.4), never more than
   * `highWaterMark` of it waiting; text if its first chunk is a string (or `options.binary` is
   * false). Messages sent after it wait until its end; pings and pongs do not. If the source fails,
   * the connection fails with 1011 (a message cannot be aborted on its own) and the callback gets
   * the source's error (without a callback, the 'error' event does).
   */
  send(data: Data | MessageSourceData, options?: SendOptions | SendCallback, callback?: SendCallback): boolean {
    if (typeof options === 'function') return this.send(data, undefined, options);
    if (isMessageSource(data)) return this.#connection.sendStream(data, options, callback);
    return this.#connection.send(data, options, callback);
  }

  /** Like `send()`, but returns a promise settled when the data has been handed to the operating system. */
  sendAsync(data: Data | MessageSourceData, options?: SendOptions): Promise<void> {
    return new Promise((resolve, reject) => {
      this.send(data, options ?? {}, (error) => (error === undefined ? resolve() : reject(error)));
    });
  }

  /** Send a ping (RFC 6455 §5.5.2); at most 125 bytes of payload. */
  ping(data: Data = EMPTY, callback?: SendCallback): void {
    this.#connection.sendControl(Opcode.Ping, data, callback);
  }

  /** Send an unsolicited pong (RFC 6455 §5.5.3: a heartbeat that expects no answer). */
  pong(data: Data = EMPTY, callback?: SendCallback): void {
    this.#connection.sendControl(Opcode.Pong, data, callback);
  }

  /**
   * Start the closing handshake (RFC 6455 §7.1.2): send a close frame after whatever is queued, send
   * nothing more, wait up to `closeTimeout` for the peer's close and the end of TCP. Calling it again
   * does nothing. `code` is 1000 or 3000-4999 (or another code valid on the wire); `reason` at most
   * 123 bytes of UTF-8.
   */
  close(code?: number, reason = ''): void {
    if (code !== undefined && !isValidApplicationCloseCode(code))
      throw new RangeError(`invalid close code ${code} (RFC 6455 §7.4)`);
    if (Buffer.byteLength(reason) > MAX_CLOSE_REASON_BYTES)
      throw new RangeError(`close reason longer than ${MAX_CLOSE_REASON_BYTES} bytes`);
    this.#connection.close(code, reason);
  }

  /** Destroy the connection now, without a closing handshake. */
  terminate(): void {
    this.#connection.terminate();
  }

  /** Stop reading from the peer (TCP backpressure reaches it) until `resume()`. */
  pause(): void {
    this.#connection.pauseReading(PAUSED_BY_APPLICATION);
  }

  resume(): void {
    this.#connection.resumeReading(PAUSED_BY_APPLICATION);
  }

  /**
   * `for await (const { data, isBinary } of connection)`: messages in order until the connection
   * closes. Reading pauses while more than `bufferLimit` messages wait for the loop.
   */
  async *messages(bufferLimit = 16): AsyncGenerator<Message, void, undefined> {
    const connection = this.#connection;
    const queue: Message[] = [];
    let wake: (() => void) | null = null;
    let ended = this.readyState === ReadyState.CLOSED;
    const onMessage = (data: Buffer, isBinary: boolean): void => {
      queue.push({ data, isBinary });
      if (queue.length >= bufferLimit) connection.pauseReading(PAUSED_BY_ITERATOR);
      wake?.();
    };
    const onClose = (): void => {
      ended = true;
      wake?.();
    };
    this.on('message', onMessage);
    this.on('close', onClose);
    try {
      for (;;) {
        const next = queue.shift();
        if (next !== undefined) {
          if (queue.length < bufferLimit) connection.resumeReading(PAUSED_BY_ITERATOR);
          yield next;
          continue;
        }
        if (ended) return;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = null;
      }
    } finally {
      this.off('message', onMessage);
      this.off('close', onClose);
      connection.resumeReading(PAUSED_BY_ITERATOR);
    }
  }

  [Symbol.asyncIterator](): AsyncGenerator<Message, void, undefined> {
    return this.messages();
  }
}

/** Open a client connection and resolve once it is OPEN; reject with a HandshakeError or a network error. */
export function connect(address: string | URL, options: ClientOptions = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(address, options.protocols, options);
    let failure: Error | null = null;
    const onError = (error: Error): void => {
      failure ??= error;
    };
    const onOpen = (): void => {
      socket.off('close', onClose);
      socket.off('error', onError);
      resolve(socket);
    };
    const onClose = (code: number): void => {
      socket.off('open', onOpen);
      socket.off('error', onError);
      reject(failure ?? new HandshakeError(`connection closed during the handshake (${code})`));
    };
    socket.once('open', onOpen);
    socket.on('error', onError);
    socket.once('close', onClose);
  });
}

/** Create a client WebSocket and start its handshake; events tell the rest ('open' or 'error' then 'close'). */
export function openClient(address: string | URL, options: ClientOptions = {}): WebSocket {
  return new WebSocket(address, options.protocols, options);
}

/** @internal A server-side connection over a stream whose handshake the server completed (not reading yet). */
export function adoptStream(config: ResolvedConnectionOptions, side: ServerSide): WebSocket {
  return adopt(config, side);
}

/** @internal Start reading (after 'connection' was emitted); `head` holds bytes that came with the request. */
export function startReading(socket: WebSocket, head: Buffer): void {
  driverOf(socket).start(head);
}

/** @internal Queue a frame encoded once for many connections (a broadcast). False past the high-water mark. */
export function sendFramed(socket: WebSocket, frame: Buffer): boolean {
  return driverOf(socket).sendFramed(frame);
}

/** @internal Connect a server-side connection to its server's topics. */
export function joinTopics(socket: WebSocket, topics: TopicMembership): void {
  setMembership(socket, topics);
}

/** @internal What permessage-deflate agreed on this connection, or null. */
export function deflateParamsOf(socket: WebSocket): DeflateParams | null {
  return driverOf(socket).deflateParams;
}
