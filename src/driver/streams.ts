import { Readable } from 'node:stream';
import { Opcode } from '../protocol/constants.js';
import { toPayload } from '../protocol/options.js';
import type { Protocol } from '../protocol/protocol.js';
import type { SendOptions } from '../protocol/options.js';
import type { OutgoingMessage } from '../protocol/sender.js';
import { Utf8Validator } from '../protocol/utf8.js';

/**
 * Messages of any size as streams, both ways, in bounded memory (RFC 6455 §5.4, and the §5.2 note:
 * "a part of a frame can be delivered to the application"):
 *
 * - in: with `streamMessages`, each message is a MessageStream (a Readable, async-iterable), filled
 *   as its frames arrive. The application's reading is the backpressure: while the stream is full
 *   (`highWaterMark`) or the previous one is not read to its end, the connection takes no more
 *   events from the core, so the parse stops, and it stops reading the socket (and zlib's output);
 *   what it holds stays within `highWaterMark`, whatever the message's size;
 * - out: `send()` of a Readable or an (async) iterable sends its chunks as the fragments of one
 *   message as they come, reading the next only while no more than `highWaterMark` waits.
 */

const kDeliver = Symbol('deliver');
const kFinish = Symbol('finish');
const kAbort = Symbol('abort');

/** What a MessageStream tells the connection that fills it. */
interface MessageSource {
  /** The application wants more (the Readable's `_read`). */
  messageRead(stream: MessageStream): void;
  /** The stream is destroyed: read to its end, or abandoned by the application. */
  messageDestroyed(stream: MessageStream): void;
}

/**
 * One message received as a stream (`streamMessages`): a Readable of Buffers, in order, as the
 * message's frames arrive; for await (const chunk of stream) reads it. A text message's chunks are
 * valid UTF-8, each cut on a code point boundary (so `chunk.toString()`, or `setEncoding('utf8')`,
 * never splits a character); it fails with the connection's ProtocolError the moment the text
 * turns out invalid (1007), or with a MessageAbortedError if the connection closes before its end
 * (its 'error' event, when listened to, as for the WebSocket; else it closes without 'end').
 * Destroying it before its end discards the rest of the message; the connection goes on.
 */
export class MessageStream extends Readable {
  /** A binary message (false: text). */
  readonly isBinary: boolean;
  #source: MessageSource | null;
  /** `_read` was called since the last push. */
  #wanted = false;

  /** @internal Made by the connection. */
  constructor(isBinary: boolean, highWaterMark: number, source: MessageSource) {
    super({ highWaterMark });
    this.isBinary = isBinary;
    this.#source = source;
  }

  /** A piece of the message. False: the stream is full; the connection waits for `_read`. */
  [kDeliver](chunk: Buffer): boolean {
    this.#wanted = false;
    return this.push(chunk) || this.#wanted;
  }

  [kFinish](): void {
    this.push(null);
  }

  [kAbort](error: Error): void {
    this.#source = null;
    // As the WebSocket does: 'error' only for those who listen (the peer's input must never throw
    // out of the library); the others see the stream close without its 'end'.
    this.destroy(this.listenerCount('error') > 0 ? error : undefined);
  }

  override _read(): void {
    this.#wanted = true;
    this.#source?.messageRead(this);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const source = this.#source;
    this.#source = null;
    source?.messageDestroyed(this);
    callback(error);
  }
}

/**
 * The incoming side of a connection with `streamMessages`: the stream being filled, the previous
 * one until it is read to its end, and whether the connection is to take no more events for now.
 */
export class IncomingStreams implements MessageSource {
  /** The message being received (null after its end, or once the application abandoned it). */
  private stream: MessageStream | null = null;
  /** The last message, complete, not yet read to its end: the next one waits for it. */
  private unread: MessageStream | null = null;
  /** The stream being filled is full. */
  private full = false;

  constructor(
    private readonly highWaterMark: number,
    /** The connection may take events again. */
    private readonly wake: () => void,
  ) {}

  /** A message was read to its end; the parse goes on after the application's reactions to it. */
  private finishing = false;

  /** Whether the application is behind: take no more events (which stops the parse) for now. */
  get holding(): boolean {
    return this.full || this.unread !== null || this.finishing;
  }

  /** A message begins: its stream, for the application. */
  start(isBinary: boolean): MessageStream {
    const stream = new MessageStream(isBinary, this.highWaterMark, this);
    this.stream = stream;
    this.full = false;
    return stream;
  }

  data(chunk: Buffer): void {
    // A stream the application abandoned: the rest of its message is discarded.
    const stream = this.stream;
    if (stream !== null && !stream[kDeliver](chunk)) this.full = true;
  }

