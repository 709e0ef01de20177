/**
 * The protocol explorer in a real browser: the echo CLI (src/cli/echo.ts, explorer on by default) in its
 * own process, headless Chromium on its page, driven through the DevTools protocol (clicks, and
 * reading what the page shows). Checks what a learner sees: the handshake with the accept
 * computation (recomputed here with node:crypto, not src/), frames both ways with their fields,
 * the three length forms, compression's two sizes, a fragmented server message with a ping between
 * its frames, a ping, a close with a chosen code, and an invalid frame that the browser fails the
 * connection over (its API reports 1006). Then over HTTPS (the CLI with TLS): the page comes over
 * HTTP/2, its WebSocket is an extended CONNECT on the page's HTTP/2 connection (RFC 8441), and the
 * page shows that handshake's own fields (:method, :protocol, :path, :status) where HTTP/1.1 shows
 * the key and the accept.
 *
 * WSRFC_SCREENSHOT=docs/explorer.png also saves the page as the README shows it.
 * Without Chromium (helpers/chromium.ts says where it looks) the test is skipped, saying why.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { connect, type WebSocket } from '../src/index.js';
import { NO_CHROMIUM, findChromium, launchChromium, removeProfile, stopGroup } from './helpers/chromium.js';
import { delay, skipBecause, withTimeout } from './helpers/library.js';
import { makeTestCertificate, type TestCertificate } from './helpers/tls.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** Poll a condition (it may be asynchronous) every 50 ms until it holds. */
async function waitUntil(predicate: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (
    !(await Promise.resolve()
      .then(predicate)
      .catch(() => false))
  ) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await delay(50);
  }
}

function getJson(url: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    get(url, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      response.on('end', () => {
        try {
          resolve(JSON.parse(body));
        } catch (error) {
          reject(error as Error);
        }
      });
    }).on('error', reject);
  });
}

/** A minimal DevTools protocol session over one page target. */
class DevTools {
  private nextId = 1;
  private readonly pending = new Map<number, (reply: { result?: unknown; error?: { message: string } }) => void>();
  constructor(private readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const reply = JSON.parse(data.toString()) as { id?: number; result?: unknown; error?: { message: string } };
      if (reply.id !== undefined) this.pending.get(reply.id)?.(reply);
    });
  }
  call(method: string, params: object = {}): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    return withTimeout(
      new Promise((resolve, reject) => {
        this.pending.set(id, (reply) => {
          this.pending.delete(id);
          if (reply.error !== undefined) reject(new Error(`${method}: ${reply.error.message}`));
          else resolve(reply.result as Record<string, unknown>);
        });
        this.socket.send(JSON.stringify({ id, method, params }));
      }),
      20_000,
      `DevTools ${method}`,
    );
  }
  /** Evaluate an expression in the page and return its value. */
  async eval<T>(expression: string): Promise<T> {
    const result = await this.call('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true });
    if (result['exceptionDetails'] !== undefined)
      throw new Error(`page: ${JSON.stringify(result['exceptionDetails'])}`);
    return (result['result'] as { value: T }).value;
  }
}

/** The echo CLI and headless Chromium on its explorer page, and what the test drives the page with. */
interface Session {
  page: DevTools;
  port: number;
  /** The CLI's stdout so far. */
  output: () => string;
  until: (expression: string, what: string) => Promise<void>;
  text: (selector: string) => Promise<string>;
  /** The text of each frame the page shows, oldest first. */
  frames: () => Promise<string[]>;
  click: (id: string) => Promise<unknown>;
  setValue: (id: string, value: string | boolean) => Promise<unknown>;
  frameCount: () => Promise<number>;
  waitFrames: (n: number, what: string) => Promise<void>;
}

