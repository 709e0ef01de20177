/**
 * Helpers that run the library under test (src/, through its public API): our server on an
 * ephemeral loopback port with every connection recorded, our client with its frames traced, and
 * the waits and checks the tests share. The independent peer these are tested against is in
 * ./peer/ (it never imports src/); this file may use both.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import {
  CloseCode,
  Opcode,
  WebSocketServer,
  connect,
  openClient,
  type ClientOptions,
  type ServerOptions,
  type TracedFrame,
  type UpgradeRequest,
  type WebSocket,
} from '../../src/index.js';
import { Explorer } from '../../src/learn/explorer.js';
import { RawClient, destroyRawClients } from './peer/client.js';
import { acceptFor } from './peer/http.js';
import { OP } from './peer/frames.js';
import { delay, waitUntil, withTimeout } from './peer/wait.js';

export { CloseCode, Opcode };
export { KiB, MiB, delay, waitUntil, withTimeout } from './peer/wait.js';

// ---------------------------------------------------------------------------------------------
// Our server
// ---------------------------------------------------------------------------------------------

export interface CloseRecord {
  code: number;
  reason: string;
  wasClean: boolean;
  /** Date.now() when 'close' fired. */
  at: number;
}

/** Records every 'close' of a connection (a correct one fires exactly once). */
export function trackClose(ws: WebSocket): { closes: CloseRecord[]; closed: Promise<CloseRecord> } {
  const closes: CloseRecord[] = [];
  const closed = new Promise<CloseRecord>((resolve) => {
    ws.on('close', (code, reason, wasClean) => {
      const record = { code, reason, wasClean, at: Date.now() };
      closes.push(record);
      resolve(record);
    });
  });
  return { closes, closed };
}

export interface ServerConnection {
  ws: WebSocket;
  request: UpgradeRequest;
  closes: CloseRecord[];
  closed: Promise<CloseRecord>;
  errors: Error[];
}

export interface TestServer {
  wss: WebSocketServer;
  port: number;
  address: AddressInfo;
  url: string;
  /** Every connection so far, in order, with its close record. */
  connections: ServerConnection[];
  /** The next connection (already made ones first, in order). */
  nextConnection(ms?: number): Promise<ServerConnection>;
  /** The server side of a raw client's connection (matched by the client's local port). */
  connectionOf(client: RawClient, ms?: number): Promise<ServerConnection>;
  /** Destroy every raw client, then close the server gracefully with a short timeout. */
  close(): Promise<void>;
}

/** What the server does with each connection: echo every message (true), nothing (false), or this. */
export type ConnectionHandler = boolean | ((ws: WebSocket, request: UpgradeRequest) => void);

/**
 * Start a WebSocketServer on 127.0.0.1 (or `host`) with an ephemeral port. Connections get an
 * 'error' listener (recorded) and a close tracker; by default every message is sent back as it came.
 */
export async function startServer(
  { explorer: withExplorer, ...options }: ServerOptions & { explorer?: boolean } = {},
  handler: ConnectionHandler = true,
  host = '127.0.0.1',
): Promise<TestServer> {
  // WSRFC_TEST_EXPLORER=1: every test server also serves the protocol explorer (explorer.test.ts
  // runs the handshake tests that way: a malformed request is refused the same with it on).
  const explorer = (withExplorer ?? process.env['WSRFC_TEST_EXPLORER'] === '1') ? new Explorer() : null;
  const wss = new WebSocketServer(explorer !== null ? { ...explorer.serverOptions, ...options } : options);
  wss.on('error', () => {});
  const connections: ServerConnection[] = [];
  const waiters: ((c: ServerConnection) => void)[] = [];
  let taken = 0;
  wss.on('connection', (ws, request) => {
    if (explorer?.adopt(ws, request) === true) return;
    const errors: Error[] = [];
    ws.on('error', (error) => errors.push(error));
    const { closes, closed } = trackClose(ws);
    if (handler === true) ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    else if (handler !== false) handler(ws, request);
    const connection = { ws, request, closes, closed, errors };
    connections.push(connection);
    const waiter = waiters.shift();
    if (waiter !== undefined) {
      taken++;
      waiter(connection);
    }
  });
  const address = await wss.listen(0, host);
  const hostText = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    wss,
    port: address.port,
    address,
    url: `ws://${hostText}:${address.port}/`,
    connections,
    nextConnection(ms = 3000) {
      if (taken < connections.length) return Promise.resolve(connections[taken++]!);
      return withTimeout(new Promise<ServerConnection>((resolve) => waiters.push(resolve)), ms, 'a server connection');
    },
    async connectionOf(client, ms = 3000) {
      const port = client.socket.localPort;
      const find = (): ServerConnection | undefined => connections.find((c) => c.request.remotePort === port);
      await waitUntil(() => find() !== undefined, ms, `the server connection of the client on port ${String(port)}`, 2);
      return find()!;
    },
    close: () => {
      // Raw clients do not answer close frames: drop them first rather than wait out the timeout.
      destroyRawClients();
      return withTimeout(wss.close(200), 5000, 'the server to close');
    },
  };
}

