/**
 * Topics (issue 15): socket.subscribe/unsubscribe/topics, server.publish to the subscribers of one
 * process (the in-process broker), framed once and compressed once per group of permessage-deflate
 * subscribers that can share the bytes (RFC 7692), unsubscribe on close, a publication held to each
 * subscriber's maxBufferedBytes like a send(), no leak after a million subscribe/unsubscribe cycles.
 * Clients are the independent test peer; compressed messages are inflated with the peer's own strict
 * inflater.
 */
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { after, describe, it } from 'node:test';
import { InvalidStateError, connect } from '../src/index.js';
import { startServer, type TestServer } from './helpers/library.js';
import { RawClient, StrictInflater, destroyRawClients } from './helpers/peer/index.js';
import { delay } from './helpers/peer/wait.js';

const servers: TestServer[] = [];
after(async () => {
  destroyRawClients();
  for (const server of servers) await server.close();
});

async function serve(options: Parameters<typeof startServer>[0] = {}): Promise<TestServer> {
  const server = await startServer(options, false);
  servers.push(server);
  return server;
}

describe('topics: subscribe, unsubscribe, publish', () => {
  it('a publication reaches the subscribers of its topic, once, and nobody else; except leaves one out', async () => {
    const server = await serve();
    const [a, b, c] = [
      await RawClient.connect(server.port),
      await RawClient.connect(server.port),
      await RawClient.connect(server.port),
    ];
    const [sa, sb, sc] = [await server.connectionOf(a!), await server.connectionOf(b!), await server.connectionOf(c!)];
    assert.equal(sa.ws.subscribe('news'), true);
    assert.equal(sa.ws.subscribe('news'), false, 'already subscribed');
    assert.equal(sb.ws.subscribe('news'), true);
    assert.equal(sb.ws.subscribe('sport'), true);
    assert.equal(sc.ws.subscribe('sport'), true);
    assert.deepEqual([...sb.ws.topics].sort(), ['news', 'sport']);
    assert.equal(server.wss.subscriberCount('news'), 2);

    assert.equal(server.wss.publish('news', 'headline'), 2);
    assert.equal(server.wss.publish('sport', Buffer.from([0, 1, 2, 255])), 2);
    assert.equal(server.wss.publish('news', 'not for a', { except: sa.ws }), 1);
    assert.equal(server.wss.publish('weather', 'nobody'), 0);
    await a!.waitMessages(1);
    await b!.waitMessages(3);
    await c!.waitMessages(1);
    await delay(200);
    assert.deepEqual(
      a!.messages.map((m) => [m.data.toString(), m.isBinary]),
      [['headline', false]],
    );
    assert.deepEqual(
      b!.messages.map((m) => [m.data.toString('hex'), m.isBinary]),
      [
        [Buffer.from('headline').toString('hex'), false],
        ['000102ff', true],
        [Buffer.from('not for a').toString('hex'), false],
      ],
    );
    assert.deepEqual(
      c!.messages.map((m) => m.data.toString('hex')),
      ['000102ff'],
    );

    assert.equal(sb.ws.unsubscribe('news'), true);
    assert.equal(sb.ws.unsubscribe('news'), false, 'no longer subscribed');
    assert.deepEqual([...sb.ws.topics], ['sport']);
    assert.equal(server.wss.publish('news', 'later'), 1);
  });

  it('a closed connection leaves every topic; it cannot subscribe again', async () => {
    const server = await serve();
    const client = await RawClient.connect(server.port);
    const { ws, closed } = await server.connectionOf(client);
    ws.subscribe('one');
    ws.subscribe('two');
    client.sendClose(1000);
    await closed;
    assert.equal(server.wss.subscriberCount('one'), 0);
    assert.equal(server.wss.subscriberCount('two'), 0);
    assert.equal(ws.topics.size, 0);
    assert.equal(ws.subscribe('one'), false, 'a closed connection would never leave');
    assert.equal(server.wss.subscriberCount('one'), 0);
    assert.equal(server.wss.publish('one', 'x'), 0);
  });

  it('topics are strings, and a server-side feature', async () => {
    const server = await serve({});
    const client = await RawClient.connect(server.port);
    const { ws } = await server.connectionOf(client);
    assert.throws(() => ws.subscribe(42 as unknown as string), TypeError);
    assert.throws(() => server.wss.publish(null as unknown as string, 'x'), TypeError);
    const ours = await connect(server.url);
    assert.throws(() => ours.subscribe('x'), InvalidStateError);
    assert.equal(ours.unsubscribe('x'), false);
    ours.terminate();
  });

  it("a publication counts against a subscriber's maxBufferedBytes like a send(): past it, 1008 for that one only", async () => {
    const KiB = 1024;
    const server = await serve({ maxBufferedBytes: 2048 * KiB });
    const [reader, other] = [await RawClient.connect(server.port), await RawClient.connect(server.port)];
    const [big, small] = [await server.connectionOf(reader!), await server.connectionOf(other!)];
    big.ws.subscribe('big');
    big.ws.subscribe('small');
    small.ws.subscribe('small');
    // In one turn, before anything can be written: 768 KiB, 1.5 MiB, then 2.25 MiB wait for the
    // first subscriber, though its peer reads. The third is past its limit: that publication does not
    // count it, and it is dropped at once (its close frame goes only if the kernel takes it with the rest).
    const chunk = Buffer.alloc(768 * KiB);
    assert.deepEqual(
      [1, 2, 3].map(() => server.wss.publish('big', chunk)),
      [1, 1, 0],
    );
    const record = await big.closed;
    assert.equal(record.code, 1008);
    assert.equal(record.wasClean, false);
    await reader!.waitClosed();
    // The other subscriber, with nothing waiting, goes on.
    assert.equal(server.wss.subscriberCount('big'), 0);
    assert.equal(server.wss.publish('small', 'still here'), 1);
    await other!.waitMessages(1);
    assert.equal(other!.messages[0]!.data.toString(), 'still here');
    assert.equal(small.closes.length, 0);
  });

  it('a million subscribe/unsubscribe cycles leave nothing behind', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const server = await serve();
    const client = await RawClient.connect(server.port);
    const { ws } = await server.connectionOf(client);
    ws.subscribe('stays');
    const cycle = (from: number, to: number): void => {
      for (let i = from; i < to; i++) {
        const topic = `topic-${i}`;
        ws.subscribe(topic);
        ws.unsubscribe(topic);
      }
    };
    cycle(0, 100_000); // warm-up: code and maps at their working size
    gc();
    const before = process.memoryUsage().heapUsed;
    cycle(100_000, 1_100_000);
    gc();
    const grown = process.memoryUsage().heapUsed - before;
    assert.deepEqual([...ws.topics], ['stays']);
    assert.equal(server.wss.subscriberCount('topic-5'), 0);
    assert.equal(server.wss.subscriberCount('stays'), 1);
    // A leak of even 8 bytes a cycle would be 8 MB; the margin is for the heap's own noise.
    assert.ok(grown < 4 * 1024 * 1024, `heap grew by ${grown} bytes over a million cycles`);
  });
});

