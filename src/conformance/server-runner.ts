/**
 * Testing a server (the suite's fuzzingclient mode): each case is a connection of its own, opened
 * with the engine's own client handshake (RFC 6455 §4.1, with the case's permessage-deflate offers),
 * then run and judged. Independent cases run side by side, as many as `parallel` slots allow (a
 * case that moves many megabytes takes several), each timed on its own.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { Case } from './case.js';
import { EXTENSION, offerString, parseResponse, PerMessageDeflate, type DeflateParams } from './deflate.js';
import { Endpoint } from './endpoint.js';
import { checkResponse, clientRequest, newKey, splitHead } from './http.js';
import { caseResult, type CaseResult, type Session } from './result.js';
import type { CaseDefinition } from './script.js';
import { WireLog } from './wirelog.js';

export interface EngineOptions {
  /** Multiplies the suite's deadlines (default 3: a peer that behaves is never near them). */
  timeScale?: number;
  /** The largest message the engine accepts from the peer (default 64 MiB). */
  maxMessageSize?: number;
  /**
   * zlib level of what the engine compresses (default 1: the fastest that still finds LZ77 matches
   * and writes Huffman codes, so the peer's inflater does all its work; the suite uses 6).
   */
  deflateLevel?: number;
}

export interface ServerTestOptions extends EngineOptions {
  url: string;
  cases: CaseDefinition[];
  /** The name the reports give the server; by default its Server header, else "UnknownServer". */
  agent?: string;
  /** Parallel slots (default 8). */
  parallel?: number;
  /** Told when a case starts and when it ends. */
  onCaseStart?: (definition: CaseDefinition) => void;
  onCaseEnd?: (result: CaseResult) => void;
}

export const DEFAULT_PARALLEL = 8;
export const DEFAULT_TIME_SCALE = 3;
export const DEFAULT_MAX_MESSAGE = 64 * 1024 * 1024;
export const DEFAULT_DEFLATE_LEVEL = 1;

const USER_AGENT = 'wsrfc-conformance';

interface Target {
  secure: boolean;
  host: string;
  port: number;
  /** host:port as the Host header carries it. */
  authority: string;
  path: string;
}

/** A ws:// or wss:// URL, checked (RFC 6455 §3). Throws a TypeError for anything else. */
export function parseTarget(url: string): Target {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`not a URL: ${url}`);
  }
  if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') throw new TypeError(`not a ws:// or wss:// URL: ${url}`);
  if (parsed.hash !== '') throw new TypeError(`a WebSocket URL has no fragment (RFC 6455 §3): ${url}`);
  const secure = parsed.protocol === 'wss:';
  const port = parsed.port === '' ? (secure ? 443 : 80) : Number(parsed.port);
  const host = parsed.hostname.startsWith('[') ? parsed.hostname.slice(1, -1) : parsed.hostname;
  return { secure, host, port, authority: parsed.host, path: `${parsed.pathname}${parsed.search}` };
}

