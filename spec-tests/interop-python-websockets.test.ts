/**
 * Interoperability with another language's library: Python's `websockets` (Debian:
 * python3-websockets), as a client of our server and as a server for our client, with and
 * without permessage-deflate. Its client runs in a child process (helpers/python-websockets-peer.py)
 * and reports what it saw as one JSON line.
 *
 * Python is found through $PYTHON, then /usr/bin/python3, then python3 on the PATH; the first one
 * that can import `websockets` is used. Without one the tests are skipped, saying why.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { WebSocket, WebSocketServer, connect } from '../src/index.js';
import { whileAlive } from './helpers/alive.js';
import { withTimeout } from './helpers/library.js';
import { findPython, pythonOrSkip, runPython } from './helpers/python.js';

const PEER = fileURLToPath(new URL('./helpers/python-websockets-peer.py', import.meta.url));

const found = findPython(PEER, 'version', 'the websockets library', 'python3-websockets');

function skipWithoutPython(t: { skip(message: string): void }): string | null {
  return pythonOrSkip(t, found);
}

interface EchoSession {
  compression: string | null;
  steps: string[];
  extensions: string | null;
  protocol: string | null;
  close: [number, string];
}

interface ClientReport {
  deflate: EchoSession;
  plain: EchoSession;
  bad_utf8: number | null;
  long_ping: number | null;
  close_1005: number | null;
}

describe('interop: Python websockets client against our server', () => {
  let server: WebSocketServer | undefined;
  after(() => server?.close());

  for (const streaming of [false, true]) {
    it(`echoes 0 B to 16 MiB with and without permessage-deflate, fragmented and pipelined, pings, closes with its code; protocol errors get 1007/1002${streaming ? ' (echoed as streams, as the echo CLI --stream does)' : ''}`, async (t) => {
      const python = skipWithoutPython(t);
      if (python === null) return;
      t.diagnostic(`python websockets ${found.python !== null ? found.output : ''}`);
      await server?.close();
      server = new WebSocketServer({ protocols: ['echo'], perMessageDeflate: true, pingInterval: 0 });
      const closes: [number, string, boolean][] = [];
      server.on('connection', (connection) => {
        connection.streamMessages = streaming;
        connection.on('stream', (stream) => connection.send(stream, { binary: stream.isBinary }));
        connection.on('message', (data, isBinary) => connection.send(data, { binary: isBinary }));
        connection.on('close', (code, reason, wasClean) => closes.push([code, reason, wasClean]));
      });
      const { port } = await server.listen(0, '127.0.0.1');
      const report = JSON.parse(await runPython(python, PEER, ['client', `ws://127.0.0.1:${port}/`])) as ClientReport;

      for (const session of [report.deflate, report.plain]) {
        assert.deepEqual(
          session.steps,
          ['echo ok', 'fragmented ok', 'pong ok', 'pipelined ok'],
          `compression=${session.compression}`,
        );
        assert.equal(session.protocol, 'echo');
        assert.deepEqual(session.close, [4000, 'bye from python']);
      }
      // The library offers `permessage-deflate; client_max_window_bits`; we accept with no parameters.
      assert.equal(report.deflate.extensions, 'permessage-deflate');
      assert.equal(report.plain.extensions, null);
      assert.equal(report.bad_utf8, 1007);
      assert.equal(report.long_ping, 1002);
      assert.equal(report.close_1005, 1002);

      await withTimeout(
        (async () => {
          while (closes.length < 5 || server!.clients.size > 0) await new Promise((resolve) => setTimeout(resolve, 10));
        })(),
        5_000,
        'every connection to close on our side',
      );
      assert.deepEqual(closes.slice(0, 2), [
        [4000, 'bye from python', true],
        [4000, 'bye from python', true],
      ]);
      assert.deepEqual(
        closes.slice(2).map(([code]) => code),
        [1007, 1002, 1002],
      );
    });
  }
});

interface StreamSession {
  compression: string | null;
  extensions: string | null;
  sent: string;
  received: { text: boolean; length: number; sha256: string };
}

describe('interop: Python websockets streaming to and from our server', () => {
  let server: WebSocketServer | undefined;
  after(() => server?.close());

  it('a message it sends fragmented from an async iterator reaches our stream fragment by fragment, in order (each acknowledged before the next is sent); a generator we stream back, cut inside characters, reaches it whole', async (t) => {
    const python = skipWithoutPython(t);
    if (python === null) return;
    server = new WebSocketServer({ perMessageDeflate: true, pingInterval: 0 });
    const chunksSeen: string[][] = [];
    // What we stream back: multi-byte text in pieces that split characters, a piece at a time.
    const reply = Buffer.from('réponse 𝄞 streamed back, '.repeat(2000));
    server.on('connection', (connection) => {
      connection.streamMessages = true;
      connection.on('stream', (stream) => {
        const chunks: string[] = [];
        chunksSeen.push(chunks);
        stream.on('data', (chunk: Buffer) => {
          chunks.push(chunk.toString());
          // While the message is still coming.
          connection.send(`got ${chunk.toString()}`);
        });
        stream.on('end', () => {
          async function* pieces(): AsyncGenerator<Buffer> {
            for (let at = 0; at < reply.length; at += 4099) {
              yield reply.subarray(at, at + 4099);
              await new Promise((resolve) => setImmediate(resolve));
            }
          }
          connection.send(pieces(), { binary: false });
        });
      });
    });
    const { port } = await server.listen(0, '127.0.0.1');
    const report = JSON.parse(await runPython(python, PEER, ['stream', `ws://127.0.0.1:${port}/`])) as {
      deflate: StreamSession;
      plain: StreamSession;
    };
    const parts = ['the first fragment, ', 'ünïcode 𝄞 in the second, ', 'and the last'];
    assert.deepEqual(chunksSeen, [parts, parts], 'each fragment its own chunk, in order (the empty one: none)');
    assert.match(report.deflate.extensions ?? '', /^permessage-deflate/);
    assert.equal(report.plain.extensions, null);
    for (const session of [report.deflate, report.plain]) {
      assert.equal(session.sent, parts.join(''));
      assert.deepEqual(session.received, {
        text: true,
        length: reply.length,
        sha256: createHash('sha256').update(reply).digest('hex'),
      });
    }
  });
});

describe('interop: our client against a Python websockets server', () => {
  let child: ChildProcess | undefined;
  after(() => {
    child?.kill('SIGKILL');
  });

  it('negotiates its 12-bit windows and a subprotocol, echoes 0 B to 16 MiB and a fragmented message, closes cleanly', async (t) => {
    const python = skipWithoutPython(t);
    if (python === null) return;
    const serverProcess = spawn(python, [PEER, 'server'], { stdio: ['ignore', 'pipe', 'inherit'] });
    child = serverProcess;
    // No clock on how long anything takes: each wait lasts while the server process shows signs of
    // life (helpers/alive.ts), and fails when it exits.
    const exit = new Promise<never>((_, reject) =>
      serverProcess.on('exit', (code) => reject(new Error(`the python server exited with ${code}`))),
    );
    exit.catch(() => {});
    const alive = <T>(waiting: Promise<T>, what: string): Promise<T> =>
      whileAlive(serverProcess, Promise.race([waiting, exit]), what);
    const port = await alive(
      new Promise<number>((resolve) => {
        let out = '';
        serverProcess.stdout.setEncoding('utf8').on('data', (chunk: string) => {
          out += chunk;
          const match = /listening (\d+)/.exec(out);
          if (match) resolve(Number(match[1]));
        });
      }),
      'the python server to listen',
    );

    for (const perMessageDeflate of [true, false]) {
      const ws: WebSocket = await alive(
        connect(`ws://127.0.0.1:${port}/`, { perMessageDeflate, protocols: ['x-unknown', 'chat'], pingInterval: 0 }),
        'the handshake',
      );
      assert.equal(ws.protocol, 'chat');
      // websockets answers with its own window limits, which our client must honour (RFC 7692 §7.1.2).
      assert.equal(
        ws.extensions,
        perMessageDeflate ? 'permessage-deflate; server_max_window_bits=12; client_max_window_bits=12' : '',
      );
      const replies: [Buffer, boolean][] = [];
      let wake = (): void => {};
      ws.on('message', (data, isBinary) => {
        replies.push([data, isBinary]);
        wake();
      });
      ws.on('close', () => wake());
      const reply = (): Promise<[Buffer, boolean]> =>
        alive(
          (async () => {
            while (replies.length === 0) {
              assert.equal(ws.readyState, WebSocket.OPEN, 'the connection closed before the echo');
              await new Promise<void>((resolve) => (wake = resolve));
            }
            return replies.shift()!;
          })(),
          'an echo',
        );
      for (const size of [0, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20]) {
        const bytes = randomBytes(size);
        ws.send(bytes);
        const [data, isBinary] = await reply();
        assert.equal(isBinary, true);
        assert.ok(data.equals(bytes), `binary echo of ${size} bytes`);
        const text = 'héllo € 𝄞 '
          .repeat(size / 10 + 1)
          .slice(0, size)
          .replace(/[\ud800-\udbff]$/, '');
        ws.send(text);
        const [textData, textIsBinary] = await reply();
        assert.equal(textIsBinary, false);
        assert.equal(textData.toString(), text, `text echo of ${size} characters`);
      }
      const fragmented = randomBytes(300_000);
      ws.send(fragmented, { fragmentSize: 1000 });
      assert.ok((await reply())[0].equals(fragmented));
      const closed = new Promise<[number, string, boolean]>((resolve) =>
        ws.once('close', (code, reason, wasClean) => resolve([code, reason, wasClean])),
      );
      ws.close(4000, 'bye from node');
      assert.deepEqual(await alive(closed, "'close'"), [4000, 'bye from node', true]);
    }
  });
});
