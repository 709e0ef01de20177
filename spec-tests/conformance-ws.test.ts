/**
 * The `ws` package (8.23, a devDependency) through the conformance engine, as a server and as a
 * client, with its defaults plus `perMessageDeflate: true`: the verdicts must be the ones the real
 * Autobahn|Testsuite gives it (autobahn/expected/ws-server.json, ws-client.json): OK but for
 * NON-STRICT 6.4.1-6.4.4 (it checks UTF-8 once a message is complete), INFORMATIONAL 7.1.6 and
 * 7.13.x, and FAILED 9.3.1, 9.3.2, 9.4.1 and 9.4.2: 4 MiB in fragments of 64 or 256 octets is 65537
 * or 16385 frames (the suite ends a message whose length is a multiple of the fragment size with
 * an empty frame), over ws's `maxFragments` (16384 by default, server and client; 0 lifts it, and
 * 9.3.x and 9.4.x then pass). `maxPayload` (100 MiB) is not reached by any case.
 *
 * Groups 1-7 and 10 run whole; of 9, the first case of each subgroup and 9.3.x and 9.4.x (where ws
 * differs); of 12 and 13 (a thousand compressed round trips each) the first case of each subgroup;
 * all 517 with CONFORMANCE_FULL=1.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import { selectCases } from '../src/conformance/catalogue.js';
import { differences, readExpectations } from '../src/conformance/expect.js';
import type { CaseResult } from '../src/conformance/result.js';
import type { CaseDefinition } from '../src/conformance/script.js';
import { ClientTester } from '../src/conformance/client-runner.js';
import { inSlots, testServer } from '../src/conformance/server-runner.js';

const FULL = process.env.CONFORMANCE_FULL === '1';
const CASES = FULL ? '*' : '1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.*.1,9.3.*,9.4.*,10.*,12.*.1,13.*.1';
/**
 * The engine's deadlines (the suite's waits) times 10 rather than 3: ws answers every case at once
 * when it behaves, so they only decide 6.4.x (how soon invalid UTF-8 is failed), and the verdicts
 * must not change on a machine so busy that an answer takes seconds. 6.4.x then last 10-20 s.
 */
const TIME_SCALE = 10;
const EXPECTED = (name: string): string => new URL(`../autobahn/expected/${name}.json`, import.meta.url).pathname;

const servers: WebSocketServer[] = [];
after(() => Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve)))));

/** A ws echo server; its errors (the cases' bad frames) are expected, and would crash the process unheard. */
async function wsServer(options: { maxFragments?: number; maxPayload?: number } = {}): Promise<string> {
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: true, ...options });
  servers.push(server);
  server.on('connection', (socket) => {
    socket.on('error', () => {});
    socket.on('message', (data, isBinary) => socket.send(data as Buffer, { binary: isBinary }));
  });
  await new Promise((resolve) => server.once('listening', resolve));
  return `ws://127.0.0.1:${(server.address() as AddressInfo).port}/`;
}

/** Run each case with a ws client that echoes, eight at a time. */
async function wsClient(cases: CaseDefinition[], options: { maxFragments?: number } = {}): Promise<CaseResult[]> {
  const tester = new ClientTester({ cases, timeScale: TIME_SCALE });
  const { port } = await tester.listen(0);
  try {
    const numbers = cases.map((_, i) => ({ n: i + 1, weight: 1 }));
    await inSlots(
      numbers,
      8,
      ({ n }) =>
        new Promise<void>((resolve) => {
          const socket = new WebSocket(`ws://127.0.0.1:${port}/runCase?case=${n}&agent=ws`, {
            perMessageDeflate: true,
            ...options,
          });
          socket.on('error', () => {});
          socket.on('message', (data, isBinary) => socket.send(data as Buffer, { binary: isBinary }));
          socket.on('close', () => resolve());
        }),
    );
    return [...(tester.results.get('ws')?.values() ?? [])];
  } finally {
    await tester.close();
  }
}

describe('ws 8.23, perMessageDeflate on, through the conformance engine', () => {
  it("as a server: the real suite's verdicts", async () => {
    const cases = selectCases(CASES);
    const results = await testServer({ url: await wsServer(), cases, timeScale: TIME_SCALE });
    assert.equal(results.length, cases.length);
    assert.deepEqual(differences(results, readExpectations(EXPECTED('ws-server'))), []);
  });

  it("as a client: the real suite's verdicts", async () => {
    const cases = selectCases(CASES);
    const results = await wsClient(cases);
    assert.equal(results.length, cases.length);
    assert.deepEqual(differences(results, readExpectations(EXPECTED('ws-client'))), []);
  });

  it('with maxFragments lifted (0), 9.3.1, 9.3.2, 9.4.1 and 9.4.2 are OK, both ways', async () => {
    const cases = selectCases('9.3.1,9.3.2,9.4.1,9.4.2');
    const ok = (results: CaseResult[]): string[] =>
      results.filter((r) => r.behavior !== 'OK' || r.behaviorClose !== 'OK').map((r) => `${r.id} ${r.behavior}`);
    assert.deepEqual(
      ok(await testServer({ url: await wsServer({ maxFragments: 0 }), cases, timeScale: TIME_SCALE })),
      [],
    );
    assert.deepEqual(ok(await wsClient(cases, { maxFragments: 0 })), []);
  });
});
