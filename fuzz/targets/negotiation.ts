/**
 * Target 2: Sec-WebSocket-Extensions and Sec-WebSocket-Protocol as a peer writes them, and the
 * permessage-deflate negotiation in both roles (RFC 6455 §4, §9.1; RFC 7692 §5, §7). The input's
 * lines are the fields of one header. Checked against the independent reading in
 * oracle/extensions.ts: the parser accepts exactly the grammar and reads what it says; the server
 * accepts the first acceptable offer and answers within it; the client accepts exactly the answers
 * RFC 7692 allows to its offer, and what each side then believes matches what the answer says.
 */
import { negotiated } from '../../spec-tests/helpers/peer/deflate.js';
import { ExtensionHeaderError, formatExtension, parseExtensions } from '../../src/protocol/extensions.js';
import { HandshakeError, acceptedFields, selectProtocol } from '../../src/protocol/handshake.js';
import {
  acceptDeflateOffer,
  acceptDeflateResponse,
  deflateOffer,
  type DeflateParams,
  type PerMessageDeflateOptions,
} from '../../src/protocol/permessage-deflate.js';
import { InputReader, check, type FuzzTarget } from './target.js';
import { bits, deflateParams, readExtensions, type Offer } from './oracle/extensions.js';

const OPTIONS: readonly PerMessageDeflateOptions[] = [
  {},
  { serverNoContextTakeover: true },
  { clientNoContextTakeover: true },
  { serverMaxWindowBits: 10 },
  { clientMaxWindowBits: 9 },
  { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 8, clientMaxWindowBits: 12 },
];
const SUPPORTED: readonly (readonly string[])[] = [[], ['chat'], ['superchat', 'chat'], ['v2.json']];

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/** Runs `fn`; returns its result, or the error if it threw one of the classes `expected` allows. */
function attempt<T>(fn: () => T, expected: (error: unknown) => boolean): T | { error: Error } {
  try {
    return fn();
  } catch (error) {
    if (!expected(error)) throw error;
    return { error: error as Error };
  }
}
const failed = (result: unknown): result is { error: Error } =>
  typeof result === 'object' && result !== null && 'error' in result && result.error instanceof Error;
/** The negotiation functions throw plain Errors for a peer's mistakes; a TypeError would be a bug. */
const plainError = (error: unknown): boolean => error instanceof Error && error.constructor === Error;

function checkServer(offers: Offer[], options: PerMessageDeflateOptions): void {
  const outcome = acceptDeflateOffer(offers, options);
  const acceptable = offers.find((o) => o.name === 'permessage-deflate' && deflateParams(o, 'offer') !== null);
  check(
    (outcome === null) === (acceptable === undefined),
    () => `accepted ${outcome?.response} for ${same(offers, [])}`,
  );
  if (outcome === null || acceptable === undefined) return;
  const offered = deflateParams(acceptable, 'offer')!;
  const answer = readExtensions([outcome.response]);
  check(answer !== null && answer.length === 1, `the response ${outcome.response} does not parse`);
  const params = deflateParams(answer[0]!, 'response');
  check(params !== null, `the response ${outcome.response} is not a valid permessage-deflate response`);
  // §7.1.1.1: server_no_context_takeover offered must be in the answer.
  if (offered.has('server_no_context_takeover')) check(params.has('server_no_context_takeover'), 'dropped snct');
  // §7.1.2.1: an offered server_max_window_bits is answered, with a value no larger.
  const serverBits = bits(params.get('server_max_window_bits'));
  if (offered.has('server_max_window_bits')) {
    check(serverBits !== null && serverBits <= bits(offered.get('server_max_window_bits'))!, 'server window too big');
  }
  if (options.serverMaxWindowBits !== undefined)
    check((serverBits ?? 15) <= options.serverMaxWindowBits, 'the server window passes its own limit');
  // §7.1.2.2: client_max_window_bits only when offered, no larger than an offered value.
  if (params.has('client_max_window_bits')) {
    check(offered.has('client_max_window_bits'), 'client_max_window_bits answered without an offer');
    const offeredBits = bits(offered.get('client_max_window_bits'));
    if (offeredBits !== null)
      check(bits(params.get('client_max_window_bits'))! <= offeredBits, 'client window above the offer');
  }
  // What the server believes is what its answer tells the client (read by the test peer's reader).
  const agreed = negotiated(outcome.response);
  const expected: DeflateParams = {
    ownNoContextTakeover: agreed.serverNoContextTakeover,
    peerNoContextTakeover: agreed.clientNoContextTakeover,
    ownMaxWindowBits: agreed.serverBits,
    peerMaxWindowBits: agreed.clientBits,
  };
  check(same(outcome.params, expected), () => `server params ${same(outcome.params, {})} differ from its answer`);
}

