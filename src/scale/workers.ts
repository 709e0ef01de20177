import cluster, { type Worker } from 'node:cluster';
import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import { availableParallelism } from 'node:os';
import type { Broker } from '../websocket/broker.js';
import { ClusterBroker, ClusterRelay } from './broker-cluster.js';
import type { WebSocketServer } from '../websocket/server.js';

/**
 * Every core: N processes serving one port through node:cluster (the primary accepts and hands
 * connections to the workers in turn). The same script runs in the primary and in every worker;
 * `runWorkers` forks in the primary, and runs `start` in each worker. A worker that dies is replaced
 * (its clients saw their connection drop, 1006; the others never notice); `close()` drains every
 * worker (its server's graceful `close()`: 1001 to its clients) and resolves when all have exited.
 *
 * Unless `start` gives its server a broker of its own (Redis, say), workers reach each other through
 * the primary (src/scale/broker-cluster.ts).
 */

export interface WorkersOptions {
  /** How many worker processes (default: the number of cores, `os.availableParallelism()`). */
  workers?: number;
  /** How long `close()` lets a worker drain before killing it, in ms (default 10 000). */
  closeTimeout?: number;
}

export interface WorkerContext {
  /** The broker to the other workers, through the primary. */
  broker: Broker;
  /** 0 to workers-1; a replacement takes the index of the worker it replaces. */
  index: number;
}

/** Runs in each worker: make the server, give it `context.broker` (or another), listen, return it. */
export type StartWorker = (context: WorkerContext) => WebSocketServer | Promise<WebSocketServer>;

export interface WorkerPoolEventMap {
  /** A worker died (`code`/`signal` as node:cluster reports them); a replacement is on its way. */
  exit: [pid: number, code: number | null, signal: string | null];
  /** A worker (a first one, or a replacement) listens. */
  listening: [pid: number, address: AddressInfo];
}

type Control =
  | { wsrfc: 'listening'; address: AddressInfo }
  | { wsrfc: 'failed'; message: string }
  | { wsrfc: 'close'; timeout: number };

function isControl(message: unknown): message is Control {
  const kind = (message as { wsrfc?: unknown } | null)?.wsrfc;
  return kind === 'listening' || kind === 'failed' || kind === 'close';
}

/** A worker that dies sooner than this after starting is restarted after a pause, not at once. */
const QUICK_DEATH_MS = 1000;

/** The primary's handle on its workers. */
export class WorkerPool extends EventEmitter<WorkerPoolEventMap> {
  readonly size: number;
  /** Where the workers listen, once they do. */
  address: AddressInfo | null = null;
  readonly #relay = new ClusterRelay();
  readonly #index = new Map<Worker, { index: number; started: number; listening: boolean }>();
  readonly #closeTimeout: number;
  #closing: Promise<void> | null = null;

  /** @internal */
  constructor(size: number, closeTimeout: number) {
    super();
    this.size = size;
    this.#closeTimeout = closeTimeout;
  }

  /** The workers' process ids. */
  get pids(): number[] {
    return [...this.#index.keys()].map((worker) => worker.process.pid!).filter((pid) => pid !== undefined);
  }

  /** @internal Fork every worker; resolves once all listen, rejects if one fails before. */
  start(): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      let listening = 0;
      let failed = false;
      const onMessage = (worker: Worker, message: unknown): void => {
        if (!isControl(message) || !this.#index.has(worker)) return;
        if (message.wsrfc === 'listening') {
          this.#index.get(worker)!.listening = true;
          this.address = message.address;
          this.emit('listening', worker.process.pid!, message.address);
          if (++listening === this.size) resolve(message.address);
        } else if (message.wsrfc === 'failed' && !failed && listening < this.size) {
          failed = true;
          void this.close().then(() => reject(new Error(message.message)));
        }
      };
      cluster.on('message', onMessage);
      cluster.on('exit', (worker, code, signal) => this.#exited(worker, code, signal));
      for (let index = 0; index < this.size; index++) this.#fork(index);
    });
  }

  /** Drain every worker (1001 to their clients) and wait until all have exited. */
  close(): Promise<void> {
    this.#closing ??= Promise.all(
      [...this.#index.keys()].map(async (worker) => {
        if (worker.isDead()) return;
        const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
        // One still starting has no server to drain (and may not listen for the message yet).
        if (!this.#index.get(worker)!.listening) worker.process.kill('SIGTERM');
        else if (worker.isConnected())
          worker.send({ wsrfc: 'close', timeout: this.#closeTimeout }, undefined, () => {});
        // Whatever the worker does, it is gone after the timeout and a margin for its own.
        const kill = setTimeout(() => worker.process.kill('SIGKILL'), this.#closeTimeout + 2000);
        await exited;
        clearTimeout(kill);
      }),
    ).then(() => this.#relay.close());
    return this.#closing;
  }

  #fork(index: number): void {
    const worker = cluster.fork({ WSRFC_WORKER_INDEX: String(index) });
    this.#index.set(worker, { index, started: Date.now(), listening: false });
  }

  #exited(worker: Worker, code: number | null, signal: string | null): void {
    const entry = this.#index.get(worker);
    if (entry === undefined) return;
    this.#index.delete(worker);
    if (this.#closing !== null) return;
    this.emit('exit', worker.process.pid!, code, signal);
    const pause = Date.now() - entry.started < QUICK_DEATH_MS ? QUICK_DEATH_MS : 0;
    setTimeout(() => {
      if (this.#closing === null) this.#fork(entry.index);
    }, pause);
  }
}

/**
 * In the primary: fork the workers and resolve with the pool once every worker listens (rejects with
 * a worker's error if one fails to start). In a worker: run `start`, and resolve with undefined once
 * its server listens.
 */
export async function runWorkers(start: StartWorker, options: WorkersOptions = {}): Promise<WorkerPool | undefined> {
  if (cluster.isPrimary) {
    const size = options.workers ?? availableParallelism();
    if (!Number.isInteger(size) || size < 1) throw new RangeError('workers must be a whole number >= 1');
    // Payloads cross the IPC channel as bytes rather than JSON.
    cluster.setupPrimary({ serialization: 'advanced' });
    const pool = new WorkerPool(size, options.closeTimeout ?? 10_000);
    await pool.start();
    return pool;
  }
  // Ctrl-C reaches the whole process group: the primary drains the workers, they do not just exit.
  process.on('SIGINT', () => {});
  const index = Number(process.env.WSRFC_WORKER_INDEX ?? 0);
  let server: WebSocketServer;
  let address: AddressInfo | null;
  try {
    server = await start({ broker: new ClusterBroker(), index });
    address = server.address();
    if (address === null) throw new Error('the server that start() returned is not listening');
  } catch (error) {
    process.send!({ wsrfc: 'failed', message: (error as Error).message }, undefined, {}, () => process.exit(1));
    return undefined;
  }
  process.on('message', (message: unknown) => {
    if (!isControl(message) || message.wsrfc !== 'close') return;
    void server.close(message.timeout).then(() => process.exit(0));
  });
  process.send!({ wsrfc: 'listening', address }, undefined, {}, () => {});
  return undefined;
}
