/**
 * Records what a client WebSocket emits, in order, with promises for the events tests wait on.
 */
import type { WebSocket } from '../../src/index.js';

export type ClientEvent =
  | { type: 'open' }
  | { type: 'upgrade'; headers: Record<string, string> }
  | { type: 'message'; data: Buffer; isBinary: boolean }
  | { type: 'ping'; data: Buffer }
  | { type: 'pong'; data: Buffer }
  | { type: 'close'; code: number; reason: string; wasClean: boolean; at: number }
  | { type: 'error'; error: Error };

export interface CloseInfo {
  code: number;
  reason: string;
  wasClean: boolean;
  /** performance.now() when 'close' fired. */
  at: number;
}

export interface Recorder {
  events: ClientEvent[];
  /** Resolves with the first 'close'. */
  closed: Promise<CloseInfo>;
  /** Resolves on 'open'. */
  opened: Promise<void>;
  /** The next message not yet taken by this method. */
  nextMessage(): Promise<{ data: Buffer; isBinary: boolean }>;
  count(type: ClientEvent['type']): number;
  errors(): Error[];
}

/**
 * Attach listeners for every event. `listenErrors` false leaves 'error' without a listener, to
 * check the library never emits it then (an unlistened 'error' would throw).
 */
export function record(ws: WebSocket, listenErrors = true): Recorder {
  const events: ClientEvent[] = [];
  let messageCursor = 0;
  const waiters: ((message: { data: Buffer; isBinary: boolean }) => void)[] = [];
  const messages: { data: Buffer; isBinary: boolean }[] = [];
  let resolveClosed!: (info: CloseInfo) => void;
  const closed = new Promise<CloseInfo>((resolve) => (resolveClosed = resolve));
  let resolveOpened!: () => void;
  const opened = new Promise<void>((resolve) => (resolveOpened = resolve));
  ws.on('open', () => {
    events.push({ type: 'open' });
    resolveOpened();
  });
  ws.on('upgrade', (headers) => events.push({ type: 'upgrade', headers }));
  ws.on('message', (data, isBinary) => {
    const message = { data: Buffer.from(data), isBinary };
    events.push({ type: 'message', ...message });
    const waiter = waiters.shift();
    if (waiter !== undefined) {
      messageCursor++;
      messages.push(message);
      waiter(message);
    } else {
      messages.push(message);
    }
  });
  ws.on('ping', (data) => events.push({ type: 'ping', data: Buffer.from(data) }));
  ws.on('pong', (data) => events.push({ type: 'pong', data: Buffer.from(data) }));
  ws.on('close', (code, reason, wasClean) => {
    const info = { code, reason, wasClean, at: performance.now() };
    events.push({ type: 'close', ...info });
    resolveClosed(info);
  });
  if (listenErrors) ws.on('error', (error) => events.push({ type: 'error', error }));
  return {
    events,
    closed,
    opened,
    nextMessage() {
      if (messageCursor < messages.length) return Promise.resolve(messages[messageCursor++]!);
      return new Promise((resolve) => waiters.push(resolve));
    },
    count(type) {
      return events.filter((event) => event.type === type).length;
    },
    errors() {
      return events.flatMap((event) => (event.type === 'error' ? [event.error] : []));
    },
  };
}
