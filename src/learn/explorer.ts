import { randomBytes } from 'node:crypto';
import { MAX_CONTROL_PAYLOAD, Opcode, ReadyState } from '../protocol/constants.js';
import { FrameExplainer, closeCodeName, escapeText, explainHandshake, type FrameReport } from './explain.js';
import { EXPLORER_PAGE } from './explorer-page.js';
import { encodeFrame } from '../protocol/frame.js';
import type { UpgradeRequest } from '../protocol/handshake.js';
import type { FrameTracer, TracedFrame } from '../protocol/trace.js';
import type { ConnectionObserver, HttpRequestInfo, HttpResponseInfo, ObservedHandshake } from '../websocket/hooks.js';
import type { ServerOptions } from '../websocket/server-options.js';
import { sendFramed, type WebSocket } from '../websocket/websocket.js';

/**
 * The protocol explorer, server side (the page is src/learn/explorer-page.ts). It plugs into a
 * server through the server's public hooks, as the echo CLI does (the server knows nothing of it):
 *
 *     const explorer = new Explorer();
 *     const server = new WebSocketServer({ ...options, ...explorer.serverOptions });
 *     server.on('connection', (socket, request) => {
 *       if (explorer.adopt(socket, request)) return; // the explorer's own observer socket
 *       ...
 *     });
 *
 * A plain `GET /` (no field of a WebSocket handshake), over HTTP/1.1 or HTTP/2, gets the page. The
 * page then opens two WebSockets:
 *
 * 1. `/?explorer=observe`, the observer: the server answers with a fresh token (24 random bytes)
 *    on that socket only, and streams over it, as JSON, what happens on the connection that
 *    presents the token; the page sends its requests over it too ("send 4 fragments", "close with
 *    4001"), since the browser's API cannot make the server do anything.
 * 2. `/?explorer=TOKEN`, its own connection, an ordinary one (the echo CLI echoes on it): its
 *    handshake and every frame both ways go to the observer that issued the token. A token binds
 *    one connection, once; nothing else can observe or drive another connection.
 *
 * Everything the page shows about frames comes from here: the browser API hides them.
 */

/** Events past this many bytes waiting for a slow observer are dropped, and counted. */
export const OBSERVER_BUFFER_LIMIT = 256 * 1024;
/** Largest message the page may ask the server to send. */
export const MAX_REQUESTED_SIZE = 1024 * 1024;
const MAX_FRAGMENTS = 64;
const OBSERVE = 'observe';

/** The invalid frames the page may ask for, each with the rule it breaks. */
const INVALID_FRAMES: Record<string, { bytes: () => Buffer; rule: string }> = {
  'reserved-opcode': {
    bytes: () => Buffer.from([0x83, 0x02, 0x68, 0x69]),
    rule:
      'RFC 6455 §5.2: opcode 0x3 is reserved; "If an unknown opcode is received, the receiving endpoint MUST ' +
      '_Fail the WebSocket Connection_"',
  },
  rsv2: {
    bytes: () => Buffer.from([0xa1, 0x02, 0x68, 0x69]),
    rule: 'RFC 6455 §5.2: RSV2 set with no extension defining it: the receiver "MUST _Fail the WebSocket Connection_"',
  },
  'invalid-utf8': {
    bytes: () => Buffer.from([0x81, 0x03, 0x68, 0xff, 0x69]),
    rule:
      'RFC 6455 §8.1: a text frame with bytes that are not UTF-8 (0xff): the endpoint ' +
      '"MUST _Fail the WebSocket Connection_"',
  },
  masked: {
    bytes: () => encodeFrame({ opcode: Opcode.Text, payload: Buffer.from('hi'), maskKey: randomBytes(4) }),
    rule: 'RFC 6455 §5.1: "A client MUST close a connection if it detects a masked frame" from the server',
  },
  'long-ping': {
    bytes: () => encodeFrame({ opcode: Opcode.Ping, payload: Buffer.alloc(126, 0x70) }),
    rule: 'RFC 6455 §5.5: "All control frames MUST have a payload length of 125 bytes or less"',
  },
};

/** The page's response: self-contained, nothing loaded from elsewhere. */
const PAGE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'Content-Type': 'text/html; charset=utf-8',
  'Cache-Control': 'no-store',
  // Nothing loaded from elsewhere: the page's own inline script and styles, WebSockets to this host.
  'Content-Security-Policy':
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:",
  'X-Content-Type-Options': 'nosniff',
});
let pageBody: Buffer | null = null;