/** The latest connection of `server`, once there is one. */
export async function lastConnection(server: TestServer, ms = 2000): Promise<ServerConnection> {
  await waitUntil(() => server.connections.length > 0, ms, 'the server connection');
  return server.connections.at(-1)!;
}

/**
 * Connect our own client (connect()) and find its server side: the one connection the server
 * admitted meanwhile (the server emits 'connection' before the client sees the 101). Not for
 * concurrent use.
 */
export async function connectPair(
  server: TestServer,
  options: ClientOptions = {},
  path = '',
): Promise<{ ws: WebSocket; connection: ServerConnection }> {
  const before = server.connections.length;
  const ws = await connect(server.url + path, options);
  assert.equal(server.connections.length, before + 1, 'exactly one new server connection');
  return { ws, connection: server.connections[before]! };
}

/** Assert a connection's 'close' fired exactly once with this code (and cleanliness, when given). */
export async function assertClosedOnce(
  connection: ServerConnection,
  code: number,
  wasClean?: boolean,
  ms = 3000,
): Promise<CloseRecord> {
  const record = await withTimeout(connection.closed, ms, `the server-side 'close' event (expected ${code})`);
  // Give a duplicate emission a chance to show up.
  await delay(20);
  assert.equal(connection.closes.length, 1, `'close' fired ${connection.closes.length} times`);
  assert.equal(record.code, code, `close code ${record.code}, expected ${code}`);
  if (wasClean !== undefined)
    assert.equal(record.wasClean, wasClean, `wasClean ${record.wasClean}, expected ${wasClean}`);
  return record;
}

/**
 * A raw client that sends a handshake with these extra field lines ("Name: value", in order) and
 * reads the response, whatever its status; a 101 must carry the right Sec-WebSocket-Accept.
 */
export async function rawRequest(port: number, lines: readonly string[] = []): Promise<RawClient> {
  const extraFields = lines.map((line): [string, string] => [
    line.slice(0, line.indexOf(':')),
    line.slice(line.indexOf(':') + 1).trim(),
  ]);
  const client = await RawClient.request(port, { extraFields });
  if (client.response!.status === 101)
    assert.equal(
      client.header('sec-websocket-accept'),
      acceptFor(client.key!),
      'the Sec-WebSocket-Accept of the server under test',
    );
  return client;
}

/** Assert that a raw client still gets its messages echoed: the connection is unaffected. */
export async function assertEchoes(client: RawClient, text = `still here ${Math.random()}`): Promise<void> {
  const before = client.messages.length;
  client.sendText(text);
  await client.waitMessages(before + 1);
  const message = client.messages[before]!;
  assert.equal(message.isBinary, false);
  assert.equal(message.data.toString(), text);
}

// ---------------------------------------------------------------------------------------------
// Our client
// ---------------------------------------------------------------------------------------------

export interface CloseInfo {
  code: number;
  reason: string;
  wasClean: boolean;
}

export interface Received {
  data: Buffer;
  isBinary: boolean;
}

export interface TracedClient {
  ws: WebSocket;
  /** Every frame in and out, as the `trace` option reports them (payloads copied). */
  frames: TracedFrame[];
  /** Every message received, from the very first (listeners attached before the handshake). */
  messages: Received[];
  /** The 'close' event. */
  closed: Promise<CloseInfo>;
}

