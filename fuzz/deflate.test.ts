/**
 * Fuzz: permessage-deflate (RFC 7692) in memory, both roles at once, as on a connection.
 *
 * Random negotiated parameters (context takeover or not, window bits 8-15 each side, level,
 * memLevel, threshold) are negotiated with the library's own functions; each side gets its
 * PerMessageDeflate. Random message sequences (text and binary, 0 to ~100 KiB, compressible,
 * random or mixed) are compressed by the sender's PerMessageDeflate, framed with the writer
 * (fragmentSize, or arbitrary split points with pings in between; masked from the client only),
 * cut into arbitrary chunks and fed to a Receiver whose inflater is the peer's PerMessageDeflate.
 * Both directions run concurrently over the same two PerMessageDeflate objects.
 *
 * FUZZ_RUNS (default 50) sets the number of runs; FUZZ_SEED replays one.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { constants as zc, deflateRawSync } from 'node:zlib';
import fc from 'fast-check';
import { Opcode } from '../src/protocol/constants.js';
import { ProtocolError } from '../src/protocol/errors.js';
import { PerMessageDeflate } from '../src/driver/deflate-zlib.js';
import {
  acceptDeflateOffer,
  acceptDeflateResponse,
  deflateOffer,
  type PerMessageDeflateOptions,
} from '../src/protocol/permessage-deflate.js';
import { inflateBudget } from '../src/protocol/inflate-budget.js';
import { parseExtensions } from '../src/protocol/extensions.js';
import type { Frame, Role } from '../src/protocol/receiver.js';
import { MaskKeySource } from '../src/protocol/writer.js';
import { appendControlFrame, appendFrame, appendMessage } from '../spec-tests/helpers/writer.js';
import { compressible, prng, randomBuffer, randomText } from '../spec-tests/helpers/data.js';
import { InflatingReceiver } from '../spec-tests/helpers/core.js';

const runs = Number(process.env.FUZZ_RUNS ?? 50);
const seed = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
const params = (numRuns: number): fc.Parameters<unknown> => ({ numRuns, ...(seed === undefined ? {} : { seed }) });

const maskKeys = new MaskKeySource();

// ---------------------------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------------------------

const bits = fc.option(fc.integer({ min: 8, max: 15 }), { nil: undefined });
const sideOptions = fc.record({
  serverNoContextTakeover: fc.boolean(),
  clientNoContextTakeover: fc.boolean(),
  serverMaxWindowBits: bits,
  clientMaxWindowBits: bits,
  level: fc.option(fc.integer({ min: 0, max: 9 }), { nil: undefined }),
  memLevel: fc.option(fc.integer({ min: 1, max: 9 }), { nil: undefined }),
  threshold: fc.oneof(fc.constant(undefined), fc.integer({ min: 0, max: 2048 })),
});

interface MessageModel {
  size: number;
  content: 'compressible' | 'random' | 'mixed';
  text: boolean;
  compress: boolean;
  seed: number;
}

const messageModel: fc.Arbitrary<MessageModel> = fc.record({
  size: fc.oneof(
    fc.integer({ min: 0, max: 300 }),
    fc.integer({ min: 0, max: 5000 }),
    fc.integer({ min: 0, max: 100 * 1024 }),
  ),
  content: fc.constantFrom('compressible' as const, 'random' as const, 'mixed' as const),
  text: fc.boolean(),
  compress: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  seed: fc.integer({ min: 1, max: 0x7fffffff }),
});

interface Framing {
  /** 'fixed': the writer's appendMessage with fragmentSize; 'splits': arbitrary split points, pings between. */
  mode: 'fixed' | 'splits';
  fragmentSize: number;
  /** Chunking of the byte stream: the largest chunk, and whether to yield to the event loop between chunks. */
  maxChunk: number;
  yields: boolean;
  seed: number;
}