/** Run one case against a server; resolves with its result whatever happens. */
export function runServerCase(
  target: Target,
  definition: CaseDefinition,
  options: EngineOptions & { agent?: string },
): Promise<CaseResult & { serverHeader: string | null }> {
  const timeScale = options.timeScale ?? DEFAULT_TIME_SCALE;
  const c: Case = definition.create();
  const log = new WireLog();
  const key = newKey();
  const offers = c.deflateOffers();
  const request = clientRequest({
    path: target.path,
    host: target.authority,
    key,
    extensions: offers.length === 0 ? null : offers.map(offerString).join(', '),
    userAgent: USER_AGENT,
  });
  const session: Session = {
    agent: options.agent ?? 'UnknownServer',
    started: new Date(),
    openedAt: performance.now(),
    endedAt: 0,
    isServer: false,
    httpRequest: request,
    httpResponse: '',
    extensions: null,
    handshakeError: null,
    wasOpenHandshakeTimeout: false,
    wirelog: [],
  };
  return new Promise((resolve) => {
    let serverHeader: string | null = null;
    let endpoint: Endpoint | null = null;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(handshakeTimer);
      session.endedAt = performance.now();
      c.onConnectionLost();
      session.wirelog = log.entries();
      resolve({ ...caseResult(c, endpoint, session), serverHeader });
    };
    const socket: net.Socket = target.secure
      ? tls.connect({
          host: target.host,
          port: target.port,
          servername: net.isIP(target.host) === 0 ? target.host : undefined,
        })
      : net.connect({ host: target.host, port: target.port });
    const fail = (reason: string): void => {
      if (session.handshakeError === null) session.handshakeError = reason;
      log.note(`opening handshake failed: ${reason}`);
      socket.destroy();
    };
    // The suite gives the opening handshake 5 s.
    const handshakeTimer = setTimeout(() => {
      session.wasOpenHandshakeTimeout = true;
      fail(`no complete answer within ${5 * timeScale} s`);
    }, 5000 * timeScale);
    let received = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      received = Buffer.concat([received, chunk]);
      const split = splitHead(received);
      if (split === null) return;
      socket.off('data', onData);
      clearTimeout(handshakeTimer);
      if (split instanceof Error) return fail(split.message);
      session.httpResponse = split.head.text;
      serverHeader = split.head.headers.get('server')?.[0] ?? null;
      const extensions = checkResponse(split.head, key);
      if (extensions instanceof Error) return fail(extensions.message);
      let agreed: DeflateParams | null = null;
      for (const item of extensions) {
        // §9.1: only an extension the client offered may be used; permessage-deflate at most once.
        if (item.name !== EXTENSION || offers.length === 0 || agreed !== null)
          return fail(`the server answered with an extension that was not offered: ${item.name}`);
        const params = parseResponse(item);
        if (params instanceof Error) return fail(params.message);
        agreed = params;
      }
      session.extensions = split.head.headers.get('sec-websocket-extensions')?.join(', ') ?? null;
      endpoint = new Endpoint(
        socket,
        {
          isServer: false,
          deflate:
            agreed === null
              ? null
              : new PerMessageDeflate(agreed, false, options.deflateLevel ?? DEFAULT_DEFLATE_LEVEL),
          timeScale,
          maxMessageSize: options.maxMessageSize ?? DEFAULT_MAX_MESSAGE,
          log,
        },
        {
          onMessage: (data, binary) => c.onMessage(data, binary),
          onPong: (data) => c.onPong(data),
          onConnectionLost: finish,
        },
      );
      c.p = endpoint;
      c.connectionWasOpen = true;
      session.openedAt = performance.now();
      c.onOpen();
      endpoint.feed(split.rest);
    };
    socket.on('data', onData);
    socket.once(target.secure ? 'secureConnect' : 'connect', () => socket.write(request));
    socket.on('error', (error) => {
      if (endpoint === null) fail(error.message);
    });
    socket.on('close', () => {
      if (endpoint === null) {
        if (session.handshakeError === null)
          session.handshakeError = 'the server closed the connection during the opening handshake';
        finish();
      }
    });
  });
}

/**
 * Start `run` on each item in order, with at most `slots` of weight running at once (an item
 * heavier than all the slots runs alone). Resolves when all have finished.
 */
export async function inSlots<T extends { weight: number }>(
  items: T[],
  slots: number,
  run: (item: T) => Promise<void>,
): Promise<void> {
  let used = 0;
  let running = 0;
  let wake: (() => void) | null = null;
  const all: Promise<void>[] = [];
  for (const item of items) {
    const weight = Math.min(item.weight, slots);
    while (running > 0 && used + weight > slots) await new Promise<void>((resolve) => (wake = resolve));
    used += weight;
    running++;
    all.push(
      run(item).finally(() => {
        used -= weight;
        running--;
        const w = wake;
        wake = null;
        w?.();
      }),
    );
  }
  await Promise.all(all);
}

/** Run cases against a server; resolves with the results in case order. */
export async function testServer(options: ServerTestOptions): Promise<CaseResult[]> {
  const target = parseTarget(options.url);
  const results = new Map<string, CaseResult & { serverHeader: string | null }>();
  // The heaviest first, so they overlap with the many light ones instead of running last, alone.
  const order = [...options.cases].sort((a, b) => b.weight - a.weight);
  await inSlots(order, options.parallel ?? DEFAULT_PARALLEL, async (definition) => {
    options.onCaseStart?.(definition);
    const result = await runServerCase(target, definition, options);
    results.set(definition.id, result);
    options.onCaseEnd?.(result);
  });
  const ordered = options.cases.map((definition) => results.get(definition.id)!);
  // The agent: as named, else as the server names itself (the first answer with a Server header).
  const agent = options.agent ?? ordered.find((r) => r.serverHeader !== null)?.serverHeader ?? 'UnknownServer';
  return ordered.map(({ serverHeader: _, ...result }) => ({ ...result, agent }));
}
