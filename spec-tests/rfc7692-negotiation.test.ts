/**
 * RFC 7692 §5 and §7.1: permessage-deflate negotiation. First the pure functions (the server's
 * choice among offers, the client's offer and its check of the response), then the same over
 * real sockets: the 101's Sec-WebSocket-Extensions, a server that does not speak deflate, a
 * malformed offer (400), and hostile servers answering with things the client never offered.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import {
  HandshakeError,
  WebSocketServer,
  connect,
  openClient,
  type PerMessageDeflateOptions,
  type ServerOptions,
} from '../src/index.js';
import { ExtensionHeaderError, parseExtensions } from '../src/protocol/extensions.js';
import {
  acceptDeflateOffer,
  acceptDeflateResponse,
  deflateOffer,
  type DeflateParams,
} from '../src/protocol/permessage-deflate.js';
import {
  KiB,
  closeEvent,
  nextMessages,
  rawRequest,
  startServer as start,
  tracedClient,
  withTimeout,
  wireMessages,
  type ConnectionHandler,
  type TestServer,
} from './helpers/library.js';
import { RawServer, destroyRawClients, upgradeWith } from './helpers/peer/index.js';

after(() => destroyRawClients());

/** Our server, without pings, with a short close timeout. */
function startServer(options: ServerOptions, handler?: ConnectionHandler): Promise<TestServer> {
  return start({ pingInterval: 0, closeTimeout: 1000, ...options }, handler);
}

/** The server's answer to one Sec-WebSocket-Extensions value: the response string, or null for a decline. */
function answer(header: string, options: PerMessageDeflateOptions = {}): string | null {
  return acceptDeflateOffer(parseExtensions([header]), options)?.response ?? null;
}

function serverParams(header: string, options: PerMessageDeflateOptions = {}): DeflateParams {
  const accepted = acceptDeflateOffer(parseExtensions([header]), options);
  assert.ok(accepted !== null, `offer ${header} declined`);
  return accepted.params;
}

/** The client's reading of a response to the offer its `options` make. */
function clientParams(response: string, options: PerMessageDeflateOptions = {}): DeflateParams {
  return acceptDeflateResponse(parseExtensions([response]), options);
}

const PLAIN: DeflateParams = {
  ownNoContextTakeover: false,
  peerNoContextTakeover: false,
  ownMaxWindowBits: 15,
  peerMaxWindowBits: 15,
};

