/**
 * Flow control on the server's connections: send() reports the high-water mark and 'drain' its end,
 * reading stops while the write side is behind (so a peer that sends without reading cannot make
 * the server buffer without bound), a peer that accepts no bytes is dropped after writeTimeout, and
 * an application that ignores send()'s false is stopped at maxBufferedBytes with 1008.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Duplex } from 'node:stream';
import { afterEach, describe, it } from 'node:test';
import { randomBytes } from 'node:crypto';
import { ConnectionTimeoutError, WebSocketServer, connect, type WebSocket } from '../src/index.js';
import { QUIET_MS } from './helpers/alive.js';
import {
  CloseCode,
  KiB,
  MiB,
  Opcode,
  delay,
  startServer,
  waitUntil,
  withTimeout,
  type TestServer,
} from './helpers/library.js';
import { RawClient, RawServer, clientFrame, destroyRawClients, handshakeRequest } from './helpers/peer/index.js';

const servers: TestServer[] = [];
afterEach(async () => {
  destroyRawClients();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function server(options: Parameters<typeof startServer>[0], echo = true): Promise<TestServer> {
  const s = await startServer(options, echo);
  servers.push(s);
  return s;
}

/** A recognizable binary payload: its index in the first 4 bytes. */
function numbered(index: number, size: number): Buffer {
  const data = Buffer.alloc(size, index & 0xff);
  data.writeUInt32BE(index, 0);
  return data;
}

describe('send() and the high-water mark; drain', () => {
  it('send() returns false once bufferedAmount passes highWaterMark, and drain fires only after the peer reads', async () => {
    const highWaterMark = 256 * KiB;
    const s = await server({ highWaterMark }, false);
    const client = await RawClient.connect(s.port);
    client.pauseReading();
    const { ws } = await s.connectionOf(client);
    let drains = 0;
    ws.on('drain', () => drains++);

    const size = 64 * KiB;
    const results: { ok: boolean; buffered: number }[] = [];
    // 12 MiB: far more than the kernel buffers of a loopback connection take.
    for (let i = 0; i < 192; i++) {
      const ok = ws.send(numbered(i, size));
      results.push({ ok, buffered: ws.bufferedAmount });
    }
    for (const [i, { ok, buffered }] of results.entries()) {
      assert.equal(ok, buffered <= highWaterMark, `send #${i}: returned ${ok} with ${buffered} bytes buffered`);
    }
    assert.equal(results[0]!.ok, true);
    assert.equal(results.at(-1)!.ok, false);

    await delay(200);
    assert.equal(drains, 0, 'no drain while the peer reads nothing');
    assert.ok(ws.bufferedAmount > highWaterMark, `still ${ws.bufferedAmount} bytes buffered`);

    const drained = withTimeout(once(ws, 'drain'), 5000, "'drain'");
    client.resumeReading();
    await drained;
    assert.ok(ws.bufferedAmount <= highWaterMark, `bufferedAmount ${ws.bufferedAmount} at drain`);
    await client.waitMessages(192, 5000);
    client.messages.forEach((m, i) => assert.equal(m.data.readUInt32BE(0), i));
    assert.equal(drains, 1);
    assert.equal(ws.send('more'), true);
  });

  it('send() returns true again after drain, and a sender that waits for drain never passes highWaterMark by more than a message', async () => {
    const highWaterMark = 128 * KiB;
    const s = await server({ highWaterMark }, false);
    const client = await RawClient.connect(s.port);
    const { ws } = await s.connectionOf(client);
    const size = 32 * KiB;
    const total = 256; // 8 MiB
    let maxBuffered = 0;
    let sent = 0;
    // A well-behaved producer: send until false, then wait for 'drain'. The client reads slowly.
    const producer = (async () => {
      while (sent < total) {
        const ok = ws.send(numbered(sent++, size));
        maxBuffered = Math.max(maxBuffered, ws.bufferedAmount);
        if (!ok) await once(ws, 'drain');
      }
    })();
    const reader = setInterval(() => {
      client.resumeReading();
      setTimeout(() => client.pauseReading(), 2);
    }, 10);
    try {
      await withTimeout(producer, 8000, 'the producer');
      client.resumeReading();
      await client.waitMessages(total, 8000);
    } finally {
      clearInterval(reader);
      client.resumeReading();
    }
    assert.ok(maxBuffered <= highWaterMark + size + 16, `bufferedAmount reached ${maxBuffered}`);
  });
});

