/**
 * A broker carries a server's publications (and broadcasts) to the servers of other processes and
 * hosts, and theirs back. The server tells it which topics have local subscribers; the broker hands
 * it what arrives from elsewhere. A server delivers its own publications locally itself, at once:
 * the broker must never hand a process back what that process published (no echo), or its
 * subscribers would get it twice.
 *
 * Three implementations: `LocalBroker` (this file: one process, the default), the node:cluster
 * broker through the primary (src/scale/broker-cluster.ts, what `runWorkers` gives each worker) and Redis
 * pub/sub (src/scale/redis-broker.ts, the `wsrfc/redis` entry point).
 *
 * Delivery is at most once: a broker may lose messages (while Redis restarts, say), never duplicate
 * them, and keeps the order of one publisher's messages on one topic.
 */

/** Where a broker hands what arrives from other processes. */
export interface BrokerHost {
  /** A publication to `topic`, or a broadcast when `topic` is null. */
  deliver(topic: string | null, data: Buffer, binary: boolean): void;
}

export interface Broker {
  /** Called once by the server that uses this broker (a broker serves one server). */
  attach(host: BrokerHost): void;
  /** The first local subscriber to `topic` arrived: start receiving it from elsewhere. */
  subscribe(topic: string): void;
  /** The last local subscriber to `topic` left. */
  unsubscribe(topic: string): void;
  /**
   * Send to the other processes (a broadcast when `topic` is null). Never blocks and never throws:
   * what cannot be sent now is dropped.
   */
  publish(topic: string | null, data: Buffer, binary: boolean): void;
  /** Stop: the server closed. */
  close(): Promise<void>;
}

/** One process, nothing to carry: what a server has unless it is given another broker. */
export class LocalBroker implements Broker {
  attach(): void {}
  subscribe(): void {}
  unsubscribe(): void {}
  publish(): void {}
  close(): Promise<void> {
    return Promise.resolve();
  }
}
