/**
 * Target 5: the whole server, as a peer sees it: an echo server (each message sent back as it came)
 * over an in-memory duplex, fed the fuzzer's bytes (a request head, then frames) cut where the
 * fuzzer says, then the end of the stream. Checked: the connection ends; whatever the server wrote
 * is a response head and then valid server frames read by the independent test peer's decoder
 * (unmasked, defined opcodes, control frames short and whole, RSV1 only on the first frame of a
 * compressed message, close codes sendable and reasons UTF-8, nothing after the close frame,
 * compressed messages inflate, text is UTF-8); a 101 only for a request RFC 6455 §4.2.1 accepts;
 * the application hears of each connection's close exactly once; nothing is left in the registry
 * or in the process's inflate budget; nothing escapes as an exception.
 */
import { isUtf8 } from 'node:buffer';
import { Duplex } from 'node:stream';
import {
  FrameDecoder,
  OP,
  isControl,
  isSendableCloseCode,
  type DecodedFrame,
} from '../../spec-tests/helpers/peer/frames.js';
import { StrictInflater, negotiated, type DeflateAgreement } from '../../spec-tests/helpers/peer/deflate.js';
import { acceptFor, headEnd, parseResponseHead } from '../../spec-tests/helpers/peer/http.js';
import { inflateBudget } from '../../src/protocol/inflate-budget.js';
import { WebSocketServer, type ServerOptions } from '../../src/websocket/server.js';
import type { WebSocket } from '../../src/websocket/websocket.js';
import { InputReader, check, chunks, type FuzzTarget } from './target.js';
import { readRequest, upgradeRefusals } from './oracle/http.js';

const VARIANTS: readonly ServerOptions[] = [
  {},
  { perMessageDeflate: { threshold: 0 } },
  {
    perMessageDeflate: { threshold: 0, serverNoContextTakeover: true, serverMaxWindowBits: 9 },
    maxMessageSize: 1000,
    maxFramePayload: 200,
  },
  { maxHeaderSize: 256, protocols: ['chat'], fragmentSize: 10 },
];
const REFUSALS = new Set([400, 403, 404, 405, 426, 431, 503]);
/** Far more than any input needs; past it the connection did not end: a hang. */
const SETTLE_MS = 3000;

/** The peer's end of the duplex: the bytes the server wrote, and whether it ended or went away. */
export class MemorySocket extends Duplex {
  readonly written: Buffer[] = [];
  ended = false;
  override _read(): void {}
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    check(!this.ended, 'the server wrote after ending the stream');
    this.written.push(Buffer.from(chunk));
    callback();
  }
  override _final(callback: () => void): void {
    this.ended = true;
    callback();
  }
}

interface Echo {
  server: WebSocketServer;
  /** How many 'close' events each connection of the current input emitted. */
  closes: Map<WebSocket, number>;
}

const echoes = new Map<number, Echo>();

function echo(variant: number): Echo {
  let found = echoes.get(variant);
  if (found !== undefined) return found;
  const server = new WebSocketServer({ ...VARIANTS[variant], handshakeTimeout: 0 });
  const closes = new Map<WebSocket, number>();
  server.on('connection', (socket) => {
    closes.set(socket, 0);
    socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
    socket.on('close', () => closes.set(socket, (closes.get(socket) ?? 0) + 1));
    socket.on('error', () => {});
  });
  server.on('error', () => {});
  found = { server, closes };
  echoes.set(variant, found);
  return found;
}

/** RFC 6455 §5: the server's frames, read by the test peer, frame by frame. */
export class ServerFrameChecker {
  private closed = false;
  private inMessage = false;
  private compressed = false;
  private parts: Buffer[] = [];
  private readonly inflater: StrictInflater | null;
  readonly messages: { opcode: number; data: Buffer }[] = [];
  readonly decoder = new FrameDecoder((frame) => this.frame(frame));

  constructor(private readonly deflate: DeflateAgreement | null) {
    this.inflater = deflate === null ? null : new StrictInflater(deflate.serverBits, !deflate.serverNoContextTakeover);
  }

  private frame(frame: DecodedFrame): void {
    const { opcode } = frame;
    check(!this.closed, 'a frame after the close frame (RFC 6455 §5.5.1)');
    check(!frame.masked, 'a masked frame from the server (RFC 6455 §5.1)');
    check(!frame.rsv2 && !frame.rsv3, 'RSV2 or RSV3 set (RFC 6455 §5.2)');
    check(([0, 1, 2, 8, 9, 10] as number[]).includes(opcode), `reserved opcode ${opcode}`);
    if (isControl(opcode)) {
      check(frame.fin && frame.payload.length <= 125 && !frame.rsv1, 'a fragmented, long or RSV1 control frame');
      if (opcode === OP.CLOSE) {
        this.closed = true;
        const payload = frame.payload;
        check(payload.length !== 1, 'a one-byte close payload (RFC 6455 §5.5.1)');
        if (payload.length >= 2) {
          const code = payload.readUInt16BE(0);
          check(isSendableCloseCode(code), `close code ${code} may not be sent (RFC 6455 §7.4)`);
          check(isUtf8(payload.subarray(2)), 'a close reason that is not UTF-8 (RFC 6455 §5.5.1)');
        }
      }
      return;
    }
    if (opcode === OP.CONT) check(this.inMessage, 'a continuation frame outside a message (RFC 6455 §5.4)');
    else {
      check(!this.inMessage, 'a new message inside a fragmented one (RFC 6455 §5.4)');
      check(!frame.rsv1 || this.deflate !== null, 'RSV1 without permessage-deflate agreed (RFC 7692 §6)');
      this.compressed = frame.rsv1;
      this.inMessage = true;
      this.parts = [];
      this.messages.push({ opcode, data: Buffer.alloc(0) });
    }
    if (opcode === OP.CONT) check(!frame.rsv1, 'RSV1 on a continuation frame (RFC 7692 §6.1)');
    this.parts.push(frame.payload);
    if (!frame.fin) return;
    this.inMessage = false;
    let data: Buffer = Buffer.concat(this.parts);
    if (this.compressed) {
      try {
        data = this.inflater!.inflate(data);
      } catch (error) {
        check(false, `a compressed message does not inflate: ${String(error)}`);
      }
    }
    const message = this.messages[this.messages.length - 1]!;
    message.data = data;
    if (message.opcode === OP.TEXT) check(isUtf8(data), 'a text message that is not UTF-8 (RFC 6455 §8.1)');
  }

