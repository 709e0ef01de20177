/**
 * Target 6: topics. One to four clients connect to a server over in-memory duplexes, each with its
 * own permessage-deflate agreement (none, context takeover, no context takeover, a small window), and
 * the fuzzer's bytes become a sequence of subscribe, unsubscribe, publish (binary or text, with or
 * without `except` and compression) and closes (the client's close frame, the server's close(),
 * terminate()). A model says who must receive what: after each step the counts (`publish`'s return,
 * `subscriberCount`, `socket.topics`) match it, and at the end each client's bytes, read by the
 * independent test peer's decoder and inflater, are exactly the publications the model says it
 * must have received, in order; every close is reported once and nothing is left subscribed.
 */
import { clientFrame, closePayload, OP } from '../../spec-tests/helpers/peer/frames.js';
import { negotiated } from '../../spec-tests/helpers/peer/deflate.js';
import { handshakeRequest, headEnd, parseResponseHead } from '../../spec-tests/helpers/peer/http.js';
import { ReadyState } from '../../src/protocol/constants.js';
import { WebSocketServer } from '../../src/websocket/server.js';
import type { WebSocket } from '../../src/websocket/websocket.js';
import { MemorySocket, ServerFrameChecker, settle } from './echo-server.js';
import { InputReader, check, type FuzzTarget } from './target.js';

const TOPICS = ['news', 'chat', '', 'news/sport'];
const OFFERS: readonly (string | undefined)[] = [
  undefined,
  'permessage-deflate',
  'permessage-deflate; server_no_context_takeover',
  'permessage-deflate; server_no_context_takeover; server_max_window_bits=9',
];

interface Client {
  stream: MemorySocket;
  socket: WebSocket;
  closes: number;
  /** In the model: open, or gone (its close event was heard). */
  open: boolean;
  /** The publications it must have received, in order. */
  expected: { binary: boolean; data: Buffer }[];
}

let server: WebSocketServer | null = null;
const pending: WebSocket[] = [];

function theServer(): WebSocketServer {
  if (server !== null) return server;
  server = new WebSocketServer({ perMessageDeflate: { threshold: 16 }, handshakeTimeout: 0 });
  server.on('connection', (socket) => {
    socket.on('error', () => {});
    pending.push(socket);
  });
  server.on('error', () => {});
  return server;
}

async function connect(offer: string | undefined): Promise<Client> {
  const wss = theServer();
  const stream = new MemorySocket();
  stream.on('error', () => {});
  wss.handleSocket(stream);
  stream.push(handshakeRequest({ extensions: offer === undefined ? [] : [offer] }));
  check(await settle(() => pending.length > 0), 'the handshake did not complete');
  const socket = pending.shift()!;
  const client: Client = { stream, socket, closes: 0, open: true, expected: [] };
  socket.on('close', () => client.closes++);
  return client;
}

/** A payload the fuzzer sizes: compressible, and different for each publication. */
function payload(size: number, serial: number, binary: boolean): Buffer {
  const text = Buffer.from((`#${serial} ` + 'abcdefghij'.repeat(Math.ceil(size / 10) + 1)).slice(0, size + 4));
  if (binary) for (let i = 0; i < text.length; i++) text[i] ^= i & 0x0f;
  return text;
}

/** The model's subscribers of `topic` among clients still open. */
const subscribersOf = (clients: Client[], model: Map<Client, Set<string>>, topic: string): Client[] =>
  clients.filter((c) => c.open && model.get(c)!.has(topic));

async function gone(client: Client): Promise<void> {
  check(await settle(() => client.closes > 0), 'a closed connection was never reported closed');
  client.open = false;
}

export const target: FuzzTarget = {
  description: 'topics: subscribe / unsubscribe / publish / close sequences against a model of who receives what',
  maxLength: 512,
  dictionary: [],
  async run(input) {
    const reader = new InputReader(input);
    const count = 1 + (reader.byte() % 4);
    const wss = theServer();
    const clients: Client[] = [];
    for (let i = 0; i < count; i++) clients.push(await connect(reader.choose(OFFERS)));
    try {
      await steps(reader.rest(), clients, wss);
    } finally {
      // Whatever happened, nothing of this input is left for the next one.
      for (const client of clients) if (client.socket.readyState !== ReadyState.CLOSED) client.socket.terminate();
      await settle(() => wss.clients.size === 0);
    }
  },
};

