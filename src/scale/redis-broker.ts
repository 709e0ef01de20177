import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createClient } from 'redis';
import type { Broker, BrokerHost } from '../websocket/broker.js';

/**
 * The `wsrfc/redis` entry point: a broker (src/websocket/broker.ts) on Redis pub/sub, so that `publish` and
 * `broadcast` reach the servers of other processes and hosts connected to the same Redis. It is the
 * only file that imports the `redis` package (an optional peer dependency): `import 'wsrfc'` never
 * loads it.
 *
 * - Each topic is one Redis channel, `<prefix>t:<topic>`, subscribed only while this process has a
 *   local subscriber to it; broadcasts go on `<prefix>broadcast`.
 * - A message is an envelope (`encode` below): the payload's bytes untouched (binary-safe), whether
 *   it is binary, and the id of the broker that sent it. Redis sends a publication to every
 *   subscriber of its channel, the publishing process included; that process already delivered it
 *   locally, so it drops its own: once per subscriber, no echo.
 * - Order: one connection publishes, in call order, and Redis delivers a channel's messages in the
 *   order it received them, so one publisher's messages on one topic arrive in order.
 * - At most once: publications made while Redis is unreachable are dropped at once (never queued to
 *   arrive late), and so are those Redis had not delivered when it went down. The clients reconnect
 *   on their own (every `maxRetryDelay` at most) and the subscriber subscribes again to what it had.
 */

export interface RedisBrokerOptions {
  /** Channel names start with this (default 'wsrfc:'): servers meant to reach each other use the same. */
  prefix?: string;
  /** At start, keep trying until Redis answers instead of failing with an error (default false). */
  waitForRedis?: boolean;
  /** Longest wait between reconnection attempts, in ms (default 1000). */
  maxRetryDelay?: number;
  /** Give up on one connection attempt after this many ms (default 5000). */
  connectTimeout?: number;
}

export interface RedisBrokerEventMap {
  /** Errors of the Redis connections (only emitted when someone listens). */
  error: [error: Error];
  /** Lost the connection to Redis: publications are dropped until `up`. */
  down: [error: Error];
  /** Connected (again). */
  up: [];
}

/** What a broker counted: messages sent, dropped (Redis unreachable) and received from other processes. */
export interface RedisBrokerStats {
  published: number;
  dropped: number;
  delivered: number;
  /** Messages on our channels that were not envelopes of ours (another program publishing there). */
  malformed: number;
}

type Client = ReturnType<typeof createClient>;

const MAGIC = 0x77; // 'w'
const VERSION = 1;
const BINARY = 1;
const ORIGIN_BYTES = 8;
const HEADER_BYTES = 3 + ORIGIN_BYTES;

/** The envelope: magic, version, flags (bit 0: binary), the sender's id, then the payload as it is. */
function encode(origin: Buffer, data: Buffer, binary: boolean): Buffer {
  const message = Buffer.allocUnsafe(HEADER_BYTES + data.length);
  message[0] = MAGIC;
  message[1] = VERSION;
  message[2] = binary ? BINARY : 0;
  origin.copy(message, 3);
  data.copy(message, HEADER_BYTES);
  return message;
}

/** The URL with its password hidden, for messages. */
function redact(url: URL): string {
  if (url.password === '') return url.href;
  const copy = new URL(url.href);
  copy.password = '***';
  return copy.href;
}

/** Parse and check a Redis URL; throws an error naming it. */
function parseRedisUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`invalid Redis URL "${text}": expected redis://HOST:PORT`);
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:')
    throw new Error(`invalid Redis URL "${redact(url)}": the scheme must be redis:// or rediss://`);
  if (url.hostname === '') throw new Error(`invalid Redis URL "${redact(url)}": no host`);
  return url;
}

export class RedisBroker extends EventEmitter<RedisBrokerEventMap> implements Broker {
  /** The URL (password hidden). */
  readonly url: string;
  readonly stats: RedisBrokerStats = { published: 0, dropped: 0, delivered: 0, malformed: 0 };
  /** This broker's id in every envelope it sends. */
  readonly #origin = randomBytes(ORIGIN_BYTES);
  readonly #prefix: string;
  readonly #publisher: Client;
  readonly #subscriber: Client;
  #host: BrokerHost | null = null;
  #down = false;
  #closed = false;

