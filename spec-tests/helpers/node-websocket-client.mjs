// A second, independent client: Node's built-in WebSocket (undici, the WHATWG API), driven
// through a fixed scenario against a server under test. Plain JavaScript, so it runs in a child
// `node --experimental-websocket` (Node 20, where the global exists only behind that flag) as
// well as in-process on newer Node.
//
//   node --experimental-websocket spec-tests/helpers/node-websocket-client.mjs ws://127.0.0.1:PORT
//
// prints one JSON line with the results (or {"available": false, ...} when there is no global
// WebSocket). The server is expected to echo on /echo (subprotocols "superchat" and "chat") and
// to close with 4001 "server bye" on /server-closes after receiving "close me".
import { createHash } from 'node:crypto';
import { pathToFileURL } from 'node:url';

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

/** Run one connection: `onOpen(ws)` sends, messages are collected (then `onMessage(ws, result)`) until 'close'. */
function session(url, protocols, onOpen, onMessage = () => {}, timeoutMs = 8000) {
  return new Promise((resolve) => {
    const result = { protocol: null, messages: [], close: null, errors: [] };
    const ws = protocols === undefined ? new globalThis.WebSocket(url) : new globalThis.WebSocket(url, protocols);
    ws.binaryType = 'arraybuffer';
    const timer = setTimeout(() => {
      result.errors.push('timed out');
      try {
        ws.close();
      } catch {}
      resolve(result);
    }, timeoutMs);
    ws.addEventListener('open', () => {
      result.protocol = ws.protocol;
      onOpen(ws, result);
    });
    ws.addEventListener('message', (event) => {
      if (typeof event.data === 'string') {
        result.messages.push({
          type: 'text',
          length: Buffer.byteLength(event.data),
          sha256: sha256(event.data),
          preview: event.data.slice(0, 40),
        });
      } else {
        const bytes = Buffer.from(event.data);
        result.messages.push({
          type: 'binary',
          length: bytes.length,
          sha256: sha256(bytes),
          preview: bytes.subarray(0, 8).toString('hex'),
        });
      }
      onMessage(ws, result);
    });
    ws.addEventListener('error', (event) => result.errors.push(String(event.message ?? event.type)));
    ws.addEventListener('close', (event) => {
      clearTimeout(timer);
      result.close = { code: event.code, reason: event.reason, wasClean: event.wasClean };
      resolve(result);
    });
  });
}

export const BIG_TEXT = 'ü€'.repeat(35_000); // 175 000 bytes: a 64-bit length
export const BIG_BINARY = Buffer.alloc(70_000).map((_, i) => (i * 7) & 0xff);

export async function run(base) {
  if (typeof globalThis.WebSocket !== 'function') {
    return { available: false, reason: `no global WebSocket in Node ${process.version}` };
  }
  const echo = await session(
    `${base}/echo`,
    ['x-unknown', 'chat', 'superchat'],
    (ws) => {
      ws.send('hello ü');
      ws.send(new Uint8Array([0, 1, 2, 255]));
      ws.send(BIG_TEXT);
      ws.send(BIG_BINARY);
      ws.send('');
    },
    (ws, result) => {
      if (result.messages.length === 5) ws.close(4000, 'client bye');
    },
  );
  const noProtocol = await session(`${base}/echo`, undefined, (ws) => ws.close(1000));
  const serverCloses = await session(`${base}/server-closes`, [], (ws) => ws.send('close me'));
  return { available: true, node: process.version, echo, noProtocol, serverCloses };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const base = process.argv[2];
  run(base).then(
    (result) => {
      process.stdout.write(`${JSON.stringify(result)}\n`);
    },
    (error) => {
      process.stdout.write(`${JSON.stringify({ available: true, crashed: String(error && error.stack) })}\n`);
      process.exitCode = 1;
    },
  );
}
