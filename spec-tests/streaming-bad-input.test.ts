/**
 * Bad input in the middle of a streamed message (`streamMessages`), from the independent test peer:
 * the application has its MessageStream and part of the message already when the violation comes.
 * Each must close the connection with the code RFC 6455 (§5.1-§5.5, §7.4, §8.1, §10.4) and RFC 7692
 * (§6, §7.2.2) call for, end the application's stream with an error that says so (the ProtocolError,
 * with its close code), report the close once, and leave nothing behind: the connection gone from
 * the server, no inflate budget held, TCP closed. The peer's own close, or TCP lost, in the middle
 * aborts the stream too (a MessageAbortedError).
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { inflateBudget, MessageAbortedError, ProtocolError, type MessageStream } from '../src/index.js';
import { compressible, prng } from './helpers/data.js';
import { assertClosedOnce, KiB, startServer, waitUntil, withTimeout, type TestServer } from './helpers/library.js';
import {
  OP,
  RawClient,
  closePayload,
  deflatePayload,
  destroyRawClients,
  zeroBomb,
  type FrameSpec,
} from './helpers/peer/index.js';

const servers: TestServer[] = [];
afterEach(async () => {
  destroyRawClients();
  for (const server of servers.splice(0)) await server.close();
});

/** A stream as the application saw it: its chunks, and how it ended. */
interface Seen {
  stream: MessageStream;
  chunks: Buffer[];
  ended: Promise<Error | null>;
}

function watch(stream: MessageStream): Seen {
  const chunks: Buffer[] = [];
  const ended = new Promise<Error | null>((resolve) => {
    stream.on('data', (chunk: Buffer) => chunks.push(Buffer.from(chunk)));
    stream.on('end', () => resolve(null));
    stream.on('error', (error) => resolve(error));
  });
  return { stream, chunks, ended };
}

async function streamingServer(options: object): Promise<{ server: TestServer; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = await startServer({ streamMessages: true, pingInterval: 0, ...options }, (ws) =>
    ws.on('stream', (stream) => seen.push(watch(stream))),
  );
  servers.push(server);
  return { server, seen };
}

const text = (payload: string | Uint8Array, fin = false): FrameSpec => ({ opcode: OP.TEXT, payload, fin });
const cont = (payload: string | Uint8Array, fin = false): FrameSpec => ({ opcode: OP.CONT, payload, fin });

/** A compressed text message's payload cut in two: the first part inflates to valid text. */
function compressedInTwo(plain: Buffer): [Buffer, Buffer] {
  const compressed = deflatePayload(plain);
  const cut = Math.floor(compressed.length / 2);
  return [compressed.subarray(0, cut), compressed.subarray(cut)];
}

interface Case {
  name: string;
  options?: object;
  deflate?: boolean;
  /** The message's start: the application has its stream and a first chunk before the rest comes. */
  start: FrameSpec[];
  /** Then this, in one write. */
  bad: FrameSpec[];
  code: number;
  violation: string;
}

const invalidLater = compressedInTwo(Buffer.concat([compressible(64 * KiB, prng(5)), Buffer.from([0xff])]));
const bomb = zeroBomb(8 * 1024 * 1024);