describe('RFC 7692 §5.1, §7: the server chooses among offers', () => {
  it('accepts a plain offer with a plain response and default parameters', () => {
    assert.equal(answer('permessage-deflate'), 'permessage-deflate');
    assert.deepEqual(serverParams('permessage-deflate'), PLAIN);
  });

  it('returns null (declines) when nothing is offered or only other extensions are', () => {
    assert.equal(acceptDeflateOffer([], {}), null);
    assert.equal(answer('x-webkit-deflate-frame'), null);
    assert.equal(answer('foo; bar=1, baz'), null);
  });

  it('ignores other extensions (x-webkit-deflate-frame) around a permessage-deflate offer', () => {
    assert.equal(answer('x-webkit-deflate-frame, permessage-deflate'), 'permessage-deflate');
    assert.equal(
      answer('x-webkit-deflate-frame; no_context_takeover, permessage-deflate; server_no_context_takeover, foo'),
      'permessage-deflate; server_no_context_takeover',
    );
    // A parameter that would be unknown to permessage-deflate is another extension's business.
    assert.equal(answer('foo; client_max_window_bits=99, permessage-deflate'), 'permessage-deflate');
  });

  it('with several offers, the first acceptable one wins', () => {
    // First declined for an unknown parameter, second accepted.
    assert.equal(
      answer('permessage-deflate; foo, permessage-deflate; server_no_context_takeover'),
      'permessage-deflate; server_no_context_takeover',
    );
    // First acceptable: the second, although acceptable too, is not the one answered.
    assert.equal(
      answer('permessage-deflate; server_max_window_bits=10, permessage-deflate'),
      'permessage-deflate; server_max_window_bits=10',
    );
    assert.equal(answer('permessage-deflate, permessage-deflate; server_max_window_bits=10'), 'permessage-deflate');
    // Offers may come in separate header fields: one list (RFC 7230 §3.2.2).
    const offers = parseExtensions([
      'permessage-deflate; server_max_window_bits=16',
      'permessage-deflate; server_max_window_bits=11',
    ]);
    assert.equal(acceptDeflateOffer(offers, {})?.response, 'permessage-deflate; server_max_window_bits=11');
  });

  it('reads quoted parameter values (RFC 6455 §9.1)', () => {
    assert.equal(
      answer('permessage-deflate; client_max_window_bits="10"'),
      'permessage-deflate; client_max_window_bits=10',
    );
    assert.equal(
      answer('permessage-deflate; server_max_window_bits="12"'),
      'permessage-deflate; server_max_window_bits=12',
    );
    assert.equal(serverParams('permessage-deflate; client_max_window_bits="10"').peerMaxWindowBits, 10);
    // An escaped character inside quotes is the character itself.
    assert.equal(
      answer('permessage-deflate; client_max_window_bits="1\\1"'),
      'permessage-deflate; client_max_window_bits=11',
    );
  });

  for (const param of [
    'server_no_context_takeover',
    'client_no_context_takeover',
    'server_max_window_bits=10',
    'client_max_window_bits',
    'client_max_window_bits=10',
  ]) {
    it(`declines an offer with ${param.split('=')[0]} twice (§7)`, () => {
      assert.equal(answer(`permessage-deflate; ${param}; ${param}`), null);
      // ... and falls through to the next offer.
      assert.equal(answer(`permessage-deflate; ${param}; ${param}, permessage-deflate`), 'permessage-deflate');
    });
  }

  it('declines a repeated parameter even with different values', () => {
    assert.equal(answer('permessage-deflate; server_max_window_bits=10; server_max_window_bits=11'), null);
    assert.equal(answer('permessage-deflate; client_max_window_bits; client_max_window_bits=9'), null);
  });

  it('declines an offer with an unknown parameter (§7)', () => {
    assert.equal(answer('permessage-deflate; foo'), null);
    assert.equal(answer('permessage-deflate; foo=bar'), null);
    assert.equal(answer('permessage-deflate; server_no_context_takeover; x'), null);
    // Names are case-sensitive tokens: this is not client_max_window_bits.
    assert.equal(answer('permessage-deflate; Client_Max_Window_Bits=10'), null);
  });

  const invalid = [
    'server_max_window_bits=7',
    'server_max_window_bits=16',
    'server_max_window_bits=08',
    'server_max_window_bits=abc',
    'server_max_window_bits',
    'server_max_window_bits=0',
    'server_max_window_bits=+9',
    'client_max_window_bits=7',
    'client_max_window_bits=16',
    'client_max_window_bits=08',
    'client_max_window_bits=abc',
    'client_max_window_bits=1.5',
    'server_no_context_takeover=1',
    'client_no_context_takeover=1',
    'server_no_context_takeover=true',
  ];
  for (const param of invalid) {
    it(`declines ${param} (an invalid value, §7.1)`, () => {
      assert.equal(answer(`permessage-deflate; ${param}`), null);
      assert.equal(
        answer(`permessage-deflate; ${param}, permessage-deflate; server_no_context_takeover`),
        'permessage-deflate; server_no_context_takeover',
      );
    });
  }

  it('server_max_window_bits=N offered: answers with a value <= N (§7.1.2.1)', () => {
    assert.equal(
      answer('permessage-deflate; server_max_window_bits=10'),
      'permessage-deflate; server_max_window_bits=10',
    );
    assert.equal(
      answer('permessage-deflate; server_max_window_bits=10', { serverMaxWindowBits: 12 }),
      'permessage-deflate; server_max_window_bits=10',
    );
    assert.equal(
      answer('permessage-deflate; server_max_window_bits=10', { serverMaxWindowBits: 9 }),
      'permessage-deflate; server_max_window_bits=9',
    );
    assert.equal(
      serverParams('permessage-deflate; server_max_window_bits=10', { serverMaxWindowBits: 9 }).ownMaxWindowBits,
      9,
    );
    assert.equal(serverParams('permessage-deflate; server_max_window_bits=8').ownMaxWindowBits, 8);
    for (let offered = 8; offered <= 15; offered++) {
      for (let option = 8; option <= 15; option++) {
        const accepted = acceptDeflateOffer(
          parseExtensions([`permessage-deflate; server_max_window_bits=${offered}`]),
          { serverMaxWindowBits: option },
        );
        assert.ok(accepted !== null, 'accepted !== null');
        const value = Number(/server_max_window_bits=(\d+)/.exec(accepted.response)![1]);
        assert.ok(value <= offered && value <= option, `offered ${offered}, option ${option}: ${accepted.response}`);
        assert.equal(accepted.params.ownMaxWindowBits, value);
      }
    }
  });

  it('the server may limit its own window without being asked (§7.1.2.1)', () => {
    assert.equal(
      answer('permessage-deflate', { serverMaxWindowBits: 11 }),
      'permessage-deflate; server_max_window_bits=11',
    );
    assert.equal(serverParams('permessage-deflate', { serverMaxWindowBits: 11 }).ownMaxWindowBits, 11);
  });

  it('client_max_window_bits offered without a value + server option 12: client_max_window_bits=12 (§7.1.2.2)', () => {
    assert.equal(
      answer('permessage-deflate; client_max_window_bits', { clientMaxWindowBits: 12 }),
      'permessage-deflate; client_max_window_bits=12',
    );
    assert.equal(
      serverParams('permessage-deflate; client_max_window_bits', { clientMaxWindowBits: 12 }).peerMaxWindowBits,
      12,
    );
    // Without the server option nothing needs saying: the client may use 15.
    const response = answer('permessage-deflate; client_max_window_bits');
    assert.ok(
      response === 'permessage-deflate' || response === 'permessage-deflate; client_max_window_bits=15',
      String(response),
    );
    assert.equal(serverParams('permessage-deflate; client_max_window_bits').peerMaxWindowBits, 15);
  });

  it('client_max_window_bits=N offered: the response, if it has one, says <= N', () => {
    for (const option of [undefined, 9, 10, 12]) {
      const accepted = acceptDeflateOffer(
        parseExtensions(['permessage-deflate; client_max_window_bits=10']),
        option === undefined ? {} : { clientMaxWindowBits: option },
      );
      assert.ok(accepted !== null, 'accepted !== null');
      const match = /client_max_window_bits=(\d+)/.exec(accepted.response);
      const expected = Math.min(10, option ?? 15);
      if (match !== null) assert.equal(Number(match[1]), expected);
      assert.equal(accepted.params.peerMaxWindowBits, expected);
    }
  });

  it('client_max_window_bits not offered: never in the response, even with the server option (§7.1.2.2)', () => {
    for (const header of [
      'permessage-deflate',
      'permessage-deflate; server_no_context_takeover',
      'permessage-deflate; server_max_window_bits=10',
    ]) {
      for (let bits = 8; bits <= 15; bits++) {
        const accepted = acceptDeflateOffer(parseExtensions([header]), { clientMaxWindowBits: bits });
        assert.ok(accepted !== null, 'accepted !== null');
        assert.doesNotMatch(accepted.response, /client_max_window_bits/);
        // The client, not knowing the limit, may use a full window: the server must inflate with one.
        assert.equal(accepted.params.peerMaxWindowBits, 15);
      }
    }
  });

  it('server_no_context_takeover offered: in the response (§7.1.1.1)', () => {
    assert.equal(
      answer('permessage-deflate; server_no_context_takeover'),
      'permessage-deflate; server_no_context_takeover',
    );
    assert.equal(serverParams('permessage-deflate; server_no_context_takeover').ownNoContextTakeover, true);
  });

  it('serverNoContextTakeover option: in the response even when not offered', () => {
    assert.equal(
      answer('permessage-deflate', { serverNoContextTakeover: true }),
      'permessage-deflate; server_no_context_takeover',
    );
    assert.equal(serverParams('permessage-deflate', { serverNoContextTakeover: true }).ownNoContextTakeover, true);
  });

  it('clientNoContextTakeover option: client_no_context_takeover in the response (§7.1.1.2)', () => {
    assert.equal(
      answer('permessage-deflate', { clientNoContextTakeover: true }),
      'permessage-deflate; client_no_context_takeover',
    );
    assert.equal(serverParams('permessage-deflate', { clientNoContextTakeover: true }).peerNoContextTakeover, true);
  });

  it('client_no_context_takeover offered: said back in the response, and only then does the server drop its inflate window (§7.1.1.2)', () => {
    // The RFC calls the offered parameter a hint; autobahn-python offers it to mean "I can" and
    // keeps its context unless the response says otherwise. Saying it back makes both readings agree.
    assert.equal(
      answer('permessage-deflate; client_no_context_takeover'),
      'permessage-deflate; client_no_context_takeover',
    );
    assert.equal(
      answer('permessage-deflate; client_no_context_takeover; client_max_window_bits'),
      'permessage-deflate; client_no_context_takeover',
    );
    const params = serverParams('permessage-deflate; client_no_context_takeover');
    assert.equal(params.peerNoContextTakeover, true);
    assert.equal(params.ownNoContextTakeover, false);
  });

  it("the server's inflater resets only when its own response says client_no_context_takeover", () => {
    const offers = [
      'permessage-deflate',
      'permessage-deflate; client_max_window_bits',
      'permessage-deflate; client_no_context_takeover',
      'permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=10',
    ];
    for (const offer of offers) {
      for (const clientNoContextTakeover of [false, true]) {
        const accepted = acceptDeflateOffer(parseExtensions([offer]), { clientNoContextTakeover });
        assert.ok(accepted !== null, `accepted ${offer}`);
        const said = new Map(parseExtensions([accepted.response])[0]!.params).has('client_no_context_takeover');
        assert.equal(accepted.params.peerNoContextTakeover, said, `${offer} -> ${accepted.response}`);
      }
    }
  });

  it('everything at once', () => {
    const header =
      'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits';
    const accepted = acceptDeflateOffer(parseExtensions([header]), { serverMaxWindowBits: 10, clientMaxWindowBits: 9 });
    assert.ok(accepted !== null, 'accepted !== null');
    const params = new Map(parseExtensions([accepted.response])[0]!.params);
    assert.deepEqual(
      params,
      new Map<string, string | true>([
        ['server_no_context_takeover', true],
        ['client_no_context_takeover', true],
        ['server_max_window_bits', '10'],
        ['client_max_window_bits', '9'],
      ]),
    );
    assert.deepEqual(accepted.params, {
      ownNoContextTakeover: true,
      peerNoContextTakeover: true,
      ownMaxWindowBits: 10,
      peerMaxWindowBits: 9,
    });
  });
});