const framing: fc.Arbitrary<Framing> = fc.record({
  mode: fc.constantFrom('fixed' as const, 'splits' as const),
  fragmentSize: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 64 }), fc.integer({ min: 65, max: 70_000 })),
  maxChunk: fc.oneof(
    fc.integer({ min: 1, max: 16 }),
    fc.integer({ min: 17, max: 4096 }),
    fc.integer({ min: 4097, max: 300_000 }),
  ),
  yields: fc.boolean(),
  seed: fc.integer({ min: 1, max: 0x7fffffff }),
});

function makeData(m: MessageModel): Buffer {
  const rng = prng(m.seed);
  const random = (n: number): Buffer => (m.text ? randomText(n, rng) : randomBuffer(n, rng));
  if (m.content === 'compressible') return compressible(m.size, rng);
  if (m.content === 'random') return random(m.size);
  const half = Math.floor(m.size / 2);
  // Both halves are valid UTF-8 on their own, so their concatenation is too.
  return Buffer.concat([compressible(half, rng), random(m.size - half)]);
}

// ---------------------------------------------------------------------------------------------
// One direction: compress, frame, chunk, receive
// ---------------------------------------------------------------------------------------------

interface Sent {
  data: Buffer;
  binary: boolean;
  compressed: boolean;
}

function deflate(pmd: PerMessageDeflate, data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    pmd.deflate(data, (out) => (out === null ? reject(new Error('deflate returned null')) : resolve(out))),
  );
}

/** Frame one message (payload already compressed when `compressed`), appending to `out`. Returns the pings added. */
function frameMessage(
  out: Buffer[],
  sent: Sent,
  payload: Buffer,
  masked: boolean,
  f: Framing,
  rng: () => number,
): number {
  const keys = masked ? maskKeys : null;
  const opcode = sent.binary ? Opcode.Binary : Opcode.Text;
  // At most ~2000 frames per message, whatever the fragment size, to keep runs fast.
  const floor = Math.ceil(payload.length / 2000);
  if (f.mode === 'fixed') {
    appendMessage(
      out,
      opcode,
      payload,
      sent.compressed,
      keys,
      f.fragmentSize === 0 ? 0 : Math.max(f.fragmentSize, floor),
    );
    return 0;
  }
  // Up to 40 pieces, never more than there are distinct cut points (1 .. length-1) plus one.
  const pieces = 1 + (rng() % Math.max(1, Math.min(40, payload.length)));
  const cuts = new Set<number>();
  while (cuts.size < pieces - 1 && payload.length > 1) cuts.add(1 + (rng() % (payload.length - 1)));
  const points = [0, ...[...cuts].sort((a, b) => a - b), payload.length];
  let pings = 0;
  for (let i = 0; i + 1 < points.length; i++) {
    const first = i === 0;
    const last = i + 2 === points.length;
    appendFrame(
      out,
      first ? opcode : Opcode.Continuation,
      payload.subarray(points[i]!, points[i + 1]!),
      last,
      first && sent.compressed,
      keys,
    );
    // RFC 6455 §5.4: control frames may come between the fragments of a message.
    if (!last && rng() % 4 === 0) {
      appendControlFrame(out, Opcode.Ping, Buffer.from(`ping ${pings}`), keys);
      pings++;
    }
  }
  return pings;
}

interface Received {
  messages: { data: Buffer; isBinary: boolean }[];
  pings: number;
  error: ProtocolError | null;
  frames: Frame[];
}

