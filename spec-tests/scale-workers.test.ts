/**
 * `--workers` (issue 15): the chat CLI as N processes sharing one port through node:cluster, with
 * no Redis: rooms reach across workers through the primary; a killed worker's clients see their
 * connection drop and the others carry on; the dead worker is replaced; stopping drains every worker
 * (1001 to each client). Clients are the independent test peer.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { ChatProcess } from './helpers/chat-process.js';
import { RawClient, destroyRawClients } from './helpers/peer/index.js';
import { delay } from './helpers/peer/wait.js';

function texts(client: RawClient): string[] {
  return client.messages.map((message) => message.data.toString('utf8'));
}

describe('chat --workers 2 (node:cluster, the primary relays between workers)', () => {
  let chat: ChatProcess | null = null;
  after(async () => {
    destroyRawClients();
    await chat?.stop();
  });

  it('serves one port from two processes; a room reaches across them; a killed worker is replaced; stop drains all', async () => {
    chat = await ChatProcess.start(['--port', '0', '--workers', '2']);
    const pidsLine = /pids (\d+) (\d+)/.exec(chat.output);
    assert.ok(pidsLine !== null, chat.output);
    const workers = [Number(pidsLine[1]), Number(pidsLine[2])];

    const members: RawClient[] = [];
    for (let i = 0; i < 6; i++) members.push(await RawClient.connect(chat.port, { path: '/lobby' }));
    const elsewhere = await RawClient.connect(chat.port, { path: '/other' });
    await chat.waitFor(new RegExp(`(\\+ #\\d+ [^ ]+:${elsewhere.socket.localPort} )`));
    const pids = members.map((client) => chat!.pidServing(client.socket.localPort!));
    const elsewherePid = chat.pidServing(elsewhere.socket.localPort!);
    for (const pid of workers) assert.ok(pids.includes(pid), `a member on worker ${pid}: ${pids.join(' ')}`);

    // Each member's message reaches all six, on both workers, once; /other hears nothing.
    members.forEach((client, i) => client.sendText(`hello from ${i}`));
    const expected = members.map((_, i) => `hello from ${i}`).sort();
    for (const client of members) await client.waitMessages(6, 10_000);
    await delay(300);
    for (const client of members) assert.deepEqual(texts(client).sort(), expected);
    assert.deepEqual(elsewhere.messages, []);

    // Kill one worker: its members' connections drop with no close frame (1006, RFC 6455 §7.1.5).
    const victim = workers[0]!;
    process.kill(victim, 'SIGKILL');
    const doomed = members.filter((_, i) => pids[i] === victim);
    const survivors = members.filter((_, i) => pids[i] !== victim);
    for (const client of doomed) {
      await client.until(() => client.closed, 10_000, 'the connection to drop');
      assert.equal(client.closeFrame, null);
    }
    survivors[0]!.sendText('after the kill');
    for (const client of survivors) {
      await client.until(() => texts(client).includes('after the kill'), 10_000);
      assert.equal(client.closed, false);
    }

    // A replacement comes up; members on it and on the survivor reach each other again.
    await chat.waitFor(new RegExp(`worker ${victim} died`));
    const replacement = Number((await chat.waitFor(new RegExp(`worker (?!${victim})(\\d+) listening`)))[1]);
    const newcomers: RawClient[] = [];
    for (let i = 0; i < 6 && !newcomers.some((c) => chat!.pidServing(c.socket.localPort!) === replacement); i++) {
      const client = await RawClient.connect(chat.port, { path: '/lobby' });
      await chat.waitFor(new RegExp(`\\+ #\\d+ [^ ]+:${client.socket.localPort} `));
      newcomers.push(client);
    }
    const onReplacement = newcomers.find((c) => chat!.pidServing(c.socket.localPort!) === replacement);
    assert.ok(onReplacement !== undefined, 'a new member landed on the replacement worker');
    onReplacement.sendText('from the replacement');
    for (const client of survivors) await client.until(() => texts(client).includes('from the replacement'), 10_000);

    // Stop: the primary drains every worker; each client gets a close frame with 1001 (going away).
    const elsewhereSurvived = elsewherePid !== victim;
    const open = [...survivors, ...newcomers, ...(elsewhereSurvived ? [elsewhere] : [])];
    for (const client of open) client.on('message', () => {});
    const code = await chat.stop();
    assert.equal(code, 0, chat.output);
    const ports = open.map((client) => client.socket.localPort);
    for (const [i, client] of open.entries()) {
      const close = await client.waitCloseFrame(10_000).catch((error: Error) => {
        throw new Error(`the client on port ${ports[i]}: ${error.message}\n${chat!.output}`);
      });
      assert.equal(close.code, 1001);
    }
  });
});

describe('chat CLI arguments for scale-out', () => {
  it('--workers with a bad count, and a malformed --broker URL, are refused with a message naming them', async () => {
    const bad = await ChatProcess.run(['--port', '0', '--workers', 'zero']);
    assert.equal(bad.code, 2);
    assert.match(bad.output, /--workers must be a whole number/);
    const malformed = await ChatProcess.run(['--port', '0', '--broker', 'not a url']);
    assert.equal(malformed.code, 1);
    assert.match(malformed.output, /invalid Redis URL "not a url"/);
    const scheme = await ChatProcess.run(['--port', '0', '--broker', 'http://127.0.0.1:6379']);
    assert.equal(scheme.code, 1);
    assert.match(scheme.output, /invalid Redis URL "http:\/\/127\.0\.0\.1:6379\/": the scheme must be redis:\/\//);
  });

  it('Redis unreachable at start: one process or every worker gives up with an error naming the URL', async () => {
    const probe = createServer().listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const port = (probe.address() as AddressInfo).port;
    probe.close();
    await once(probe, 'close');
    const url = `redis://127.0.0.1:${port}`;
    for (const workers of [[], ['--workers', '2']]) {
      const started = Date.now();
      const run = await ChatProcess.run(['--port', '0', ...workers, '--broker', url]);
      assert.equal(run.code, 1, run.output);
      assert.match(run.output, new RegExp(`cannot start: cannot reach Redis at redis://127\\.0\\.0\\.1:${port}`));
      assert.ok(Date.now() - started < 15_000, `gave up after ${Date.now() - started} ms`);
    }
  });
});
