/**
 * The learning examples run as a reader runs them (each in its own process, PORT=0), against the
 * test peer: examples/core-echo.ts (the pure protocol core over net.Socket) and examples/chat.ts
 * (a broadcast chat with a browser page). They are type-checked with the rest (tsconfig.json).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, afterEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Opcode, withTimeout } from './helpers/library.js';
import { RawClient, destroyRawClients } from './helpers/peer/index.js';

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