  end(): void {
    const stream = this.stream;
    this.stream = null;
    this.full = false;
    if (stream === null) return;
    stream[kFinish]();
    // Destroyed (autoDestroy) once read to its end: messageDestroyed() then lets the next one come.
    if (!stream.destroyed) this.unread = stream;
  }

  /** The message will never end (the error says why). */
  abort(error: Error): void {
    const stream = this.stream;
    this.stream = null;
    this.full = false;
    stream?.[kAbort](error);
  }

  messageRead(stream: MessageStream): void {
    if (stream !== this.stream || !this.full) return;
    this.full = false;
    this.wake();
  }

  messageDestroyed(stream: MessageStream): void {
    if (stream === this.unread) {
      this.unread = null;
      // The next frame is parsed only once what the application does on 'end' (promise reactions:
      // an async iterator's last step, a pump sending the message's last fragment) has run. An
      // echo that streams each message back then has its message complete before anything the next
      // frame brings, a failure's close frame included (RFC 6455 §5.4: no interleaving; the strict
      // order Autobahn's 3.x, 4.x and 5.15 cases expect), as the buffered 'message' handler does.
      this.finishing = true;
      setImmediate(() => {
        this.finishing = false;
        this.wake();
      });
      return;
    } else if (stream === this.stream) {
      // Abandoned before its end: its data events are dropped from now on.
      this.stream = null;
      this.full = false;
    } else return;
    this.wake();
  }
}

// ---------------------------------------------------------------------------------------------
// Sending a stream
// ---------------------------------------------------------------------------------------------

/** What `send()` takes besides whole messages: a Readable, or an (async) iterable of chunks. */
export type MessageSourceData =
  AsyncIterable<Uint8Array | ArrayBuffer | string> | Iterable<Uint8Array | ArrayBuffer | string>;

/** Whether `send()` was given a stream (a Readable, an async iterable, an iterable) rather than a message. */
export function isMessageSource(data: unknown): data is MessageSourceData {
  if (typeof data !== 'object' || data === null || ArrayBuffer.isView(data) || data instanceof ArrayBuffer)
    return false;
  return Symbol.asyncIterator in data || Symbol.iterator in data;
}

/** What the pump needs of its connection. */
export interface PieceSink {
  /** The next piece of the open message; false once the message was dropped. */
  piece(message: OutgoingMessage, opcode: number, payload: Buffer, fin: boolean): boolean;
  /** Null when no more than `highWaterMark` waits; else a promise of that (or of the close). */
  drained(): Promise<void> | null;
  /** The source failed (RFC 6455 cannot abort one message: the connection fails, see Protocol.messageFailed). */
  failed(message: OutgoingMessage): void;
}

/** How a streamed send ended: `error` for the callback, `sourceFailed` when the source's own. */
export interface SendOutcome {
  error: Error | undefined;
  sourceFailed: boolean;
}

/**
 * A connection's streamed sends: each opened in the core when sent, so that it keeps its place
 * among the messages; each read after the one before it ended (one message at a time on the wire).
 */
export class OutgoingStreams {
  private chain: Promise<void> | null = null;
  private waiters: (() => void)[] | null = null;

  constructor(private readonly sink: PieceSink) {}

  send(
    core: Protocol,
    source: MessageSourceData,
    options: SendOptions | undefined,
    fragmentSize: number,
    done: (outcome: SendOutcome) => void,
  ): void {
    let settle!: (error?: Error) => void;
    const written = new Promise<Error | undefined>((resolve) => (settle = resolve));
    const message = core.openMessage(options?.compress !== false, fragmentSize, settle)!;
    const send = (): Promise<void> => sendFrom(this.sink, message, source, options?.binary, written).then(done);
    const chain: Promise<void> = this.chain === null ? send() : this.chain.then(send);
    this.chain = chain;
    void chain.then(() => {
      if (this.chain !== chain) return;
      this.chain = null;
    });
  }

  /** Whether a send waits for the buffered bytes to fall to `highWaterMark`. */
  get waiting(): boolean {
    return this.waiters !== null;
  }

  waitForDrain(): Promise<void> {
    return new Promise((resolve) => (this.waiters ??= []).push(resolve));
  }

  /** The buffered bytes fell to `highWaterMark` (or the connection closed): the sends go on. */
  drained(): void {
    const waiters = this.waiters;
    this.waiters = null;
    if (waiters !== null) for (const wake of waiters) wake();
  }
}

const EMPTY = Buffer.alloc(0);
const DROPPED = Symbol('dropped');

/**
 * Send `source`'s chunks as the pieces of `message`, each as it comes, reading the next only once
 * no more than `highWaterMark` waits. `written` settles when the message's last frame is written
 * (undefined) or it is dropped (the error). Strings make a text message unless `binary` says
 * otherwise; the first chunk decides; text from buffers is checked as it goes (RFC 6455 §5.6).
 * Never rejects.
 */