/** A client of the library, traced, with messages and the close recorded from the start. */
export async function tracedClient(url: string, options: ClientOptions = {}): Promise<TracedClient> {
  const frames: TracedFrame[] = [];
  const messages: Received[] = [];
  const ws = openClient(url, {
    pingInterval: 0,
    closeTimeout: 1000,
    ...options,
    trace: (frame) => frames.push({ ...frame, payload: Buffer.from(frame.payload) }),
  });
  ws.on('error', () => {});
  ws.on('message', (data, isBinary) => messages.push({ data: Buffer.from(data), isBinary }));
  const closed = new Promise<CloseInfo>((resolve) =>
    ws.once('close', (code, reason, wasClean) => resolve({ code, reason, wasClean })),
  );
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      ws.once('open', resolve);
      void closed.then(({ code }) => reject(new Error(`closed (${code}) before opening`)));
    }),
    3000,
    'the client to open',
  );
  return { ws, frames, messages, closed };
}

/** Wait until `client` has received `n` messages in all; reject if it closes first or after `ms`. */
export async function received(client: TracedClient, n: number, ms = 5000): Promise<Received[]> {
  let closed: CloseInfo | null = null;
  void client.closed.then((info) => (closed = info));
  await waitUntil(
    () => client.messages.length >= n || closed !== null,
    ms,
    `${n} messages (got ${client.messages.length})`,
  );
  if (client.messages.length < n)
    throw new Error(`connection closed (${closed!.code}) after ${client.messages.length} of ${n} messages`);
  return client.messages.slice(0, n);
}

/** Resolve with the next `n` messages of `ws`; reject if it closes first or after `ms`. */
export function nextMessages(ws: WebSocket, n: number, ms = 5000): Promise<Received[]> {
  const got: Received[] = [];
  if (n === 0) return Promise.resolve(got);
  return withTimeout(
    new Promise<Received[]>((resolve, reject) => {
      const onMessage = (data: Buffer, isBinary: boolean): void => {
        got.push({ data: Buffer.from(data), isBinary });
        if (got.length === n) {
          cleanup();
          resolve(got);
        }
      };
      const onClose = (code: number): void => {
        cleanup();
        reject(new Error(`connection closed (${code}) after ${got.length} of ${n} messages`));
      };
      const cleanup = (): void => {
        ws.off('message', onMessage);
        ws.off('close', onClose);
      };
      ws.on('message', onMessage);
      ws.on('close', onClose);
    }),
    ms,
    `${n} messages`,
  );
}

export function closeEvent(ws: WebSocket, ms = 3000): Promise<CloseInfo> {
  if (ws.readyState === 3) return Promise.reject(new Error('already closed'));
  return withTimeout(
    new Promise((resolve) => ws.once('close', (code, reason, wasClean) => resolve({ code, reason, wasClean }))),
    ms,
    'the close event',
  );
}

export interface TracedMessage {
  opcode: number;
  compressed: boolean;
  frames: TracedFrame[];
  /** The payload as sent (compressed bytes for a compressed message). */
  payload: Buffer;
}

/** Group traced data frames of one direction into messages; control frames are returned apart. */
export function wireMessages(
  frames: readonly TracedFrame[],
  direction: 'in' | 'out',
): { messages: TracedMessage[]; controls: TracedFrame[] } {
  const messages: TracedMessage[] = [];
  const controls: TracedFrame[] = [];
  let open: TracedFrame[] | null = null;
  for (const frame of frames) {
    if (frame.direction !== direction) continue;
    if ((frame.opcode & 0x8) !== 0) {
      controls.push(frame);
      continue;
    }
    if (frame.opcode !== OP.CONT) open = [];
    if (open === null) throw new Error('continuation frame with no message open in the trace');
    open.push(frame);
    if (frame.fin) {
      messages.push({
        opcode: open[0]!.opcode,
        compressed: open[0]!.rsv1,
        frames: open,
        payload: Buffer.concat(open.map((f) => f.payload)),
      });
      open = null;
    }
  }
  return { messages, controls };
}

/** Skip the test, saying why (on the console too, so a CI log shows it), when `why` is set. */
export function skipBecause(t: { skip(message: string): void }, why: string | null): boolean {
  if (why === null) return false;
  console.log(`# skipped: ${why}`);
  t.skip(why);
  return true;
}
