import { CloseCode, Opcode, ReadyState } from '../protocol/constants.js';
import { InvalidStateError } from '../protocol/errors.js';
import {
  HandshakeError,
  generateKey,
  selectProtocol,
  switchingProtocolsResponse,
  upgradeRequest,
  validateUpgradeRequest,
  validateUpgradeResponse,
} from '../protocol/handshake.js';
import {
  DEFAULT_MAX_HEAD_SIZE,
  HeadReader,
  HttpError,
  errorResponse,
  parseRequestHead,
  parseResponseHead,
} from '../protocol/http1.js';
import { resolveConnectionOptions, type ConnectionOptions, type Data, type SendOptions } from '../protocol/options.js';
import { Protocol, type CloseReport, type ProtocolEvent } from '../protocol/protocol.js';
import type { Role } from '../protocol/receiver.js';

/**
 * The second driver: a WebSocket over a WHATWG stream pair (a `ReadableStream` and a
 * `WritableStream` of bytes), the shape of `Deno.connect()`'s connection, of Node's
 * `Duplex.toWeb(socket)`, of any runtime's socket API in that shape. It drives the same core as
 * src/driver/connection.ts, the same way (feed it what happened, then carry out what it decided, in
 * one place), with the same handshake functions, and no node:net, no EventEmitter, no timer wheel.
 * No permessage-deflate: it offers and accepts no extension.
 */

/** The two halves of a byte stream (a TCP connection, say). */
export interface WebStreamPair {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
}

export interface WebStreamOptions extends ConnectionOptions {
  /** Server: the subprotocols it speaks (the client's most preferred is chosen). Client: those it offers. */
  protocols?: readonly string[];
  /** Client: extra request headers (an Origin, a cookie). */
  headers?: Record<string, string>;
  /** Largest handshake head accepted. Default 16 KiB. */
  maxHeaderSize?: number;
  /** Give up on a handshake not done within this many ms. Default 10 000. */
  handshakeTimeout?: number;
  /** Pings and pongs received (a ping is answered already, with `autoPong` on). */
  onPing?: (data: Buffer) => void;
  onPong?: (data: Buffer) => void;
  /** What went wrong (a protocol error, a deadline), before the close reports its code. */
  onError?: (error: Error) => void;
}

/** A message, as the socket's async iterator yields it. */
export interface WebStreamMessage {
  data: Buffer;
  isBinary: boolean;
}

/** Messages not yet taken by the iterator: past this many, reading stops until it takes some. */
const QUEUED_MESSAGES = 16;

/** Server side: read and answer the opening handshake (RFC 6455 §4.2) on `pair`, then run the WebSocket. */
export async function acceptWebStream(pair: WebStreamPair, options: WebStreamOptions = {}): Promise<WebStreamSocket> {
  noStreams(options);
  const io = open(pair);
  try {
    const head = await withTimeout(readHead(io, options, 'request'), options.handshakeTimeout, io);
    const fields = validateUpgradeRequest(parseRequestHead(head.head));
    const protocol = selectProtocol(fields.protocols, options.protocols ?? []);
    await io.writer.write(switchingProtocolsResponse(fields.key, protocol));
    return new WebStreamSocket('server', io, options, protocol ?? '', head.rest);
  } catch (error) {
    // §4.2.1: a request that is not a valid handshake gets an HTTP error, and the connection ends.
    const refusal = error instanceof HttpError ? error : new HttpError(400, 'malformed request');
    await io.writer.write(errorResponse(refusal.status, refusal.message)).catch(() => {});
    abort(io);
    throw refusal;
  }
}

/** Client side: send the opening handshake (RFC 6455 §4.1) for `url` on `pair`, check the 101, run the WebSocket. */
export async function connectWebStream(
  pair: WebStreamPair,
  url: string | URL,
  options: WebStreamOptions = {},
): Promise<WebStreamSocket> {
  noStreams(options);
  const io = open(pair);
  try {
    const target = new URL(url);
    const key = generateKey();
    const protocols = options.protocols ?? [];
    const headers = Object.entries(options.headers ?? {});
    await io.writer.write(
      upgradeRequest({ host: target.host, path: target.pathname + target.search, key, protocols, headers }),
    );
    const head = await withTimeout(readHead(io, options, 'response'), options.handshakeTimeout, io);
    const agreed = validateUpgradeResponse(parseResponseHead(head.head), key, protocols);
    // §4.1: an extension the client did not offer (it offers none) fails the connection.
    if (agreed.extensions.length > 0)
      throw new HandshakeError('invalid handshake response: extension not offered', 101);
    return new WebStreamSocket('client', io, options, agreed.protocol, head.rest);
  } catch (error) {
    abort(io);
    throw error instanceof HttpError ? new HandshakeError(`invalid handshake response: ${error.message}`) : error;
  }
}

