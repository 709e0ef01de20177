/**
 * Sending a stream as one message (`send()` of a Readable or an (async) iterable), over TCP, to the
 * independent test peer (helpers/peer/: it decodes and inflates with its own code). RFC 6455 §5.4:
 * the chunks go as the fragments of one message as they come (the first frame carries the opcode,
 * the last FIN), control frames may go between them, the fragments of two messages never
 * interleave; RFC 7692 §7.2.1: a compressed message is one DEFLATE stream across its fragments.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterEach, describe, it } from 'node:test';
import { connect, type MessageStream, type WebSocket } from '../src/index.js';
import { compressible, prng, randomBuffer } from './helpers/data.js';
import { KiB, MiB, startServer, waitUntil, withTimeout, type TestServer } from './helpers/library.js';
import {
  OP,
  RawClient,
  RawServer,
  StrictInflater,
  destroyRawClients,
  type DecodedFrame,
  type PeerConnection,
} from './helpers/peer/index.js';

const servers: TestServer[] = [];
afterEach(async () => {
  destroyRawClients();
  for (const server of servers.splice(0)) await server.close();
});

/** A server whose connections the test drives, and a raw client connected to it. */
async function pair(options: object = {}, extensions?: string[]): Promise<{ ws: WebSocket; raw: RawClient }> {
  const server = await startServer({ pingInterval: 0, ...options }, false);
  servers.push(server);
  const raw = await RawClient.connect(server.port, extensions === undefined ? {} : { extensions });
  return { ws: (await server.connectionOf(raw)).ws, raw };
}

/** An async source the test feeds by hand: push(chunk), end(), fail(error). */
function handFed(): {
  source: AsyncIterable<Buffer | string>;
  push(chunk: Buffer | string): void;
  end(): void;
  fail(error: Error): void;
} {
  const queue: (Buffer | string | null | Error)[] = [];
  let wake: (() => void) | null = null;
  const put = (item: Buffer | string | null | Error): void => {
    queue.push(item);
    wake?.();
  };
  return {
    source: {
      async *[Symbol.asyncIterator]() {
        for (;;) {
          while (queue.length === 0) await new Promise<void>((resolve) => (wake = resolve));
          const item = queue.shift()!;
          if (item === null) return;
          if (item instanceof Error) throw item;
          yield item;
        }
      },
    },
    push: put,
    end: () => put(null),
    fail: put,
  };
}

/** A frame as one line, for comparing what went over the wire. */
function line(frame: DecodedFrame): string {
  const name = ({ 0: 'cont', 1: 'text', 2: 'binary', 8: 'close', 9: 'ping', 10: 'pong' } as Record<number, string>)[
    frame.opcode
  ];
  return `${name}${frame.fin ? '' : ' fin=0'}${frame.rsv1 ? ' rsv1' : ''} ${JSON.stringify(frame.payload.toString())}`;
}

function dataFrames(peer: PeerConnection): string[] {
  return peer.frames.map(line);
}

