import type { FrameTracer } from './trace.js';
import { toBuffer } from './writer.js';

/**
 * A connection's options, their defaults (the README's table) and how they are checked; and what
 * `send()` takes. No socket, no timer: the protocol core and the driver both read these.
 */

export interface ConnectionOptions {
  /** Largest message accepted, after reassembly (and decompression). Bigger ones close with 1009. Default 64 MiB. */
  maxMessageSize?: number;
  /** Largest frame payload accepted. Default: `maxMessageSize`. (The classic Go server used 512 bytes.) */
  maxFramePayload?: number;
  /** Milliseconds between pings; 0 turns the ping loop off. Default 54 000. */
  pingInterval?: number;
  /** Drop the connection when nothing (no pong, no frame) arrives for this long. Default 60 000. */
  pongTimeout?: number;
  /** Drop the connection when the peer accepts no bytes for this long while we have some to send. Default 10 000. */
  writeTimeout?: number;
  /** After sending a close frame, wait this long for the peer's close and the end of TCP. Default 5 000. */
  closeTimeout?: number;
  /** `send()` returns false and reading pauses while more than this many bytes wait to be sent. Default 1 MiB. */
  highWaterMark?: number;
  /** Past this many buffered outgoing bytes the peer is too slow: the connection closes with 1008. Default 128 MiB. */
  maxBufferedBytes?: number;
  /** Answer pings with pongs automatically (RFC 6455 §5.5.2). Default true. */
  autoPong?: boolean;
  /** Split outgoing messages into frames of at most this many payload bytes; 0 never splits. Default 0. */
  fragmentSize?: number;
  /**
   * Called with every frame received and sent, decoded. For learning and debugging; slows things down
   * (and holds each frame of a streamed message whole, to show it).
   */
  trace?: FrameTracer | null;
  /**
   * Deliver each data message as a stream (the 'stream' event, a MessageStream) as its frames arrive,
   * instead of assembling it ('message'). Default false.
   */
  streamMessages?: boolean;
  /**
   * Largest streamed message accepted (after decompression); bigger ones close with 1009. Default:
   * no limit (2^53 - 1): a streamed message holds at most `highWaterMark` whatever its size.
   */
  maxStreamedMessageSize?: number;
}

export type ResolvedConnectionOptions = Required<ConnectionOptions>;

/** The largest message accepted by default, after reassembly and decompression (RFC 6455 §10.4). */
export const DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024;

/** The defaults, in one table (also in the README). */
export const CONNECTION_DEFAULTS: Readonly<ResolvedConnectionOptions> = Object.freeze({
  maxMessageSize: DEFAULT_MAX_MESSAGE_SIZE,
  maxFramePayload: DEFAULT_MAX_MESSAGE_SIZE,
  pingInterval: 54_000,
  pongTimeout: 60_000,
  writeTimeout: 10_000,
  closeTimeout: 5_000,
  highWaterMark: 1024 * 1024,
  maxBufferedBytes: 128 * 1024 * 1024,
  autoPong: true,
  fragmentSize: 0,
  trace: null,
  streamMessages: false,
  maxStreamedMessageSize: Number.MAX_SAFE_INTEGER,
});

const NUMERIC_OPTIONS = [
  'maxMessageSize',
  'maxFramePayload',
  'pingInterval',
  'pongTimeout',
  'writeTimeout',
  'closeTimeout',
  'highWaterMark',
  'maxBufferedBytes',
  'fragmentSize',
  'maxStreamedMessageSize',
] as const;

/** Objects made by resolveConnectionOptions (and only those) can be used as they are. */
const resolvedOptions = new WeakSet<object>();

/**
 * The options with every default filled in, checked, frozen. A server resolves its options once
 * and every connection shares the result.
 */
export function resolveConnectionOptions(options: ConnectionOptions = {}): ResolvedConnectionOptions {
  if (resolvedOptions.has(options)) return options as ResolvedConnectionOptions;
  const resolved: ResolvedConnectionOptions = { ...CONNECTION_DEFAULTS };
  for (const key of Object.keys(CONNECTION_DEFAULTS) as (keyof ConnectionOptions)[]) {
    const value = options[key];
    if (value !== undefined) (resolved as Record<string, unknown>)[key] = value;
  }
  if (options.maxFramePayload === undefined) resolved.maxFramePayload = resolved.maxMessageSize;
  for (const key of NUMERIC_OPTIONS) {
    const value = resolved[key];
    if (typeof value !== 'number' || !(value >= 0)) throw new RangeError(`option ${key} must be a number >= 0`);
  }
  if (resolved.trace !== null && typeof resolved.trace !== 'function') {
    throw new TypeError('option trace must be a function or null');
  }
  if (typeof resolved.streamMessages !== 'boolean') throw new TypeError('option streamMessages must be a boolean');
  Object.freeze(resolved);
  resolvedOptions.add(resolved);
  return resolved;
}

export interface SendOptions {
  /** Send as a binary message. Default: true for buffers, false for strings. */
  binary?: boolean;
  /**
   * Compress, when permessage-deflate was negotiated. Default true; messages under the
   * extension's `threshold` are sent uncompressed either way.
   */
  compress?: boolean;
  /** Split into frames of at most this many bytes (overrides the connection's `fragmentSize`). */
  fragmentSize?: number;
}

/** Anything `send()` and `broadcast()` take. */
export type Data = string | Buffer | ArrayBuffer | ArrayBufferView;

/** The bytes of a message to send: strings as UTF-8, binary data as it is (never copied). */
export function toPayload(data: Data): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  if (ArrayBuffer.isView(data)) return toBuffer(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  throw new TypeError('data must be a string, a Buffer, an ArrayBuffer or a typed array');
}