/** Messages come whole here, through the socket's async iterator: this driver never asks the core for streams. */
function noStreams(options: WebStreamOptions): void {
  if (options.streamMessages === true)
    throw new TypeError('wsrfc/web-streams does not stream messages (streamMessages)');
}

interface Io {
  reader: ReadableStreamDefaultReader<Uint8Array>;
  writer: WritableStreamDefaultWriter<Uint8Array>;
}

function open(pair: WebStreamPair): Io {
  return { reader: pair.readable.getReader(), writer: pair.writable.getWriter() };
}

function abort(io: Io): void {
  io.reader.cancel().catch(() => {});
  io.writer.abort().catch(() => {});
}

/** Bytes the stream handed us, as a Buffer over the same memory (the core unmasks in place). */
function bytesOf(chunk: Uint8Array): Buffer {
  return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

async function readHead(io: Io, options: WebStreamOptions, kind: 'request' | 'response') {
  const reader = new HeadReader(options.maxHeaderSize ?? DEFAULT_MAX_HEAD_SIZE, kind);
  for (;;) {
    const { value, done } = await io.reader.read();
    if (done) throw new HttpError(400, 'the stream ended during the handshake');
    const head = reader.push(bytesOf(value));
    if (head !== null) return head;
  }
}

function withTimeout<T>(work: Promise<T>, ms = 10_000, io: Io): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      abort(io);
      reject(new HttpError(408, `no handshake within ${ms} ms`));
    }, ms);
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}

/** One WebSocket over a stream pair: the driver, and what the application holds. */
export class WebStreamSocket implements AsyncIterable<WebStreamMessage> {
  /** Resolves once the stream is closed, with what the close reports (RFC 6455 §7.1.4-§7.1.6). */
  readonly closed: Promise<CloseReport>;
  readonly #core: Protocol;
  readonly #writeTimeout: number;
  readonly #io: Io;
  readonly #options: WebStreamOptions;
  #report: ((report: CloseReport) => void) | null = null;
  /** Messages the iterator has not taken yet, and who waits for the next one. */
  readonly #queue: WebStreamMessage[] = [];
  #wakeReader: (() => void) | null = null;
  #wakeIterator: (() => void) | null = null;
  #reading = true;
  #writeEnded = false;
  /** Writes handed to the stream and not done yet, and when the last one finished (the write deadline). */
  #writes = 0;
  #progressAt = Date.now();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;