describe('sending a stream as one message', () => {
  it('each chunk goes as a fragment when it comes; a ping goes between fragments; a message sent meanwhile waits for the end', async () => {
    const { ws, raw } = await pair();
    const fed = handFed();
    const done: (Error | undefined)[] = [];
    ws.send(fed.source, (error) => done.push(error));
    fed.push('Hel');
    await raw.waitFrames(1);
    ws.ping('between');
    ws.send('sent meanwhile');
    await raw.waitFrames(2);
    fed.push(Buffer.from('lo'));
    await raw.waitFrames(3);
    assert.deepEqual(done, [], 'not done before its end');
    fed.end();
    await raw.waitFrames(5);
    assert.deepEqual(dataFrames(raw), [
      'text fin=0 "Hel"',
      'ping "between"',
      'cont fin=0 "lo"',
      'cont ""',
      'text "sent meanwhile"',
    ]);
    assert.equal(raw.messages[0]!.data.toString(), 'Hello');
    assert.equal(raw.messages[0]!.isBinary, false, 'a string first: text');
    await waitUntil(() => done.length === 1, 3000, 'the callback');
    assert.deepEqual(done, [undefined]);
  });

  it(
    'a Readable of 32 MiB to a peer that does not read: never more than about highWaterMark buffered; then it all arrives, byte for byte',
    { timeout: 60_000 },
    async () => {
      const highWaterMark = 512 * KiB;
      const { ws, raw } = await pair({ highWaterMark });
      raw.pauseReading();
      const data = randomBuffer(32 * MiB, prng(7));
      let taken = 0;
      const source = new Readable({
        read() {
          if (taken === data.length) return void this.push(null);
          this.push(data.subarray(taken, taken + 64 * KiB));
          taken += 64 * KiB;
        },
      });
      let most = 0;
      const watch = setInterval(() => (most = Math.max(most, ws.bufferedAmount)), 1);
      const sent = ws.sendAsync(source, { binary: true });
      // The source is read only as the peer takes bytes: it stops while the peer does not read.
      await waitUntil(() => taken > 0, 3000, 'the source to be read');
      await waitUntil(() => ws.bufferedAmount > highWaterMark / 2, 10_000, 'bytes to wait on the peer');
      const bound = highWaterMark + 64 * KiB + 64 * KiB;
      assert.ok(ws.bufferedAmount <= bound, `buffered ${ws.bufferedAmount}, bound ${bound}`);
      assert.ok(taken < data.length, 'the source was not read ahead of the peer');
      raw.resumeReading();
      await withTimeout(sent, 30_000, 'the send');
      clearInterval(watch);
      await raw.waitMessages(1, 30_000);
      assert.ok(raw.messages[0]!.data.equals(data), 'the message, byte for byte');
      assert.ok(most <= bound, `at most ${most} buffered at any time, bound ${bound}`);
    },
  );

  it("a source that fails: the connection fails with 1011, and the callback gets the source's error", async () => {
    const { ws, raw } = await pair();
    const fed = handFed();
    const result = new Promise<Error | undefined>((resolve) => ws.send(fed.source, { binary: true }, resolve));
    fed.push(Buffer.from([1, 2]));
    await raw.waitFrames(1);
    const failure = new Error('the disk is gone');
    fed.fail(failure);
    assert.equal(await withTimeout(result, 3000, 'the callback'), failure);
    const close = await raw.waitCloseFrame();
    assert.equal(close.code, 1011);
    assert.deepEqual(dataFrames(raw)[0], 'binary fin=0 "\\u0001\\u0002"');
  });

  it('sendAsync rejects when a stream sent as text is not UTF-8 (1011: its first fragments are out already)', async () => {
    const { ws, raw } = await pair();
    const bad = [Buffer.from('fine, '), Buffer.from([0xff])];
    await assert.rejects(ws.sendAsync(bad, { binary: false }), TypeError);
    assert.equal((await raw.waitCloseFrame()).code, 1011);
  });

  it('close() while a stream is being sent: the close frame follows its end', async () => {
    const { ws, raw } = await pair();
    const fed = handFed();
    ws.send(fed.source, { binary: true });
    fed.push(Buffer.from('a'));
    await raw.waitFrames(1);
    ws.close(1000, 'after the stream');
    assert.equal(ws.send('too late'), false, 'nothing new after close()');
    fed.push(Buffer.from('b'));
    fed.end();
    const close = await raw.waitCloseFrame();
    assert.deepEqual([close.code, close.reason], [1000, 'after the stream']);
    assert.deepEqual(dataFrames(raw).slice(0, 3), ['binary fin=0 "a"', 'cont fin=0 "b"', 'cont ""']);
    assert.equal(raw.frames[3]!.opcode, OP.CLOSE, 'the close frame right after the end');
    assert.equal(raw.frames.length, 4);
  });

  it('streams sent one after the other go one after the other, whole, with whole messages in between', async () => {
    const { ws, raw } = await pair();
    const first = handFed();
    const second = ['x', 'y'];
    ws.send(first.source);
    ws.send('between');
    ws.send(second);
    first.push('a');
    await raw.waitFrames(1);
    first.push('b');
    first.end();
    await raw.waitMessages(3);
    assert.deepEqual(
      raw.messages.map((message) => message.data.toString()),
      ['ab', 'between', 'xy'],
    );
  });

  for (const [title, serverOptions, extension, contextTakeover] of [
    ['with context takeover', {}, 'permessage-deflate', true],
    ['without context takeover', { perMessageDeflate: { serverNoContextTakeover: true } }, 'permessage-deflate', false],
    [
      'with a 9-bit window',
      { perMessageDeflate: { serverMaxWindowBits: 9 } },
      'permessage-deflate; server_max_window_bits=9',
      true,
    ],
  ] as const) {
    it(
      `compressed (${title}): one DEFLATE stream across the fragments, RSV1 on the first; the peer inflates every message strictly`,
      { timeout: 30_000 },
      async () => {
        const { ws, raw } = await pair({ perMessageDeflate: true, ...serverOptions }, [extension]);
        const bits = /server_max_window_bits=(\d+)/.exec(raw.header('sec-websocket-extensions') ?? '');
        const inflater = new StrictInflater(bits === null ? 15 : Number(bits[1]), contextTakeover);
        const pieces = [compressible(3000, prng(1)), compressible(100 * KiB, prng(2)), compressible(10, prng(3))];
        await ws.sendAsync(pieces, { binary: false });
        await ws.sendAsync(Buffer.concat(pieces));
        await ws.sendAsync([]);
        await ws.sendAsync([compressible(5000, prng(4))], { binary: true });
        await raw.waitMessages(4, 10_000);
        // The frames: RSV1 on the first of each message only (RFC 7692 §6.1).
        const first = raw.wire[0]!;
        assert.equal(first.compressed, true);
        assert.ok(first.frames.length >= 3, `${first.frames.length} frames`);
        assert.ok(first.frames.slice(1).every((frame) => !frame.rsv1 && frame.opcode === OP.CONT));
        const plain = raw.wire.map((message) => inflater.inflate(message.payload));
        assert.ok(plain[0]!.equals(Buffer.concat(pieces)), 'the streamed message');
        assert.ok(plain[1]!.equals(Buffer.concat(pieces)), 'a whole message after it, in the same context');
        assert.equal(plain[2]!.length, 0, 'an empty stream');
        assert.ok(plain[3]!.equals(compressible(5000, prng(4))));
      },
    );
  }

  it(
    'our client sends a stream to a server as masked fragments, and sends while it receives one (both ways at once)',
    { timeout: 60_000 },
    async () => {
      const peerServer = await RawServer.start();
      try {
        const ws = await connect(peerServer.url(), { pingInterval: 0 });
        const peer = await peerServer.nextPeer();
        await ws.sendAsync(['masked ', 'fragments']);
        await peer.waitMessages(1);
        assert.deepEqual(dataFrames(peer), ['text fin=0 "masked "', 'cont fin=0 "fragments"', 'cont ""']);
        assert.deepEqual(peer.protocolErrors, [], 'every frame masked (the peer checks)');
        ws.terminate();
      } finally {
        await peerServer.close();
      }

      // Our client and our server, both streaming, both compressed: 48 MiB echoed while it is sent.
      const server = await startServer({ streamMessages: true, perMessageDeflate: true, pingInterval: 0 }, (ws) =>
        ws.on('stream', (stream) => ws.send(stream, { binary: stream.isBinary })),
      );
      servers.push(server);
      const client = await connect(server.url, { streamMessages: true, perMessageDeflate: true, pingInterval: 0 });
      const total = 48 * MiB;
      const block = randomBuffer(MiB, prng(9));
      const sent = createHash('sha256');
      const echoed = new Promise<[string, number]>((resolve, reject) =>
        client.once('stream', (stream: MessageStream) => {
          const hash = createHash('sha256');
          let length = 0;
          stream.on('data', (chunk: Buffer) => {
            hash.update(chunk);
            length += chunk.length;
          });
          stream.on('end', () => resolve([hash.digest('hex'), length]));
          stream.on('error', reject);
        }),
      );
      async function* blocks(): AsyncGenerator<Buffer> {
        for (let i = 0; i < total / MiB; i++) {
          const copy = Buffer.from(block);
          copy.writeUInt32LE(i, 0);
          sent.update(copy);
          yield copy;
        }
      }
      await client.sendAsync(blocks());
      const [digest, length] = await withTimeout(echoed, 50_000, 'the echo');
      assert.equal(length, total);
      assert.equal(digest, sent.digest('hex'));
      client.close(1000);
    },
  );
});