describe('RFC 6455 §9.1: the Sec-WebSocket-Extensions grammar', () => {
  it('parses extensions and parameters in order, with optional whitespace and empty list elements', () => {
    assert.deepEqual(
      parseExtensions([
        '  permessage-deflate ;client_max_window_bits ; server_max_window_bits = 10 ,, foo;bar="baz" ,',
      ]),
      [
        {
          name: 'permessage-deflate',
          params: [
            ['client_max_window_bits', true],
            ['server_max_window_bits', '10'],
          ],
        },
        { name: 'foo', params: [['bar', 'baz']] },
      ],
    );
    assert.deepEqual(parseExtensions(['a', 'b; c']), [
      { name: 'a', params: [] },
      { name: 'b', params: [['c', true]] },
    ]);
    assert.deepEqual(parseExtensions(['']), []);
  });

  const malformed = [
    'permessage-deflate;',
    'permessage-deflate; ',
    'permessage-deflate; =10',
    'permessage-deflate; client_max_window_bits=',
    'permessage-deflate; client_max_window_bits="10',
    // RFC 9110 §5.6.4: quoted-pair = "\" followed by a character; here the value ends after the backslash.
    'permessage-deflate; client_max_window_bits="10\\',
    'permessage-deflate; client_max_window_bits="1 0"',
    'permessage-deflate; client_max_window_bits=""',
    'permessage-deflate client_max_window_bits',
    'permessage deflate',
    ';permessage-deflate',
    'permessage-deflate; a; ;b',
    'permessage-deflate; a==1',
    'permessage-deflate; a=1=2',
    '"permessage-deflate"',
    'permessage-deflate; a=@',
    'perm(essage)',
  ];
  for (const header of malformed) {
    it(`rejects ${JSON.stringify(header)} with an ExtensionHeaderError`, () => {
      assert.throws(() => parseExtensions([header]), ExtensionHeaderError);
      // One bad field spoils the list.
      assert.throws(() => parseExtensions(['permessage-deflate', header]), ExtensionHeaderError);
    });
  }
});