  constructor(
    role: Role,
    io: Io,
    options: WebStreamOptions,
    /** The subprotocol agreed, or ''. */
    readonly protocol: string,
    rest: Buffer,
  ) {
    this.#io = io;
    this.#options = options;
    const config = resolveConnectionOptions(options);
    this.#writeTimeout = config.writeTimeout;
    this.#core = new Protocol(role, config, Date.now());
    this.closed = new Promise((resolve) => (this.#report = resolve));
    if (rest.length > 0) this.#core.receive(rest, Date.now());
    this.#settle();
    void this.#readLoop();
  }

  get readyState(): ReadyState {
    return this.#report === null ? ReadyState.CLOSED : this.#core.state;
  }

  /** Send a message (strings as text); resolves once the stream has taken its bytes. */
  send(data: Data, options?: SendOptions): Promise<void> {
    if (!this.#core.canSend) return Promise.reject(new InvalidStateError('WebSocket is closing or closed'));
    return new Promise((resolve, reject) => {
      this.#core.sendData(data, options, (error) => (error === undefined ? resolve() : reject(error)));
      this.#settle();
    });
  }

  /** A ping (RFC 6455 §5.5.2), at most 125 bytes. */
  ping(data: Uint8Array = Buffer.alloc(0)): void {
    this.#core.sendControl(Opcode.Ping, data);
    this.#settle();
  }

  /** Start the closing handshake (RFC 6455 §7.1.2); `closed` resolves when it is over. */
  close(code: number = CloseCode.Normal, reason = ''): void {
    this.#core.close(code, reason, Date.now());
    this.#settle();
  }

  /** Drop the connection without a closing handshake. */
  terminate(): void {
    this.#core.terminate();
    this.#settle();
  }

  /** The messages, in order, until the connection closes. Reading pauses while many wait here. */
  async *[Symbol.asyncIterator](): AsyncIterator<WebStreamMessage> {
    for (;;) {
      const message = this.#queue.shift();
      if (message !== undefined) {
        this.#wakeReader?.();
        yield message;
      } else if (this.#report === null) return;
      else await new Promise<void>((resolve) => (this.#wakeIterator = resolve));
    }
  }

  /** The read loop: bytes into the core, decisions carried out; paused while the application is behind. */
  async #readLoop(): Promise<void> {
    const core = this.#core;
    try {
      while (this.#reading) {
        if (this.#queue.length >= QUEUED_MESSAGES) {
          await new Promise<void>((resolve) => (this.#wakeReader = resolve));
          this.#wakeReader = null;
          core.readingResumed(Date.now());
          continue;
        }
        const { value, done } = await this.#io.reader.read();
        if (done) break;
        core.receive(bytesOf(value), Date.now());
        this.#settle();
      }
      core.receiveEnd(Date.now());
    } catch {
      // The stream failed (a reset): the connection is over.
      core.terminate();
    }
    this.#reading = false;
    this.#settle();
    this.#finish();
  }

  /** What the core decided since the last step, carried out (see src/driver/connection.ts's settle()). */
  #settle(): void {
    const core = this.#core;
    for (let event = core.nextEvent(); event !== null; event = core.nextEvent()) this.#deliver(event);
    if (this.#report === null) return;
    if (core.hasOutput) this.#write(core.takeOutput(), core.takeCallbacks());
    if (core.wantsDestroy) {
      this.#reading = false;
      abort(this.#io);
      this.#writeEnded = true;
      this.#finish();
      return;
    }
    if (core.wantsEnd && !this.#writeEnded) {
      this.#writeEnded = true;
      // After the writes already handed over; the peer's end (or a deadline) follows.
      this.#io.writer.close().then(
        () => this.#finish(),
        () => this.#finish(),
      );
    }
    this.#schedule();
  }

  #deliver(event: ProtocolEvent): void {
    const options = this.#options;
    if (event.type === 'message') {
      this.#queue.push({ data: event.data, isBinary: event.isBinary });
      this.#wakeIterator?.();
    } else if (event.type === 'ping') options.onPing?.(event.data);
    else if (event.type === 'pong') options.onPong?.(event.data);
    else if (event.type === 'error') options.onError?.(event.error);
    else if (event.type === 'sendFailed')
      for (const callback of event.callbacks)
        callback(new InvalidStateError('WebSocket closed before the data was sent'));
  }

  #write(buffers: Buffer[], callbacks: ((error?: Error) => void)[] | null): void {
    const writer = this.#io.writer;
    for (const [i, buffer] of buffers.entries()) {
      this.#writes++;
      const last = i === buffers.length - 1;
      writer.write(buffer).then(
        () => {
          this.#writes--;
          this.#progressAt = Date.now();
          if (last && callbacks !== null) for (const callback of callbacks) callback();
        },
        (error: unknown) => {
          if (last && callbacks !== null) for (const callback of callbacks) callback(error as Error);
          this.#core.terminate();
          this.#settle();
        },
      );
    }
  }

  /** One timer: the core's next deadline, or the write deadline while writes wait on the peer. */
  #schedule(): void {
    let at = this.#core.nextDeadline;
    if (this.#writes > 0 && this.#writeTimeout > 0) at = Math.min(at, this.#progressAt + this.#writeTimeout);
    if (at >= this.#timerAt) return;
    clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(() => this.#wake(), Math.max(0, at - Date.now()));
  }

  #wake(): void {
    const now = Date.now();
    this.#timerAt = Infinity;
    const writeTimeout = this.#writeTimeout;
    if (this.#writes > 0 && writeTimeout > 0 && now - this.#progressAt >= writeTimeout) this.#core.writeTimedOut(now);
    else this.#core.timeout(now, this.#queue.length >= QUEUED_MESSAGES);
    this.#settle();
  }

  /** Once both directions are done: the close, reported exactly once. */
  #finish(): void {
    const report = this.#report;
    if (report === null || this.#reading || !this.#writeEnded) return;
    this.#report = null;
    clearTimeout(this.#timer);
    report(this.#core.streamClosed(Date.now()));
    for (let event = this.#core.nextEvent(); event !== null; event = this.#core.nextEvent()) this.#deliver(event);
    this.#wakeIterator?.();
  }
}
