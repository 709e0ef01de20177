/**
 * Properties of the opening handshake's HTTP layer (src/protocol/http1.ts, src/protocol/handshake.ts), the first
 * code any byte from the network reaches:
 * - a valid upgrade request, cut into chunks anywhere, reads and validates the same as in one
 *   piece, and the bytes after the head (the first frames) come out untouched;
 * - arbitrary bytes, chunked arbitrarily, only ever end in an HttpError with a 4xx status, never
 *   another exception, and the reader never holds more than its limit;
 * - a response head (what the client reads) behaves the same way.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  generateKey,
  upgradeRequest,
  validateUpgradeRequest,
  validateUpgradeResponse,
  switchingProtocolsResponse,
} from '../src/protocol/handshake.js';
import { HeadReader, HttpError, parseRequestHead, parseResponseHead } from '../src/protocol/http1.js';
import { cutChunks, chunkPlan, runs } from './streams.js';

const token = fc.stringMatching(/^[a-z][a-z0-9.-]{0,11}$/);
const path = fc.stringMatching(/^\/[A-Za-z0-9._~%!$&'()*+,;=:@/?-]{0,40}$/);

const validRequest = fc.record({
  path,
  host: fc.stringMatching(/^[a-z0-9.-]{1,20}(:[0-9]{1,5})?$/),
  protocols: fc.uniqueArray(token, { maxLength: 4 }),
  headers: fc.array(
    fc.tuple(
      fc.stringMatching(/^X-[A-Za-z0-9-]{1,12}$/),
      fc.stringMatching(/^[\x20-\x7e]{0,40}$/).map((v) => v.trim()),
    ),
    { maxLength: 5 },
  ),
  rest: fc.uint8Array({ maxLength: 64 }),
});

/** Feed `bytes` to a reader in the chunks of `plan`; the result, or the error it threw. */
function feed(
  reader: HeadReader,
  bytes: Uint8Array,
  plan: Parameters<typeof cutChunks>[1],
): { head: Buffer; rest: Buffer } | HttpError | null {
  let restParts: Buffer[] = [];
  let head: Buffer | null = null;
  for (const chunk of cutChunks(bytes, plan)) {
    if (head !== null) {
      restParts.push(Buffer.from(chunk));
      continue;
    }
    try {
      const result = reader.push(Buffer.from(chunk));
      if (result !== null) {
        head = Buffer.from(result.head);
        restParts = [Buffer.from(result.rest)];
      }
    } catch (error) {
      if (error instanceof HttpError) return error;
      throw error;
    }
    assert.ok(reader.bufferedBytes <= reader.maxSize, 'the reader never holds more than its limit');
  }
  return head === null ? null : { head, rest: Buffer.concat(restParts) };
}

describe('HTTP head reader and handshake validation (RFC 9112, RFC 6455 §4)', () => {
  it('a valid upgrade request reads and validates the same under any chunking; the bytes after it are kept', () => {
    fc.assert(
      fc.property(validRequest, chunkPlan, (spec, plan) => {
        const key = generateKey();
        const request = upgradeRequest({
          path: spec.path,
          host: spec.host,
          key,
          protocols: spec.protocols,
          headers: spec.headers,
        });
        const bytes = Buffer.concat([request, spec.rest]);
        const result = feed(new HeadReader(), bytes, plan);
        assert.ok(result !== null && !(result instanceof HttpError), `not read: ${String(result)}`);
        assert.deepEqual(result.rest, Buffer.from(spec.rest));
        const head = parseRequestHead(result.head);
        assert.equal(head.method, 'GET');
        assert.equal(head.target, spec.path);
        const fields = validateUpgradeRequest(head);
        assert.equal(fields.key, key);
        assert.deepEqual(fields.protocols, spec.protocols);
      }),
      { numRuns: runs },
    );
  });

  it('arbitrary bytes end only in an HttpError with a 4xx status (or wait for more), under any chunking', () => {
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      // Mostly printable, with line endings here and there: gets further into the parsers.
      fc
        .array(
          fc.oneof(fc.constantFrom('\r\n', '\r\n\r\n', ' ', ':', '\n', '\r'), fc.stringMatching(/^[\x00-\x7f]{0,20}$/)),
          { maxLength: 30 },
        )
        .map((parts) => Buffer.from(parts.join(''), 'latin1')),
      // Valid requests with one byte changed.
      fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })).map(([at, value]) => {
        const request = Buffer.from(
          upgradeRequest({ path: '/', host: 'h', key: generateKey(), protocols: ['chat'], headers: [] }),
        );
        request[at % request.length] = value;
        return request;
      }),
    );
    fc.assert(
      fc.property(bytes, chunkPlan, fc.integer({ min: 16, max: 512 }), (input, plan, maxSize) => {
        const reader = new HeadReader(maxSize);
        const result = feed(reader, input, plan);
        if (result instanceof HttpError) {
          assert.ok(result.status === 400 || result.status === 431, `status ${result.status}`);
          return;
        }
        if (result === null) return;
        // A complete head: parsing and validation either succeed or refuse with 4xx.
        try {
          validateUpgradeRequest(parseRequestHead(result.head));
        } catch (error) {
          assert.ok(error instanceof HttpError, `threw ${String(error)}`);
          assert.ok(error.status >= 400 && error.status < 500, `status ${error.status}`);
        }
      }),
      { numRuns: runs * 5 },
    );
  });

  it('a 101 response reads and validates under any chunking; arbitrary bytes as a response only give HttpError', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(token, { maxLength: 3 }),
        fc.uint8Array({ maxLength: 64 }),
        chunkPlan,
        (protocols, rest, plan) => {
          const key = generateKey();
          const protocol = protocols[0];
          const response = switchingProtocolsResponse(key, protocol);
          const result = feed(new HeadReader(undefined, 'response'), Buffer.concat([response, rest]), plan);
          assert.ok(result !== null && !(result instanceof HttpError), `not read: ${String(result)}`);
          assert.deepEqual(result.rest, Buffer.from(rest));
          const validated = validateUpgradeResponse(parseResponseHead(result.head), key, protocols);
          assert.equal(validated.protocol, protocol ?? '');
        },
      ),
      { numRuns: runs },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), chunkPlan, (input, plan) => {
        const result = feed(new HeadReader(64, 'response'), input, plan);
        if (result === null || result instanceof HttpError) return;
        try {
          parseResponseHead(result.head);
        } catch (error) {
          assert.ok(error instanceof HttpError, `threw ${String(error)}`);
        }
      }),
      { numRuns: runs * 5 },
    );
  });
});
