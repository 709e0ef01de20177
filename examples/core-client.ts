// A client on the pure protocol core (`wsrfc/core`) over a net.Socket: the opening handshake with
// the core's pure functions (RFC 6455 §4.1), then the core's state machine, driven the way every
// driver drives it: feed it what happened, then carry out what it decided. The core masks every
// frame a client sends (§5.3). Run: npx tsx examples/core-client.ts ws://127.0.0.1:9001/ hello
import { connect } from 'node:net';
import * as core from '../src/core.js';

const [address = 'ws://127.0.0.1:9001/', text = 'hello'] = process.argv.slice(2);
const url = new URL(address);
if (url.protocol !== 'ws:') throw new Error('this example speaks ws:// only (no TLS)');
const port = Number(url.port || 80);
const key = core.generateKey();
const socket = connect(port, url.hostname, () => {
  socket.write(core.upgradeRequest({ host: url.host, path: url.pathname + url.search, key }));
});
const reader = new core.HeadReader(16 * 1024, 'response');
const protocol = new core.Protocol('client', core.resolveConnectionOptions({ pingInterval: 0 }), Date.now());
let opened = false;
let timer: NodeJS.Timeout | undefined;

// After every step: what the core decided, carried out. Exit once the stream is closed.
const settle = (): void => {
  for (let event = protocol.nextEvent(); event !== null; event = protocol.nextEvent()) {
    if (event.type === 'message') {
      console.log(event.isBinary ? `binary: ${event.data.toString('hex')}` : `echo: ${event.data.toString()}`);
      protocol.close(core.CloseCode.Normal, 'done', Date.now()); // §7.1.2: start the closing handshake
    }
    if (event.type === 'error') console.error(`error: ${event.error.message}`);
  }
  for (const bytes of protocol.takeOutput()) socket.write(bytes);
  if (protocol.wantsDestroy) socket.destroy();
  else if (protocol.wantsEnd && !socket.writableEnded) socket.end();
  // The core's deadlines (the close handshake's closeTimeout): wake it then.
  clearTimeout(timer);
  const wait = protocol.nextDeadline - Date.now();
  if (wait < Infinity) timer = setTimeout(() => (protocol.timeout(Date.now(), false), settle()), Math.max(wait, 0));
};

socket.on('data', (chunk: Buffer) => {
  if (opened) {
    protocol.receive(chunk, Date.now());
    return settle();
  }
  try {
    const head = reader.push(chunk);
    if (head === null) return;
    core.validateUpgradeResponse(core.parseResponseHead(head.head), key, []); // §4.1: the 101 and its accept
    opened = true;
    protocol.sendData(text, undefined);
    if (head.rest.length > 0) protocol.receive(head.rest, Date.now());
    settle();
  } catch (error) {
    console.error(`handshake failed: ${(error as Error).message}`);
    socket.destroy();
    process.exitCode = 1;
  }
});
socket.on('end', () => {
  protocol.receiveEnd(Date.now()); // §7.1.1: the server ends TCP first; the client follows
  settle();
});
socket.on('error', (error) => console.error(`socket: ${error.message}`));
socket.on('close', () => {
  clearTimeout(timer);
  if (!opened) return void (process.exitCode ||= 1);
  const { code, reason, wasClean } = protocol.streamClosed(Date.now());
  console.log(`closed ${code} "${reason}" clean=${wasClean}`);
  process.exitCode = code === core.CloseCode.Normal && wasClean ? 0 : 1;
});