describe('RFC 7692 §5.1: the client offer', () => {
  it('offers client_max_window_bits without a value by default', () => {
    assert.equal(deflateOffer({}), 'permessage-deflate; client_max_window_bits');
  });

  it('puts every option in the offer', () => {
    assert.equal(
      deflateOffer({
        serverNoContextTakeover: true,
        clientNoContextTakeover: true,
        serverMaxWindowBits: 10,
        clientMaxWindowBits: 12,
      }),
      'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=12',
    );
  });

  it('every offer a client makes is accepted by a server, and both sides agree (the matrix)', () => {
    const bool = [false, true];
    const bits = [undefined, 8, 11, 15];
    let combinations = 0;
    for (const cs of bool)
      for (const cc of bool)
        for (const csb of bits)
          for (const ccb of bits) {
            const client: PerMessageDeflateOptions = {
              serverNoContextTakeover: cs,
              clientNoContextTakeover: cc,
              serverMaxWindowBits: csb,
              clientMaxWindowBits: ccb,
            };
            for (const ss of bool)
              for (const sc of bool)
                for (const ssb of bits)
                  for (const scb of bits) {
                    const server: PerMessageDeflateOptions = {
                      serverNoContextTakeover: ss,
                      clientNoContextTakeover: sc,
                      serverMaxWindowBits: ssb,
                      clientMaxWindowBits: scb,
                    };
                    const offer = deflateOffer(client);
                    const accepted = acceptDeflateOffer(parseExtensions([offer]), server);
                    assert.ok(accepted !== null, `declined ${offer}`);
                    const mine = acceptDeflateResponse(parseExtensions([accepted.response]), client);
                    const theirs = accepted.params;
                    const what = `${offer} -> ${accepted.response}`;
                    assert.equal(mine.ownNoContextTakeover, theirs.peerNoContextTakeover, what);
                    assert.equal(mine.peerNoContextTakeover, theirs.ownNoContextTakeover, what);
                    assert.equal(mine.ownMaxWindowBits, theirs.peerMaxWindowBits, what);
                    assert.equal(mine.peerMaxWindowBits, theirs.ownMaxWindowBits, what);
                    // Every limit either side asked for holds.
                    assert.ok(theirs.ownMaxWindowBits <= (csb ?? 15) && theirs.ownMaxWindowBits <= (ssb ?? 15), what);
                    assert.ok(theirs.peerMaxWindowBits <= (ccb ?? 15) && theirs.peerMaxWindowBits <= (scb ?? 15), what);
                    assert.equal(theirs.ownNoContextTakeover, cs || ss, what);
                    assert.equal(mine.ownNoContextTakeover, cc || sc, what);
                    combinations++;
                  }
          }
    assert.equal(combinations, 64 * 64);
  });
});