  private constructor(url: URL, options: RedisBrokerOptions) {
    super();
    this.url = redact(url);
    this.#prefix = options.prefix ?? 'wsrfc:';
    const maxDelay = options.maxRetryDelay ?? 1000;
    let started = false;
    const reconnectStrategy = (retries: number, cause: Error): number | Error => {
      // Down at start: a clear error now, unless asked to wait.
      if (!started && options.waitForRedis !== true)
        return new Error(`cannot reach Redis at ${this.url}: ${cause.message}`);
      return Math.min(50 * 2 ** Math.min(retries, 10), maxDelay);
    };
    const socket = { reconnectStrategy, connectTimeout: options.connectTimeout ?? 5000 };
    // Publications are never queued while Redis is away (they would arrive late, or twice with a
    // retry): at most once. Subscription changes are, so the subscriber ends up with the right set.
    this.#publisher = createClient({ url: url.href, socket, disableOfflineQueue: true });
    this.#subscriber = createClient({ url: url.href, socket });
    for (const client of [this.#publisher, this.#subscriber]) {
      client.on('error', (error: Error) => this.#lost(error));
      client.on('ready', () => {
        started = true;
        if (this.#down && this.#publisher.isReady && this.#subscriber.isReady) {
          this.#down = false;
          this.emit('up');
        }
      });
    }
  }

  /**
   * Connect to Redis at `url` (redis://HOST:PORT, rediss:// for TLS). Rejects with an error naming
   * the URL when it is malformed, or when Redis cannot be reached (unless `waitForRedis`).
   */
  static async connect(url: string, options: RedisBrokerOptions = {}): Promise<RedisBroker> {
    const broker = new RedisBroker(parseRedisUrl(url), options);
    try {
      await Promise.all([broker.#publisher.connect(), broker.#subscriber.connect()]);
      await broker.#subscriber.subscribe(
        broker.#prefix + 'broadcast',
        (message) => broker.#receive(null, message),
        true,
      );
    } catch (error) {
      broker.#destroy();
      const reason = (error as Error).message;
      throw new Error(reason.includes(broker.url) ? reason : `cannot reach Redis at ${broker.url}: ${reason}`);
    }
    return broker;
  }

  attach(host: BrokerHost): void {
    if (this.#host !== null) throw new Error('a broker serves one server');
    this.#host = host;
  }

  subscribe(topic: string): void {
    if (this.#closed) return;
    this.#subscriber
      .subscribe(this.#channel(topic), (message) => this.#receive(topic, message), true)
      .catch((error: Error) => this.#report(error));
  }

  unsubscribe(topic: string): void {
    if (this.#closed) return;
    this.#subscriber.unsubscribe(this.#channel(topic)).catch((error: Error) => this.#report(error));
  }

  publish(topic: string | null, data: Buffer, binary: boolean): void {
    if (this.#closed || !this.#publisher.isReady) {
      this.stats.dropped++;
      return;
    }
    const channel = topic === null ? this.#prefix + 'broadcast' : this.#channel(topic);
    this.stats.published++;
    this.#publisher.publish(channel, encode(this.#origin, data, binary)).catch(() => {
      this.stats.published--;
      this.stats.dropped++;
    });
  }

  /** Leave Redis: unsubscribe and close both connections (the server's `close()` calls this). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const quit = (client: Client): Promise<unknown> =>
      client.isReady ? client.close().catch(() => client.destroy()) : Promise.resolve(client.destroy());
    await Promise.all([quit(this.#publisher), quit(this.#subscriber)]);
  }

  #channel(topic: string): string {
    return this.#prefix + 't:' + topic;
  }

  #receive(topic: string | null, message: Buffer): void {
    if (message.length < HEADER_BYTES || message[0] !== MAGIC || message[1] !== VERSION) {
      this.stats.malformed++;
      return;
    }
    // Our own publication, back from Redis: delivered locally when it was published.
    if (this.#origin.equals(message.subarray(3, HEADER_BYTES))) return;
    this.stats.delivered++;
    this.#host?.deliver(topic, message.subarray(HEADER_BYTES), (message[2]! & BINARY) !== 0);
  }

  #lost(error: Error): void {
    if (this.#closed) return;
    if (!this.#down) {
      this.#down = true;
      this.emit('down', error);
    }
    this.#report(error);
  }

  #report(error: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', error);
  }

  #destroy(): void {
    this.#closed = true;
    for (const client of [this.#publisher, this.#subscriber]) {
      try {
        client.destroy();
      } catch {
        // Never connected: nothing to destroy.
      }
    }
  }
}

/** `RedisBroker.connect`, as a function. */
export function connectRedisBroker(url: string, options: RedisBrokerOptions = {}): Promise<RedisBroker> {
  return RedisBroker.connect(url, options);
}
