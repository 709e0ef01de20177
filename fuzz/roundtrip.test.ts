/**
 * Property (a): encode then decode is the identity, for any sequence of frames under any chunking.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Receiver } from '../src/protocol/receiver.js';
import {
  Recorder,
  chunkPlan,
  cutChunks,
  encodeFrames,
  encoding,
  expectedEvents,
  modelFrames,
  runs,
  streamModel,
  type Recorded,
} from './streams.js';
import { receiverOptions } from '../spec-tests/helpers/core.js';

describe('fuzz: encode then decode is the identity', () => {
  it('onFrame and onMessage/onPing/onPong/onClose events equal what was encoded, in order, under any chunking', () => {
    fc.assert(
      fc.property(streamModel, encoding, chunkPlan, fc.boolean(), (model, enc, plan, withFrames) => {
        const frames = modelFrames(model);
        const { bytes, keys } = encodeFrames(frames, enc);
        const recorder = new Recorder(withFrames);
        const receiver = new Receiver(receiverOptions(enc.role), recorder);
        const stream = model.close === null ? bytes : Buffer.concat([bytes, model.trailer]);
        for (const chunk of cutChunks(stream, plan)) receiver.push(chunk);

        const expected = expectedEvents(frames, keys, withFrames);
        // The writer draws its own random keys: check they are 4 bytes, then compare without them.
        const actual = recorder.events.map((e, i): Recorded => {
          if (e.type !== 'frame') return e;
          const want = expected[i];
          if (want !== undefined && want.type === 'frame' && want.masked && want.maskKey === null) {
            assert.equal(e.maskKey?.length, 4, 'a masked frame reports its 4-byte key');
            return { ...e, maskKey: null };
          }
          return e;
        });
        assert.deepEqual(actual, expected);
        assert.equal(receiver.finished, model.close !== null, 'finished exactly when a close frame was received');
        assert.equal(recorder.corrupted(), -1, 'a delivered buffer was modified after delivery');
      }),
      { numRuns: runs },
    );
  });
});