async function transmit(
  sender: PerMessageDeflate,
  inflater: PerMessageDeflate,
  receiverRole: Role,
  models: readonly MessageModel[],
  f: Framing,
): Promise<void> {
  const rng = prng(f.seed);
  const masked = receiverRole === 'server';
  const sent: Sent[] = [];
  const out: Buffer[] = [];
  let pings = 0;
  for (const m of models) {
    const data = makeData(m);
    const message: Sent = { data, binary: !m.text, compressed: m.compress && data.length >= sender.threshold };
    const payload = message.compressed ? await deflate(sender, data) : data;
    pings += frameMessage(out, message, payload, masked, f, rng);
    sent.push(message);
  }
  const stream = Buffer.concat(out);

  const got: Received = { messages: [], pings: 0, error: null, frames: [] };
  const receiver = new InflatingReceiver(
    { role: receiverRole },
    {
      onMessage: (data, isBinary) => got.messages.push({ data: Buffer.from(data), isBinary }),
      onPing: () => got.pings++,
      onPong: () => {},
      onClose: () => {},
      onError: (error) => (got.error = error),
      onFrame: (frame) => got.frames.push({ ...frame, payload: Buffer.alloc(0) }),
    },
    inflater,
  );

  // Arbitrary chunking; sometimes yielding to the event loop (so inflation completes between
  // chunks), sometimes not (so input piles up behind an inflation in progress).
  // Tiny chunks on long streams only cost time (a frame's pieces each go to zlib separately):
  // keep to ~2 000 chunks a stream.
  const maxChunk = Math.max(f.maxChunk, Math.ceil(stream.length / 1000));
  let at = 0;
  let chunks = 0;
  const yieldEvery = Math.max(1, Math.ceil(stream.length / maxChunk / 30));
  while (at < stream.length) {
    const size = 1 + (rng() % maxChunk);
    receiver.push(stream.subarray(at, at + size));
    at += size;
    if (f.yields && ++chunks % yieldEvery === 0) await new Promise((resolve) => setImmediate(resolve));
  }

  await receiver.settle(() => got.messages.length === sent.length || got.error !== null);
  assert.equal(got.error, null, `receiver failed: ${got.error?.message}`);
  assert.equal(got.messages.length, sent.length, 'receiver stalled, with no inflation in progress');
  got.messages.forEach((message, i) => {
    assert.equal(message.isBinary, sent[i]!.binary, `message ${i}: type`);
    assert.ok(
      message.data.equals(sent[i]!.data),
      `message ${i} of ${sent[i]!.data.length} bytes (${sent[i]!.compressed ? 'compressed' : 'plain'}) differs`,
    );
  });
  assert.equal(got.pings, pings);

  // On the wire: client frames masked, server frames not; RSV1 on the first frame of compressed messages only.
  let index = 0;
  let first = true;
  for (const frame of got.frames) {
    assert.equal(frame.masked, masked, 'masking follows the role (RFC 6455 §5.1)');
    if (frame.opcode === Opcode.Ping) {
      assert.equal(frame.rsv1, false);
      continue;
    }
    assert.equal(
      frame.rsv1,
      first && sent[index]!.compressed,
      `message ${index}: RSV1 on a ${first ? 'first' : 'continuation'} frame`,
    );
    first = frame.fin;
    if (frame.fin) index++;
  }
  assert.equal(index, sent.length);
}