describe('the read loop stops while the write side is behind (memory stays bounded)', () => {
  it('a peer that sends without reading the echoes: the server stops reading, bufferedAmount stays near highWaterMark', async (t) => {
    const highWaterMark = 256 * KiB;
    const size = 64 * KiB;
    const s = await server({ highWaterMark }, false);
    let received = 0;
    let maxBuffered = 0;
    s.wss.on('connection', (ws) => {
      ws.on('message', (data, isBinary) => {
        received++;
        ws.send(data, { binary: isBinary });
        maxBuffered = Math.max(maxBuffered, ws.bufferedAmount);
      });
    });
    const client = await RawClient.connect(s.port);
    client.pauseReading();
    const total = 512; // 32 MiB
    const frames: Buffer[] = [];
    for (let i = 0; i < total; i++) frames.push(clientFrame({ opcode: Opcode.Binary, payload: numbered(i, size) }));
    for (const frame of frames) client.write(frame);

    // Wait until the server stops receiving (nothing new for 300 ms).
    let last = -1;
    while (received !== last) {
      last = received;
      await delay(300);
    }
    const { ws } = await s.connectionOf(client);
    t.diagnostic(`the server stopped after ${received} of ${total} messages; max bufferedAmount ${maxBuffered}`);
    assert.ok(received < total, `the server read all ${total} messages of a peer that reads nothing`);
    assert.ok(ws.isPaused, 'reading is paused');
    const bound = highWaterMark + 4 * (size + 14);
    assert.ok(
      maxBuffered <= bound,
      `bufferedAmount reached ${maxBuffered}, more than highWaterMark + a few messages (${bound})`,
    );
    assert.ok(ws.bufferedAmount <= bound, 'ws.bufferedAmount <= bound');

    // Once the peer reads, everything flows again: every message is echoed, in order.
    client.resumeReading();
    await client.waitMessages(total, 10_000);
    assert.equal(received, total);
    client.messages.forEach((m, i) => assert.equal(m.data.readUInt32BE(0), i));
    assert.ok(maxBuffered <= bound, `bufferedAmount reached ${maxBuffered} (bound ${bound})`);
  });

  it('pause() stops reading (TCP backpressure reaches the peer) and resume() restarts it', async () => {
    const s = await server({});
    const client = await RawClient.connect(s.port);
    const { ws } = await s.connectionOf(client);
    ws.pause();
    assert.equal(ws.isPaused, true);
    const messages: number[] = [];
    ws.on('message', (data) => messages.push(data.readUInt32BE(0)));
    client.sendBinary(numbered(0, 100));
    await delay(100);
    assert.deepEqual(messages, [], 'nothing is delivered while paused');
    ws.resume();
    await waitUntil(() => messages.length === 1, 2000, 'the message after resume()');
    assert.deepEqual(messages, [0]);
  });
});

describe('writeTimeout: a peer that accepts no bytes is dropped', () => {
  it('dropped after roughly writeTimeout once the kernel buffers are full: 1006, not clean, a write ConnectionTimeoutError', async () => {
    const writeTimeout = 300;
    const s = await server({ writeTimeout }, false);
    const client = await RawClient.connect(s.port);
    client.pauseReading();
    const connection = await s.connectionOf(client);
    const started = Date.now();
    // 32 MiB in 4 MiB messages: the kernel takes a few MiB, the rest never leaves.
    for (let i = 0; i < 8; i++) connection.ws.send(Buffer.alloc(4 * MiB, i));
    const record = await withTimeout(connection.closed, 5000, 'the drop');
    const elapsed = record.at - started;
    assert.ok(elapsed >= writeTimeout * 0.8, `dropped after ${elapsed} ms, before writeTimeout (${writeTimeout} ms)`);
    assert.ok(elapsed < writeTimeout + 3000, `dropped after ${elapsed} ms`);
    assert.equal(record.code, CloseCode.Abnormal);
    assert.equal(record.wasClean, false);
    const error = connection.errors.find((e) => e instanceof ConnectionTimeoutError);
    assert.ok(error instanceof ConnectionTimeoutError, `errors: ${connection.errors.map((e) => e.message).join('; ')}`);
    assert.equal(error.reason, 'write');
    assert.equal(connection.closes.length, 1);
  });

  it('a slow reader that keeps making progress is not dropped', async () => {
    const writeTimeout = 400;
    const s = await server({ writeTimeout }, false);
    const client = await RawClient.connect(s.port);
    client.pauseReading();
    const connection = await s.connectionOf(client);
    for (let i = 0; i < 6; i++) connection.ws.send(Buffer.alloc(2 * MiB, i));
    // Read a little every 50 ms: never a writeTimeout without progress.
    const reader = setInterval(() => {
      client.resumeReading();
      setImmediate(() => client.pauseReading());
    }, 50);
    try {
      await delay(1200);
      assert.equal(connection.closes.length, 0, `dropped: ${connection.errors.map((e) => e.message).join('; ')}`);
    } finally {
      clearInterval(reader);
    }
    client.resumeReading();
    await client.waitMessages(6, 10_000);
  });

  it('writeTimeout does not apply to an idle connection with nothing to send', async () => {
    const s = await server({ writeTimeout: 50 });
    const client = await RawClient.connect(s.port);
    const connection = await s.connectionOf(client);
    await delay(300);
    assert.equal(connection.closes.length, 0);
    client.sendText('ok');
    await client.waitMessages(1);
  });
});