describe('RFC 7692 §7.1.1.1 publications compressed once per group that can share them', () => {
  it('server_no_context_takeover peers with the same window get the same compressed bytes; others plain text', async () => {
    const server = await serve({ perMessageDeflate: true });
    const offer = (extension: string | null): Promise<RawClient> =>
      RawClient.connect(server.port, extension === null ? {} : { extensions: [extension] });
    const shared1 = await offer('permessage-deflate; server_no_context_takeover');
    const shared2 = await offer('permessage-deflate; server_no_context_takeover');
    const small = await offer('permessage-deflate; server_no_context_takeover; server_max_window_bits=10');
    const takeover = await offer('permessage-deflate');
    const plain = await offer(null);
    const clients = [shared1, shared2, small, takeover, plain];
    const sockets = await Promise.all(clients.map((c) => server.connectionOf(c)));
    for (const { ws } of sockets) ws.subscribe('feed');

    const text = Array.from({ length: 200 }, (_, i) => `{"tick":${i % 7},"price":"1${i % 3}.50"}`).join(',');
    // Interleave a connection's own compressed sends with publications: each still inflates.
    sockets[3]!.ws.send(text + ' own 1');
    assert.equal(server.wss.publish('feed', text), 5);
    sockets[3]!.ws.send(text + ' own 2');
    sockets[0]!.ws.send(text + ' own');
    for (const client of clients) await client.until(() => client.wire.length >= (client === takeover ? 3 : 1), 5000);
    await delay(100);

    const [w1, w2, ws, wt, wp] = [
      shared1.wire[0]!,
      shared2.wire[0]!,
      small.wire[0]!,
      takeover.wire[1]!,
      plain.wire[0]!,
    ];
    assert.equal(w1.compressed && w2.compressed && ws.compressed, true, 'RSV1 on the shared groups');
    assert.ok(w1.payload.equals(w2.payload), 'one compressed copy for the same window');
    assert.ok(w1.payload.length < text.length / 2);
    assert.equal(new StrictInflater(15, false).inflate(w1.payload).toString(), text);
    assert.equal(new StrictInflater(10, false).inflate(ws.payload).toString(), text);
    // Context takeover on our side: the publication goes uncompressed (§6), and the connection's own
    // compressed messages before and after it still inflate in one context.
    assert.equal(wt.compressed, false);
    assert.equal(wt.payload.toString(), text);
    assert.equal(wp.compressed, false);
    const context = new StrictInflater(15, true);
    assert.equal(context.inflate(takeover.wire[0]!.payload).toString(), text + ' own 1');
    assert.equal(context.inflate(takeover.wire[2]!.payload).toString(), text + ' own 2');
    assert.equal(new StrictInflater(15, false).inflate(shared1.wire[1]!.payload).toString(), text + ' own');
    for (const client of clients) assert.deepEqual(client.protocolErrors, []);
  });

  it('publications under the threshold, or with compress: false, go uncompressed to everyone', async () => {
    const server = await serve({ perMessageDeflate: { threshold: 64 } });
    const client = await RawClient.connect(server.port, {
      extensions: ['permessage-deflate; server_no_context_takeover'],
    });
    (await server.connectionOf(client)).ws.subscribe('t');
    server.wss.publish('t', 'short');
    server.wss.publish('t', 'x'.repeat(100), { compress: false });
    server.wss.publish('t', 'y'.repeat(100));
    await client.until(() => client.wire.length >= 3, 5000);
    assert.deepEqual(
      client.wire.map((w) => w.compressed),
      [false, false, true],
    );
    assert.equal(new StrictInflater(15, false).inflate(client.wire[2]!.payload).toString(), 'y'.repeat(100));
  });
});
