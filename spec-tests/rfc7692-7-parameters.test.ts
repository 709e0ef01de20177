/**
 * RFC 7692 §7.1: the four permessage-deflate parameters, and what each end does after the
 * agreement, in both of our roles: our server (WebSocketServer) against the raw client peer, our
 * client (connect()) against the raw server peer. Compressed bytes come from node:zlib driven by
 * the test (helpers/peer/deflate.ts), never from src/protocol/permessage-deflate.ts:
 *
 * - receiving: a message that refers back into the previous one is accepted unless the agreement
 *   removed the sender's context takeover, and then it fails the connection with 1002 — only on the
 *   side that was promised a fresh context; a message compressed with the agreed window is accepted;
 * - sending: what our side sends inflates with a strict inflater set to exactly what was agreed
 *   (window bits, 8 included; a fresh window per message when our side promised no context
 *   takeover), and when context takeover is allowed our side does use it.
 *
 * The agreement is read from the response with the RFC's meaning: a parameter binds the side it
 * names when the response says it (§7.1.1.1, §7.1.1.2). An offered client_no_context_takeover the
 * response does not repeat binds nobody (autobahn-python keeps its context then).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { HandshakeError, connect, type PerMessageDeflateOptions } from '../src/index.js';
import { prng, randomBuffer } from './helpers/data.js';
import {
  MiB,
  closeEvent,
  startServer,
  tracedClient,
  withTimeout,
  type ConnectionHandler,
  type ServerConnection,
  type TestServer,
  type TracedClient,
} from './helpers/library.js';
import {
  Compressor,
  RawClient,
  RawServer,
  StrictInflater,
  acceptResponse,
  deflateParams,
  destroyRawClients,
  negotiated,
  type DeflateAgreement,
  type ServerPeer,
} from './helpers/peer/index.js';

after(() => destroyRawClients());

const T = { timeout: 30_000 };

/** The offer autobahn-python (and so Autobahn|Testsuite) makes by default. */
const AUTOBAHN_OFFER = 'permessage-deflate; client_no_context_takeover; client_max_window_bits';
/** The offer Chromium makes. */
const CHROMIUM_OFFER = 'permessage-deflate; client_max_window_bits';

// ---------------------------------------------------------------------------------------------
// Data: messages whose content repeats earlier messages, so that context matters
// ---------------------------------------------------------------------------------------------

/** 1.5 MiB of ASCII: words, and blocks of random letters that come back at distances from 300 B to 20 KiB. */
const corpus = ((): Buffer => {
  const rng = prng(7692);
  const letters = (n: number): string =>
    Array.from({ length: n }, () => String.fromCharCode(97 + (rng() % 26))).join('');
  const blocks = [300, 1000, 5000, 20_000].map(letters);
  const words = ['deflate', 'window', 'context', 'takeover', 'frame', 'message', 'server', 'client', 'the', 'of'];
  const parts: string[] = [];
  let length = 0;
  while (length < 1.5 * MiB) {
    const pick = rng() % 8;
    const piece = pick < 4 ? blocks[pick]! : `${words[rng() % words.length]!} `;
    parts.push(piece);
    length += piece.length;
  }
  return Buffer.from(parts.join(''), 'latin1');
})();

interface Planned {
  data: Buffer;
  binary: boolean;
}

const SIZES = [0, 1, 17, 300, 1024, 4000, 16_000, 65_536, 200_000];

/**
 * `count` messages, text and binary, 0 B to 1 MiB: slices of the corpus, every third one a repeat
 * of the message before it (a back-reference into the previous message), some binary ones random
 * bytes; every 150th is 1 MiB.
 */
function plan(count: number, seed: number): Planned[] {
  const rng = prng(seed);
  const out: Planned[] = [];
  for (let i = 0; i < count; i++) {
    if (i % 3 === 2) {
      out.push(out[i - 1]!);
      continue;
    }
    const binary = i % 2 === 1;
    const size = i % 150 === 149 ? MiB : SIZES[i % SIZES.length]!;
    const at = rng() % (corpus.length - size);
    out.push({ data: binary && i % 4 === 1 ? randomBuffer(size, rng) : corpus.subarray(at, at + size), binary });
  }
  return out;
}

/**
 * Two copies of a message compressed with context: the second is a few bytes that refer back
 * into the first. Checked here: it really cannot be inflated from an empty window.
 */