  /** At the end of the stream: no frame left half written. */
  finish(): void {
    check(this.decoder.stopped === null, () => `undecodable frame: ${this.decoder.stopped}`);
    check(this.decoder.pending === 0, `the stream ended inside a frame (${this.decoder.pending} bytes)`);
  }
}

/** Waits until `done()` or SETTLE_MS, letting timers, I/O and zlib run. */
export async function settle(done: () => boolean): Promise<boolean> {
  const deadline = Date.now() + SETTLE_MS;
  for (let turns = 0; !done(); turns++) {
    if (Date.now() > deadline) return false;
    // A few turns of the event loop settle most inputs; then give timers and zlib's threads time.
    await new Promise((resolve) => (turns < 50 ? setImmediate(resolve) : setTimeout(resolve, 1)));
  }
  return true;
}

export const target: FuzzTarget = {
  description: 'an echo server over an in-memory duplex: a request head, then frames, then the end',
  maxLength: 64 * 1024,
  dictionary: [
    'GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n',
    'Sec-WebSocket-Extensions: permessage-deflate\r\n',
    'Sec-WebSocket-Protocol: chat\r\n',
    '\r\n\r\n',
    '\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58',
    '\x88\x82\x00\x00\x00\x00\x03\xe8',
    '\x89\x80\x00\x00\x00\x00',
    '\x01\x80\x00\x00\x00\x00',
    '\x80\x80\x00\x00\x00\x00',
    '\xc1\x80\x00\x00\x00\x00',
    '\x82\xfe\x00\x7e',
    '\x82\xff\x00\x00\x00\x00\x00\x00\x01\x00',
  ],
  async run(input) {
    const reader = new InputReader(input);
    const variant = reader.byte() % VARIANTS.length;
    const seed = reader.byte();
    const data = reader.rest();
    const { server, closes } = echo(variant);
    closes.clear();
    const socket = new MemorySocket();
    let streamClosed = false;
    socket.on('close', () => (streamClosed = true));
    socket.on('error', () => {});
    server.handleSocket(socket);
    const pieces = chunks(data, seed);
    for (let i = 0; i < pieces.length && !streamClosed; i++) {
      // Each push is one read for the server. A turn of the event loop now and then lets zlib and
      // the server's deferred work interleave with the reads (one per read would make a 64 KiB
      // input cut into bytes cost the harness seconds, the library milliseconds).
      socket.push(pieces[i]!);
      if (i % 16 === 15) await new Promise((resolve) => setImmediate(resolve));
    }
    if (!streamClosed) socket.push(null);
    const ended = await settle(
      () => streamClosed && [...closes.values()].every((n) => n > 0) && server.clients.size === 0,
    );
    check(ended, 'the connection did not end within 3 s of the end of its input');
    for (const [, count] of closes) check(count === 1, `the application heard of a close ${count} times`);
    check(inflateBudget.held === 0, () => `${inflateBudget.held} inflated bytes still held after the close`);

    const out = Buffer.concat(socket.written);
    if (out.length === 0) return;
    const end = headEnd(out);
    check(end > 0, 'the server wrote something that is not a response head');
    const response = parseResponseHead(out.subarray(0, end - 4).toString('latin1'));
    if (response.status !== 101) {
      check(REFUSALS.has(response.status), `refused with status ${response.status}`);
      return;
    }
    const headBytes = data.subarray(0, data.indexOf('\r\n\r\n') + 2);
    const request = readRequest(headBytes);
    check(request !== null && upgradeRefusals(request).length === 0, 'a 101 for a request RFC 6455 §4.2.1 refuses');
    // The limits a peer must not get past: the head (431 beyond it) and each message (1009 beyond it).
    const options = VARIANTS[variant]!;
    const maxHead = options.maxHeaderSize ?? 16 * 1024;
    check(headBytes.length <= maxHead, `a ${headBytes.length}-byte head accepted past maxHeaderSize ${maxHead}`);
    const key = request.fields.find(([name]) => name.toLowerCase() === 'sec-websocket-key')![1];
    check(response.header('sec-websocket-accept') === acceptFor(key), 'a wrong Sec-WebSocket-Accept');
    const extensions = response.header('sec-websocket-extensions');
    const checker = new ServerFrameChecker(extensions === undefined ? null : negotiated(extensions));
    checker.decoder.push(out.subarray(end));
    checker.finish();
    const maxMessage = options.maxMessageSize ?? 64 * 1024 * 1024;
    for (const message of checker.messages) {
      check(message.data.length <= maxMessage, `a ${message.data.length}-byte message delivered past maxMessageSize`);
    }
  },
};