const CASES: Case[] = [
  {
    name: 'invalid UTF-8 in a later fragment',
    start: [text('valid start, ')],
    bad: [cont(Buffer.from([0x61, 0xc0, 0x80]))],
    code: 1007,
    violation: 'InvalidUtf8',
  },
  {
    name: 'a character split across fragments that turns out invalid at the join (E2 82 | 28)',
    start: [text(Buffer.from([0x61, 0xe2, 0x82]))],
    bad: [cont(Buffer.from([0x28]), true)],
    code: 1007,
    violation: 'InvalidUtf8',
  },
  {
    name: 'a surrogate (ED A0 80) in the middle',
    start: [text('valid start, ')],
    bad: [cont(Buffer.from([0xed, 0xa0, 0x80]))],
    code: 1007,
    violation: 'InvalidUtf8',
  },
  {
    name: 'a text message that ends in the middle of a character',
    start: [text('valid start, ')],
    bad: [cont(Buffer.from([0xf0, 0x9f, 0x98]), true)],
    code: 1007,
    violation: 'InvalidUtf8',
  },
  {
    name: 'a new data frame interleaved with the open message',
    start: [text('valid start, ')],
    bad: [{ opcode: OP.BINARY, payload: 'interleaved' }],
    code: 1002,
    violation: 'ExpectedContinuation',
  },
  {
    name: 'a reserved data opcode (0x3)',
    start: [text('valid start, ')],
    bad: [{ opcode: 0x3, payload: 'x' }],
    code: 1002,
    violation: 'ReservedOpcode',
  },
  {
    name: 'a reserved control opcode (0xB)',
    start: [text('valid start, ')],
    bad: [{ opcode: 0xb }],
    code: 1002,
    violation: 'ReservedOpcode',
  },
  {
    name: 'a ping of 126 bytes between fragments',
    start: [text('valid start, ')],
    bad: [{ opcode: OP.PING, payload: Buffer.alloc(126, 0x70) }],
    code: 1002,
    violation: 'ControlFrameTooLong',
  },
  {
    name: 'a fragmented ping between fragments',
    start: [text('valid start, ')],
    bad: [{ opcode: OP.PING, payload: 'p', fin: false }],
    code: 1002,
    violation: 'ControlFrameFragmented',
  },
  {
    name: 'RSV2 on a continuation frame',
    start: [text('valid start, ')],
    bad: [{ ...cont('x'), rsv2: true }],
    code: 1002,
    violation: 'ReservedBits',
  },
  {
    name: 'an unmasked continuation frame',
    start: [text('valid start, ')],
    bad: [{ ...cont('x'), maskKey: null }],
    code: 1002,
    violation: 'UnmaskedFrame',
  },
  {
    name: 'a 64-bit length with its top bit set',
    start: [text('valid start, ')],
    bad: [{ ...cont('x'), declaredLength: 1n << 63n }],
    code: 1002,
    violation: 'LengthTopBitSet',
  },
  {
    name: 'the streamed size limit crossed by a later fragment (from its header)',
    options: { maxStreamedMessageSize: 100 * KiB },
    start: [{ opcode: OP.BINARY, payload: Buffer.alloc(60 * KiB, 1), fin: false }],
    bad: [cont(Buffer.alloc(60 * KiB, 2), true)],
    code: 1009,
    violation: 'MessageTooBig',
  },
  {
    name: 'compressed: RSV1 on a continuation frame',
    deflate: true,
    start: [{ ...text(deflatePayload(Buffer.from('valid start'))), rsv1: true }],
    bad: [{ ...cont(Buffer.from([0x00])), rsv1: true }],
    code: 1002,
    violation: 'ReservedBits',
  },
  {
    name: 'compressed: a bad block in a later fragment',
    deflate: true,
    start: [{ ...text(deflatePayload(Buffer.from('valid start'))), rsv1: true }],
    bad: [cont(Buffer.from([0xff, 0xff, 0xff, 0xff]), true)],
    code: 1002,
    violation: 'InvalidCompressedData',
  },
  {
    name: 'compressed: a later fragment inflates to invalid UTF-8',
    deflate: true,
    start: [{ ...text(invalidLater[0]), rsv1: true }],
    bad: [cont(invalidLater[1], true)],
    code: 1007,
    violation: 'InvalidUtf8',
  },
  {
    name: 'compressed: inflating past the streamed size limit (a bomb)',
    deflate: true,
    options: { maxStreamedMessageSize: 1024 * 1024 },
    start: [{ opcode: OP.BINARY, rsv1: true, payload: bomb.subarray(0, 64), fin: false }],
    bad: [cont(bomb.subarray(64), true)],
    code: 1009,
    violation: 'InflatedMessageTooBig',
  },
];