function backReferencePair(bits = 15, size = 2000): { data: Buffer; first: Buffer; second: Buffer; fresh: Buffer } {
  const data = randomBuffer(Math.min(size, (1 << bits) - 300), prng(bits * 31 + size));
  const compressor = new Compressor({ windowBits: bits });
  const first = compressor.compress(data);
  const second = compressor.compress(data);
  assert.ok(
    second.length * 10 < first.length,
    `the repeat is a back-reference (${second.length} bytes, the first ${first.length})`,
  );
  assert.throws(
    () => new StrictInflater(15, false).inflate(second),
    /distance too far back/,
    'the repeat needs the previous message',
  );
  return { data, first, second, fresh: new Compressor({ windowBits: bits, contextTakeover: false }).compress(data) };
}

/** How big to make a repeated message so a `bits` window (zlib reaches 2^bits - 262 back) holds it. */
// A message that fits the window twice over with room to spare (8 bits: 200 of its 256 bytes).
const repeatSize = (bits: number): number => (bits === 8 ? 200 : Math.min(4096, (1 << bits) - 300));

// ---------------------------------------------------------------------------------------------
// Our server against the raw client
// ---------------------------------------------------------------------------------------------

async function deflateServer(
  options: PerMessageDeflateOptions | boolean,
  handler: ConnectionHandler = true,
): Promise<TestServer> {
  return startServer({ pingInterval: 0, closeTimeout: 1000, perMessageDeflate: options }, handler);
}

interface RawSession {
  client: RawClient;
  connection: ServerConnection;
  /** The Sec-WebSocket-Extensions of the 101, or undefined. */
  response: string | undefined;
  agreement: DeflateAgreement | null;
}

/** A raw client offering `offers` (one field each); its echoes are inflated strictly as the response agreed. */
async function rawSession(server: TestServer, offers: string[]): Promise<RawSession> {
  const client = await RawClient.connect(server.port, { extensions: offers });
  const connection = await server.connectionOf(client);
  const response = client.header('sec-websocket-extensions');
  const agreement = response === undefined ? null : negotiated(response);
  if (agreement !== null)
    client.inflateWith(new StrictInflater(agreement.serverBits, !agreement.serverNoContextTakeover));
  return { client, connection, response, agreement };
}

/** Our server failed the connection: a 1002 close frame, TCP closed, and a 'close' event with 1002. */
async function serverFailed(session: RawSession, code = 1002): Promise<void> {
  const close = await session.client.waitCloseFrame(5000);
  assert.equal(close.code, code, `close ${close.code} "${close.reason}"`);
  await session.client.waitClosed(5000);
  const record = await withTimeout(session.connection.closed, 5000, "our server's 'close'");
  assert.equal(record.code, code);
  assert.equal(record.wasClean, false);
}

/** Send `messages` compressed with `compressor`, wait for every echo and compare. */
async function echoCompressed(
  session: RawSession,
  compressor: Compressor,
  messages: readonly Planned[],
  ms = 20_000,
): Promise<void> {
  const { client } = session;
  const before = client.messages.length;
  for (const m of messages) client.sendCompressed(compressor.compress(m.data), { binary: m.binary });
  await client.until(
    () => client.messages.length >= before + messages.length || client.closed,
    ms,
    `${messages.length} echoes`,
  );
  assert.equal(client.messages.length, before + messages.length, `every message echoed (${client.describe()})`);
  assert.deepEqual(client.protocolErrors, [], 'the echoes inflate as agreed');
  messages.forEach((m, i) => {
    const got = client.messages[before + i]!;
    assert.equal(got.isBinary, m.binary, `message ${i}: type`);
    assert.ok(got.data.equals(m.data), `message ${i} (${m.data.length} bytes) came back different`);
  });
}

/** Send `messages` uncompressed and return how our server compressed each echo (asserting it inflates as agreed). */
async function echoesOf(session: RawSession, messages: readonly Planned[], ms = 20_000): Promise<Buffer[]> {
  const { client } = session;
  const before = client.wire.length;
  for (const m of messages) client.sendFrame({ opcode: m.binary ? 0x2 : 0x1, payload: m.data });
  await client.until(
    () => client.wire.length >= before + messages.length || client.closed,
    ms,
    `${messages.length} echoes`,
  );
  assert.deepEqual(client.protocolErrors, [], 'every echo inflates with a strict inflater set to the agreement');
  const wire = client.wire.slice(before);
  assert.equal(wire.length, messages.length);
  wire.forEach((w, i) => {
    assert.equal(w.compressed, true, `echo ${i} is compressed`);
    assert.ok(
      client.messages[client.messages.length - messages.length + i]!.data.equals(messages[i]!.data),
      `echo ${i} inflates to what was sent`,
    );
  });
  return wire.map((w) => w.payload);
}

// ---------------------------------------------------------------------------------------------
// Our client against the raw server
// ---------------------------------------------------------------------------------------------