export async function sendFrom(
  sink: PieceSink,
  message: OutgoingMessage,
  source: MessageSourceData,
  binary: boolean | undefined,
  written: Promise<Error | undefined>,
): Promise<SendOutcome> {
  const iterator =
    source instanceof Readable
      ? chunksOf(source)
      : Symbol.asyncIterator in source
        ? (source as AsyncIterable<unknown>)[Symbol.asyncIterator]()
        : (source as Iterable<unknown>)[Symbol.iterator]();
  // Whatever the pump waits for, the message's drop ends the wait. (One waiter at a time: racing
  // each wait against `written` itself would hang a reaction, and the chunk it resolved with, on
  // that long-lived promise for every chunk of the message.)
  let interrupt: ((value: typeof DROPPED) => void) | null = null;
  void written.then(() => interrupt?.(DROPPED));
  const unlessDropped = <T>(promise: Promise<T>): Promise<T | typeof DROPPED> =>
    new Promise((resolve, reject) => {
      interrupt = resolve;
      promise.then(resolve, reject);
    });
  let opcode = binary === undefined ? 0 : binary ? Opcode.Binary : Opcode.Text;
  // A text MessageStream of ours was validated (and cut on code point boundaries) as it came in.
  const checked = source instanceof MessageStream && !source.isBinary;
  let validator: Utf8Validator | null = null;
  try {
    for (;;) {
      if (message.dropped) return stop(source, iterator, await written);
      const read = Promise.resolve(iterator.next());
      // Once we stop waiting for it, its failure is nobody's.
      read.catch(() => {});
      const next = await unlessDropped(read);
      if (next === DROPPED) return stop(source, iterator, await written);
      if (next.done === true) break;
      const chunk = next.value;
      const payload = toPayload(chunk as string | Uint8Array);
      if (opcode === 0) opcode = typeof chunk === 'string' ? Opcode.Text : Opcode.Binary;
      if (opcode === Opcode.Text && typeof chunk !== 'string' && !checked) {
        validator ??= new Utf8Validator();
        if (validator.write(payload) !== -1) throw new TypeError('a stream sent as text must be valid UTF-8');
      }
      if (!sink.piece(message, opcode, payload, false)) return stop(source, iterator, await written);
      const wait = sink.drained();
      if (wait !== null) await unlessDropped(wait);
    }
    if (validator !== null && !validator.complete) throw new TypeError('a stream sent as text ended mid-character');
    sink.piece(message, opcode === 0 ? Opcode.Binary : opcode, EMPTY, true);
  } catch (error) {
    // The source failed because the connection did (our own incoming stream, say): that is the news.
    if (message.dropped) return stop(source, iterator, await written);
    sink.failed(message);
    stop(source, iterator, undefined);
    return { error: error instanceof Error ? error : new Error(String(error)), sourceFailed: true };
  }
  return { error: await written, sourceFailed: false };
}

/**
 * A Readable's chunks one at a time, as it pushed them. (Its own async iterator reads in paused
 * mode, where each read joins everything buffered into one new Buffer: a copy of every byte.)
 * Flowing, paused as soon as a chunk waits, resumed when it is taken.
 */
function chunksOf(stream: Readable): AsyncIterator<unknown> {
  const waiting: unknown[] = [];
  let ended = false;
  let failure: Error | null = null;
  let wake: (() => void) | null = null;
  const notify = (): void => {
    const resolve = wake;
    wake = null;
    resolve?.();
  };
  stream.on('data', (chunk: unknown) => {
    waiting.push(chunk);
    stream.pause();
    notify();
  });
  stream.once('end', () => {
    ended = true;
    notify();
  });
  stream.once('error', (error: Error) => {
    failure = error;
    notify();
  });
  stream.once('close', () => {
    if (!ended) failure ??= new Error('the stream closed before its end');
    notify();
  });
  return {
    async next(): Promise<IteratorResult<unknown>> {
      for (;;) {
        if (waiting.length > 0) {
          const value = waiting.shift();
          if (waiting.length === 0 && !ended) stream.resume();
          return { value, done: false };
        }
        if (failure !== null) throw failure;
        if (ended) return { value: undefined, done: true };
        await new Promise<void>((resolve) => (wake = resolve));
      }
    },
  };
}

/** The message will not be sent (or the source failed): let the source go. */
function stop(
  source: unknown,
  iterator: Iterator<unknown> | AsyncIterator<unknown>,
  error: Error | undefined,
): SendOutcome {
  const destroy = (source as { destroy?: unknown }).destroy;
  // A Readable's pending read ends at once; any other iterator is told to return when it can.
  if (typeof destroy === 'function') destroy.call(source);
  else void Promise.resolve(iterator.return?.()).catch(() => {});
  return { error, sourceFailed: false };
}