describe('maxBufferedBytes: an application that ignores send() returning false is stopped with 1008', () => {
  it('buffered bytes past maxBufferedBytes close the connection with 1008 instead of growing', async () => {
    const maxBufferedBytes = 2 * MiB;
    const s = await server({ highWaterMark: 64 * KiB, maxBufferedBytes }, false);
    const client = await RawClient.connect(s.port);
    client.pauseReading();
    const connection = await s.connectionOf(client);
    const { ws } = connection;
    const size = 256 * KiB;
    let maxBuffered = 0;
    const returns: boolean[] = [];
    // One message per turn of the event loop, whatever send() says: the kernel buffers fill,
    // then the process buffer grows until the limit.
    while (connection.closes.length === 0 && returns.length < 400) {
      returns.push(ws.send(Buffer.alloc(size)));
      if (ws.readyState === 1) maxBuffered = Math.max(maxBuffered, ws.bufferedAmount);
      await new Promise((resolve) => setImmediate(resolve));
    }
    const record = await withTimeout(connection.closed, 3000, "'close'");
    assert.equal(record.code, CloseCode.PolicyViolation, `close code ${record.code}`);
    assert.equal(record.wasClean, false);
    assert.ok(maxBuffered <= maxBufferedBytes + size + 16, `bufferedAmount reached ${maxBuffered}`);
    assert.equal(returns.at(-1), false);
    assert.equal(ws.send('after'), false);
    assert.equal(connection.closes.length, 1);
  });

  it('a burst in one tick past maxBufferedBytes: the send that crosses it returns false and the connection closes with 1008', async () => {
    const s = await server({ maxBufferedBytes: 2 * MiB }, false);
    const client = await RawClient.connect(s.port);
    const connection = await s.connectionOf(client);
    const { ws } = connection;
    assert.equal(ws.send(Buffer.alloc(512 * KiB)), true);
    assert.equal(ws.send(Buffer.alloc(512 * KiB)), false, 'over highWaterMark (1 MiB by default)');
    assert.equal(ws.readyState, 1, 'over highWaterMark is not over maxBufferedBytes');
    assert.equal(ws.send(Buffer.alloc(MiB)), false, 'over maxBufferedBytes');
    const record = await withTimeout(connection.closed, 3000, "'close'");
    assert.equal(record.code, CloseCode.PolicyViolation);
    await client.waitPeerEnd();
  });
});

/**
 * A connection whose reads the test makes, one chunk at a time, and whose peer takes the 101 and then
 * nothing more: every later write stays in the stream, as in a socket whose kernel buffers are full.
 */
function stalledPeer(): { stream: Duplex; held: Buffer[]; read: (chunk: Buffer) => Promise<void> } {
  const held: Buffer[] = [];
  let answered = false;
  const stream = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, callback) {
      if (answered) return;
      answered = chunk.toString('latin1').startsWith('HTTP/1.1 101 ');
      callback();
    },
  });
  // Every write after the 101 waits: the first in write() above, the others queued behind it.
  const write = stream.write.bind(stream) as (chunk: Buffer, callback?: () => void) => boolean;
  stream.write = ((chunk: Buffer, callback?: () => void) => {
    if (answered) held.push(chunk);
    return write(chunk, callback);
  }) as typeof stream.write;
  return {
    stream,
    held,
    // One chunk per turn of the event loop: each arrives as a read of its own.
    read: (chunk) => {
      stream.push(chunk);
      return new Promise((resolve) => setImmediate(resolve));
    },
  };
}