async function steps(ops: Buffer, clients: Client[], wss: WebSocketServer): Promise<void> {
  const model = new Map(clients.map((c) => [c, new Set<string>()]));
  let serial = 0;
  for (let at = 0; at + 2 < ops.length; at += 3) {
    const op = ops[at]! % 6;
    const client = clients[ops[at + 1]! % clients.length]!;
    const topic = TOPICS[ops[at + 2]! % TOPICS.length]!;
    const subscribed = model.get(client)!;
    switch (op) {
      case 0: {
        const added = client.socket.subscribe(topic);
        check(added === (client.open && !subscribed.has(topic)), `subscribe returned ${added}`);
        if (added) subscribed.add(topic);
        break;
      }
      case 1: {
        const removed = client.socket.unsubscribe(topic);
        check(removed === (client.open && subscribed.has(topic)), `unsubscribe returned ${removed}`);
        subscribed.delete(topic);
        break;
      }
      case 2: {
        const flags = ops[at + 1]!;
        const binary = (flags & 0x10) !== 0;
        const except = (flags & 0x20) !== 0 ? client : undefined;
        const data = payload((flags >> 6) * 40 + (ops[at + 2]! & 7), serial++, binary);
        const sent = wss.publish(topic, binary ? data : data.toString(), {
          binary,
          ...(except === undefined ? {} : { except: except.socket }),
          compress: (flags & 0x40) === 0,
        });
        const receivers = subscribersOf(clients, model, topic).filter((c) => c !== except);
        check(sent === receivers.length, `publish reached ${sent}, the model says ${receivers.length}`);
        for (const receiver of receivers) receiver.expected.push({ binary, data });
        break;
      }
      case 3:
        // The client closes (RFC 6455 §5.5.1): its close frame, then the end of its stream.
        if (!client.open) break;
        client.stream.push(clientFrame({ opcode: OP.CLOSE, payload: closePayload(1000), maskKey: Buffer.alloc(4, 7) }));
        client.stream.push(null);
        await gone(client);
        break;
      case 4:
        if (!client.open) break;
        client.socket.terminate();
        await gone(client);
        break;
      case 5:
        // The server closes; the client answers and ends.
        if (!client.open) break;
        client.socket.close(1000);
        client.stream.push(clientFrame({ opcode: OP.CLOSE, payload: closePayload(1000), maskKey: Buffer.alloc(4, 9) }));
        client.stream.push(null);
        await gone(client);
        break;
    }
    if (!client.open) model.get(client)!.clear();
    for (const name of TOPICS) {
      const expected = subscribersOf(clients, model, name).length;
      check(wss.subscriberCount(name) === expected, `subscriberCount(${name}) differs from the model`);
    }
    const topics = [...client.socket.topics].sort().join('|');
    check(topics === [...model.get(client)!].sort().join('|'), 'socket.topics differs from the model');
  }

  // Each client's bytes: the 101, then exactly the publications the model says, in order.
  check(await settle(() => clients.every((c) => !c.open || c.socket.bufferedAmount === 0)), 'bytes never written');
  for (const client of clients) {
    const out = Buffer.concat(client.stream.written);
    const end = headEnd(out);
    const response = parseResponseHead(out.subarray(0, end - 4).toString('latin1'));
    check(response.status === 101, 'a handshake was refused');
    const extensions = response.header('sec-websocket-extensions');
    const checker = new ServerFrameChecker(extensions === undefined ? null : negotiated(extensions));
    checker.decoder.push(out.subarray(end));
    const got = checker.messages.map((m) => `${m.opcode === OP.BINARY}:${m.data.toString('hex')}`);
    const want = client.expected.map((m) => `${m.binary}:${m.data.toString('hex')}`);
    check(got.join() === want.join(), () => `a client received ${got.length} messages, the model says ${want.length}`);
  }
  for (const client of clients) if (client.open) client.socket.terminate();
  check(await settle(() => clients.every((c) => c.closes > 0) && wss.clients.size === 0), 'connections left open');
  for (const client of clients) check(client.closes === 1, `a close reported ${client.closes} times`);
  for (const name of TOPICS) check(wss.subscriberCount(name) === 0, 'a closed connection is still subscribed');
}
