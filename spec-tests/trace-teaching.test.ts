/**
 * `--trace` that teaches (src/learn/explain.ts, printed by src/cli/echo.ts): the echo CLI in its own process,
 * the test peer as client (its own encoder and its own zlib). Each handshake's heads, and under
 * each frame's line the header bytes, the length form used, text escaped, close codes by name and
 * a compressed message's two sizes, including one that refers back to the previous message
 * (RFC 7692 §7.1.1: context takeover). Over HTTP/2 (the CLI with TLS, node:http2's client carrying
 * the peer's frames), the handshake is the extended CONNECT's fields (RFC 8441 §4, §5), with no key
 * and no accept.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { skipBecause, waitUntil, withTimeout } from './helpers/library.js';
import {
  Compressor,
  H2Peer,
  RawClient,
  acceptFor,
  destroyH2Sessions,
  destroyRawClients,
  openH2Session,
} from './helpers/peer/index.js';
import { makeTestCertificate, type TestCertificate } from './helpers/tls.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

describe('the echo CLI: --trace explains what it prints', () => {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'src/cli/echo.ts', '--host', '127.0.0.1', '--port', '0', '--trace'],
    {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  after(() => {
    destroyRawClients();
    child.kill('SIGKILL');
  });

  it('handshake heads, header bytes, length forms, escaped text, both sizes of compressed messages, close codes by name', async () => {
    await waitUntil(() => /listening on ws:\/\/127\.0\.0\.1:\d+\//.test(output), 20_000, 'the CLI to listen');
    const port = Number(/listening on ws:\/\/127\.0\.0\.1:(\d+)\//.exec(output)![1]);
    const client = await RawClient.connect(port, { extensions: ['permessage-deflate'] });
    client.sendText('tab\there "quoted"\n');
    client.sendBinary(Buffer.alloc(300, 1));
    client.sendBinary(Buffer.alloc(70_000, 2));
    // Two compressed messages; the second is mostly a back-reference into the first.
    const compressor = new Compressor({ contextTakeover: true });
    const first = compressor.compress(Buffer.from('hello hello hello, deflate'));
    const second = compressor.compress(Buffer.from('hello hello hello, deflate'));
    client.sendCompressed(first);
    client.sendCompressed(second);
    await client.waitMessages(5, 10_000);
    client.sendClose(1000, 'done');
    await client.waitCloseFrame();
    await withTimeout(
      (async () => {
        while (!output.includes('-> CLOSE')) await new Promise((resolve) => setTimeout(resolve, 20));
      })(),
      5000,
      'the traced close',
    );
    const lines = output.split('\n');
    const under = (pattern: RegExp): string[] =>
      lines.flatMap((line, i) => (pattern.test(line) ? [lines[i + 1] ?? ''] : []));

    // RFC 6455 §4: the heads as they were, and the accept that answers the key.
    assert.match(output, /^#1 opening handshake \(RFC 6455 §4\.2\):$/m);
    assert.match(output, /^ {3}<- GET \/ HTTP\/1\.1$/m);
    assert.ok(output.includes(`   <- Sec-WebSocket-Key: ${client.key!}\n`));
    assert.ok(output.includes(`   -> Sec-WebSocket-Accept: ${acceptFor(client.key!)}\n`));
    assert.match(output, /^ {3}-> Sec-WebSocket-Extensions: permessage-deflate$/m);

    const textIn = under(/^<- TEXT .*len=18 /)[0]!;
    assert.match(textIn, /^ {3}#1 header 8192[0-9a-f]{8} \| length 18 in the 7-bit field \| masked [0-9a-f]+/);
    assert.ok(textIn.endsWith('| text "tab\\there \\"quoted\\"\\n"'), textIn);
    assert.match(under(/^<- BINARY .*len=300 /)[0]!, /header 82fe012c[0-9a-f]{8} \| length 300 in 7\+16 bits/);
    assert.match(
      under(/^<- BINARY .*len=70000 /)[0]!,
      /header 82ff0000000000011170[0-9a-f]{8} \| length 70000 in 7\+64 bits/,
    );
    // The server compresses its echo of it (over its 1 KiB threshold): the trace inflates ours too.
    assert.match(under(/^-> BINARY +fin=1 rsv=100 /)[0]!, /compressed message: \d+ bytes on the wire, 70000 inflated/);

    // RFC 7692: both compressed messages inflated for the trace, the second through the first's window.
    const compressed = under(/^<- TEXT +fin=1 rsv=100 /);
    assert.equal(compressed.length, 2, output);
    assert.match(compressed[0]!, new RegExp(`compressed message: ${first.length} bytes on the wire, 26 inflated`));
    assert.match(compressed[1]!, new RegExp(`compressed message: ${second.length} bytes on the wire, 26 inflated`));
    assert.ok(second.length < first.length, 'the second message refers back to the first');
    assert.match(compressed[1]!, /text "hello hello hello, deflate"/);

    // RFC 6455 §7.4.1: close codes by name, both ways.
    assert.match(under(/^<- CLOSE /)[0]!, /close 1000 Normal Closure "done"$/);
    assert.match(under(/^-> CLOSE /)[0]!, /close 1000 Normal Closure "done"$/);
  });
});

describe('the echo CLI with TLS: --trace shows an HTTP/2 handshake as the extended CONNECT it is', () => {
  let certificate: TestCertificate | string | undefined;
  let child: ReturnType<typeof spawn> | undefined;
  after(() => {
    destroyH2Sessions();
    child?.kill('SIGKILL');
    if (typeof certificate === 'object') certificate.remove();
  });

  it('RFC 8441 §4, §5: :method CONNECT, :protocol websocket, :scheme, :path, :authority, the :status 200, no key or accept; then the frames', async (t) => {
    certificate = makeTestCertificate('wsrfc-trace-h2-');
    if (typeof certificate === 'string') {
      skipBecause(t, certificate);
      return;
    }
    const args = ['--host', '127.0.0.1', '--port', '0', '--trace'];
    args.push('--tls-cert', certificate.certFile, '--tls-key', certificate.keyFile);
    child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/echo.ts', ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    await waitUntil(() => /listening on wss:\/\/127\.0\.0\.1:\d+\//.test(output), 20_000, 'the CLI to listen');
    const port = Number(/listening on wss:\/\/127\.0\.0\.1:(\d+)\//.exec(output)![1]);
    const session = await openH2Session(`https://localhost:${port}`, { ca: certificate.cert });
    const peer = await H2Peer.open(session, '/trace?over=h2', {
      'sec-websocket-extensions': 'permessage-deflate',
      origin: 'https://learner.example',
    });
    peer.sendText('over HTTP/2');
    await peer.waitMessages(1);
    await waitUntil(() => output.includes('-> TEXT'), 5000, 'the traced echo');

    const lines = output.split('\n');
    const title = lines.findIndex((line) => line.startsWith('#1 opening handshake'));
    assert.equal(
      lines[title],
      '#1 opening handshake over HTTP/2, an extended CONNECT on one stream (RFC 8441 §4, §5):',
      output,
    );
    const request = lines.slice(title + 1).filter((line) => line.startsWith('   <- '));
    for (const field of [
      ':method = CONNECT',
      ':protocol = websocket',
      ':scheme = https',
      ':path = /trace?over=h2',
      `:authority = localhost:${port}`,
      'sec-websocket-version = 13',
      'sec-websocket-extensions = permessage-deflate',
      'origin = https://learner.example',
    ])
      assert.ok(request.includes(`   <- ${field}`), `${field} in:\n${output}`);
    // The response's HEADERS: :status first, then what the server agreed to (what the peer received).
    const response = lines.filter((line) => line.startsWith('   -> '));
    assert.equal(response[0], '   -> :status = 200');
    const agreed = String(peer.response['sec-websocket-extensions']);
    assert.ok(response.includes(`   -> sec-websocket-extensions = ${agreed}`), output);
    assert.match(output, /RFC 8441 §5: no Sec-WebSocket-Key or Sec-WebSocket-Accept/);
    assert.doesNotMatch(output, /^ {3}(<-|->) sec-websocket-(key|accept)/im);
    // Then the frames, explained as over HTTP/1.1.
    assert.match(
      output,
      /^ {3}#1 header 81[0-9a-f]{10} \| length 11 in the 7-bit field \| masked [0-9a-f]+ \| text "over HTTP\/2"$/m,
    );
  });
});
