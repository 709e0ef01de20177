import cluster, { type Worker } from 'node:cluster';
import type { Broker, BrokerHost } from '../websocket/broker.js';

/**
 * A broker between the workers of one node:cluster (src/scale/workers.ts), through the primary: each
 * worker tells the primary which topics it has subscribers for and sends it its publications; the
 * primary passes each publication to the other workers subscribed to its topic (broadcasts to every
 * other worker). No Redis needed on one machine. Node's IPC channel keeps the order of one worker's
 * messages, so one publisher's messages on one topic arrive in order; a worker never gets its own
 * publication back. A worker that dies takes its subscriptions with it; what was in flight to it is
 * lost (at most once).
 *
 * Messages go with the cluster's 'advanced' serialization (set by `runWorkers`), so payloads travel
 * as bytes, not as JSON arrays of numbers.
 */

/** What a worker and the primary say to each other (marked, so an application's own IPC is left alone). */
export type ClusterMessage =
  { wsrfc: 'sub' | 'unsub'; topic: string } | { wsrfc: 'pub'; topic: string | null; data: Uint8Array; binary: boolean };

function isClusterMessage(message: unknown): message is ClusterMessage {
  if (typeof message !== 'object' || message === null) return false;
  const kind = (message as { wsrfc?: unknown }).wsrfc;
  return kind === 'sub' || kind === 'unsub' || kind === 'pub';
}

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** The worker's side: what a server in a cluster worker uses as its broker. */
export class ClusterBroker implements Broker {
  #host: BrokerHost | null = null;
  #closed = false;
  readonly #onMessage = (message: unknown): void => {
    if (!isClusterMessage(message) || message.wsrfc !== 'pub') return;
    this.#host?.deliver(message.topic, asBuffer(message.data), message.binary);
  };

  constructor() {
    if (!cluster.isWorker || process.send === undefined) throw new Error('ClusterBroker runs in a cluster worker');
    process.on('message', this.#onMessage);
  }

  attach(host: BrokerHost): void {
    if (this.#host !== null) throw new Error('a broker serves one server');
    this.#host = host;
  }

  subscribe(topic: string): void {
    this.#send({ wsrfc: 'sub', topic });
  }

  unsubscribe(topic: string): void {
    this.#send({ wsrfc: 'unsub', topic });
  }

  publish(topic: string | null, data: Buffer, binary: boolean): void {
    this.#send({ wsrfc: 'pub', topic, data, binary });
  }

  close(): Promise<void> {
    this.#closed = true;
    process.off('message', this.#onMessage);
    return Promise.resolve();
  }

  #send(message: ClusterMessage): void {
    // The primary is gone (or going): nothing to tell; a callback keeps a failed send from becoming
    // an 'error' event on process.
    if (this.#closed || !process.connected) return;
    process.send!(message, undefined, {}, () => {});
  }
}

/** The primary's side: passes publications between workers. Made by `runWorkers`. */
export class ClusterRelay {
  readonly #subscribers = new Map<string, Set<Worker>>();
  readonly #topicsOf = new Map<Worker, Set<string>>();
  readonly #onMessage = (worker: Worker, message: unknown): void => {
    if (isClusterMessage(message)) this.#receive(worker, message);
  };
  readonly #onExit = (worker: Worker): void => this.#forget(worker);

  constructor() {
    cluster.on('message', this.#onMessage);
    cluster.on('exit', this.#onExit);
  }

  close(): void {
    cluster.off('message', this.#onMessage);
    cluster.off('exit', this.#onExit);
  }

  #receive(worker: Worker, message: ClusterMessage): void {
    if (message.wsrfc === 'sub') {
      let workers = this.#subscribers.get(message.topic);
      if (workers === undefined) this.#subscribers.set(message.topic, (workers = new Set()));
      workers.add(worker);
      let topics = this.#topicsOf.get(worker);
      if (topics === undefined) this.#topicsOf.set(worker, (topics = new Set()));
      topics.add(message.topic);
    } else if (message.wsrfc === 'unsub') {
      this.#leave(worker, message.topic);
      const topics = this.#topicsOf.get(worker);
      topics?.delete(message.topic);
      if (topics?.size === 0) this.#topicsOf.delete(worker);
    } else {
      const targets =
        message.topic === null ? Object.values(cluster.workers ?? {}) : this.#subscribers.get(message.topic);
      for (const target of targets ?? []) {
        if (target === undefined || target === worker || !target.isConnected()) continue;
        target.send(message, undefined, () => {});
      }
    }
  }

  #leave(worker: Worker, topic: string): void {
    const workers = this.#subscribers.get(topic);
    if (workers === undefined) return;
    workers.delete(worker);
    if (workers.size === 0) this.#subscribers.delete(topic);
  }

  #forget(worker: Worker): void {
    for (const topic of this.#topicsOf.get(worker) ?? []) this.#leave(worker, topic);
    this.#topicsOf.delete(worker);
  }
}
