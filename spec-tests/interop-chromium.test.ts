/**
 * Interoperability with a browser: headless Chromium loads a page from a `node:http` server whose
 * 'upgrade' event hands sockets to our WebSocketServers (`handleUpgrade`), and runs the WHATWG
 * WebSocket API against them. Browsers offer permessage-deflate on every connection, so this is
 * also RFC 7692 against an independent implementation.
 *
 * Chromium is found through $CHROMIUM, then /usr/bin/chromium, chromium or chromium-browser on the
 * PATH (Debian: `apt-get install chromium`). Without one the test is skipped, saying why.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { WebSocketServer } from '../src/index.js';
import { NO_CHROMIUM, findChromium, launchChromium, removeProfile, stopGroup } from './helpers/chromium.js';
import { skipBecause, withTimeout } from './helpers/library.js';

/**
 * The page: runs every step in order and POSTs its log to /result. Messages are compared in the
 * page, byte for byte; the log says what the browser saw (extensions, protocol, close events).
 */
const PAGE = `<!doctype html><meta charset="utf-8"><script>
const log = [];
const sizes = [0, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20];
function open(path, protocols) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket('ws://' + location.host + path, protocols);
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => resolve(ws);
    ws.onerror = () => reject(new Error('error event on ' + path));
  });
}
const nextMessage = (ws) => new Promise((resolve) => { ws.onmessage = (event) => resolve(event.data); });
const closeEvent = (ws) => new Promise((resolve) => { ws.onclose = (e) => resolve(e.code + ' ' + JSON.stringify(e.reason) + ' clean=' + e.wasClean); });
async function run() {
  const ws = await open('/echo', ['x-unknown', 'echo']);
  log.push('open extensions=' + ws.extensions + ' protocol=' + ws.protocol);
  for (const size of sizes) {
    const bytes = new Uint8Array(size);
    for (let i = 0; i < size; i++) bytes[i] = (i * 7 + (i >> 9)) & 255;
    const reply = nextMessage(ws);
    ws.send(bytes);
    const got = new Uint8Array(await reply);
    if (got.length !== size || got.some((v, i) => v !== bytes[i])) throw new Error('binary echo differs at size ' + size);
    const text = 'héllo € 𝄞 {"n":1} '.repeat(size / 16 + 1).slice(0, size).replace(/[\\ud800-\\udbff]$/, '');
    const textReply = nextMessage(ws);
    ws.send(text);
    if ((await textReply) !== text) throw new Error('text echo differs at size ' + size);
  }
  log.push('echo ok');
  let received = 0;
  const all = new Promise((resolve, reject) => {
    ws.onmessage = (event) => {
      if (event.data !== 'm' + received) reject(new Error('out of order: ' + event.data));
      if (++received === 2000) resolve();
    };
  });
  for (let i = 0; i < 2000; i++) ws.send('m' + i);
  await all;
  log.push('pipelined ok');
  const closed = closeEvent(ws);
  ws.close(4001, 'bye from the browser');
  log.push('client close: ' + await closed);

  const byServer = await open('/server-closes');
  log.push('server close: ' + await closeEvent(byServer));

  const pinged = await open('/ping');
  log.push('ping: ' + await nextMessage(pinged));
  pinged.close();

  const limited = await open('/limited');
  const limitedClose = new Promise((resolve) => { limited.onclose = (e) => resolve(e.code + ' clean=' + e.wasClean); });
  limited.send(new Uint8Array(2000));
  log.push('too big: ' + await limitedClose);

  try {
    const ws404 = await open('/not-served');
    log.push('not served: opened');
    ws404.close();
  } catch (error) {
    log.push('not served: ' + error.message);
  }
}
run().then(
  () => fetch('/result', { method: 'POST', body: JSON.stringify({ log }) }),
  (error) => fetch('/result', { method: 'POST', body: JSON.stringify({ log, error: String(error) }) }),
);
</script>`;

interface PageResult {
  log: string[];
  error?: string;
}

