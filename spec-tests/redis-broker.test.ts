/**
 * The `wsrfc/redis` broker in one test process against a real Redis: binary payloads byte for byte,
 * broadcasts, a slow subscriber held to its own limits while the others get everything, Redis down
 * at start (a clear error naming the URL, or waiting when asked), malformed URLs.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WebSocketServer } from '../src/index.js';
import { RedisBroker } from '../src/scale/redis-broker.js';
import { skipBecause } from './helpers/library.js';
import { RawClient, destroyRawClients } from './helpers/peer/index.js';
import { delay } from './helpers/peer/wait.js';
import { RedisServer, redisMissing } from './helpers/redis-server.js';

const missing = redisMissing();

describe('wsrfc/redis: RedisBroker', () => {
  let redis: RedisServer | null = null;
  const servers: WebSocketServer[] = [];
  before(async () => {
    if (missing === null) redis = await RedisServer.start();
  });
  after(async () => {
    destroyRawClients();
    for (const server of servers) await server.close(100);
    await redis?.stop();
  });

  /** A server on its own broker, each connection subscribed to its path. */
  async function host(options: ConstructorParameters<typeof WebSocketServer>[0] = {}): Promise<WebSocketServer> {
    const server = new WebSocketServer({ ...options, broker: await RedisBroker.connect(redis!.url) });
    server.on('connection', (socket, request) => socket.subscribe(request.path));
    await server.listen(0, '127.0.0.1');
    servers.push(server);
    return server;
  }

  async function member(server: WebSocketServer, path: string): Promise<RawClient> {
    const client = await RawClient.connect(server.address()!.port, { path });
    await client.until(() => server.subscriberCount(path) > 0, 3000, 'the subscription');
    return client;
  }

  /** Until a publication from `from` reaches `to` over Redis (its SUBSCRIBE is in place). */
  async function crossing(from: WebSocketServer, to: RawClient, topic: string): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (to.messages.length === 0) {
      assert.ok(Date.now() < deadline, 'no publication crossed');
      from.publish(topic, 'probe');
      await delay(50);
    }
  }

  it('binary payloads (every byte value, 1 MiB) and broadcasts cross byte for byte', async (t) => {
    if (skipBecause(t, missing)) return;
    const [a, b] = [await host(), await host()];
    const far = await member(b, '/bin');
    await crossing(a, far, '/bin');
    const start = far.messages.length;
    const every = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const large = Buffer.alloc(1024 * 1024, every);
    a.publish('/bin', every);
    a.publish('/bin', large);
    a.broadcast('to everyone');
    await far.waitMessages(start + 3, 10_000);
    const [m1, m2, m3] = far.messages.slice(start);
    assert.ok(m1!.isBinary && m1!.data.equals(every));
    assert.ok(m2!.isBinary && m2!.data.equals(large));
    assert.equal(m3!.isBinary, false);
    assert.equal(m3!.data.toString(), 'to everyone');
  });

  it('a slow subscriber is held to its maxBufferedBytes (1008); the broker and the other members go on', async (t) => {
    if (skipBecause(t, missing)) return;
    const publisher = await host();
    const receiver = await host({ maxBufferedBytes: 256 * 1024, highWaterMark: 64 * 1024 });
    const codes: number[] = [];
    receiver.on('connection', (socket) => socket.on('close', (code) => codes.push(code)));
    const slow = await member(receiver, '/slow');
    const fast = await member(receiver, '/slow');
    await crossing(publisher, fast, '/slow');
    slow.pauseReading();
    const chunk = Buffer.alloc(64 * 1024, 1);
    // 32 MiB for a peer that reads nothing: far past what TCP buffers and the limit hold.
    for (let i = 0; i < 512; i++) publisher.publish('/slow', chunk);
    publisher.publish('/slow', 'last');
    await fast.until(() => fast.messages.some((m) => m.data.toString() === 'last'), 30_000, 'the last message');
    assert.equal(fast.messages.filter((m) => m.isBinary).length, 512);
    // The slow one is failed with 1008 (its close frame waits behind what it never read) and leaves the topic.
    await slow.until(() => receiver.subscriberCount('/slow') === 1, 10_000, 'the slow member to be dropped');
    await slow.until(() => codes.length > 0, 10_000, 'its close');
    assert.deepEqual(codes, [1008]);
    slow.destroy();
  });

  it('Redis down at start: an error naming the URL; with waitForRedis, it waits until Redis answers', async (t) => {
    if (skipBecause(t, missing)) return;
    const later = await RedisServer.unstarted();
    await assert.rejects(RedisBroker.connect(later.url), (error: Error) => {
      assert.match(error.message, new RegExp(`cannot reach Redis at ${later.url.replace(/\./g, '\\.')}`));
      return true;
    });
    const waiting = RedisBroker.connect(later.url, { waitForRedis: true, maxRetryDelay: 200 });
    await delay(500);
    await later.restart();
    try {
      const broker = await waiting;
      await broker.close();
    } finally {
      await later.stop();
    }
  });

  it('a malformed URL, or another scheme, is refused with an error naming it (the password hidden)', async () => {
    await assert.rejects(RedisBroker.connect('localhost:6379'), /invalid Redis URL "localhost:6379"/);
    await assert.rejects(RedisBroker.connect('::'), /invalid Redis URL "::"/);
    await assert.rejects(
      RedisBroker.connect('http://user:secret@127.0.0.1:1'),
      (error: Error) =>
        /invalid Redis URL "http:\/\/user:\*\*\*@127\.0\.0\.1:1\/"/.test(error.message) &&
        !error.message.includes('secret'),
    );
  });
});
