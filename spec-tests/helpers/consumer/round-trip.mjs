/**
 * The echo round trip a packed-package consumer runs under each runtime of the matrix
 * (spec-tests/runtime-matrix.test.ts): plain JavaScript, nothing but the package and the runtime's
 * `node:` modules. A server and a client from the package, once without and once with
 * permessage-deflate: text (UTF-8 beyond ASCII), random binary, a compressible text of 64 KiB and a
 * random binary of 300 KiB (several TCP reads), then a closing handshake started by the client.
 * It prints one JSON line saying what happened; the test decides whether that is right.
 */
import { randomBytes } from 'node:crypto';

const once = (emitter, event) => new Promise((resolve) => emitter.once(event, (...args) => resolve(args)));

async function echoOnce(wsrfc, deflate) {
  const { WebSocketServer, connect } = wsrfc;
  const server = new WebSocketServer({ perMessageDeflate: deflate, pingInterval: 0 });
  const serverClosed = new Promise((resolve) => {
    server.on('connection', (socket) => {
      socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
      socket.on('close', (code, reason, wasClean) => resolve({ code, reason, wasClean }));
    });
  });
  const { port } = await server.listen(0, '127.0.0.1');
  let compressedFrames = 0;
  const client = await connect(`ws://127.0.0.1:${port}/echo`, {
    perMessageDeflate: deflate,
    pingInterval: 0,
    trace: (frame) => {
      if (frame.rsv1) compressedFrames++;
    },
  });
  const sent = [
    { data: Buffer.from('héllo, wörld ✓'), isBinary: false },
    { data: randomBytes(1000), isBinary: true },
    { data: Buffer.from('{"key":"value","n":42},'.repeat(2850)), isBinary: false },
    { data: randomBytes(300 * 1024), isBinary: true },
  ];
  const received = [];
  const allBack = new Promise((resolve) => {
    client.on('message', (data, isBinary) => {
      received.push({ data: Buffer.from(data), isBinary });
      if (received.length === sent.length) resolve();
    });
  });
  for (const message of sent)
    client.send(message.isBinary ? message.data : message.data.toString(), { binary: message.isBinary });
  await allBack;
  const mismatches = sent
    .map((message, i) =>
      received[i].isBinary === message.isBinary && received[i].data.equals(message.data)
        ? null
        : `message ${i}: sent ${message.data.length} bytes (binary ${message.isBinary}), got ${received[i].data.length} (binary ${received[i].isBinary})`,
    )
    .filter((m) => m !== null);
  const clientClosed = once(client, 'close');
  client.close(1000, 'done');
  const [code, reason, wasClean] = await clientClosed;
  const serverSaw = await serverClosed;
  await server.close();
  return {
    extensions: client.extensions,
    messages: received.length,
    mismatches,
    compressedFrames,
    clientClose: { code, reason, wasClean },
    serverClose: serverSaw,
  };
}

/** Runs both round trips with the package's namespace `wsrfc` and prints the summary. */
export async function roundTrip(wsrfc, loadedWith) {
  const timer = setTimeout(() => {
    console.log(JSON.stringify({ error: 'timed out after 30 s' }));
    process.exit(1);
  }, 30_000);
  try {
    const plain = await echoOnce(wsrfc, false);
    const deflate = await echoOnce(wsrfc, true);
    const exports = Object.keys(wsrfc)
      .filter((name) => name !== 'default' && name !== '__esModule' && name !== 'module.exports')
      .sort();
    console.log(
      JSON.stringify({
        loadedWith,
        runtime: { node: process.versions.node, bun: process.versions.bun, deno: process.versions.deno },
        exports,
        plain,
        deflate,
      }),
    );
  } catch (error) {
    console.log(JSON.stringify({ error: String(error?.stack ?? error) }));
    process.exitCode = 1;
  } finally {
    clearTimeout(timer);
  }
}