describe('interop: headless Chromium against our server (handleUpgrade on node:http)', () => {
  const chromium = findChromium();
  let chrome: ChildProcess | undefined;
  let http: Server | undefined;
  let profile: string | undefined;
  const servers: WebSocketServer[] = [];
  after(async () => {
    await stopGroup(chrome);
    http?.close();
    await Promise.all(servers.map((server) => server.close()));
    await removeProfile(profile);
  });

  // Once with messages whole, once streamed (`streamMessages`, echoed as streams as the echo CLI's
  // --stream does; the limit is then maxStreamedMessageSize).
  for (const streaming of [false, true]) {
    it(
      `echoes 0 B to 16 MiB compressed, keeps order, closes with the right code both ways, answers pings, refuses unknown paths${streaming ? ' (messages streamed)' : ''}`,
      { timeout: 90_000 },
      async (t) => {
        if (skipBecause(t, chromium === null ? NO_CHROMIUM : null)) return;
        // The run before this one's browser and servers.
        await stopGroup(chrome);
        http?.close();
        await removeProfile(profile);
        const serverLog: string[] = [];
        const echo = new WebSocketServer({
          protocols: ['echo'],
          perMessageDeflate: true,
          pingInterval: 0,
          streamMessages: streaming,
        });
        // A message limit below what the page sends: the browser must see 1009 (RFC 6455 §7.4.1).
        const limited = new WebSocketServer({
          perMessageDeflate: true,
          maxMessageSize: 1000,
          maxStreamedMessageSize: 1000,
          streamMessages: streaming,
          pingInterval: 0,
        });
        servers.push(echo, limited);
        echo.on('connection', (connection, request) => {
          serverLog.push(`${request.path} extensions=${connection.extensions} protocol=${connection.protocol}`);
          connection.on('close', (code, reason, wasClean) =>
            serverLog.push(`${request.path} closed ${code} ${JSON.stringify(reason)} clean=${wasClean}`),
          );
          if (request.path === '/server-closes') {
            connection.close(4002, 'bye from the server');
            return;
          }
          if (request.path === '/ping') {
            // The browser answers pings on its own (RFC 6455 §5.5.2); the page never sees them.
            let pongs = 0;
            connection.on('pong', (data) => {
              serverLog.push(`pong ${data.toString()}`);
              if (++pongs === 3) connection.send('3 pongs');
            });
            for (let i = 0; i < 3; i++) connection.ping(`p${i}`);
            return;
          }
          connection.on('message', (data, isBinary) => connection.send(data, { binary: isBinary }));
          connection.on('stream', (stream) => connection.send(stream, { binary: stream.isBinary }));
        });
        limited.on('connection', (connection) => {
          connection.on('close', (code, reason, wasClean) =>
            serverLog.push(`/limited closed ${code} ${JSON.stringify(reason)} clean=${wasClean}`),
          );
        });

        let resolveResult: (result: PageResult) => void = () => {};
        const result = new Promise<PageResult>((resolve) => (resolveResult = resolve));
        const server = createServer((request, response) => {
          if (request.method === 'POST' && request.url === '/result') {
            let body = '';
            request.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
            request.on('end', () => {
              response.end('ok');
              resolveResult(JSON.parse(body) as PageResult);
            });
            return;
          }
          response.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end(PAGE);
        });
        http = server;
        server.on('upgrade', (request, socket, head) => {
          const path = new URL(request.url ?? '/', 'http://localhost').pathname;
          if (path === '/limited') limited.handleUpgrade(request, socket, head);
          else if (['/echo', '/server-closes', '/ping'].includes(path)) echo.handleUpgrade(request, socket, head);
          else socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
        });
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
        const { port } = server.address() as AddressInfo;

        profile = mkdtempSync(join(tmpdir(), 'wsrfc-chromium-'));
        chrome = launchChromium(chromium!, `http://127.0.0.1:${port}/`, profile);

        const page = await withTimeout(result, 80_000, 'the page to report');
        assert.equal(page.error, undefined, `${page.error}; log so far: ${page.log.join(' | ')}`);
        assert.deepEqual(page.log, [
          // The browser offered permessage-deflate and we accepted; of its two protocols, ours.
          'open extensions=permessage-deflate protocol=echo',
          'echo ok',
          'pipelined ok',
          'client close: 4001 "bye from the browser" clean=true',
          'server close: 4002 "bye from the server" clean=true',
          'ping: 3 pongs',
          // (The reason text depends on whether the browser compressed the message.)
          'too big: 1009 clean=true',
          'not served: error event on /not-served',
        ]);
        await withTimeout(
          (async () => {
            while (echo.clients.size + limited.clients.size > 0)
              await new Promise((resolve) => setTimeout(resolve, 10));
          })(),
          5_000,
          'every connection to be gone from the registries',
        );
        const withoutReasons = serverLog.map((line) =>
          line.startsWith('/limited closed') ? line.replace(/ ".*"/, '') : line,
        );
        assert.deepEqual(
          withoutReasons.filter((line) => !line.startsWith('/ping closed')),
          [
            '/echo extensions=permessage-deflate protocol=echo',
            '/echo closed 4001 "bye from the browser" clean=true',
            '/server-closes extensions=permessage-deflate protocol=',
            '/server-closes closed 4002 "bye from the server" clean=true',
            '/ping extensions=permessage-deflate protocol=',
            'pong p0',
            'pong p1',
            'pong p2',
            '/limited closed 1009 clean=false',
          ],
        );
      },
    );
  }
});
