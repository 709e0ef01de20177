/**
 * A small echo server for the conformance engine's tests, on node:net and the test peer's pieces
 * (its HTTP head parser, frame encoder and permessage-deflate), not on the library: correct by
 * default (RFC 6455 and RFC 7692, failing fast on invalid UTF-8 as the bytes arrive), with
 * switches that break one rule each, so the tests can check the engine finds exactly that.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { TextDecoder } from 'node:util';
import {
  acceptFor,
  closePayload,
  Compressor,
  deflateParams,
  headEnd,
  parseRequestHead,
  serverFrame,
  StrictInflater,
  OP,
  type ParsedRequest,
} from './peer/index.js';

export interface Flaws {
  /** Never checks UTF-8, in text messages or close reasons: echoes whatever comes. */
  skipUtf8?: boolean;
  /** Answers a ping with this payload instead of the ping's. */
  pongPayload?: (ping: Buffer) => Buffer;
  /** Does not check close codes: echoes whatever code it gets (§7.4 says fail with 1002). */
  echoAnyCloseCode?: boolean;
  /** Treats frames with RSV bits set like any other (§5.2 says fail with 1002). */
  ignoreRsv?: boolean;
  /** Accepts permessage-deflate (the first offer), honouring its parameters... */
  deflate?: boolean;
  /** ...but keeps its compression context when it agreed server_no_context_takeover. */
  keepContextAnyway?: boolean;
}

const MAX_MESSAGE = 64 * 1024 * 1024;

/** §7.4.1, §7.4.2: the codes an endpoint may receive in a close frame. */
const validCode = (code: number): boolean =>
  (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);

class Connection {
  private buffer: Buffer = Buffer.alloc(0);
  private head: { fin: boolean; rsv: number; opcode: number; key: Buffer; length: number; read: number } | null = null;
  private control: Buffer[] = [];
  private message: {
    opcode: number;
    compressed: boolean;
    parts: Buffer[];
    size: number;
    utf8: TextDecoder | null;
  } | null = null;
  private closing = false;
  private deflate: { compressor: Compressor; inflater: StrictInflater } | null = null;

  constructor(
    private readonly socket: Socket,
    private readonly flaws: Flaws,
  ) {}

  open(request: ParsedRequest, rest: Buffer): void {
    const key = request.headers.get('sec-websocket-key')?.[0] ?? '';
    const lines = [
      'HTTP/1.1 101 Switching Protocols',
      'Upgrade: websocket',
      'Connection: Upgrade',
      `Sec-WebSocket-Accept: ${acceptFor(key)}`,
    ];
    const offer = (request.headers.get('sec-websocket-extensions') ?? [])
      .flatMap((value) => value.split(','))
      .map((element) => element.trim())
      .find((element) => element.split(';')[0]!.trim() === 'permessage-deflate');
    if (this.flaws.deflate === true && offer !== undefined) {
      const params = deflateParams(offer);
      const answer = ['permessage-deflate'];
      const noTakeover = params.has('server_no_context_takeover');
      if (noTakeover) answer.push('server_no_context_takeover');
      const bits = params.has('server_max_window_bits') ? Number(params.get('server_max_window_bits')) : 15;
      if (bits !== 15) answer.push(`server_max_window_bits=${bits}`);
      lines.push(`Sec-WebSocket-Extensions: ${answer.join('; ')}`);
      this.deflate = {
        compressor: new Compressor({
          windowBits: bits,
          contextTakeover: !noTakeover || this.flaws.keepContextAnyway === true,
        }),
        inflater: new StrictInflater(15, true),
      };
    }
    this.socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    this.bytes(rest);
  }

  private send(opcode: number, payload: Buffer, rsv1 = false): void {
    if (!this.socket.destroyed) this.socket.write(serverFrame({ opcode, payload, rsv1 }));
  }

  /** §7.1.7: fail the connection: a close frame, then nothing more is read, and TCP ends (§7.1.1). */
  private fail(code: number): void {
    if (this.closing) return;
    this.closing = true;
    this.send(OP.CLOSE, closePayload(code));
    this.socket.end();
  }

  bytes(chunk: Buffer): void {
    if (this.closing) return;
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    while (!this.closing) {
      if (this.head === null) {
        if (!this.readHeader()) return;
        continue;
      }
      const head = this.head;
      const take = Math.min(head.length - head.read, this.buffer.length);
      if (take === 0 && head.length > 0) return;
      const part = Buffer.from(this.buffer.subarray(0, take));
      for (let i = 0; i < part.length; i++) part[i] = part[i]! ^ head.key[(head.read + i) & 3]!;
      this.buffer = this.buffer.subarray(take);
      head.read += take;
      this.payload(head, part);
      if (head.read === head.length) {
        this.head = null;
        this.frameEnd(head);
      }
    }
  }