export class Explorer {
  /** Observers whose token no connection has presented yet. */
  private readonly waiting = new Map<string, Observer>();
  /** Connections bound to an observer, between the handshake and `adopt`. */
  private readonly binding = new Map<number, Observer>();

  /** The server options that plug the explorer in: its page for plain requests, and its observer hook. */
  get serverOptions(): Required<Pick<ServerOptions, 'observe' | 'onHttpRequest'>> {
    return { observe: this.observe, onHttpRequest: this.onHttpRequest };
  }

  /**
   * The server's plain-request hook: the page, for `GET /` (or `/?...`); undefined for anything
   * else, which the server then answers as it does without the explorer.
   */
  readonly onHttpRequest = (request: HttpRequestInfo): HttpResponseInfo | undefined => {
    if (request.method !== 'GET' || (request.target !== '/' && !request.target.startsWith('/?'))) return undefined;
    pageBody ??= Buffer.from(EXPLORER_PAGE);
    return { status: 200, headers: PAGE_HEADERS, body: pageBody };
  };

  /** The server's observer hook: a connection that presents a waiting observer's token is bound to it. */
  readonly observe: ConnectionObserver = (handshake) => {
    const token = handshake.request.query.get('explorer');
    if (token === null || token === OBSERVE) return null;
    const observer = this.waiting.get(token);
    if (observer === undefined) return null;
    // One connection per token, once.
    this.waiting.delete(token);
    this.binding.set(handshake.id, observer);
    return observer.bind(handshake);
  };

  /** A new connection: an observer is the explorer's own (true); a bound one gets its observer. */
  adopt(connection: WebSocket, request: UpgradeRequest): boolean {
    const observer = this.binding.get(connection.id);
    if (observer !== undefined) {
      this.binding.delete(connection.id);
      observer.attach(connection);
      return false;
    }
    if (request.query.get('explorer') !== OBSERVE) return false;
    // RFC 4086-strength randomness: 192 bits nobody else can guess.
    const token = randomBytes(24).toString('base64url');
    const created = new Observer(connection, token);
    this.waiting.set(token, created);
    connection.on('close', () => {
      if (this.waiting.get(token) === created) this.waiting.delete(token);
      created.release();
    });
    return true;
  }
}

/** One observer socket, and the connection it watches once bound. */
class Observer {
  private target: WebSocket | null = null;
  private explainer: FrameExplainer | null = null;
  private dropped = 0;
  private started = 0;
  private released = false;

  constructor(
    private readonly socket: WebSocket,
    token: string,
  ) {
    socket.on('message', (data, isBinary) => this.request(data, isBinary));
    this.send({ type: 'hello', token });
  }

  bind(handshake: ObservedHandshake): FrameTracer {
    this.started = Date.now();
    this.explainer = new FrameExplainer(handshake.extensions);
    this.send({
      type: 'handshake',
      id: handshake.id,
      ...explainHandshake(handshake),
    });
    return (frame) => this.frame(frame);
  }

  attach(connection: WebSocket): void {
    if (this.released) return;
    this.target = connection;
    connection.on('close', (code, reason, wasClean) => {
      this.send({ type: 'closed', code, name: closeCodeName(code), reason: escapeText(reason), wasClean }, true);
      this.target = null;
    });
  }

  release(): void {
    this.released = true;
    this.target = null;
    this.explainer = null;
  }

  private frame(frame: TracedFrame): void {
    if (this.explainer === null) return;
    const report: FrameReport & { type: string; at: number } = {
      type: 'frame',
      at: Date.now() - this.started,
      ...this.explainer.explain(frame),
    };
    this.send(report);
  }

  /**
   * A slow observer must not make the server hold its events without bound: past the limit they
   * are dropped, counted, and the count goes with the next event that fits.
   */
  private send(event: object, always = false): void {
    const socket = this.socket;
    if (socket.readyState !== ReadyState.OPEN) return;
    if (!always && socket.bufferedAmount > OBSERVER_BUFFER_LIMIT) {
      this.dropped++;
      return;
    }
    this.sendDropped();
    socket.send(JSON.stringify(event), this.onSent);
  }

