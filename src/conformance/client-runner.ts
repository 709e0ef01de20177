/**
 * Testing a client (the suite's fuzzingserver mode): a server with the suite's endpoints, so the
 * client drivers written for it work unchanged:
 *
 *   GET /getCaseCount                      a text message: the number of cases; then a close
 *   GET /runCase?case=N&agent=A            case N (1-based, in case order) run against the client
 *   GET /updateReports?agent=A             the reports written; then a close (the suite also
 *                                          takes &shutdownOnComplete=true: stop serving after it)
 *   GET /getCaseInfo?case=N                a text message: {"id", "description"}; then a close
 *   GET /getCaseStatus?case=N&agent=A      a text message: {"behavior"} once the case has run
 *
 * Each connection's opening handshake is the engine's own (RFC 6455 §4.2), bounded in size and
 * time; a case's permessage-deflate answer comes from the case (groups 12 and 13 accept offers,
 * every other case declines them).
 */
import net from 'node:net';
import type { Case } from './case.js';
import { EXTENSION, parseOffer, PerMessageDeflate, type DeflateOffer } from './deflate.js';
import { Endpoint } from './endpoint.js';
import { checkRequest, errorResponse, serverResponse, splitHead, type Head, type ServerRequest } from './http.js';
import { caseResult, type CaseResult, type Session } from './result.js';
import type { CaseDefinition } from './script.js';
import { DEFAULT_DEFLATE_LEVEL, DEFAULT_MAX_MESSAGE, DEFAULT_TIME_SCALE, type EngineOptions } from './server-runner.js';
import { WireLog } from './wirelog.js';

export interface ClientTestOptions extends EngineOptions {
  cases: CaseDefinition[];
  /** Told when a case starts and ends, and when a client asks for the reports. */
  onCaseStart?: (definition: CaseDefinition, agent: string) => void;
  onCaseEnd?: (result: CaseResult) => void;
  /** Called on /updateReports; the close frame goes once it resolves. `shutdown`: the client asked to stop. */
  onUpdateReports?: (agent: string, shutdown: boolean) => Promise<void> | void;
  /** At most this many connections at once (default 64); more get 503. */
  maxConnections?: number;
}

export const SERVER_NAME = 'wsrfc-conformance';

/** What the server answers on the HTTP level before any WebSocket exists. */
class Refusal extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

export class ClientTester {
  /** Results by agent, then by case id. */
  readonly results = new Map<string, Map<string, CaseResult>>();
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly waiting = new Map<string, ((result: CaseResult) => void)[]>();
  private readonly timeScale: number;

  constructor(private readonly options: ClientTestOptions) {
    this.timeScale = options.timeScale ?? DEFAULT_TIME_SCALE;
    this.server = net.createServer((socket) => this.accept(socket));
    this.server.maxConnections = options.maxConnections ?? 64;
  }

