/**
 * Property: a message streamed (`streamMessages`) arrives identical to the same message assembled,
 * for any messages, any fragmentation (control frames between fragments), any TCP chunking, and
 * any pace of the application taking events (parsing is lazy: it reads only as far as the events
 * taken). The pieces of a text message are each valid UTF-8 on their own (cut on code points).
 */
import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { resolveConnectionOptions } from '../src/protocol/options.js';
import { Protocol } from '../src/protocol/protocol.js';
import { chunkPlan, cutChunks, encodeFrames, encoding, modelFrames, runs, streamModel } from './streams.js';

type Seen = { type: 'message'; isBinary: boolean; data: string } | { type: 'ping' | 'pong'; data: string };

/** Drives a core as a driver does; folds a streamed message's events into one message. */
class Taker {
  readonly seen: Seen[] = [];
  private open: { isBinary: boolean; pieces: Buffer[] } | null = null;

  constructor(readonly protocol: Protocol) {}

  /** Take up to `n` events. */
  take(n = Infinity): void {
    for (let i = 0; i < n; i++) {
      const event = this.protocol.nextEvent();
      if (event === null) return;
      switch (event.type) {
        case 'message':
          this.seen.push({ type: 'message', isBinary: event.isBinary, data: event.data.toString('hex') });
          break;
        case 'messageStart':
          assert.equal(this.open, null, 'a message starts inside another');
          this.open = { isBinary: event.isBinary, pieces: [] };
          break;
        case 'messageData':
          assert.ok(this.open !== null, 'data outside a message');
          assert.ok(event.data.length > 0, 'an empty piece');
          if (!this.open.isBinary) assert.ok(isUtf8(event.data), 'a text piece that does not decode on its own');
          // Copied: the buffer is the application's, but the test looks at it later.
          this.open.pieces.push(Buffer.from(event.data));
          break;
        case 'messageEnd': {
          const open = this.open!;
          this.open = null;
          this.seen.push({
            type: 'message',
            isBinary: open.isBinary,
            data: Buffer.concat(open.pieces).toString('hex'),
          });
          break;
        }
        case 'ping':
        case 'pong':
          this.seen.push({ type: event.type, data: event.data.toString('hex') });
          break;
        case 'messageAbort':
        case 'error':
        case 'sendFailed':
          assert.fail(`unexpected ${event.type}`);
      }
    }
  }
}

describe('fuzz: streaming receive = buffered receive', () => {
  it('any messages, fragments, control frames between them, TCP chunks and pace of taking events: the same messages, in order', () => {
    fc.assert(
      fc.property(
        streamModel,
        encoding,
        chunkPlan,
        fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 40 }),
        (model, enc, plan, pace) => {
          const frames = modelFrames(model);
          const { bytes } = encodeFrames(frames, enc);
          const chunks = cutChunks(bytes, plan);
          const options = { pingInterval: 0, maxMessageSize: 1 << 20 };
          const buffered = new Taker(new Protocol(enc.role, resolveConnectionOptions(options), 0));
          const streamed = new Taker(
            new Protocol(enc.role, resolveConnectionOptions({ ...options, streamMessages: true }), 0),
          );
          chunks.forEach((chunk, i) => {
            buffered.protocol.receive(Buffer.from(chunk), 0);
            buffered.take();
            streamed.protocol.receive(Buffer.from(chunk), 0);
            // The application takes a few events, or none, before the next chunk comes.
            streamed.take(pace[i % Math.max(pace.length, 1)] ?? Infinity);
          });
          streamed.take();
          assert.deepEqual(streamed.seen, buffered.seen);
          // And both cores close the same way.
          assert.deepEqual(streamed.protocol.streamClosed(0), buffered.protocol.streamClosed(0));
        },
      ),
      { numRuns: runs },
    );
  });
});