describe('RFC 7692 §7: the client checks the response', () => {
  const fails: [string, string, PerMessageDeflateOptions][] = [
    ['an unknown parameter', 'permessage-deflate; foo', {}],
    ['an unknown parameter with a value', 'permessage-deflate; foo=1', {}],
    [
      'a duplicate server_no_context_takeover',
      'permessage-deflate; server_no_context_takeover; server_no_context_takeover',
      {},
    ],
    [
      'a duplicate client_no_context_takeover',
      'permessage-deflate; client_no_context_takeover; client_no_context_takeover',
      {},
    ],
    [
      'a duplicate server_max_window_bits',
      'permessage-deflate; server_max_window_bits=10; server_max_window_bits=10',
      {},
    ],
    [
      'a duplicate client_max_window_bits',
      'permessage-deflate; client_max_window_bits=10; client_max_window_bits=10',
      {},
    ],
    ['server_max_window_bits=16', 'permessage-deflate; server_max_window_bits=16', {}],
    ['server_max_window_bits=7', 'permessage-deflate; server_max_window_bits=7', {}],
    ['server_max_window_bits=08', 'permessage-deflate; server_max_window_bits=08', {}],
    ['server_max_window_bits without a value', 'permessage-deflate; server_max_window_bits', {}],
    ['client_max_window_bits without a value', 'permessage-deflate; client_max_window_bits', {}],
    ['client_max_window_bits=abc', 'permessage-deflate; client_max_window_bits=abc', {}],
    ['client_max_window_bits=16', 'permessage-deflate; client_max_window_bits=16', {}],
    ['server_no_context_takeover=1', 'permessage-deflate; server_no_context_takeover=1', {}],
    ['client_no_context_takeover=1', 'permessage-deflate; client_no_context_takeover=1', {}],
    [
      'server_max_window_bits larger than offered',
      'permessage-deflate; server_max_window_bits=12',
      { serverMaxWindowBits: 10 },
    ],
    ['server_max_window_bits missing when offered', 'permessage-deflate', { serverMaxWindowBits: 10 }],
    ['server_no_context_takeover missing when requested', 'permessage-deflate', { serverNoContextTakeover: true }],
    ['an extension other than permessage-deflate', 'x-webkit-deflate-frame', {}],
    ['two extensions', 'permessage-deflate, permessage-deflate', {}],
    ['permessage-deflate plus another', 'permessage-deflate, foo', {}],
  ];
  for (const [what, response, options] of fails) {
    it(`fails on ${what}`, () => {
      assert.throws(() => clientParams(response, options));
    });
  }

  it('fails on no extension at all (nothing to accept)', () => {
    assert.throws(() => acceptDeflateResponse([], {}));
  });

  it('gives the right parameters for valid responses', () => {
    assert.deepEqual(clientParams('permessage-deflate'), PLAIN);
    assert.deepEqual(clientParams('permessage-deflate; server_no_context_takeover'), {
      ...PLAIN,
      peerNoContextTakeover: true,
    });
    assert.deepEqual(
      clientParams('permessage-deflate; server_no_context_takeover', { serverNoContextTakeover: true }),
      { ...PLAIN, peerNoContextTakeover: true },
    );
    assert.deepEqual(clientParams('permessage-deflate; client_no_context_takeover'), {
      ...PLAIN,
      ownNoContextTakeover: true,
    });
    assert.deepEqual(clientParams('permessage-deflate', { clientNoContextTakeover: true }), {
      ...PLAIN,
      ownNoContextTakeover: true,
    });
    // The server may limit its window without being asked.
    assert.deepEqual(clientParams('permessage-deflate; server_max_window_bits=10'), {
      ...PLAIN,
      peerMaxWindowBits: 10,
    });
    assert.deepEqual(clientParams('permessage-deflate; server_max_window_bits=9', { serverMaxWindowBits: 12 }), {
      ...PLAIN,
      peerMaxWindowBits: 9,
    });
    assert.deepEqual(clientParams('permessage-deflate; server_max_window_bits=12', { serverMaxWindowBits: 12 }), {
      ...PLAIN,
      peerMaxWindowBits: 12,
    });
    assert.deepEqual(clientParams('permessage-deflate; server_max_window_bits="8"', { serverMaxWindowBits: 8 }), {
      ...PLAIN,
      peerMaxWindowBits: 8,
    });
    // client_max_window_bits offered without a value: the server picks.
    assert.deepEqual(clientParams('permessage-deflate; client_max_window_bits=9'), { ...PLAIN, ownMaxWindowBits: 9 });
    assert.deepEqual(clientParams('permessage-deflate; client_max_window_bits=8'), { ...PLAIN, ownMaxWindowBits: 8 });
    // Offered with a value: the client keeps to it whether or not the server repeats it.
    assert.deepEqual(clientParams('permessage-deflate', { clientMaxWindowBits: 11 }), {
      ...PLAIN,
      ownMaxWindowBits: 11,
    });
    assert.deepEqual(clientParams('permessage-deflate; client_max_window_bits=10', { clientMaxWindowBits: 11 }), {
      ...PLAIN,
      ownMaxWindowBits: 10,
    });
    // §7.1.2.2: a server may ignore the offered value and answer a larger limit (autobahn-python
    // does): the client keeps to what it offered, which is within both.
    assert.deepEqual(clientParams('permessage-deflate; client_max_window_bits=12', { clientMaxWindowBits: 10 }), {
      ...PLAIN,
      ownMaxWindowBits: 10,
    });
    assert.deepEqual(clientParams('permessage-deflate; client_max_window_bits=15', { clientMaxWindowBits: 8 }), {
      ...PLAIN,
      ownMaxWindowBits: 8,
    });
    assert.deepEqual(
      clientParams(
        'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9',
        {
          serverNoContextTakeover: true,
          serverMaxWindowBits: 10,
        },
      ),
      { ownNoContextTakeover: true, peerNoContextTakeover: true, ownMaxWindowBits: 9, peerMaxWindowBits: 10 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Over real sockets
// ---------------------------------------------------------------------------------------------

interface Negotiation {
  header: string | undefined;
  clientExtensions: string;
  serverExtensions: string;
}

async function negotiateOverSockets(
  server: PerMessageDeflateOptions | boolean,
  client: PerMessageDeflateOptions | boolean,
): Promise<Negotiation> {
  const srv = await startServer({ perMessageDeflate: server });
  try {
    const ws = openClient(srv.url, { perMessageDeflate: client, pingInterval: 0 });
    ws.on('error', () => {});
    let header: string | undefined;
    ws.on('upgrade', (headers) => (header = headers['sec-websocket-extensions']));
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('close', (code) => reject(new Error(`closed ${code}`)));
      }),
      3000,
      'open',
    );
    await withTimeout(
      (async () => {
        while (srv.connections.length === 0) await new Promise((r) => setTimeout(r, 2));
      })(),
      2000,
      'the server connection',
    );
    const result = { header, clientExtensions: ws.extensions, serverExtensions: srv.connections[0]!.ws.extensions };
    ws.close();
    await closeEvent(ws).catch(() => {});
    return result;
  } finally {
    await srv.close();
  }
}

describe('negotiation over real sockets', () => {
  const cases: [string, PerMessageDeflateOptions | boolean, PerMessageDeflateOptions | boolean, string][] = [
    ['defaults', true, true, 'permessage-deflate'],
    [
      'client limits both windows',
      true,
      { serverMaxWindowBits: 10, clientMaxWindowBits: 9 },
      'permessage-deflate; server_max_window_bits=10; client_max_window_bits=9',
    ],
    [
      'server limits both windows',
      { serverMaxWindowBits: 8, clientMaxWindowBits: 12 },
      true,
      'permessage-deflate; server_max_window_bits=8; client_max_window_bits=12',
    ],
    [
      'client asks for no context takeover',
      true,
      { serverNoContextTakeover: true, clientNoContextTakeover: true },
      'permessage-deflate; server_no_context_takeover; client_no_context_takeover',
    ],
    [
      'server imposes no context takeover',
      { serverNoContextTakeover: true, clientNoContextTakeover: true },
      true,
      'permessage-deflate; server_no_context_takeover; client_no_context_takeover',
    ],
  ];
  for (const [what, server, client, expected] of cases) {
    it(`${what}: the 101 carries the negotiated header and both sides agree`, { timeout: 5000 }, async () => {
      const result = await negotiateOverSockets(server, client);
      assert.equal(result.header, expected);
      assert.equal(result.clientExtensions, expected);
      assert.equal(result.serverExtensions, expected);
    });
  }

  it(
    'a server without perMessageDeflate ignores the offer: no header, messages uncompressed',
    { timeout: 5000 },
    async () => {
      const srv = await startServer({});
      try {
        const { ws, frames } = await tracedClient(srv.url, { perMessageDeflate: true });
        assert.equal(ws.extensions, '');
        assert.equal(srv.connections[0]?.ws.extensions ?? '', '');
        const big = Buffer.alloc(8 * KiB, 'abcabcabc');
        const got = nextMessages(ws, 2);
        ws.send(big);
        ws.send(big.toString());
        const echoed = await got;
        assert.deepEqual(
          echoed.map((m) => m.data),
          [big, big],
        );
        for (const direction of ['in', 'out'] as const) {
          const { messages } = wireMessages(frames, direction);
          assert.equal(messages.length, 2);
          for (const message of messages) {
            assert.equal(message.compressed, false);
            assert.equal(message.payload.length, big.length);
          }
        }
        ws.close();
        await closeEvent(ws);
      } finally {
        await srv.close();
      }
    },
  );

  it('a raw offer to a server without perMessageDeflate gets a 101 without the header', { timeout: 5000 }, async () => {
    const srv = await startServer({});
    try {
      const raw = await rawRequest(srv.port, ['Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits']);
      assert.equal(raw.response!.status, 101);
      assert.equal(raw.header('sec-websocket-extensions'), undefined);
      raw.destroy();
    } finally {
      await srv.close();
    }
  });

  it('a raw client with offers in two header fields: one list, first acceptable wins', { timeout: 5000 }, async () => {
    const srv = await startServer({ perMessageDeflate: true });
    try {
      const raw = await rawRequest(srv.port, [
        'Sec-WebSocket-Extensions: x-webkit-deflate-frame, permessage-deflate; bogus',
        'Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=11',
      ]);
      assert.equal(raw.response!.status, 101);
      assert.equal(raw.header('sec-websocket-extensions'), 'permessage-deflate; server_max_window_bits=11');
      raw.destroy();
    } finally {
      await srv.close();
    }
  });

  it('a raw client whose offers are all declined gets a 101 without the header', { timeout: 5000 }, async () => {
    const srv = await startServer({ perMessageDeflate: true });
    try {
      const raw = await rawRequest(srv.port, [
        'Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=16, permessage-deflate; foo',
      ]);
      assert.equal(raw.response!.status, 101);
      assert.equal(raw.header('sec-websocket-extensions'), undefined);
      raw.destroy();
    } finally {
      await srv.close();
    }
  });

  for (const bad of [
    'permessage-deflate; =10',
    'permessage-deflate;',
    'permessage-deflate; client_max_window_bits="10',
    'permessage-deflate; client_max_window_bits="10\\',
    'permessage deflate',
  ]) {
    it(
      `a malformed Sec-WebSocket-Extensions (${JSON.stringify(bad)}) to a deflate-enabled server gets 400`,
      { timeout: 5000 },
      async () => {
        const srv = await startServer({ perMessageDeflate: true });
        try {
          const raw = await rawRequest(srv.port, [`Sec-WebSocket-Extensions: ${bad}`]);
          assert.equal(raw.response!.status, 400);
          assert.equal(srv.connections.length, 0);
          raw.destroy();
        } finally {
          await srv.close();
        }
      },
    );
  }

  it('rejects invalid window options at construction (RangeError)', async () => {
    assert.throws(() => new WebSocketServer({ perMessageDeflate: { serverMaxWindowBits: 7 } }), RangeError);
    assert.throws(() => new WebSocketServer({ perMessageDeflate: { clientMaxWindowBits: 16 } }), RangeError);
    assert.throws(() => new WebSocketServer({ perMessageDeflate: { clientMaxWindowBits: 9.5 } }), RangeError);
    await assert.rejects(connect('ws://127.0.0.1:1/', { perMessageDeflate: { serverMaxWindowBits: 16 } }), RangeError);
    await assert.rejects(connect('ws://127.0.0.1:1/', { perMessageDeflate: { clientMaxWindowBits: 7 } }), RangeError);
  });
});

describe('a hostile server answering the client with what it did not offer', () => {
  const answers: [string, string[], boolean | PerMessageDeflateOptions][] = [
    ['permessage-deflate to a client that offered nothing', ['Sec-WebSocket-Extensions: permessage-deflate'], false],
    ['an extension the client did not offer', ['Sec-WebSocket-Extensions: x-webkit-deflate-frame'], true],
    ['permessage-deflate and another extension', ['Sec-WebSocket-Extensions: permessage-deflate, x-foo'], true],
    [
      'permessage-deflate twice',
      ['Sec-WebSocket-Extensions: permessage-deflate', 'Sec-WebSocket-Extensions: permessage-deflate'],
      true,
    ],
    ['an unknown parameter', ['Sec-WebSocket-Extensions: permessage-deflate; foo'], true],
    [
      'a duplicate parameter',
      ['Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; server_no_context_takeover'],
      true,
    ],
    ['server_max_window_bits=16', ['Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=16'], true],
    [
      'server_max_window_bits without a value',
      ['Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits'],
      true,
    ],
    [
      'server_max_window_bits missing when offered',
      ['Sec-WebSocket-Extensions: permessage-deflate'],
      { serverMaxWindowBits: 10 },
    ],
    [
      'server_no_context_takeover missing when requested',
      ['Sec-WebSocket-Extensions: permessage-deflate'],
      { serverNoContextTakeover: true },
    ],
    ['a malformed header', ['Sec-WebSocket-Extensions: permessage-deflate;;'], true],
  ];
  for (const [what, lines, clientOption] of answers) {
    it(`${what}: connect() rejects with a HandshakeError and 'close' reports 1006`, { timeout: 5000 }, async () => {
      const hostile = await RawServer.start({ respond: upgradeWith(...lines) });
      try {
        await assert.rejects(
          withTimeout(connect(hostile.url(), { perMessageDeflate: clientOption, pingInterval: 0 }), 3000, 'connect'),
          HandshakeError,
        );

        const ws = openClient(hostile.url(), { perMessageDeflate: clientOption, pingInterval: 0 });
        const errors: Error[] = [];
        ws.on('error', (error) => errors.push(error));
        let opened = false;
        ws.on('open', () => (opened = true));
        const closed = await closeEvent(ws);
        assert.equal(opened, false);
        assert.equal(closed.code, 1006);
        assert.equal(closed.wasClean, false);
        assert.equal(errors.length, 1);
        assert.ok(errors[0] instanceof HandshakeError, String(errors[0]));
        assert.equal(ws.readyState, 3);
        // The client did send an offer when configured to (or none at all).
        const offered = hostile.requests[0]!.headers.get('sec-websocket-extensions');
        if (clientOption === false) assert.equal(offered, undefined);
        else assert.match(offered![0]!, /^permessage-deflate/);
      } finally {
        await hostile.close();
      }
    });
  }

  it('a valid answer from the same raw server opens (the harness itself is sound)', { timeout: 5000 }, async () => {
    const hostile = await RawServer.start({
      respond: upgradeWith(
        'Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=9; client_max_window_bits=10',
      ),
    });
    try {
      const ws = await withTimeout(
        connect(hostile.url(), { perMessageDeflate: true, pingInterval: 0 }),
        3000,
        'connect',
      );
      ws.on('error', () => {});
      assert.equal(ws.extensions, 'permessage-deflate; server_max_window_bits=9; client_max_window_bits=10');
      ws.terminate();
      await closeEvent(ws).catch(() => {});
    } finally {
      await hostile.close();
    }
  });
});