/** The memory the buffers keep alive: each distinct ArrayBuffer behind them, once. */
function keptAlive(buffers: Buffer[]): number {
  return [...new Set(buffers.map((buffer) => buffer.buffer))].reduce((n, memory) => n + memory.byteLength, 0);
}

describe('what output waiting on a peer costs: no more than highWaterMark says, whatever the peer sends', () => {
  const highWaterMark = 64 * KiB;

  async function stalled(): Promise<ReturnType<typeof stalledPeer>> {
    const wss = new WebSocketServer({ highWaterMark, writeTimeout: 0, pingInterval: 0 });
    wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
    const peer = stalledPeer();
    wss.handleSocket(peer.stream);
    await peer.read(handshakeRequest());
    await waitUntil(() => wss.clients.size === 1, 2000, 'the handshake');
    return peer;
  }

  it('pings one per read, no pong read: each waiting pong write counts its bookkeeping, so reading pauses in time, and no pong keeps a slab alive', async () => {
    const peer = await stalled();
    const ping = clientFrame({ opcode: Opcode.Ping });
    let pings = 0;
    // 2-byte pongs: counted as bytes alone, 32768 writes would fit under highWaterMark.
    while (peer.stream.readableFlowing !== false && pings < 20_000) {
      await peer.read(ping);
      pings++;
    }
    assert.equal(
      peer.stream.readableFlowing,
      false,
      `still reading after ${pings} pings, ${peer.held.length} pongs held`,
    );
    assert.ok(peer.held.length < highWaterMark / 128, `${peer.held.length} writes waiting`);
    const bytes = peer.held.reduce((n, buffer) => n + buffer.length, 0);
    // The first pong to wait was written before anything waited, as it was (a view into the frame writer's slab).
    const kept = keptAlive(peer.held.slice(1));
    assert.ok(kept <= 4 * bytes, `${peer.held.length} pongs (${bytes} bytes) keep ${kept} bytes alive`);
    peer.stream.destroy();
  });

  it("echoes of 4 KiB messages read 512 KiB at a time (Bun's reads), never read: they keep about what they hold, not the reads", async () => {
    const peer = await stalled();
    // One read: four 4097-byte messages, then unsolicited pongs (RFC 6455 §5.5.3) up to 512 KiB.
    const messages = Array.from({ length: 4 }, () =>
      clientFrame({ opcode: Opcode.Binary, payload: Buffer.alloc(4097, 1) }),
    );
    const pong = clientFrame({ opcode: Opcode.Pong, payload: Buffer.alloc(125, 2) });
    const fill = Math.floor((512 * KiB - 4 * messages[0]!.length) / pong.length);
    const read = Buffer.concat([...messages, ...Array.from({ length: fill }, () => pong)]);
    let reads = 0;
    while (peer.stream.readableFlowing !== false && reads < 200) {
      // Memory of its own for each read, as a socket's chunk has.
      const chunk = Buffer.allocUnsafeSlow(read.length);
      read.copy(chunk);
      await peer.read(chunk);
      reads++;
    }
    assert.equal(peer.stream.readableFlowing, false, `still reading after ${reads} reads`);
    const bytes = peer.held.reduce((n, buffer) => n + buffer.length, 0);
    const kept = keptAlive(peer.held);
    // Allowed: four times what waits, and the first write, made before anything waited.
    assert.ok(kept <= 4 * bytes + read.length, `${bytes} bytes of echoes keep ${kept} bytes alive (${reads} reads)`);
    peer.stream.destroy();
  });
});

