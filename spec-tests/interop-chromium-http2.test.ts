/**
 * Interoperability over HTTP/2 (RFC 8441) with a browser: the echo CLI serves wss:// with a
 * self-signed certificate made here, and a page (`--page`) over HTTP/2; headless Chromium loads the
 * page and opens its WebSockets to the same origin, which Chromium carries as extended CONNECT
 * streams on the page's HTTP/2 connection. The CLI's connection log says which protocol carried
 * each WebSocket, so the test knows they came over HTTP/2 and not HTTP/1.1. The page runs the
 * same kinds of checks as the HTTP/1.1 test (spec-tests/interop-chromium.test.ts): echo of text and
 * binary with permessage-deflate, order, a close with a code from each side.
 *
 * Chromium is found through $CHROMIUM, then /usr/bin/chromium, chromium or chromium-browser on the
 * PATH (Debian: `apt-get install chromium`); the certificate needs openssl. Without them the test
 * is skipped, saying why.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { NO_CHROMIUM, findChromium, launchChromium, removeProfile, stopGroup } from './helpers/chromium.js';
import { skipBecause, withTimeout } from './helpers/library.js';
import { makeTestCertificate, type TestCertificate } from './helpers/tls.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * The page: runs every step in order, then reports its log by opening one more WebSocket whose URL
 * carries it (the CLI logs every WebSocket's URL), so the report needs nothing but the echo server.
 */
const PAGE = `<!doctype html><meta charset="utf-8"><script>
const log = [];
function open(path) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket('wss://' + location.host + path);
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => resolve(ws);
    ws.onerror = () => reject(new Error('error event on ' + path));
  });
}
const nextMessage = (ws) => new Promise((resolve) => { ws.onmessage = (event) => resolve(event.data); });
const closeEvent = (ws) => new Promise((resolve) => { ws.onclose = (e) => resolve(e.code + ' clean=' + e.wasClean); });
async function run() {
  const ws = await open('/echo');
  log.push('open extensions=' + ws.extensions);
  for (const size of [0, 1, 125, 126, 65535, 65536, 500000]) {
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
      if (++received === 1000) resolve();
    };
  });
  for (let i = 0; i < 1000; i++) ws.send('m' + i);
  await all;
  log.push('pipelined ok');
  const closed = closeEvent(ws);
  ws.close(4001, 'bye from the browser');
  log.push('client close: ' + await closed);
  // The CLI runs with --max-message-size 1048576: the server closes this one with 1009.
  const limited = await open('/limited');
  const limitedClose = closeEvent(limited);
  limited.send(new Uint8Array(2 << 20));
  log.push('server close: ' + await limitedClose);
}
const report = (result) => new WebSocket('wss://' + location.host + '/report?' + encodeURIComponent(JSON.stringify(result)));
run().then(() => report({ log }), (error) => report({ log, error: String(error) }));
</script>`;

describe('interop: headless Chromium against the echo CLI over HTTP/2 (RFC 8441)', () => {
  const chromium = findChromium();
  const processes: ChildProcess[] = [];
  let made: TestCertificate | undefined;
  after(async () => {
    // Chromium runs helper processes in its process group; the CLI is one process.
    for (const child of processes) await stopGroup(child);
    // The profile is in the certificate's directory.
    if (made !== undefined) await removeProfile(made.dir);
  });

  it(
    'echoes text and binary compressed, in order, closes with a code both ways, all over HTTP/2',
    { timeout: 90_000 },
    async (t) => {
      if (skipBecause(t, chromium === null ? NO_CHROMIUM : null)) return;
      const certificate = makeTestCertificate('wsrfc-chromium-h2-');
      if (typeof certificate === 'string') {
        skipBecause(t, certificate);
        return;
      }
      made = certificate;
      const dir = certificate.dir;
      writeFileSync(join(dir, 'page.html'), PAGE);
      const cli = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          'src/cli/echo.ts',
          '--host',
          '127.0.0.1',
          '--port',
          '0',
          '--max-message-size',
          '1048576',
        ].concat([
          '--tls-cert',
          certificate.certFile,
          '--tls-key',
          certificate.keyFile,
          '--page',
          join(dir, 'page.html'),
        ]),
        { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
      );
      processes.push(cli);
      let stdout = '';
      let stderr = '';
      const waiters = new Set<() => void>();
      cli.stdout!.setEncoding('utf8').on('data', (text: string) => {
        stdout += text;
        for (const waiter of waiters) waiter();
      });
      cli.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
      const waitFor = (pattern: RegExp, ms: number, what: string): Promise<RegExpMatchArray> =>
        withTimeout(
          new Promise<RegExpMatchArray>((resolve) => {
            const check = (): void => {
              const match = stdout.match(pattern);
              if (match === null) return;
              waiters.delete(check);
              resolve(match);
            };
            waiters.add(check);
            check();
          }),
          ms,
          `${what} (CLI stdout: ${JSON.stringify(stdout.slice(-800))}, stderr: ${JSON.stringify(stderr.slice(-500))})`,
        );
      const listening = await waitFor(
        /listening on wss:\/\/127\.0\.0\.1:(\d+)\/ {2}\(HTTP\/2 and HTTP\/1\.1;/,
        15_000,
        'the CLI',
      );
      const port = Number(listening[1]);

      // The certificate is our own, made above.
      const chrome = launchChromium(chromium!, `https://127.0.0.1:${port}/`, join(dir, 'profile'), [
        '--ignore-certificate-errors',
      ]);
      processes.push(chrome);

      const reported = await waitFor(/ \/report\?(\S+) {2}over (\S+)/, 80_000, 'the page to report');
      const result = JSON.parse(decodeURIComponent(reported[1]!)) as { log: string[]; error?: string };
      assert.equal(result.error, undefined, `${result.error}; log so far: ${result.log.join(' | ')}`);
      assert.deepEqual(result.log, [
        // Chromium offered permessage-deflate on the HTTP/2 stream too, and the CLI accepted.
        'open extensions=permessage-deflate',
        'echo ok',
        'pipelined ok',
        'client close: 4001 clean=true',
        'server close: 1009 clean=true',
      ]);
      // The server's side: every WebSocket, the report's included, came over HTTP/2.
      const opened = [...stdout.matchAll(/^\+ #\d+ \S+ (\S+) {2}over (\S+)/gm)].map(
        (m) => `${m[1]!.split('?')[0]} ${m[2]}`,
      );
      assert.deepEqual(opened, ['/echo HTTP/2', '/limited HTTP/2', '/report HTTP/2']);
      // Both closes are logged at once: the server ends its stream after the closing handshake and
      // then resets it with NO_ERROR, rather than wait for an END_STREAM Chromium does not send.
      await waitFor(/^- #2 closed/m, 3000, 'the two closes in the CLI log');
      assert.match(stdout, /^- #1 closed 4001 "bye from the browser" {2}\(/m);
      assert.match(stdout, /^- #2 closed 1009 /m);
    },
  );
});