function checkClient(answers: Offer[], options: PerMessageDeflateOptions): void {
  const result = attempt(() => acceptDeflateResponse(answers, options), plainError);
  // RFC 7692 §7: what the client must fail on, independently.
  let why: string | null = null;
  const params =
    answers.length === 1 && answers[0]!.name === 'permessage-deflate' ? deflateParams(answers[0]!, 'response') : null;
  if (params === null) why = 'not one valid permessage-deflate element';
  else if (options.serverNoContextTakeover === true && !params.has('server_no_context_takeover')) why = 'snct';
  else if (options.serverMaxWindowBits !== undefined) {
    const answered = bits(params.get('server_max_window_bits'));
    if (answered === null || answered > options.serverMaxWindowBits) why = 'server_max_window_bits';
  }
  if (failed(result)) {
    check(why !== null, () => `the client refused a valid answer: ${result.error.message}`);
    return;
  }
  check(why === null, () => `the client accepted an answer it must fail (${why})`);
  const p = params!;
  check(result.peerNoContextTakeover === p.has('server_no_context_takeover'), 'peer context takeover differs');
  check(result.peerMaxWindowBits === (bits(p.get('server_max_window_bits')) ?? 15), 'peer window differs');
  if (p.has('client_no_context_takeover')) check(result.ownNoContextTakeover, 'told to reset, does not');
  const limit = Math.min(bits(p.get('client_max_window_bits')) ?? 15, options.clientMaxWindowBits ?? 15);
  check(result.ownMaxWindowBits <= limit, 'own window above what was agreed');
}

/** Our client's offer to our server: always accepted, and both ends agree on what was said. */
function checkOwnEnds(serverOptions: PerMessageDeflateOptions, clientOptions: PerMessageDeflateOptions): void {
  const offer = parseExtensions([deflateOffer(clientOptions)]);
  const outcome = acceptDeflateOffer(offer, serverOptions);
  check(outcome !== null, 'our server declined our own client offer');
  const client = attempt(() => acceptDeflateResponse(parseExtensions([outcome.response]), clientOptions), plainError);
  if (failed(client)) {
    // Only a server that will not honour a window limit the client asks for may be refused.
    check(
      clientOptions.serverMaxWindowBits !== undefined || clientOptions.serverNoContextTakeover === true,
      () => `our client refused our server: ${client.error.message}`,
    );
    return;
  }
  check(
    client.peerNoContextTakeover === outcome.params.ownNoContextTakeover,
    'the two ends disagree on server context',
  );
  check(client.peerMaxWindowBits === outcome.params.ownMaxWindowBits, 'the two ends disagree on the server window');
  check(client.ownMaxWindowBits <= outcome.params.peerMaxWindowBits, 'the client compresses with a larger window');
  if (outcome.params.peerNoContextTakeover)
    check(client.ownNoContextTakeover, 'the client keeps a context it must drop');
}

function checkProtocols(fieldValues: string[], supported: readonly string[]): void {
  const offered = fieldValues
    .flatMap((v) => v.split(','))
    .map((p) => p.trim())
    .filter((p) => p !== '');
  const chosen = selectProtocol(offered, supported);
  check(chosen === offered.find((p) => supported.includes(p)), 'not the most preferred supported subprotocol');
  // The client's view of the same values as a server's answer (RFC 6455 §4.1).
  const headers = new Map(fieldValues.length === 0 ? [] : [['sec-websocket-protocol', fieldValues]]);
  const result = attempt(
    () => acceptedFields(headers, supported, 101),
    (e) => e instanceof HandshakeError,
  );
  const valid = offered.length === 0 || (offered.length === 1 && supported.includes(offered[0]!));
  check(failed(result) !== valid, () => `subprotocol answer ${JSON.stringify(fieldValues)} judged wrongly`);
  if (!failed(result)) check(result.protocol === (offered[0] ?? ''), 'a different subprotocol');
}

export const target: FuzzTarget = {
  description: 'Sec-WebSocket-Extensions / -Protocol parsing and the permessage-deflate negotiation, both roles',
  maxLength: 4096,
  dictionary: [
    'permessage-deflate',
    'server_no_context_takeover',
    'client_no_context_takeover',
    'server_max_window_bits',
    'client_max_window_bits',
    '=15',
    '=8',
    '="10"',
    '; ',
    ', ',
    '\\',
    'x-webkit-deflate-frame',
    'chat',
    'superchat',
  ],
  run(input) {
    const reader = new InputReader(input);
    const serverOptions = reader.choose(OPTIONS);
    const clientOptions = reader.choose(OPTIONS);
    const supported = reader.choose(SUPPORTED);
    const fieldValues = reader.rest().toString('latin1').split('\n');
    const oracle = readExtensions(fieldValues);
    const parsed = attempt(
      () => parseExtensions(fieldValues),
      (e) => e instanceof ExtensionHeaderError,
    );
    if (failed(parsed)) {
      check(oracle === null, () => `a valid header was refused: ${parsed.error.message}`);
    } else {
      check(oracle !== null, () => `parsed a header §9.1 refuses: ${JSON.stringify(fieldValues)}`);
      check(same(parsed, oracle), () => `read differently: ${JSON.stringify(parsed)} vs ${JSON.stringify(oracle)}`);
      // Formatting an offer and parsing it again gives it back.
      for (const offer of parsed) check(same(parseExtensions([formatExtension(offer)]), [offer]), 'format round trip');
      checkServer(parsed, serverOptions);
      checkClient(parsed, clientOptions);
    }
    checkOwnEnds(serverOptions, clientOptions);
    checkProtocols(fieldValues, supported);
  },
};
