/**
 * The `wsrfc/redis` broker in one test process against a real Redis: binary payloads byte for byte,
 * broadcasts, a member that does not read held to its own limits while the others get everything,
 * Redis down at start (a clear error naming the URL, or waiting when asked), malformed URLs.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WebSocket, WebSocketServer } from '../src/index.js';
import { RedisBroker } from '../src/scale/redis-broker.js';
import { skipBecause } from './helpers/library.js';
import { RawClient, destroyRawClients } from './helpers/peer/index.js';
import { delay } from './helpers/peer/wait.js';
import { RedisServer, redisMissing } from './helpers/redis-server.js';

const missing = redisMissing();

/** A payload that says its place: its index in the first 4 bytes. */
function numbered(index: number, size: number): Buffer {
  const data = Buffer.alloc(size, 1);
  data.writeUInt32BE(index, 0);
  return data;
}

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

  it('a member that does not read is dropped at its maxBufferedBytes (1008); one that reads gets every publication', async (t) => {
    if (skipBecause(t, missing)) return;
    const maxBufferedBytes = 256 * 1024;
    const publisher = await host();
    // No write deadline: the slow member must be dropped by its buffer limit, however long the machine takes.
    const receiver = await host({ maxBufferedBytes, highWaterMark: 64 * 1024, writeTimeout: 0 });
    const sockets: WebSocket[] = [];
    const closes: Promise<number>[] = [];
    receiver.on('connection', (socket) => {
      sockets.push(socket);
      closes.push(new Promise((resolve) => socket.once('close', resolve)));
    });
    const slow = await member(receiver, '/slow');
    const fast = await member(receiver, '/slow');
    const [slowSide, fastSide] = sockets;
    await crossing(publisher, fast, '/slow');
    slow.pauseReading();
    const received = (): Buffer[] => fast.messages.filter((m) => m.isBinary).map((m) => m.data);
    // Rounds of two 64 KiB publications, the next one published once the fast member has read the
    // last: what waits for it at the receiver is never more than a round, below its limit, however
    // the event loops, Redis and the kernel's buffers share the machine. (All at once, the receiver
    // can read publications from Redis faster than it can write them to the fast member, and drop it
    // too: that is the limit doing its job, not what this test is about.) What waits for the slow
    // member grows by a round each time, until past what the TCP buffers hold and the limit.
    const round = 2;
    const size = 64 * 1024;
    assert.ok(round * size < maxBufferedBytes);
    let published = 0;
    const publishRound = async (): Promise<void> => {
      for (let i = 0; i < round; i++) publisher.publish('/slow', numbered(published++, size));
      await fast.until(() => received().length >= published, 10_000, `publication ${published}`);
    };
    // 32 MiB at most: far past what TCP buffers hold for a peer that reads nothing.
    while (slowSide!.readyState === WebSocket.OPEN) {
      assert.ok(published < 512, `the slow member was still open after ${published} publications of 64 KiB`);
      await publishRound();
    }
    assert.equal(await closes[0], 1008);
    assert.equal(receiver.subscriberCount('/slow'), 1, 'the slow member left the topic');
    // The broker and the member that reads go on.
    for (let i = 0; i < 4; i++) await publishRound();
    assert.equal(fastSide!.readyState, WebSocket.OPEN);
    assert.deepEqual(
      received().map((data) => data.readUInt32BE(0)),
      Array.from({ length: published }, (_, i) => i),
      'every publication, in order',
    );
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