  /** §5.2: read a header; false while incomplete. Checks it at once (§5.1, §5.2, §5.4, §5.5). */
  private readHeader(): boolean {
    if (this.buffer.length < 2) return false;
    const b0 = this.buffer[0]!;
    const b1 = this.buffer[1]!;
    if ((b1 & 0x80) === 0) {
      // §5.1: a client masks every frame.
      this.fail(1002);
      return false;
    }
    const len7 = b1 & 0x7f;
    const at = len7 === 126 ? 4 : len7 === 127 ? 10 : 2;
    if (this.buffer.length < at + 4) return false;
    const length =
      len7 === 126 ? this.buffer.readUInt16BE(2) : len7 === 127 ? Number(this.buffer.readBigUInt64BE(2)) : len7;
    const head = {
      fin: (b0 & 0x80) !== 0,
      rsv: (b0 >> 4) & 7,
      opcode: b0 & 0xf,
      key: Buffer.from(this.buffer.subarray(at, at + 4)),
      length,
      read: 0,
    };
    this.buffer = this.buffer.subarray(at + 4);
    this.head = head;
    const control = head.opcode >= 8;
    const rsvAllowed = this.deflate !== null && head.rsv === 4 && !control && head.opcode !== OP.CONT;
    let violation = length > MAX_MESSAGE;
    if (head.rsv !== 0 && !rsvAllowed && this.flaws.ignoreRsv !== true) violation = true;
    if (control) violation ||= !head.fin || length > 125 || head.opcode > OP.PONG || length === 1;
    else {
      violation ||= head.opcode > OP.BINARY;
      violation ||= head.opcode === OP.CONT ? this.message === null : this.message !== null;
    }
    if (violation) {
      this.fail(1002);
      return false;
    }
    if (!control && head.opcode !== OP.CONT) {
      const compressed = head.rsv === 4 && this.deflate !== null;
      const utf8 =
        head.opcode === OP.TEXT && !compressed && this.flaws.skipUtf8 !== true
          ? new TextDecoder('utf-8', { fatal: true })
          : null;
      this.message = { opcode: head.opcode, compressed, parts: [], size: 0, utf8 };
    }
    return true;
  }

  private payload(head: NonNullable<Connection['head']>, part: Buffer): void {
    if (head.opcode >= 8) {
      this.control.push(part);
      return;
    }
    const message = this.message!;
    message.parts.push(part);
    message.size += part.length;
    if (message.utf8 !== null) {
      try {
        // Fail fast (§8.1): the first invalid byte ends it, whole message or not.
        message.utf8.decode(part, { stream: true });
      } catch {
        this.message = null;
        this.fail(1007);
      }
    }
  }

  private frameEnd(head: { fin: boolean; opcode: number }): void {
    if (head.opcode >= 8) return this.controlFrame(head.opcode, Buffer.concat(this.control.splice(0)));
    const message = this.message;
    if (message === null || !head.fin) return;
    this.message = null;
    let data: Buffer = Buffer.concat(message.parts);
    if (message.compressed) data = this.deflate!.inflater.inflate(data);
    const text = message.opcode === OP.TEXT;
    if (text && this.flaws.skipUtf8 !== true) {
      try {
        new TextDecoder('utf-8', { fatal: true }).decode(data);
      } catch {
        return this.fail(1007);
      }
    }
    if (this.deflate !== null) this.send(message.opcode, this.deflate.compressor.compress(data), true);
    else this.send(message.opcode, data);
  }

  private controlFrame(opcode: number, payload: Buffer): void {
    if (opcode === OP.PING) this.send(OP.PONG, this.flaws.pongPayload?.(payload) ?? payload);
    if (opcode !== OP.CLOSE) return;
    if (payload.length >= 2) {
      const code = payload.readUInt16BE(0);
      if (!validCode(code) && this.flaws.echoAnyCloseCode !== true) return this.fail(1002);
      if (this.flaws.skipUtf8 !== true) {
        try {
          new TextDecoder('utf-8', { fatal: true }).decode(payload.subarray(2));
        } catch {
          return this.fail(1007);
        }
      }
    }
    // §5.5.1: echo the code (an empty close gets an empty one), then end TCP.
    this.closing = true;
    this.send(OP.CLOSE, payload.length >= 2 ? payload.subarray(0, 2) : Buffer.alloc(0));
    this.socket.end();
  }
}

export interface FlawedServer {
  url: string;
  close(): Promise<void>;
}

/** An echo server on 127.0.0.1 with the given flaws (none: a correct one). */
export async function startFlawedEchoServer(flaws: Flaws = {}): Promise<FlawedServer> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let head: Buffer = Buffer.alloc(0);
    let connection: Connection | null = null;
    socket.on('data', (chunk: Buffer) => {
      if (connection !== null) return connection.bytes(chunk);
      head = Buffer.concat([head, chunk]);
      const end = headEnd(head);
      if (end < 0) return;
      connection = new Connection(socket, flaws);
      connection.open(parseRequestHead(head.subarray(0, end)), head.subarray(end));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}/`,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
