/**
 * The learning examples run as a reader runs them (each in its own process, PORT=0), against the
 * test peer: examples/core-echo.ts (the pure protocol core over net.Socket), examples/core-client.ts
 * (a client on the core, also against Python's websockets, which fails unmasked client frames) and
 * examples/chat.ts (a broadcast chat with a browser page). They are type-checked with the rest
 * (tsconfig.json).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, afterEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Opcode, startServer, withTimeout } from './helpers/library.js';
import { RawClient, RawServer, destroyRawClients, type ServerPeer } from './helpers/peer/index.js';
import { findPython, pythonOrSkip } from './helpers/python.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const children: ChildProcess[] = [];
afterEach(() => destroyRawClients());
after(() => {
  for (const child of children) child.kill('SIGKILL');
});

/** Start an example and wait for the port it prints. */
async function start(file: string): Promise<number> {
  const child = spawn(process.execPath, ['--import', 'tsx', file], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  let output = '';
  child.stdout!.setEncoding('utf8');
  return withTimeout(
    new Promise<number>((resolve) =>
      child.stdout!.on('data', (chunk: string) => {
        output += chunk;
        const match = /127\.0\.0\.1:(\d+)\//.exec(output);
        if (match !== null) resolve(Number(match[1]));
      }),
    ),
    20_000,
    `${file} to listen`,
  );
}

/** Run an example to its end: its exit code and what it printed. */
function run(file: string, args: string[]): Promise<{ code: number | null; stdout: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', file, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  let stdout = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  return withTimeout(
    new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout }))),
    30_000,
    `${file} to exit`,
  );
}

const PYTHON_PEER = fileURLToPath(new URL('./helpers/python-websockets-peer.py', import.meta.url));

describe('examples/core-client.ts: a client on the pure protocol core over a net.Socket', () => {
  it('against the test peer: a valid handshake, the text masked (RFC 6455 §5.3), its echo printed, a clean 1000, exit 0', async () => {
    const server = await RawServer.start();
    const peerDone = (async (): Promise<ServerPeer> => {
      const peer = await server.nextPeer();
      const [message] = await peer.waitMessages(1, 20_000);
      peer.sendText(message!.data);
      await peer.waitCloseFrame(20_000);
      peer.sendClose(1000, 'done');
      peer.end();
      return peer;
    })();
    try {
      const { code, stdout } = await run('examples/core-client.ts', [server.url('/'), 'hello peer']);
      const peer = await peerDone;
      assert.equal(code, 0, stdout);
      assert.match(stdout, /echo: hello peer/);
      assert.match(stdout, /closed 1000 "done" clean=true/);
      assert.ok(
        peer.frames.every((frame) => frame.masked),
        'every frame the client sent was masked',
      );
      assert.equal(peer.protocolErrors.length, 0, peer.describe());
    } finally {
      await server.close();
    }
  });

  it('against our echo server: exit 0', async () => {
    const server = await startServer();
    try {
      const { code, stdout } = await run('examples/core-client.ts', [server.url, 'hello server']);
      assert.equal(code, 0, stdout);
      assert.match(stdout, /echo: hello server/);
    } finally {
      await server.close();
    }
  });

  it('against a Python websockets server (which fails unmasked client frames with 1002): echo, clean 1000, exit 0', async (t) => {
    const python = pythonOrSkip(
      t,
      findPython(PYTHON_PEER, 'version', "Python's websockets library", 'python3-websockets'),
    );
    if (python === null) return;
    const server = spawn(python, [PYTHON_PEER, 'server'], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(server);
    const port = await withTimeout(
      new Promise<number>((resolve) => {
        let out = '';
        server.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
          out += chunk;
          const match = /listening (\d+)/.exec(out);
          if (match !== null) resolve(Number(match[1]));
        });
      }),
      20_000,
      'the python server to listen',
    );
    const { code, stdout } = await run('examples/core-client.ts', [`ws://127.0.0.1:${port}/`, 'hello python']);
    assert.equal(code, 0, stdout);
    assert.match(stdout, /echo: hello python/);
    assert.match(stdout, /closed 1000 "done" clean=true/);
  });
});

describe('examples/core-echo.ts: the pure protocol core over a net.Socket', () => {
  it('echoes text, binary and a fragmented message, answers a ping, completes the closing handshake, refuses a bad request', async () => {
    const port = await start('examples/core-echo.ts');
    const client = await RawClient.connect(port);
    client.sendText('hello core');
    client.sendBinary(Buffer.from([1, 2, 3]));
    client.sendText('frag', false);
    client.sendContinuation('mented', true);
    const messages = await client.waitMessages(3);
    assert.deepEqual(
      messages.map((m) => [m.isBinary, m.data.toString('hex')]),
      [
        [false, Buffer.from('hello core').toString('hex')],
        [true, '010203'],
        [false, Buffer.from('fragmented').toString('hex')],
      ],
    );
    client.sendPing('p');
    await client.until(() => client.pongs.length === 1, 3000, 'the pong');
    assert.equal(client.pongs[0]!.toString(), 'p');
    client.sendClose(1000, 'done');
    const close = await client.waitCloseFrame();
    assert.equal(close.code, 1000);
    await client.waitPeerEnd(); // RFC 6455 §7.1.1: the server ends TCP
    const bad = await RawClient.request(port, { headers: { Upgrade: null } });
    assert.equal(bad.response!.status, 400);
    assert.equal(client.frames.filter((f) => f.opcode === Opcode.Close).length, 1);
  });
});

describe('examples/chat.ts: a broadcast chat with a browser page', () => {
  it('serves its page, broadcasts each message to everyone, refuses other origins and binary messages', async () => {
    const port = await start('examples/chat.ts');
    const origin = `http://127.0.0.1:${port}`;
    const page = await RawClient.request(port, {
      path: '/',
      headers: { Upgrade: null, Connection: null, 'Sec-WebSocket-Key': null, 'Sec-WebSocket-Version': null },
    });
    assert.equal(page.response!.status, 200);
    assert.match(page.response!.body.toString(), /new WebSocket\('ws:\/\/' \+ location\.host \+ '\/chat'\)/);
    const join = (): Promise<RawClient> =>
      RawClient.connect(port, { path: '/chat', headers: { Origin: origin, Host: `127.0.0.1:${port}` } });
    const [alice, bob] = await Promise.all([join(), join()]);
    alice.sendText(JSON.stringify({ from: 'alice', text: 'hi all' }));
    for (const client of [alice, bob]) {
      const [message] = await client.waitMessages(1);
      assert.deepEqual(JSON.parse(message!.data.toString()), { from: 'alice', text: 'hi all' });
    }
    const stranger = await RawClient.request(port, { path: '/chat', headers: { Origin: 'http://evil.example' } });
    assert.equal(stranger.response!.status, 403);
    bob.sendBinary(Buffer.from([0]));
    assert.equal((await bob.waitCloseFrame()).code, 1003);
  });
});