describe('the protocol explorer in headless Chromium (the echo CLI serving it)', () => {
  const chromium = findChromium();
  const children: ChildProcess[] = [];
  const sockets: WebSocket[] = [];
  const profiles: string[] = [];
  let certificate: TestCertificate | undefined;
  after(async () => {
    for (const socket of sockets) socket.terminate();
    for (const child of children.reverse()) await stopGroup(child);
    for (const profile of profiles) await removeProfile(profile);
    certificate?.remove();
  });

  /**
   * The CLI (with `cliArgs`), then Chromium on its explorer page: `http://`, or `https://` with TLS
   * (the CLI's log says which), the DevTools protocol connected to the page.
   */
  async function openExplorer(cliArgs: string[], chromiumFlags: string[] = []): Promise<Session> {
    const cli = spawn(
      process.execPath,
      ['--import', 'tsx', 'src/cli/echo.ts', '--host', '127.0.0.1', '--port', '0', ...cliArgs],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], detached: true },
    );
    children.push(cli);
    let output = '';
    cli.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    const announced = /protocol explorer: (https?):\/\/127\.0\.0\.1:(\d+)\//;
    await waitUntil(() => announced.test(output), 20_000, 'the CLI to listen');
    const [, scheme, portText] = announced.exec(output)!;
    const port = Number(portText);
    const origin = `${scheme!}://127.0.0.1:${port}/`;

    const profile = mkdtempSync(join(tmpdir(), 'wsrfc-explorer-'));
    profiles.push(profile);
    const chrome = launchChromium(chromium!, origin, profile, [
      '--hide-scrollbars',
      '--window-size=1280,1400',
      '--remote-debugging-port=0',
      ...chromiumFlags,
    ]);
    children.push(chrome);
    // Chromium writes the port it chose for DevTools into the profile.
    const portFile = join(profile, 'DevToolsActivePort');
    await waitUntil(() => existsSync(portFile) && readFileSync(portFile, 'utf8').includes('\n'), 30_000, 'DevTools');
    const devtoolsPort = Number(readFileSync(portFile, 'utf8').split('\n')[0]);
    let target: { type: string; url: string; webSocketDebuggerUrl: string } | undefined;
    await waitUntil(
      async () => {
        const targets = (await getJson(`http://127.0.0.1:${devtoolsPort}/json/list`)) as (typeof target)[];
        target = targets.find((x) => x!.type === 'page' && x!.url.startsWith(origin));
        return target !== undefined;
      },
      20_000,
      'the page target',
    );
    const devtools = await connect(target!.webSocketDebuggerUrl);
    sockets.push(devtools);
    const page = new DevTools(devtools);
    const until = (expression: string, what: string): Promise<void> =>
      waitUntil(async () => (await page.eval<boolean>(expression)) === true, 20_000, what);
    return {
      page,
      port,
      output: () => output,
      until,
      text: (selector) =>
        page.eval<string>(`(document.querySelector(${JSON.stringify(selector)}) || {}).innerText || ''`),
      frames: async () =>
        (
          await page.eval<string[]>(`[...document.querySelectorAll('#frames .frame')].map((f) => f.innerText)`)
        ).reverse(),
      click: (id) => page.eval(`document.getElementById('${id}').click()`),
      setValue: (id, value) =>
        page.eval(
          typeof value === 'boolean'
            ? `document.getElementById('${id}').checked = ${value}`
            : `document.getElementById('${id}').value = ${JSON.stringify(value)}`,
        ),
      frameCount: () => page.eval<number>(`document.querySelectorAll('#frames .frame').length`),
      waitFrames: (n, what) => until(`document.querySelectorAll('#frames .frame').length >= ${n}`, what),
    };
  }

  it(
    'shows the handshake, frames both ways, and does what the page asks the server to do',
    { timeout: 90_000 },
    async (t) => {
      if (skipBecause(t, chromium === null ? NO_CHROMIUM : null)) return;
      const { page, until, text, frames, click, setValue, frameCount, waitFrames } = await openExplorer([]);

      // RFC 6455 §4: the handshake as the server read it, and Sec-WebSocket-Accept step by step.
      // The browser's open event and the observer's handshake event travel on two sockets: either may come first.
      await until(
        `document.getElementById('status').textContent === 'open' && document.getElementById('request-head') !== null`,
        'the page to open its connection and show its handshake',
      );
      const request = await text('#request-head');
      const response = await text('#response-head');
      const key = /Sec-WebSocket-Key: (\S+)/i.exec(request)?.[1];
      assert.ok(key !== undefined, `no key in the request head shown: ${request}`);
      const accept = createHash('sha1')
        .update(key + GUID)
        .digest('base64');
      assert.match(response, /^HTTP\/1\.1 101 Switching Protocols/);
      assert.ok(response.includes(`Sec-WebSocket-Accept: ${accept}`), response);
      const acceptTable = await text('#accept');
      assert.ok(acceptTable.includes(key + GUID), acceptTable);
      assert.ok(
        acceptTable.includes(
          createHash('sha1')
            .update(key + GUID)
            .digest('hex'),
        ),
        acceptTable,
      );
      assert.ok(acceptTable.includes(accept), acceptTable);
      // Chromium offers permessage-deflate; the CLI accepts it.
      assert.match(acceptTable, /extension agreed\s+permessage-deflate/);

      // Text from the browser, and its echo: a masked frame in, an unmasked one out.
      let seen = await frameCount();
      await click('send-text');
      await waitFrames(seen + 2, 'the text frame and its echo');
      let shown = (await frames()).slice(seen);
      assert.match(shown[0]!, /^browser → server: TEXT fin=1/);
      assert.match(shown[0]!, /MASK\s+1/);
      assert.match(shown[0]!, /masking key\s+[0-9a-f]{8}/);
      assert.match(shown[0]!, /text\s+"Hello, RFC 6455"/);
      assert.match(shown[1]!, /^server → browser: TEXT fin=1/);
      assert.match(shown[1]!, /MASK\s+0/);
      await until(
        `document.getElementById('log').innerText.includes('message event: text, 15 characters')`,
        'the echo',
      );

      // 65536 random bytes do not deflate below 65536: the 7+64-bit length form, and both sizes.
      seen = await frameCount();
      await setValue('size', '65536');
      await click('send-binary');
      await waitFrames(seen + 2, 'the binary frame and its echo');
      shown = (await frames()).slice(seen);
      assert.match(shown[0]!, /^browser → server: BINARY fin=1/);
      assert.match(shown[0]!, /payload length\s+\d+ bytes, in 7\+64 bits/);
      assert.match(shown[0]!, /compressed\s+\d+ bytes on the wire, 65536 inflated/);
      assert.match(shown[1]!, /^server → browser: BINARY/);

      // 300 bytes of text: the 7+16-bit form (or the 7-bit one once compressed; the row says which).
      seen = await frameCount();
      await setValue('size', '126');
      await click('send-sized-text');
      await waitFrames(seen + 2, 'the 126-byte text');
      shown = (await frames()).slice(seen);
      assert.match(shown[0]!, /payload length\s+\d+ bytes, in (the 7-bit field|7\+16 bits)/);
      assert.match(shown[0]!, /compressed\s+\d+ bytes on the wire, 126 inflated|payload length\s+126 bytes, in 7\+16/);

      // RFC 6455 §5.4: the server sends one message in 3 frames, a ping between the first two.
      seen = await frameCount();
      await setValue('frag-count', '3');
      await setValue('frag-size', '30');
      await setValue('frag-ping', true);
      await click('send-fragments');
      await waitFrames(seen + 5, 'three fragments, the ping, and its pong');
      shown = (await frames()).slice(seen);
      const out = shown.filter((f) => f.startsWith('server → browser'));
      assert.deepEqual(
        out.map((f) => /^server → browser: (\w+) fin=(\d) len=(\d+)/.exec(f)!.slice(1).join(' ')),
        ['TEXT 0 10', 'PING 1 7', 'CONTINUATION 0 10', 'CONTINUATION 1 10'],
      );
      assert.ok(
        shown.some((f) => /^browser → server: PONG fin=1 len=7/.test(f)),
        `the browser's pong: ${shown.join('\n')}`,
      );
      await until(
        `document.getElementById('log').innerText.includes('message event: text, 30 characters')`,
        'the message',
      );

      // A ping asked for by the page, answered by the browser on its own (§5.5.2).
      seen = await frameCount();
      await setValue('ping-data', 'are you there?');
      await click('ping');
      await waitFrames(seen + 2, 'the ping and the pong');
      shown = (await frames()).slice(seen);
      assert.match(shown[0]!, /^server → browser: PING fin=1 len=14/);
      assert.match(shown[1]!, /^browser → server: PONG fin=1 len=14/);

      if (process.env['WSRFC_SCREENSHOT'] !== undefined) {
        const shot = await page.call('Page.captureScreenshot', { format: 'png' });
        writeFileSync(join(ROOT, process.env['WSRFC_SCREENSHOT']), Buffer.from(shot['data'] as string, 'base64'));
      }

      // §7.4.1: the server closes with a code of the page's choosing; the browser echoes it; clean.
      seen = await frameCount();
      await setValue('close-code', '4000');
      await setValue('close-reason', 'goodbye from the server');
      await click('server-close');
      await until(`document.getElementById('log').innerText.includes('close event: code 4000')`, 'the close event');
      shown = (await frames()).slice(seen);
      assert.match(shown[0]!, /^server → browser: CLOSE fin=1 len=25 code=4000 private use/);
      assert.match(shown[0]!, /close reason\s+"goodbye from the server"/);
      assert.match(shown[1]!, /^browser → server: CLOSE .*code=4000/);
      assert.match(await text('#log'), /close event: code 4000 \(\) reason="goodbye from the server" wasClean=true/);

      // A new connection, then an invalid frame: the browser fails the connection (§7.1.7); its
      // API reports 1006, and the server saw what the browser did about it.
      await click('reconnect');
      await until(
        `document.getElementById('status').textContent === 'open' && document.querySelectorAll('#frames .frame').length === 0`,
        'the new connection',
      );
      await setValue('invalid-kind', 'reserved-opcode');
      await click('send-invalid');
      await until(`document.getElementById('log').innerText.includes('close event: code 1006')`, 'the 1006');
      // The server's account of the close comes over the observer socket, which may be later than the
      // browser's own close event (a busy machine): wait for it too.
      await until(
        `/server: the connection closed with \\d+ /.test(document.getElementById('log').innerText)`,
        "the server's report of the close",
      );
      const log = await text('#log');
      assert.match(log, /server: the server sends 8302 *6869: RFC 6455 §5\.2/);
      assert.match(log, /close event: code 1006 \(Abnormal Closure\) reason="" wasClean=false/);
      assert.match(log, /server: the connection closed with \d+ /);
      const last = await frames();
      t.diagnostic(`what the server saw after the invalid frame: ${last.map((f) => f.split('\n')[0]).join(' | ')}`);
    },
  );

  it(
    'over HTTPS: the page and its WebSocket over HTTP/2, the handshake shown as the extended CONNECT (RFC 8441)',
    { timeout: 90_000 },
    async (t) => {
      if (skipBecause(t, chromium === null ? NO_CHROMIUM : null)) return;
      const made = makeTestCertificate('wsrfc-explorer-chromium-');
      if (typeof made === 'string') return void skipBecause(t, made);
      certificate = made;
      const tls = ['--tls-cert', made.certFile, '--tls-key', made.keyFile];
      // The certificate is our own, made above.
      const session = await openExplorer(tls, ['--ignore-certificate-errors']);
      const { page, until, text, frames, click, frameCount, waitFrames, output, port } = session;
      await until(
        `document.getElementById('status').textContent === 'open' && document.getElementById('extended-connect') !== null`,
        'the page to open its connection and show its handshake',
      );
      // The page itself came over HTTP/2 (ALPN h2), so the browser's WebSockets share that connection.
      const navigation = `performance.getEntriesByType('navigation')[0].nextHopProtocol`;
      assert.equal(await page.eval<string>(navigation), 'h2');
      // The server's side: the page's own connection (the one the echo logs) came over HTTP/2.
      await waitUntil(
        () => /^\+ #\d+ \S+ \/\?explorer=\S+ {2}over /m.test(output()),
        20_000,
        'the connection in the log',
      );
      assert.match(output(), /^\+ #\d+ \S+ \/\?explorer=[\w-]+ {2}over HTTP\/2 /m);

      // RFC 8441 §4, §5: the extended CONNECT's fields, read from the DOM, where HTTP/1.1 has key and accept.
      const fields = await text('#extended-connect');
      assert.match(fields, /:method\s+CONNECT/);
      assert.match(fields, /:protocol\s+websocket/);
      assert.match(fields, /:scheme\s+https/);
      assert.match(fields, /:path\s+\/\?explorer=[\w-]+/);
      assert.match(fields, new RegExp(`:authority\\s+127\\.0\\.0\\.1:${port}`));
      assert.match(fields, /:status\s+200/);
      assert.match(fields, /Sec-WebSocket-Key, -Accept\s+not used/);
      // Chromium offers permessage-deflate on the HTTP/2 stream too; the CLI accepts it.
      assert.match(fields, /extension agreed\s+permessage-deflate/);
      assert.equal(await page.eval<boolean>(`document.getElementById('accept') === null`), true, 'no accept table');
      const request = await text('#request-head');
      assert.match(request, /^:method = CONNECT$/m);
      assert.match(request, /^:protocol = websocket$/m);
      assert.doesNotMatch(request, /sec-websocket-key/i);
      assert.match(await text('#response-head'), /^:status = 200$/m);
      const links = await page.eval<string[]>(`[...document.querySelectorAll('#handshake a')].map((a) => a.href)`);
      for (const section of ['4', '5'])
        assert.ok(links.includes(`https://www.rfc-editor.org/rfc/rfc8441#section-${section}`), links.join(' '));

      // Frames are the same over HTTP/2: a masked text frame in, its echo out.
      const seen = await frameCount();
      await click('send-text');
      await waitFrames(seen + 2, 'the text frame and its echo');
      const shown = (await frames()).slice(seen);
      assert.match(shown[0]!, /^browser → server: TEXT fin=1/);
      assert.match(shown[0]!, /MASK\s+1/);
      assert.match(shown[1]!, /^server → browser: TEXT fin=1/);
    },
  );
});
