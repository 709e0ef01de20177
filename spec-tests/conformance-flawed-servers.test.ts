/**
 * The conformance engine against servers broken on purpose (helpers/flawed-echo-server.ts, not our
 * library), each in one rule: every case that catches the flaw gets the verdict Autobahn|Testsuite
 * gives it (reasoned from its case classes, in the comments), and every other case is OK (or
 * INFORMATIONAL, for 7.1.6 and 7.13.x). A correct server of the same make passes everything, so
 * what the cases find is the flaw and nothing else.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { selectCases } from '../src/conformance/catalogue.js';
import type { CaseResult } from '../src/conformance/result.js';
import { testServer } from '../src/conformance/server-runner.js';
import { startFlawedEchoServer, type Flaws, type FlawedServer } from './helpers/flawed-echo-server.js';
import { isUtf8 } from './helpers/peer/index.js';

/** Groups 1 to 7 and 10: every rule the flaws break is tested there. */
const CORE = '1.*,2.*,3.*,4.*,5.*,6.*,7.*,10.*';
const INFORMATIONAL = ['7.1.6', '7.13.1', '7.13.2'];

const servers: FlawedServer[] = [];
after(() => Promise.all(servers.map((s) => s.close())));

async function run(flaws: Flaws, cases: string): Promise<Map<string, CaseResult>> {
  const server = await startFlawedEchoServer(flaws);
  servers.push(server);
  const results = await testServer({ url: server.url, cases: selectCases(cases) });
  return new Map(results.map((r) => [r.id, r]));
}

/** Every case as expected: the ones listed with their verdicts, the rest OK (7.1.6 and 7.13.x informational). */
function assertVerdicts(results: Map<string, CaseResult>, expected: Record<string, [string, string]>): void {
  const wrong: string[] = [];
  for (const [id, r] of results) {
    const want = expected[id] ?? (INFORMATIONAL.includes(id) ? ['INFORMATIONAL', 'INFORMATIONAL'] : ['OK', 'OK']);
    if (r.behavior !== want[0] || r.behaviorClose !== want[1])
      wrong.push(
        `${id}: ${r.behavior} / ${r.behaviorClose}, expected ${want.join(' / ')} (${r.result} ${r.resultClose})`,
      );
  }
  assert.deepEqual(wrong, []);
  for (const id of Object.keys(expected)) assert.ok(results.has(id), `${id} was run`);
}

const each = (ids: string[], verdict: [string, string]): Record<string, [string, string]> =>
  Object.fromEntries(ids.map((id) => [id, verdict]));

describe('the engine against servers broken in one rule each', () => {
  it('a correct server of the same make passes every case of groups 1-7 and 10', async () => {
    assertVerdicts(await run({}, CORE), {});
  });

  it('a server that never checks UTF-8: every case with invalid UTF-8 FAILED, 7.5.1 WRONG CODE', async () => {
    const results = await run({ skipUtf8: true }, CORE);
    // 6.5-6.23: the payloads the suite marks invalid (the test peer's strict decoder agrees).
    const invalid = selectCases('6.*')
      .filter((c) => /^6\.([5-9]|1\d|2[0-3])\./.test(c.id))
      .filter((c) => !isUtf8(Buffer.from(/0x([0-9a-f]*)/.exec(c.description)![1]!, 'hex')))
      .map((c) => c.id);
    assert.equal(invalid.length, 69);
    assertVerdicts(results, {
      // The echo comes back invalid: the engine fails the connection itself (1007), so the peer
      // was the wrong endpoint to close, and for these cases that fails the behaviour too
      // (closedByWrongEndpointIsFatal). 6.4.x reach both steps, then fail the same way.
      ...each(['6.3.1', '6.3.2', '6.4.1', '6.4.2', '6.4.3', '6.4.4', ...invalid], ['FAILED', 'FAILED']),
      // The close with an invalid reason is echoed with 1000; 7.5 allows only 1002 or 1007, and a
      // wrong code fails a 7.x case.
      '7.5.1': ['FAILED', 'WRONG CODE'],
    });
  });

  it('a server that answers pings with a wrong payload: every case that pings FAILED, its close OK', async () => {
    const flipFirst = (payload: Buffer): Buffer =>
      payload.length === 0 ? Buffer.from([0]) : Buffer.concat([Buffer.from([payload[0]! ^ 1]), payload.subarray(1)]);
    // The pongs never match, so the case closes at its deadline (closeAfter), cleanly.
    const pinging = ['2.1', '2.2', '2.3', '2.4', '2.6', '2.9', '2.10', '2.11', '5.6', '5.7', '5.8', '5.19', '5.20'];
    assertVerdicts(await run({ pongPayload: flipFirst }, CORE), each(pinging, ['FAILED', 'OK']));
  });

  it('a server that echoes any close code: 7.9.x FAILED, WRONG CODE', async () => {
    // 7.9 expects 1002 for an invalid code; the engine gets its own invalid code back.
    const invalid = selectCases('7.9.*').map((c) => c.id);
    assertVerdicts(await run({ echoAnyCloseCode: true }, CORE), each(invalid, ['FAILED', 'WRONG CODE']));
  });

  it('a server that ignores reserved bits: 3.1-3.6 FAILED, FAILED; 3.7 cannot tell', async () => {
    // It echoes what it should reject, and never fails the connection: the engine does, at its
    // deadline (the wrong endpoint). 3.7 is a close frame with RSV bits: taken as a close, it is
    // answered like one, which the suite cannot tell from failing the connection.
    const results = await run({ ignoreRsv: true }, CORE);
    assertVerdicts(results, each(['3.1', '3.2', '3.3', '3.4', '3.5', '3.6'], ['FAILED', 'FAILED']));
  });

  it('a server whose deflate keeps the context it agreed to drop: the cases that ask it to drop it FAILED, FAILED', async () => {
    const cases = '12.1.1,12.2.1,13.*.1,13.*.2';
    assertVerdicts(await run({ deflate: true }, cases), {});
    const results = await run({ deflate: true, keepContextAnyway: true }, cases);
    // 13.2, 13.5, 13.6 and 13.7 (its first offer) ask for server_no_context_takeover: the second
    // message refers back into the first, the engine's inflater (started afresh, as agreed)
    // cannot inflate it, and the connection drops without a close (the suite's zlib raises).
    const dropping = ['13.2.1', '13.5.1', '13.6.1', '13.7.1', '13.2.2', '13.5.2', '13.6.2', '13.7.2'];
    assertVerdicts(results, each(dropping, ['FAILED', 'FAILED']));
    for (const id of dropping) assert.match(results.get(id)!.result, /could not be inflated/);
  });
});