interface ClientSession {
  server: RawServer;
  peer: ServerPeer;
  client: TracedClient;
  /** What our client offered. */
  offer: string | undefined;
}

/** A raw server answering every offer with `extensions` (null: no Sec-WebSocket-Extensions), and our client. */
async function clientSession(
  extensions: string | null,
  options: PerMessageDeflateOptions | boolean,
): Promise<ClientSession> {
  const server = await RawServer.start({
    respond: (request) =>
      acceptResponse(request, { headers: extensions === null ? [] : [['Sec-WebSocket-Extensions', extensions]] }),
  });
  try {
    const client = await tracedClient(server.url(), { perMessageDeflate: options });
    const peer = await withTimeout(server.nextPeer(), 3000, 'the raw server to see our client');
    return { server, peer, client, offer: peer.request!.header('sec-websocket-extensions') };
  } catch (error) {
    // Our client refused the answer: nothing is left listening.
    await server.close();
    throw error;
  }
}

/** Our client failed the connection: a 1002 close frame, its end of TCP, and a 'close' event with 1002. */
async function clientFailed(session: ClientSession, code = 1002): Promise<void> {
  const close = await session.peer.waitCloseFrame(5000);
  assert.equal(close.code, code, `close ${close.code} "${close.reason}"`);
  await session.peer.waitPeerEnd(5000);
  const closed = await withTimeout(session.client.closed, 5000, "our client's 'close'");
  assert.equal(closed.code, code);
  assert.equal(closed.wasClean, false);
}

/** Send `messages` from our client and return their compressed payloads (asserting they inflate as told). */
async function sentBy(
  session: ClientSession,
  messages: readonly Planned[],
  inflater: StrictInflater,
  ms = 20_000,
): Promise<Buffer[]> {
  const { peer, client } = session;
  peer.inflateWith(inflater);
  const before = peer.wire.length;
  for (const m of messages) client.ws.send(m.data, { binary: m.binary });
  await peer.until(
    () => peer.wire.length >= before + messages.length || peer.closed,
    ms,
    `${messages.length} messages from our client`,
  );
  assert.deepEqual(
    peer.protocolErrors,
    [],
    `every message inflates with a strict ${inflater.windowBits}-bit inflater${inflater.contextTakeover ? '' : ', fresh each time'}`,
  );
  const wire = peer.wire.slice(before);
  assert.equal(wire.length, messages.length);
  wire.forEach((w, i) => {
    assert.equal(w.compressed, true, `message ${i} is compressed`);
    assert.ok(peer.messages[before + i]!.data.equals(messages[i]!.data), `message ${i} inflates to what was sent`);
  });
  return wire.map((w) => w.payload);
}