  listen(port: number, host = '127.0.0.1'): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as net.AddressInfo);
      });
    });
  }

  /** Stop listening and end every connection. */
  close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => {});
    let received = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(), 5000 * this.timeScale);
    const onData = (chunk: Buffer): void => {
      received = Buffer.concat([received, chunk]);
      const split = splitHead(received);
      if (split === null) return;
      socket.off('data', onData);
      clearTimeout(timer);
      if (split instanceof Error)
        return this.refuse(socket, new Refusal(431, 'Request Header Fields Too Large', split.message));
      try {
        this.route(socket, split.head, split.rest);
      } catch (error) {
        this.refuse(
          socket,
          error instanceof Refusal ? error : new Refusal(500, 'Internal Server Error', String(error)),
        );
      }
    };
    socket.on('data', onData);
    socket.on('close', () => clearTimeout(timer));
  }

  private refuse(socket: net.Socket, refusal: Refusal): void {
    socket.end(errorResponse(refusal.status, refusal.reason, `${refusal.message}\n`));
  }

  private caseNumber(request: ServerRequest): number {
    const text = request.query.get('case');
    const n = Number(text);
    if (text === null || !Number.isInteger(n) || n < 1 || n > this.options.cases.length)
      throw new Refusal(400, 'Bad Request', `case must be a number from 1 to ${this.options.cases.length}`);
    return n;
  }

  private agent(request: ServerRequest): string {
    const agent = request.query.get('agent');
    if (agent === null || agent === '') throw new Refusal(400, 'Bad Request', 'agent is required');
    return agent;
  }

  private route(socket: net.Socket, head: Head, rest: Buffer): void {
    const request = checkRequest(head);
    if (request instanceof Error) throw new Refusal(400, 'Bad Request', request.message);
    switch (request.path) {
      case '/getCaseCount':
        return void this.command(socket, request, rest, JSON.stringify(this.options.cases.length));
      case '/getCaseInfo': {
        const definition = this.options.cases[this.caseNumber(request) - 1]!;
        const info = { id: definition.id, description: definition.description };
        return void this.command(socket, request, rest, JSON.stringify(info));
      }
      case '/getCaseStatus': {
        const definition = this.options.cases[this.caseNumber(request) - 1]!;
        const agent = this.agent(request);
        const endpoint = this.command(socket, request, rest, null);
        const known = this.results.get(agent)?.get(definition.id);
        const send = (result: CaseResult): void => {
          endpoint.sendMessage(Buffer.from(JSON.stringify({ behavior: result.behavior })), false);
          endpoint.sendClose(1000);
        };
        if (known !== undefined) send(known);
        else {
          const key = `${agent}\n${definition.id}`;
          this.waiting.set(key, [...(this.waiting.get(key) ?? []), send]);
        }
        return;
      }
      case '/updateReports': {
        const agent = this.agent(request);
        const shutdown = ['true', 'yes'].includes((request.query.get('shutdownOnComplete') ?? '').toLowerCase());
        const endpoint = this.command(socket, request, rest, null);
        void Promise.resolve(this.options.onUpdateReports?.(agent, shutdown)).finally(() => endpoint.sendClose(1000));
        return;
      }
      case '/runCase':
        return this.runCase(socket, request, head, rest);
      default:
        throw new Refusal(404, 'Not Found', `no such endpoint: ${request.path}`);
    }
  }

  /** A connection for a command: opened without extensions, answered with `reply` (if any), then closed. */
  private command(socket: net.Socket, request: ServerRequest, rest: Buffer, reply: string | null): Endpoint {
    socket.write(serverResponse(request.key, null, SERVER_NAME));
    const endpoint = new Endpoint(
      socket,
      {
        isServer: true,
        deflate: null,
        timeScale: this.timeScale,
        maxMessageSize: 1024 * 1024,
        log: new WireLog(),
      },
      { onMessage: () => {}, onPong: () => {}, onConnectionLost: () => {} },
    );
    if (reply !== null) {
      endpoint.sendMessage(Buffer.from(reply), false);
      endpoint.sendClose(1000);
    }
    endpoint.feed(rest);
    return endpoint;
  }

  private runCase(socket: net.Socket, request: ServerRequest, head: Head, rest: Buffer): void {
    const definition = this.options.cases[this.caseNumber(request) - 1]!;
    const agent = this.agent(request);
    const c: Case = definition.create();
    const offers: DeflateOffer[] = [];
    for (const item of request.extensions) {
      if (item.name !== EXTENSION) continue;
      // RFC 7692 §5.1: an offer the server cannot accept (a bad parameter) is declined, not an error.
      const offer = parseOffer(item);
      if (!(offer instanceof Error)) offers.push(offer);
    }
    const accepted = c.acceptDeflate(offers);
    const response = serverResponse(request.key, accepted?.response ?? null, SERVER_NAME);
    const log = new WireLog();
    const session: Session = {
      agent,
      started: new Date(),
      openedAt: performance.now(),
      endedAt: 0,
      isServer: true,
      httpRequest: head.text,
      httpResponse: response,
      extensions: accepted?.response ?? null,
      handshakeError: null,
      wasOpenHandshakeTimeout: false,
      wirelog: [],
    };
    this.options.onCaseStart?.(definition, agent);
    socket.write(response);
    const endpoint = new Endpoint(
      socket,
      {
        isServer: true,
        deflate:
          accepted === null
            ? null
            : new PerMessageDeflate(accepted.params, true, this.options.deflateLevel ?? DEFAULT_DEFLATE_LEVEL),
        timeScale: this.timeScale,
        maxMessageSize: this.options.maxMessageSize ?? DEFAULT_MAX_MESSAGE,
        log,
      },
      {
        onMessage: (data, binary) => c.onMessage(data, binary),
        onPong: (data) => c.onPong(data),
        onConnectionLost: () => {
          session.endedAt = performance.now();
          c.onConnectionLost();
          session.wirelog = log.entries();
          this.record(caseResult(c, endpoint, session));
        },
      },
    );
    c.p = endpoint;
    c.connectionWasOpen = true;
    c.onOpen();
    endpoint.feed(rest);
  }

  private record(result: CaseResult): void {
    const byCase = this.results.get(result.agent) ?? new Map<string, CaseResult>();
    byCase.set(result.id, result);
    this.results.set(result.agent, byCase);
    this.options.onCaseEnd?.(result);
    const key = `${result.agent}\n${result.id}`;
    for (const send of this.waiting.get(key) ?? []) send(result);
    this.waiting.delete(key);
  }
}
