/**
 * Frames of any size for the test peer (RFC 6455 §5.2, §5.3), written from the RFC like the rest
 * of the peer and never importing src/: a reader that hands on each frame's payload in pieces as
 * it arrives (the peer's FrameDecoder holds a frame whole, which a 4 GiB frame cannot be), a frame
 * header for a payload written afterwards, masking a word at a time, and an opening handshake on a
 * bare socket whose frames the caller reads itself.
 */
import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { handshakeRequest, headEnd, parseResponseHead, type ParsedResponse, type RequestSpec } from './http.js';
import { withTimeout } from './wait.js';

export interface PieceHeader {
  fin: boolean;
  rsv1: boolean;
  rsv2: boolean;
  rsv3: boolean;
  opcode: number;
  /** The masking key, or null (§5.3). */
  maskKey: Buffer | null;
  /** The payload length (§5.2; a 64-bit one read exactly up to 2^53). */
  length: number;
}

export interface PieceHandlers {
  /** A frame's header is read; its payload follows in pieces. */
  header(header: PieceHeader): void;
  /** A piece of the current frame's payload, unmasked. */
  piece(data: Buffer, header: PieceHeader): void;
  /** The current frame's payload is complete. */
  end(header: PieceHeader): void;
}

/** An incremental frame reader that never holds a payload: pieces out as bytes come in. */
export class FramePieceReader {
  private pending: Buffer = Buffer.alloc(0);
  private current: PieceHeader | null = null;
  private remaining = 0;
  private phase = 0;

  constructor(private readonly handlers: PieceHandlers) {}

  push(chunk: Buffer): void {
    let data = chunk;
    while (data.length > 0) {
      if (this.current === null) {
        // Header bytes may straddle chunks: gather at most 14.
        const joined = this.pending.length === 0 ? data : Buffer.concat([this.pending, data]);
        const parsed = parseHeader(joined);
        if (parsed === null) {
          this.pending = Buffer.from(joined);
          return;
        }
        this.pending = Buffer.alloc(0);
        this.current = parsed.header;
        this.remaining = parsed.header.length;
        this.phase = 0;
        this.handlers.header(parsed.header);
        data = joined.subarray(parsed.size);
        if (this.remaining === 0) this.finish();
        continue;
      }
      const n = Math.min(this.remaining, data.length);
      const piece = data.subarray(0, n);
      const key = this.current.maskKey;
      if (key !== null) this.phase = maskInPlace(piece, key, this.phase);
      this.remaining -= n;
      data = data.subarray(n);
      this.handlers.piece(piece, this.current);
      if (this.remaining === 0) this.finish();
    }
  }

  private finish(): void {
    const header = this.current!;
    this.current = null;
    this.handlers.end(header);
  }
}

/** §5.2: a header from the start of `bytes`, or null when more bytes are needed. */
function parseHeader(bytes: Buffer): { header: PieceHeader; size: number } | null {
  if (bytes.length < 2) return null;
  const b0 = bytes[0]!;
  const b1 = bytes[1]!;
  const masked = (b1 & 0x80) !== 0;
  const code = b1 & 0x7f;
  let at = code === 126 ? 4 : code === 127 ? 10 : 2;
  if (bytes.length < at + (masked ? 4 : 0)) return null;
  let length = code;
  if (code === 126) length = bytes.readUInt16BE(2);
  else if (code === 127) length = Number(bytes.readBigUInt64BE(2));
  const maskKey = masked ? Buffer.from(bytes.subarray(at, at + 4)) : null;
  if (masked) at += 4;
  const header: PieceHeader = {
    fin: (b0 & 0x80) !== 0,
    rsv1: (b0 & 0x40) !== 0,
    rsv2: (b0 & 0x20) !== 0,
    rsv3: (b0 & 0x10) !== 0,
    opcode: b0 & 0x0f,
    maskKey,
    length,
  };
  return { header, size: at };
}

/**
 * §5.3: XOR `data` with `key`, starting at byte `phase` of the key; returns the phase after it. A
 * word at a time when the data is aligned and starts a key cycle (the key's bytes as a word, in
 * memory order, XOR each word of data exactly as the RFC's octet-by-octet rule does).
 */
export function maskInPlace(data: Uint8Array, key: Uint8Array, phase = 0): number {
  let i = 0;
  if (phase === 0 && data.byteOffset % 4 === 0) {
    const words = data.length >>> 2;
    const view = new Uint32Array(data.buffer, data.byteOffset, words);
    const word = new Uint32Array(Uint8Array.from(key).buffer)[0]!;
    for (let w = 0; w < words; w++) view[w] = view[w]! ^ word;
    i = words * 4;
  }
  for (; i < data.length; i++) data[i] = data[i]! ^ key[(phase + i) % 4]!;
  return (phase + data.length) % 4;
}

/** §5.2: the header of a frame whose `length` bytes of payload the caller writes after it (masked with `maskKey` if given). */
export function frameHead(spec: {
  opcode: number;
  fin: boolean;
  rsv1?: boolean;
  length: number;
  maskKey: Uint8Array | null;
}): Buffer {
  const b0 = (spec.fin ? 0x80 : 0) | (spec.rsv1 === true ? 0x40 : 0) | spec.opcode;
  const mask = spec.maskKey === null ? 0 : 0x80;
  let head: Buffer;
  if (spec.length < 126) head = Buffer.from([b0, mask | spec.length]);
  else if (spec.length <= 0xffff) {
    head = Buffer.from([b0, mask | 126, 0, 0]);
    head.writeUInt16BE(spec.length, 2);
  } else {
    head = Buffer.from([b0, mask | 127, 0, 0, 0, 0, 0, 0, 0, 0]);
    head.writeBigUInt64BE(BigInt(spec.length), 2);
  }
  return spec.maskKey === null ? head : Buffer.concat([head, spec.maskKey]);
}

/**
 * Open a TCP connection and do the opening handshake (§4.1); the caller reads the frames itself
 * (`rest`: bytes that came after the response head).
 */
export async function openWebSocket(
  port: number,
  spec: RequestSpec = {},
  host = '127.0.0.1',
): Promise<{ socket: Socket; response: ParsedResponse; rest: Buffer }> {
  const socket = netConnect({ port, host });
  socket.setNoDelay(true);
  await withTimeout(once(socket, 'connect'), 5000, `TCP connect to ${host}:${port}`);
  socket.write(handshakeRequest(spec, `${host}:${port}`));
  let buffered = Buffer.alloc(0);
  const head = await withTimeout(
    new Promise<{ response: ParsedResponse; rest: Buffer }>((resolve, reject) => {
      const onData = (chunk: Buffer): void => {
        buffered = Buffer.concat([buffered, chunk]);
        const end = headEnd(buffered);
        if (end < 0) return;
        socket.off('data', onData);
        socket.pause();
        try {
          const response = parseResponseHead(buffered.subarray(0, end - 4).toString('latin1'));
          resolve({ response, rest: Buffer.from(buffered.subarray(end)) });
        } catch (error) {
          reject(error as Error);
        }
      };
      socket.on('data', onData);
      socket.once('error', reject);
    }),
    5000,
    'the response head',
  );
  return { socket, ...head };
}
