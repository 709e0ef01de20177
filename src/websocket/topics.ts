import { LocalBroker, type Broker } from './broker.js';
import { Opcode, ReadyState } from '../protocol/constants.js';
import { deflateMessageOnce } from '../driver/deflate-zlib.js';
import { encodeFrame } from '../protocol/frame.js';
import { DEFLATE_DEFAULTS, type PerMessageDeflateOptions } from '../protocol/permessage-deflate.js';
import { deflateParamsOf, sendFramed, type TopicMembership, type WebSocket } from './websocket.js';

/**
 * A server's topics: which of its connections subscribed to what, and the fan-out of a publication
 * to them. Both directions are kept (topic -> sockets, socket -> topics) so that a publication finds
 * its subscribers without scanning every connection, and a closing connection leaves every topic it
 * was in without scanning every topic. A topic with no subscriber left is forgotten, and so is a
 * socket with no topic left: a million subscribe/unsubscribe cycles leave nothing behind.
 *
 * A publication is framed once for all its subscribers (a server's frames are unmasked, RFC 6455
 * §5.1, so the bytes are the same for everyone), and compressed once per group of permessage-deflate
 * subscribers that can take the same compressed bytes (see `publish`).
 */

/** A filter that takes every connection. */
export const EVERYONE = (): boolean => true;

const NO_TOPICS: ReadonlySet<string> = Object.freeze(new Set<string>());
/** A publication from another process: delivered here, not sent on (compared by identity). */
const FROM_BROKER: PublishOptions = Object.freeze({});

export interface PublishOptions {
  /** Send as a binary message (default: binary unless `data` is a string). */
  binary?: boolean;
  /** Leave this connection out (the one whose message is being published, typically). */
  except?: WebSocket;
  /**
   * Compress for subscribers that agreed permessage-deflate and can share compressed bytes (default
   * true; messages under the deflate `threshold` are never compressed).
   */
  compress?: boolean;
}

export class Topics implements TopicMembership {
  readonly #subscribers = new Map<string, Set<WebSocket>>();
  readonly #topicsOf = new Map<WebSocket, Set<string>>();
  readonly #deflate: PerMessageDeflateOptions | null;
  /** Told when a topic gets its first local subscriber and loses its last; carries publications out. */
  readonly broker: Broker;

  /** `broadcast` delivers a broadcast from another process to every local connection. */
  constructor(
    broker: Broker | undefined,
    deflate: PerMessageDeflateOptions | null,
    broadcast: (data: Buffer, binary: boolean) => unknown,
  ) {
    this.#deflate = deflate;
    this.broker = broker ?? new LocalBroker();
    this.broker.attach({
      deliver: (topic, data, binary) =>
        topic === null ? broadcast(data, binary) : this.publish(topic, data, binary, FROM_BROKER),
    });
  }

  /** Topics with at least one local subscriber. */
  get size(): number {
    return this.#subscribers.size;
  }

  /** Connections with at least one topic. */
  get socketCount(): number {
    return this.#topicsOf.size;
  }

  subscriberCount(topic: string): number {
    return this.#subscribers.get(topic)?.size ?? 0;
  }

  /** False when already subscribed, or when the connection is no longer open (it would never leave). */
  subscribe(socket: WebSocket, topic: string): boolean {
    checkTopic(topic);
    if (socket.readyState !== ReadyState.OPEN) return false;
    let topics = this.#topicsOf.get(socket);
    if (topics === undefined) this.#topicsOf.set(socket, (topics = new Set()));
    else if (topics.has(topic)) return false;
    topics.add(topic);
    let sockets = this.#subscribers.get(topic);
    if (sockets === undefined) {
      this.#subscribers.set(topic, (sockets = new Set()));
      sockets.add(socket);
      this.broker.subscribe(topic);
    } else sockets.add(socket);
    return true;
  }

  /** False when the connection was not subscribed. */
  unsubscribe(socket: WebSocket, topic: string): boolean {
    checkTopic(topic);
    const topics = this.#topicsOf.get(socket);
    if (topics === undefined || !topics.delete(topic)) return false;
    if (topics.size === 0) this.#topicsOf.delete(socket);
    this.#leave(socket, topic);
    return true;
  }

  topicsOf(socket: WebSocket): ReadonlySet<string> {
    const topics = this.#topicsOf.get(socket);
    return topics === undefined ? NO_TOPICS : new Set(topics);
  }

  /** The connection closed: out of every topic it was in. */
  leaveAll(socket: WebSocket): void {
    const topics = this.#topicsOf.get(socket);
    if (topics === undefined) return;
    this.#topicsOf.delete(socket);
    for (const topic of topics) this.#leave(socket, topic);
  }

  #leave(socket: WebSocket, topic: string): void {
    const sockets = this.#subscribers.get(topic);
    if (sockets === undefined || !sockets.delete(socket) || sockets.size !== 0) return;
    this.#subscribers.delete(topic);
    this.broker.unsubscribe(topic);
  }

  /**
   * Send a message to this process's subscribers of `topic`; returns how many it was queued for.
   *
   * One uncompressed frame serves every subscriber that does not take compressed bytes. With
   * permessage-deflate, a compressed message can be shared only by connections whose compressor
   * starts every message from an empty window (RFC 7692 §7.1.1.1 server_no_context_takeover agreed):
   * with context takeover, the peer's inflater would add the shared message to its window while the
   * connection's own compressor did not, and its next messages would refer back to the wrong bytes.
   * Those connections get the uncompressed frame (§6: any message may go uncompressed). The shared
   * groups are keyed by the window the connection agreed (§7.1.2.1 server_max_window_bits): each
   * group's bytes refer no further back than its peers keep. Compression is synchronous, once per
   * group, so the message takes its place in each connection's queue at once, in publication order.
   */
  publish(topic: string, payload: Buffer, binary: boolean, options: PublishOptions = {}): number {
    checkTopic(topic);
    if (options !== FROM_BROKER) this.broker.publish(topic, payload, binary);
    const sockets = this.#subscribers.get(topic);
    if (sockets === undefined) return 0;
    const opcode = binary ? Opcode.Binary : Opcode.Text;
    const deflate = this.#deflate;
    const compress =
      deflate !== null &&
      options.compress !== false &&
      payload.length >= (deflate.threshold ?? DEFLATE_DEFAULTS.threshold);
    let plain: Buffer | null = null;
    let compressed: Map<number, Buffer> | null = null;
    let count = 0;
    for (const socket of sockets) {
      if (socket === options.except || socket.readyState !== ReadyState.OPEN) continue;
      let frame: Buffer | null = null;
      const params = compress ? deflateParamsOf(socket) : null;
      if (params !== null && params.ownNoContextTakeover) {
        const bits = params.ownMaxWindowBits;
        compressed ??= new Map();
        frame = compressed.get(bits) ?? null;
        if (frame === null) {
          const bytes = deflateMessageOnce(payload, bits, deflate!);
          if (bytes !== null) compressed.set(bits, (frame = encodeFrame({ opcode, payload: bytes, rsv1: true })));
        }
      }
      frame ??= plain ??= encodeFrame({ opcode, payload });
      if (sendFramed(socket, frame) || socket.readyState === ReadyState.OPEN) count++;
    }
    return count;
  }
}

function checkTopic(topic: unknown): asserts topic is string {
  if (typeof topic !== 'string') throw new TypeError('a topic is a string');
}