describe('both sides send faster than they read: reading stops for replies waiting, never for output of our own', () => {
  /**
   * `done`, waited for as long as `progress()` changes: fails only when nothing moves for QUIET_MS
   * (two connections waiting on each other), never because the machine is slow.
   */
  async function whileMoving<T>(done: Promise<T>, progress: () => unknown, what: string): Promise<T> {
    let last = '';
    let movedAt = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const stuck = new Promise<never>((_, reject) => {
      timer = setInterval(() => {
        const seen = JSON.stringify(progress());
        if (seen !== last) [last, movedAt] = [seen, Date.now()];
        else if (Date.now() - movedAt >= QUIET_MS)
          reject(new Error(`${what}: nothing moved for ${QUIET_MS} ms: ${seen}`));
      }, 200);
    });
    try {
      return await Promise.race([done, stuck]);
    } finally {
      clearInterval(timer);
    }
  }

  for (const deflate of [false, true]) {
    it(`our client sends 1024 messages of 64 KiB to our echo server, waiting for 'drain' as an application does, and every echo arrives${deflate ? ' (permessage-deflate)' : ''}`, async (t) => {
      // Neither side drops a peer for being slow: a deadlock would show as no progress, not as a close.
      const s = await server({ writeTimeout: 0, pingInterval: 0, perMessageDeflate: deflate });
      const ws: WebSocket = await connect(s.url, { writeTimeout: 0, pingInterval: 0, perMessageDeflate: deflate });
      const { ws: serverSide } = await s.nextConnection();
      const count = 1024;
      const size = 64 * KiB;
      // Random bytes: compression cannot make 64 MiB small.
      const noise = randomBytes(size);
      let echoed = 0;
      let sent = 0;
      let mostQueued = 0;
      const all = new Promise<void>((resolve, reject) => {
        ws.on('message', (data: Buffer) => {
          if (data.length !== size || data.readUInt32BE(0) !== echoed || !data.subarray(4).equals(noise.subarray(4)))
            reject(new Error(`echo ${echoed} is not message ${echoed}`));
          mostQueued = Math.max(mostQueued, serverSide.bufferedAmount);
          if (++echoed === count) resolve();
        });
        ws.on('close', (code) => reject(new Error(`closed with ${code} after ${echoed} echoes`)));
      });
      all.catch(() => {});
      const sending = (async () => {
        for (; sent < count; sent++) {
          const message = Buffer.from(noise);
          message.writeUInt32BE(sent, 0);
          // As an application that respects backpressure does: past highWaterMark, wait for 'drain'.
          if (!ws.send(message)) await once(ws, 'drain');
        }
      })();
      await whileMoving(
        Promise.all([sending, all]),
        () => {
          mostQueued = Math.max(mostQueued, serverSide.bufferedAmount);
          return [sent, echoed, ws.bufferedAmount, serverSide.bufferedAmount];
        },
        'the exchange',
      );
      assert.equal(echoed, count);
      // The echo server still held its echoes to highWaterMark (1 MiB) and one read's worth (64 KiB
      // of messages in, their echoes out), whatever our client sent. With compression, also the
      // input held while a message inflates, up to highWaterMark (reading pauses for that too) and a
      // read: it is still inflated and echoed once reading has paused for the echoes.
      const bound = MiB + 2 * size + (deflate ? MiB + size : 0);
      t.diagnostic(`the most the echo server queued: ${mostQueued} bytes (bound ${bound})`);
      assert.ok(mostQueued <= bound, `the echo server queued ${mostQueued} bytes for one reader`);
      ws.close();
    });
  }

  it('our client, its own messages backed up, still reads; pongs for a peer that floods pings and never reads pause it', async () => {
    const peers = await RawServer.start();
    const ws: WebSocket = await connect(peers.url(), { highWaterMark: 64 * KiB, writeTimeout: 0, pingInterval: 0 });
    const peer = await peers.nextPeer();
    try {
      // The peer reads nothing; our client sends 8 MiB of its own accord, far more than TCP holds.
      peer.pauseReading();
      for (let i = 0; i < 32; i++) ws.send(Buffer.alloc(256 * KiB, i));
      assert.ok(ws.bufferedAmount > 64 * KiB);
      // What the peer sends is still read: reading stops for replies waiting, not for our own output.
      const message = new Promise<Buffer>((resolve) => ws.once('message', resolve));
      peer.sendPing('p');
      peer.sendText('still read');
      assert.equal((await whileMoving(message, () => ws.bufferedAmount, 'the message')).toString(), 'still read');
      assert.equal(ws.isPaused, false);
      // A flood of pings: their pongs are replies, and wait behind our messages, so reading stops.
      const pings = Buffer.concat(Array.from({ length: 8192 }, () => peer.frame({ opcode: Opcode.Ping })));
      const flood = (): void => {
        while (!peer.socket.destroyed && !ws.isPaused && peer.socket.write(pings));
      };
      peer.socket.on('drain', flood);
      flood();
      let check: NodeJS.Timeout | undefined;
      const paused = new Promise<void>((resolve) => {
        check = setInterval(() => ws.isPaused && resolve(), 20);
      });
      try {
        await whileMoving(paused, () => peer.socket.bytesWritten, 'our client to stop reading');
      } finally {
        clearInterval(check);
      }
      assert.equal(ws.isPaused, true);
    } finally {
      ws.terminate();
      await peers.close();
    }
  });
});