describe('bad input in the middle of a streamed message', () => {
  for (const c of CASES) {
    it(`${c.name}: closes with ${c.code}, the stream fails with the ProtocolError, nothing is left behind`, async () => {
      const { server, seen } = await streamingServer({ perMessageDeflate: c.deflate === true, ...c.options });
      const raw = await RawClient.connect(
        server.port,
        c.deflate === true ? { extensions: ['permessage-deflate'] } : {},
      );
      const connection = await server.connectionOf(raw);
      raw.sendFrames(...c.start);
      await waitUntil(() => seen.length === 1 && seen[0]!.chunks.length > 0, 3000, 'the first chunk of the stream');
      raw.sendFrames(...c.bad);
      const close = await raw.waitCloseFrame();
      assert.equal(close.code, c.code, `close frame ${close.code} "${close.reason}"`);
      await assertClosedOnce(connection, c.code, false);
      const error = await withTimeout(seen[0]!.ended, 3000, 'the stream to end');
      assert.ok(error instanceof ProtocolError, `the stream ended with ${String(error)}`);
      assert.equal(error.closeCode, c.code);
      assert.equal(error.violation, c.violation);
      assert.ok(seen[0]!.stream.destroyed, 'the stream is destroyed');
      assert.equal(seen.length, 1, 'no other stream');
      // Nothing left behind.
      await raw.waitClosed();
      await waitUntil(() => server.wss.clients.size === 0, 3000, 'the connection to leave the server');
      assert.equal(inflateBudget.held, 0, 'no inflate budget held');
    });
  }

  it("the peer's close frame in the middle: the stream fails with a MessageAbortedError, the close is echoed, clean", async () => {
    const { server, seen } = await streamingServer({});
    const raw = await RawClient.connect(server.port);
    const connection = await server.connectionOf(raw);
    raw.sendFrames(text('part of a message'));
    await waitUntil(() => seen[0]?.chunks.length === 1, 3000, 'the first chunk');
    raw.sendFrame({ opcode: OP.CLOSE, payload: closePayload(1000, 'enough') });
    assert.equal((await raw.waitCloseFrame()).code, 1000);
    await assertClosedOnce(connection, 1000, true);
    assert.ok((await seen[0]!.ended) instanceof MessageAbortedError);
  });

  for (const reader of ["no 'stream' listener (the message is discarded)", "a reader with a 'data' listener only"]) {
    it(`${reader}: a violation in the middle throws nothing out of the library; the stream closes without 'end'`, async () => {
      const closed: boolean[] = [];
      const server = await startServer({ streamMessages: true, pingInterval: 0 }, (ws) => {
        if (reader.startsWith('no')) return;
        ws.on('stream', (stream) => {
          stream.on('data', () => {});
          stream.on('close', () => closed.push(stream.readableEnded));
        });
      });
      servers.push(server);
      const raw = await RawClient.connect(server.port);
      const connection = await server.connectionOf(raw);
      raw.sendFrames(text('valid start, '), cont(Buffer.from([0xff])));
      assert.equal((await raw.waitCloseFrame()).code, 1007);
      await assertClosedOnce(connection, 1007, false);
      if (!reader.startsWith('no')) {
        await waitUntil(() => closed.length === 1, 3000, "the stream's close");
        assert.deepEqual(closed, [false], "closed, without 'end'");
      }
    });
  }

  it('TCP lost in the middle: the stream fails with a MessageAbortedError, the close reports 1006', async () => {
    const { server, seen } = await streamingServer({});
    const raw = await RawClient.connect(server.port);
    const connection = await server.connectionOf(raw);
    raw.sendFrames(text('part of a message'));
    await waitUntil(() => seen[0]?.chunks.length === 1, 3000, 'the first chunk');
    raw.reset();
    await assertClosedOnce(connection, 1006, false);
    assert.ok((await seen[0]!.ended) instanceof MessageAbortedError);
    await waitUntil(() => server.wss.clients.size === 0, 3000, 'the connection to leave the server');
  });
});