/** Negotiate as a client and a server with these options would, with the library's functions. */
function negotiate(
  client: PerMessageDeflateOptions,
  server: PerMessageDeflateOptions,
): { client: PerMessageDeflate; server: PerMessageDeflate } {
  const accepted = acceptDeflateOffer(parseExtensions([deflateOffer(client)]), server);
  assert.ok(accepted !== null, 'our own offer was declined');
  const clientParams = acceptDeflateResponse(parseExtensions([accepted.response]), client);
  return {
    client: new PerMessageDeflate(clientParams, client),
    server: new PerMessageDeflate(accepted.params, server),
  };
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

describe('fuzz: permessage-deflate', () => {
  it('negotiation: any client options against any server options agree on both sides', () => {
    fc.assert(
      fc.property(sideOptions, sideOptions, (client, server) => {
        const { client: c, server: s } = negotiate(client, server);
        try {
          assert.equal(c.params.ownNoContextTakeover, s.params.peerNoContextTakeover);
          assert.equal(c.params.peerNoContextTakeover, s.params.ownNoContextTakeover);
          assert.equal(c.params.ownMaxWindowBits, s.params.peerMaxWindowBits);
          assert.equal(c.params.peerMaxWindowBits, s.params.ownMaxWindowBits);
          assert.ok(
            s.params.ownMaxWindowBits <= Math.min(client.serverMaxWindowBits ?? 15, server.serverMaxWindowBits ?? 15),
            's.params.ownMaxWindowBits <= Math.min(client.serverMaxWindowBits ?? 15, server.serverMaxWindowBit...',
          );
          assert.ok(
            c.params.ownMaxWindowBits <= Math.min(client.clientMaxWindowBits ?? 15, server.clientMaxWindowBits ?? 15),
            'c.params.ownMaxWindowBits <= Math.min(client.clientMaxWindowBits ?? 15, server.clientMaxWindowBit...',
          );
          if (client.serverNoContextTakeover || server.serverNoContextTakeover)
            assert.equal(s.params.ownNoContextTakeover, true);
          if (client.clientNoContextTakeover || server.clientNoContextTakeover)
            assert.equal(c.params.ownNoContextTakeover, true);
        } finally {
          c.close();
          s.close();
        }
      }),
      params(runs * 20),
    );
  });

  it('any message sequence survives compress -> fragment -> chunk -> decompress, both roles at once, any parameters', async () => {
    await fc.assert(
      fc.asyncProperty(
        sideOptions,
        sideOptions,
        fc.array(messageModel, { minLength: 1, maxLength: 6 }),
        fc.array(messageModel, { minLength: 1, maxLength: 6 }),
        framing,
        framing,
        async (clientOptions, serverOptions, fromClient, fromServer, clientFraming, serverFraming) => {
          const { client, server } = negotiate(clientOptions, serverOptions);
          try {
            await Promise.all([
              transmit(client, server, 'server', fromClient, clientFraming),
              transmit(server, client, 'client', fromServer, serverFraming),
            ]);
          } finally {
            client.close();
            server.close();
          }
        },
      ),
      params(runs),
    );
  });

  it('messages compressed by another sender (one-shot zlib per message, sync flush or a BFINAL block, window <= agreed) inflate', async () => {
    await fc.assert(
      fc.asyncProperty(
        sideOptions,
        fc.array(
          fc.record({
            message: messageModel,
            bfinal: fc.boolean(),
            windowDrop: fc.integer({ min: 0, max: 7 }),
            level: fc.integer({ min: 0, max: 9 }),
          }),
          { minLength: 1, maxLength: 5 },
        ),
        fc.integer({ min: 1, max: 0x7fffffff }),
        async (serverOptions, items, chunkSeed) => {
          // Our server, receiving from a foreign client that compresses every message on its own
          // (always allowed: not using the context is never wrong) within the agreed window.
          const accepted = acceptDeflateOffer(
            parseExtensions(['permessage-deflate; client_max_window_bits']),
            serverOptions,
          );
          assert.ok(accepted !== null, 'accepted !== null');
          const server = new PerMessageDeflate(accepted.params, serverOptions);
          try {
            const windowBits = Math.max(9, accepted.params.peerMaxWindowBits);
            const out: Buffer[] = [];
            const sent: Buffer[] = [];
            for (const { message, bfinal, windowDrop, level } of items) {
              const data = makeData({ ...message, size: Math.min(message.size, 20_000) });
              const bitsUsed = Math.max(9, windowBits - windowDrop);
              const strategy = accepted.params.peerMaxWindowBits === 8 ? zc.Z_HUFFMAN_ONLY : zc.Z_DEFAULT_STRATEGY;
              let payload: Buffer;
              if (bfinal) {
                // RFC 7692 §7.2.3.4: a final block, then one 0x00 byte so the appended tail is harmless.
                payload = Buffer.concat([
                  deflateRawSync(data, { windowBits: bitsUsed, level, strategy }),
                  Buffer.from([0]),
                ]);
              } else {
                const full = deflateRawSync(data, {
                  windowBits: bitsUsed,
                  level,
                  strategy,
                  finishFlush: zc.Z_SYNC_FLUSH,
                });
                payload = full.subarray(0, full.length - 4);
              }
              appendMessage(out, message.text ? Opcode.Text : Opcode.Binary, payload, true, maskKeys, 0);
              sent.push(data);
            }
            const got: Buffer[] = [];
            let error: ProtocolError | null = null;
            const receiver = new InflatingReceiver(
              { role: 'server' },
              {
                onMessage: (d) => got.push(Buffer.from(d)),
                onPing() {},
                onPong() {},
                onClose() {},
                onError: (e) => (error = e),
              },
              server,
            );
            const rng = prng(chunkSeed);
            const stream = Buffer.concat(out);
            for (let at = 0; at < stream.length;) {
              const size = 1 + (rng() % 5000);
              receiver.push(stream.subarray(at, at + size));
              at += size;
            }
            await receiver.settle(() => got.length === sent.length || error !== null);
            assert.equal(error, null);
            assert.equal(got.length, sent.length, 'receiver stalled');
            got.forEach((data, i) =>
              assert.ok(
                data.equals(sent[i]!),
                `message ${i} (bfinal=${items[i]!.bfinal}) differs: got ${data.length} bytes, sent ${sent[i]!.length}`,
              ),
            );
          } finally {
            server.close();
          }
        },
      ),
      params(Math.max(10, Math.ceil(runs / 2))),
    );
  });

  it('garbage and corrupted compressed data never throw or stall: a message within the limit, or a protocol error; nothing stays held in the inflate budget', async () => {
    const allowed = new Set([
      'InvalidCompressedData',
      'InflatedMessageTooBig',
      'InvalidUtf8',
      'MessageTooBig',
      'FrameTooBig',
    ]);
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.uint8Array({ minLength: 0, maxLength: 2000 }).map((a) => Buffer.from(a)),
          // A valid compressed message with a few bytes flipped.
          fc
            .record({
              seed: fc.integer({ min: 1, max: 0x7fffffff }),
              flips: fc.array(fc.nat(), { minLength: 1, maxLength: 4 }),
            })
            .map(({ seed: s, flips }) => {
              const payload = Buffer.from(
                deflateRawSync(compressible(3000, prng(s)), { finishFlush: zc.Z_SYNC_FLUSH }).subarray(0, -4),
              );
              for (const flip of flips) payload[flip % payload.length]! ^= 1 << (flip % 8);
              return payload;
            }),
        ),
        fc.boolean(),
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 1, max: 100 }),
        fc.boolean(),
        async (payload, text, maxMessageSize, fragmentSize, noTakeover) => {
          const heldBefore = inflateBudget.held;
          const inflater = new PerMessageDeflate({
            ownNoContextTakeover: noTakeover,
            peerNoContextTakeover: noTakeover,
            ownMaxWindowBits: 15,
            peerMaxWindowBits: 15,
          });
          try {
            const out: Buffer[] = [];
            appendMessage(out, text ? Opcode.Text : Opcode.Binary, payload, true, maskKeys, fragmentSize);
            // And a valid message after it, which must come through if the first did.
            const follow = deflateRawSync(Buffer.from('after'), { finishFlush: zc.Z_SYNC_FLUSH });
            appendMessage(out, Opcode.Binary, Buffer.from(follow.subarray(0, -4)), true, maskKeys, 0);
            const messages: Buffer[] = [];
            let error: ProtocolError | null = null;
            const receiver = new InflatingReceiver(
              { role: 'server', maxMessageSize },
              {
                onMessage: (d) => messages.push(Buffer.from(d)),
                onPing() {},
                onPong() {},
                onClose() {},
                onError: (e) => (error = e),
              },
              inflater,
            );
            for (const chunk of out) receiver.push(chunk);
            await receiver.settle(() => messages.length === 2 || error !== null);
            if (error !== null) {
              const e = error as ProtocolError;
              assert.ok(allowed.has(e.violation), `unexpected violation ${e.violation}`);
            } else {
              assert.equal(messages.length, 2, 'receiver stalled');
              assert.ok(messages[0]!.length <= maxMessageSize, 'messages[0]!.length <= maxMessageSize');
            }
            // Whatever happened, every inflated byte is back in the process-wide budget.
            receiver.destroy();
            assert.equal(inflateBudget.held, heldBefore, 'inflated bytes still held after the receiver is gone');
          } finally {
            inflater.close();
          }
        },
      ),
      params(runs * 4),
    );
  });
});