/** Send `messages` compressed from the raw server and check our client receives each one whole. */
async function deliverTo(
  session: ClientSession,
  compressor: Compressor,
  messages: readonly Planned[],
  ms = 20_000,
): Promise<void> {
  const { peer, client } = session;
  const before = client.messages.length;
  for (const m of messages) peer.sendCompressed(compressor.compress(m.data), { binary: m.binary });
  await withTimeout(
    (async () => {
      while (client.messages.length < before + messages.length) {
        if (client.ws.readyState === 3)
          throw new Error(`our client closed after ${client.messages.length - before} of ${messages.length} messages`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })(),
    ms,
    `${messages.length} messages to reach our client`,
  );
  messages.forEach((m, i) => {
    const got = client.messages[before + i]!;
    assert.equal(got.isBinary, m.binary, `message ${i}: type`);
    assert.ok(got.data.equals(m.data), `message ${i} (${m.data.length} bytes) arrived different`);
  });
}

async function endSession(session: ClientSession): Promise<void> {
  if (session.client.ws.readyState !== 3) {
    session.client.ws.terminate();
    await closeEvent(session.client.ws).catch(() => {});
  }
  await session.server.close();
}

/** connect() must refuse this response: a HandshakeError, and the TCP connection closed. */
async function clientRefuses(extensions: string, options: PerMessageDeflateOptions | boolean): Promise<void> {
  const server = await RawServer.start({
    respond: (request) => acceptResponse(request, { headers: [['Sec-WebSocket-Extensions', extensions]] }),
  });
  try {
    await assert.rejects(
      withTimeout(connect(server.url(), { perMessageDeflate: options, handshakeTimeout: 3000 }), 5000, 'connect()'),
      HandshakeError,
    );
    const peer = await withTimeout(server.nextPeer(), 3000, 'the request');
    await peer.waitClosed(3000);
  } finally {
    await server.close();
  }
}

const same = (a: Buffer, b: Buffer): boolean => a.equals(b);

// =============================================================================================

describe('RFC 7692 §7.1.1.1 server_no_context_takeover', () => {
  describe('our server', () => {
    for (const [what, options, offer] of [
      ['offered by the client', true, 'permessage-deflate; server_no_context_takeover'],
      [
        'imposed by the server (serverNoContextTakeover), not offered',
        { serverNoContextTakeover: true },
        'permessage-deflate',
      ],
    ] as [string, PerMessageDeflateOptions | boolean, string][]) {
      it(`${what}: said in the response; every message our server sends inflates from an empty window`, T, async () => {
        const server = await deflateServer(
          options === true ? { threshold: 0 } : { ...(options as object), threshold: 0 },
        );
        try {
          const session = await rawSession(server, [offer]);
          assert.equal(deflateParams(session.response!).get('server_no_context_takeover'), true, session.response);
          assert.equal(session.agreement!.serverNoContextTakeover, true);
          const message = { data: randomBuffer(4096, prng(1)), binary: true };
          const messages = [message, message, message, ...plan(60, 11)];
          // The raw client inflates every echo with a fresh 15-bit window (rawSession set it so).
          const echoes = await echoesOf(session, messages);
          // Compressed afresh, the same message gives the same bytes every time.
          assert.ok(
            same(echoes[0]!, echoes[1]!) && same(echoes[1]!, echoes[2]!),
            'a repeated message is compressed the same each time',
          );
        } finally {
          await server.close();
        }
      });
    }

    it(
      'agreed: the client keeps its own context, and its back-references are accepted (the parameter binds the server only)',
      T,
      async () => {
        const server = await deflateServer(true);
        try {
          const session = await rawSession(server, ['permessage-deflate; server_no_context_takeover']);
          assert.equal(session.agreement!.clientNoContextTakeover, false);
          await echoCompressed(session, new Compressor(), plan(120, 12));
        } finally {
          await server.close();
        }
      },
    );

    it(
      'not agreed: absent from the response, and our server does use its context (a repeated message comes out much smaller)',
      T,
      async () => {
        const server = await deflateServer({ threshold: 0 });
        try {
          const session = await rawSession(server, ['permessage-deflate']);
          assert.equal(deflateParams(session.response!).has('server_no_context_takeover'), false, session.response);
          const message = { data: randomBuffer(4096, prng(2)), binary: false as boolean };
          message.data = Buffer.from(message.data.toString('base64').slice(0, 4096));
          const [first, second] = await echoesOf(session, [message, message]);
          assert.ok(
            second!.length * 10 < first!.length,
            `the repeat took ${second!.length} bytes, the first ${first!.length}`,
          );
          // Hundreds more, each inflated with the context of all before it.
          await echoesOf(session, plan(300, 13));
        } finally {
          await server.close();
        }
      },
    );
  });

  describe('our client', () => {
    it(
      'said in the response though not offered (§7.1.1.1 allows it): accepted; a server message referring back into the previous one is a 1002',
      T,
      async () => {
        const session = await clientSession('permessage-deflate; server_no_context_takeover', true);
        try {
          assert.doesNotMatch(session.offer ?? '', /server_no_context_takeover/);
          const pair = backReferencePair();
          // Fresh each time: accepted.
          await deliverTo(session, new Compressor({ contextTakeover: false }), [
            { data: pair.data, binary: true },
            { data: pair.data, binary: true },
          ]);
          session.peer.sendCompressed(pair.first, { binary: true });
          session.peer.sendCompressed(pair.second, { binary: true });
          await clientFailed(session);
          assert.equal(
            session.client.messages.length,
            3,
            'the first message was delivered, the back-reference was not',
          );
        } finally {
          await endSession(session);
        }
      },
    );

    it(
      'asked for (serverNoContextTakeover): offered; a response without it is refused, one with it accepted',
      T,
      async () => {
        await clientRefuses('permessage-deflate', { serverNoContextTakeover: true });
        const session = await clientSession('permessage-deflate; server_no_context_takeover', {
          serverNoContextTakeover: true,
        });
        try {
          assert.equal(deflateParams(session.offer!).get('server_no_context_takeover'), true, session.offer);
        } finally {
          await endSession(session);
        }
      },
    );

    it('agreed: our client keeps its own context (the parameter binds the server only)', T, async () => {
      const session = await clientSession('permessage-deflate; server_no_context_takeover', { threshold: 0 });
      try {
        const message = { data: randomBuffer(4096, prng(3)), binary: true };
        const [first, second] = await sentBy(
          session,
          [message, message, ...plan(60, 14)],
          new StrictInflater(15, true),
        );
        assert.ok(
          second!.length * 10 < first!.length,
          `the repeat took ${second!.length} bytes, the first ${first!.length}`,
        );
      } finally {
        await endSession(session);
      }
    });

    it('not agreed: hundreds of server messages referring back into earlier ones are accepted', T, async () => {
      const session = await clientSession('permessage-deflate', true);
      try {
        await deliverTo(session, new Compressor(), plan(300, 15));
      } finally {
        await endSession(session);
      }
    });
  });
});

// =============================================================================================

describe('RFC 7692 §7.1.1.2 client_no_context_takeover', () => {
  describe('our server', () => {
    it(
      "autobahn-python's default offer: said back in the response; then a client message referring back into the previous one is a 1002",
      T,
      async () => {
        const server = await deflateServer(true);
        try {
          const session = await rawSession(server, [AUTOBAHN_OFFER]);
          assert.equal(deflateParams(session.response!).get('client_no_context_takeover'), true, session.response);
          const pair = backReferencePair();
          // Following the response (a fresh window per message): accepted.
          await echoCompressed(session, new Compressor({ contextTakeover: false }), [
            { data: pair.data, binary: true },
            { data: pair.data, binary: true },
          ]);
          session.client.sendCompressed(pair.first, { binary: true });
          session.client.sendCompressed(pair.second, { binary: true });
          await serverFailed(session);
          // The first of the two is echoed, unless its echo was still being compressed when the
          // second failed the connection (failing drops what waits for zlib, and the close frame
          // goes at once); the back-reference is never echoed.
          const echoed = session.client.messages.length - 2;
          assert.ok(echoed === 0 || echoed === 1, `${echoed} of the two echoed: the back-reference must not be`);
        } finally {
          await server.close();
        }
      },
    );

    it(
      "Chromium's offer: not in the response, and hundreds of client messages referring back into earlier ones are accepted",
      T,
      async () => {
        const server = await deflateServer(true);
        try {
          const session = await rawSession(server, [CHROMIUM_OFFER]);
          assert.equal(deflateParams(session.response!).has('client_no_context_takeover'), false, session.response);
          await echoCompressed(session, new Compressor(), plan(300, 21));
        } finally {
          await server.close();
        }
      },
    );

    const offers: [string, string, PerMessageDeflateOptions][] = [
      ['a plain offer', 'permessage-deflate', {}],
      ["Chromium's offer", CHROMIUM_OFFER, {}],
      ["autobahn-python's offer", AUTOBAHN_OFFER, {}],
      ['client_no_context_takeover alone', 'permessage-deflate; client_no_context_takeover', {}],
      [
        'a plain offer, the server imposing it (clientNoContextTakeover)',
        'permessage-deflate',
        { clientNoContextTakeover: true },
      ],
      ["Chromium's offer, the server imposing it", CHROMIUM_OFFER, { clientNoContextTakeover: true }],
      [
        'everything offered',
        'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits',
        {},
      ],
    ];
    for (const [what, offer, options] of offers) {
      it(
        `${what}: a client that keeps its context unless the response says otherwise is never failed for it`,
        T,
        async () => {
          const server = await deflateServer(options);
          try {
            const session = await rawSession(server, [offer]);
            const { clientNoContextTakeover, clientBits } = session.agreement!;
            if (options.clientNoContextTakeover === true)
              assert.equal(
                clientNoContextTakeover,
                true,
                `the server option puts it in the response: ${session.response}`,
              );
            const size = repeatSize(clientBits);
            const data = corpus.subarray(1000, 1000 + size);
            const compressor = new Compressor({ windowBits: clientBits, contextTakeover: !clientNoContextTakeover });
            await echoCompressed(session, compressor, [
              { data, binary: false },
              { data, binary: false },
              ...plan(30, 22),
            ]);
            if (clientNoContextTakeover) {
              // Said: the server may drop its window between messages, and a back-reference fails.
              const pair = backReferencePair(clientBits, size);
              session.client.sendCompressed(pair.first, { binary: true });
              session.client.sendCompressed(pair.second, { binary: true });
              await serverFailed(session);
            }
          } finally {
            await server.close();
          }
        },
      );
    }

    it('agreed: our server keeps its own context (the parameter binds the client only)', T, async () => {
      const server = await deflateServer({ threshold: 0 });
      try {
        const session = await rawSession(server, [AUTOBAHN_OFFER]);
        assert.equal(session.agreement!.serverNoContextTakeover, false);
        const message = { data: randomBuffer(4096, prng(4)), binary: true };
        const [first, second] = await echoesOf(session, [message, message, ...plan(60, 23)]);
        assert.ok(
          second!.length * 10 < first!.length,
          `the repeat took ${second!.length} bytes, the first ${first!.length}`,
        );
      } finally {
        await server.close();
      }
    });
  });

  describe('our client', () => {
    it(
      'said in the response (not offered): every message our client sends inflates from an empty window',
      T,
      async () => {
        const session = await clientSession('permessage-deflate; client_no_context_takeover', { threshold: 0 });
        try {
          assert.doesNotMatch(session.offer ?? '', /client_no_context_takeover/);
          const message = { data: randomBuffer(4096, prng(5)), binary: true };
          const sent = await sentBy(session, [message, message, ...plan(60, 31)], new StrictInflater(15, false));
          assert.ok(same(sent[0]!, sent[1]!), 'compressed afresh, a repeated message gives the same bytes');
        } finally {
          await endSession(session);
        }
      },
    );

    it(
      'agreed: the server keeps its context, and its back-references are accepted (the parameter binds the client only)',
      T,
      async () => {
        const session = await clientSession('permessage-deflate; client_no_context_takeover', true);
        try {
          await deliverTo(session, new Compressor(), plan(120, 32));
        } finally {
          await endSession(session);
        }
      },
    );

    it(
      'offered (clientNoContextTakeover) but not said back: our client still compresses every message afresh, as it offered to',
      T,
      async () => {
        const session = await clientSession('permessage-deflate', { clientNoContextTakeover: true, threshold: 0 });
        try {
          assert.equal(deflateParams(session.offer!).get('client_no_context_takeover'), true, session.offer);
          await sentBy(session, plan(60, 33), new StrictInflater(15, false));
        } finally {
          await endSession(session);
        }
      },
    );

    it(
      'neither offered nor said: our client uses its context (a repeated message comes out much smaller), over hundreds of messages',
      T,
      async () => {
        const session = await clientSession('permessage-deflate', { threshold: 0 });
        try {
          const message = { data: randomBuffer(4096, prng(6)), binary: true };
          const [first, second] = await sentBy(
            session,
            [message, message, ...plan(300, 34)],
            new StrictInflater(15, true),
          );
          assert.ok(
            second!.length * 10 < first!.length,
            `the repeat took ${second!.length} bytes, the first ${first!.length}`,
          );
        } finally {
          await endSession(session);
        }
      },
    );
  });
});

// =============================================================================================

describe('RFC 7692 §7.1.2.1 server_max_window_bits', () => {
  describe('our server', () => {
    for (let bits = 8; bits <= 15; bits++) {
      it(
        `server_max_window_bits=${bits} offered: answered with ${bits} at most, and what our server sends inflates with a ${1 << bits}-byte window`,
        T,
        async () => {
          const server = await deflateServer({ threshold: 0 });
          try {
            const session = await rawSession(server, [`permessage-deflate; server_max_window_bits=${bits}`]);
            const agreed = Number(deflateParams(session.response!).get('server_max_window_bits'));
            assert.ok(agreed >= 8 && agreed <= bits, session.response);
            // rawSession inflates every echo with exactly `agreed` bits, keeping context.
            const size = repeatSize(agreed);
            const data = corpus.subarray(5000, 5000 + size);
            const echoes = await echoesOf(session, [
              { data, binary: false },
              { data, binary: false },
              ...plan(40, 40 + bits),
            ]);
            // Even with 8 bits our server refers back into the window it has (the repeat is a reference).
            assert.ok(
              echoes[1]!.length * 4 < echoes[0]!.length,
              `${agreed} bits: the repeat took ${echoes[1]!.length} bytes, the first ${echoes[0]!.length}`,
            );
          } finally {
            await server.close();
          }
        },
      );
    }

    it('imposed by the server (serverMaxWindowBits 10), not offered: said, and kept to', T, async () => {
      const server = await deflateServer({ serverMaxWindowBits: 10, threshold: 0 });
      try {
        const session = await rawSession(server, [CHROMIUM_OFFER]);
        assert.equal(deflateParams(session.response!).get('server_max_window_bits'), '10');
        await echoesOf(session, plan(60, 50));
        // Offered 12, limited to 9 by the server: the smaller.
        const limited = await deflateServer({ serverMaxWindowBits: 9, threshold: 0 });
        try {
          const other = await rawSession(limited, ['permessage-deflate; server_max_window_bits=12']);
          assert.equal(deflateParams(other.response!).get('server_max_window_bits'), '9');
          await echoesOf(other, plan(30, 51));
        } finally {
          await limited.close();
        }
      } finally {
        await server.close();
      }
    });

    for (const bad of [
      'server_max_window_bits',
      'server_max_window_bits=7',
      'server_max_window_bits=16',
      'server_max_window_bits=08',
    ]) {
      it(
        `${bad} offered: declined (§7.1.2.1: a value from 8 to 15), no extension, and RSV1 is then a 1002`,
        T,
        async () => {
          const server = await deflateServer(true);
          try {
            const session = await rawSession(server, [`permessage-deflate; ${bad}`]);
            assert.equal(session.response, undefined);
            session.client.sendCompressed(new Compressor().compress(Buffer.from('no extension agreed')));
            await serverFailed(session);
          } finally {
            await server.close();
          }
        },
      );
    }

    it(
      'agreed at 8: the client still compresses with its full window, and our server inflates far back-references',
      T,
      async () => {
        const server = await deflateServer(true);
        try {
          const session = await rawSession(server, ['permessage-deflate; server_max_window_bits=8']);
          assert.equal(session.agreement!.clientBits, 15);
          const far = corpus.subarray(0, 20_000);
          await echoCompressed(session, new Compressor(), [
            { data: far, binary: false },
            { data: far, binary: false },
            ...plan(30, 52),
          ]);
        } finally {
          await server.close();
        }
      },
    );
  });

  describe('our client', () => {
    for (const [offered, answered] of [
      [8, 8],
      [10, 10],
      [12, 9],
      [15, 15],
    ]) {
      it(
        `serverMaxWindowBits ${offered} offered, ${answered} answered: accepted, and server messages with a ${answered}-bit window are accepted`,
        T,
        async () => {
          const session = await clientSession(`permessage-deflate; server_max_window_bits=${answered}`, {
            serverMaxWindowBits: offered,
          });
          try {
            assert.equal(deflateParams(session.offer!).get('server_max_window_bits'), String(offered), session.offer);
            await deliverTo(session, new Compressor({ windowBits: answered! }), plan(60, 60 + offered!));
          } finally {
            await endSession(session);
          }
        },
      );
    }

    it('said in the response though not offered (§7.1.2.1 allows it): accepted', T, async () => {
      const session = await clientSession('permessage-deflate; server_max_window_bits=10', true);
      try {
        assert.doesNotMatch(session.offer ?? '', /server_max_window_bits/);
        await deliverTo(session, new Compressor({ windowBits: 10 }), plan(60, 70));
      } finally {
        await endSession(session);
      }
    });

    const refusals: [string, string, PerMessageDeflateOptions][] = [
      ['larger than offered', 'permessage-deflate; server_max_window_bits=12', { serverMaxWindowBits: 10 }],
      ['missing when offered', 'permessage-deflate', { serverMaxWindowBits: 10 }],
      ['without a value', 'permessage-deflate; server_max_window_bits', {}],
      ['7', 'permessage-deflate; server_max_window_bits=7', {}],
      ['16', 'permessage-deflate; server_max_window_bits=16', {}],
      ['08 (a leading zero)', 'permessage-deflate; server_max_window_bits=08', {}],
      ['twice', 'permessage-deflate; server_max_window_bits=10; server_max_window_bits=10', {}],
    ];
    for (const [what, response, options] of refusals) {
      it(`a response with server_max_window_bits ${what} is refused`, T, () => clientRefuses(response, options));
    }
  });
});

// =============================================================================================

describe('RFC 7692 §7.1.2.2 client_max_window_bits', () => {
  describe('our server', () => {
    for (let bits = 8; bits <= 15; bits++) {
      it(
        `Chromium's offer, the server limiting clients to ${bits} bits: said in the response, and the client's ${bits}-bit messages accepted`,
        T,
        async () => {
          const server = await deflateServer({ clientMaxWindowBits: bits });
          try {
            const session = await rawSession(server, [CHROMIUM_OFFER]);
            assert.equal(
              deflateParams(session.response!).get('client_max_window_bits'),
              String(bits),
              session.response,
            );
            const size = repeatSize(bits);
            const data = corpus.subarray(9000, 9000 + size);
            await echoCompressed(session, new Compressor({ windowBits: bits }), [
              { data, binary: false },
              { data, binary: false },
              ...plan(40, 80 + bits),
            ]);
          } finally {
            await server.close();
          }
        },
      );
    }

    it(
      'client_max_window_bits=10 offered: the response says 10 at most, and 10-bit messages are accepted',
      T,
      async () => {
        const server = await deflateServer(true);
        try {
          const session = await rawSession(server, ['permessage-deflate; client_max_window_bits=10']);
          assert.ok(session.agreement!.clientBits <= 10, session.response);
          await echoCompressed(session, new Compressor({ windowBits: 10 }), plan(60, 90));
        } finally {
          await server.close();
        }
      },
    );

    it(
      'not offered: never in the response even with the server option, and the client may use its full window',
      T,
      async () => {
        const server = await deflateServer({ clientMaxWindowBits: 9 });
        try {
          const session = await rawSession(server, ['permessage-deflate']);
          assert.equal(deflateParams(session.response!).has('client_max_window_bits'), false, session.response);
          const far = corpus.subarray(0, 20_000);
          await echoCompressed(session, new Compressor(), [
            { data: far, binary: false },
            { data: far, binary: false },
            ...plan(30, 91),
          ]);
        } finally {
          await server.close();
        }
      },
    );

    for (const bad of [
      'client_max_window_bits=7',
      'client_max_window_bits=16',
      'client_max_window_bits=08',
      'client_max_window_bits=abc',
    ]) {
      it(`${bad} offered: declined, no extension`, T, async () => {
        const server = await deflateServer(true);
        try {
          const session = await rawSession(server, [`permessage-deflate; ${bad}`]);
          assert.equal(session.response, undefined);
        } finally {
          await server.close();
        }
      });
    }
  });

  describe('our client', () => {
    it('offers client_max_window_bits (without a value) by default', T, async () => {
      const session = await clientSession('permessage-deflate', true);
      try {
        assert.equal(deflateParams(session.offer!).get('client_max_window_bits'), true, session.offer);
      } finally {
        await endSession(session);
      }
    });

    for (let bits = 8; bits <= 15; bits++) {
      it(
        `client_max_window_bits=${bits} in the response: what our client sends inflates with a ${1 << bits}-byte window`,
        T,
        async () => {
          const session = await clientSession(`permessage-deflate; client_max_window_bits=${bits}`, { threshold: 0 });
          try {
            const size = repeatSize(bits);
            const data = corpus.subarray(7000, 7000 + size);
            const sent = await sentBy(
              session,
              [{ data, binary: false }, { data, binary: false }, ...plan(40, 100 + bits)],
              new StrictInflater(bits, true),
            );
            assert.ok(
              sent[1]!.length * 4 < sent[0]!.length,
              `${bits} bits: the repeat took ${sent[1]!.length} bytes, the first ${sent[0]!.length}`,
            );
          } finally {
            await endSession(session);
          }
        },
      );
    }

    it(
      'offered with a value (clientMaxWindowBits 10): 10 in the offer; a response saying 9 is kept to',
      T,
      async () => {
        const session = await clientSession('permessage-deflate; client_max_window_bits=9', {
          clientMaxWindowBits: 10,
          threshold: 0,
        });
        try {
          assert.equal(deflateParams(session.offer!).get('client_max_window_bits'), '10', session.offer);
          await sentBy(session, plan(60, 110), new StrictInflater(9, true));
        } finally {
          await endSession(session);
        }
      },
    );

    it(
      'offered with a value (clientMaxWindowBits 10), answered with a larger one: accepted (the server may ignore the offered value), and our client keeps to its 10',
      T,
      async () => {
        const session = await clientSession('permessage-deflate; client_max_window_bits=12', {
          clientMaxWindowBits: 10,
          threshold: 0,
        });
        try {
          await sentBy(session, plan(60, 111), new StrictInflater(10, true));
        } finally {
          await endSession(session);
        }
      },
    );

    const refusals: [string, string, PerMessageDeflateOptions][] = [
      ['without a value', 'permessage-deflate; client_max_window_bits', {}],
      ['7', 'permessage-deflate; client_max_window_bits=7', {}],
      ['16', 'permessage-deflate; client_max_window_bits=16', {}],
      ['twice', 'permessage-deflate; client_max_window_bits=10; client_max_window_bits=10', {}],
    ];
    for (const [what, response, options] of refusals) {
      it(`a response with client_max_window_bits ${what} is refused`, T, () => clientRefuses(response, options));
    }
  });
});

describe('RFC 7692 §7.1.1: responses our client must refuse', () => {
  const refusals: [string, string, PerMessageDeflateOptions | boolean][] = [
    ['server_no_context_takeover with a value', 'permessage-deflate; server_no_context_takeover=1', true],
    ['client_no_context_takeover with a value', 'permessage-deflate; client_no_context_takeover=1', true],
    [
      'server_no_context_takeover twice',
      'permessage-deflate; server_no_context_takeover; server_no_context_takeover',
      true,
    ],
    [
      'client_no_context_takeover twice',
      'permessage-deflate; client_no_context_takeover; client_no_context_takeover',
      true,
    ],
    ['an unknown parameter', 'permessage-deflate; server_context_takeover', true],
    ['permessage-deflate to a client that did not offer it', 'permessage-deflate', false],
  ];
  for (const [what, response, options] of refusals) {
    it(`${what}: connect() rejects, TCP is closed`, T, () => clientRefuses(response, options));
  }
});