  /** Each write done: once the observer has caught up, it hears of what it missed even if nothing else happens. */
  private readonly onSent = (): void => {
    if (this.dropped > 0 && this.socket.bufferedAmount <= OBSERVER_BUFFER_LIMIT / 2) this.sendDropped();
  };

  private sendDropped(): void {
    if (this.dropped === 0 || this.socket.readyState !== ReadyState.OPEN) return;
    this.socket.send(JSON.stringify({ type: 'dropped', count: this.dropped }));
    this.dropped = 0;
  }

  private error(message: string): void {
    this.send({ type: 'error', message }, true);
  }

  /** What the page asks the server to do on its connection. Anything malformed is answered, never thrown. */
  private request(data: Buffer, isBinary: boolean): void {
    let ask: Record<string, unknown>;
    try {
      ask = isBinary ? {} : (JSON.parse(data.toString()) as Record<string, unknown>);
    } catch {
      ask = {};
    }
    if (ask === null || typeof ask !== 'object') ask = {};
    const target = this.target;
    if (target === null || target.readyState !== ReadyState.OPEN) return this.error('your connection is not open');
    // What the page asks for is queued on its own connection: not past what it has not read yet.
    if (target.bufferedAmount > MAX_REQUESTED_SIZE) return this.error('your connection has not read what it was sent');
    const int = (value: unknown, min: number, max: number): number | null =>
      Number.isInteger(value) && (value as number) >= min && (value as number) <= max ? (value as number) : null;
    switch (ask['do']) {
      case 'fragments': {
        const size = int(ask['size'], 1, MAX_REQUESTED_SIZE);
        const count = int(ask['count'], 1, MAX_FRAGMENTS);
        if (size === null || count === null)
          return this.error(`size 1-${MAX_REQUESTED_SIZE}, count 1-${MAX_FRAGMENTS}`);
        this.sendFragments(target, size, Math.min(count, size), ask['binary'] === true, ask['ping'] === true);
        return;
      }
      case 'ping': {
        const payload = Buffer.from(typeof ask['data'] === 'string' ? ask['data'] : '');
        if (payload.length > MAX_CONTROL_PAYLOAD) return this.error('a ping carries 125 bytes at most (RFC 6455 §5.5)');
        target.ping(payload);
        return;
      }
      case 'close': {
        const code = int(ask['code'], 0, 65535);
        const reason = typeof ask['reason'] === 'string' ? ask['reason'] : '';
        try {
          target.close(code ?? undefined, reason);
        } catch (error) {
          this.error((error as Error).message);
        }
        return;
      }
      case 'invalid': {
        const invalid = INVALID_FRAMES[String(ask['kind'])];
        if (invalid === undefined) return this.error(`kinds: ${Object.keys(INVALID_FRAMES).join(', ')}`);
        const bytes = invalid.bytes();
        this.send({ type: 'note', text: `the server sends ${bytes.toString('hex')}: ${invalid.rule}` }, true);
        // The frame is written as it is (our own tracer's parser refuses it too, and stops there).
        sendFramed(target, bytes);
        return;
      }
      default:
        return this.error('unknown request');
    }
  }

  /**
   * RFC 6455 §5.4: one message in `count` frames (FIN clear on all but the last, the first with
   * the opcode, the rest continuations), uncompressed so each frame is what was asked for; with
   * `ping`, a ping between the first two ("Control frames MAY be injected in the middle of a
   * fragmented message").
   */
  private sendFragments(target: WebSocket, size: number, count: number, binary: boolean, ping: boolean): void {
    const payload = Buffer.alloc(size);
    if (binary) for (let i = 0; i < size; i++) payload[i] = i & 0xff;
    else payload.write('fragmented message '.repeat(Math.ceil(size / 19)).slice(0, size), 'latin1');
    for (let i = 0; i < count; i++) {
      const opcode = i > 0 ? Opcode.Continuation : binary ? Opcode.Binary : Opcode.Text;
      const piece = payload.subarray(Math.floor((i * size) / count), Math.floor(((i + 1) * size) / count));
      sendFramed(target, encodeFrame({ opcode, payload: piece, fin: i === count - 1 }));
      if (i === 0 && ping) sendFramed(target, encodeFrame({ opcode: Opcode.Ping, payload: Buffer.from('between') }));
    }
  }
}
