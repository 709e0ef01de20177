import { formatExtension, type ExtensionOffer } from './extensions.js';

/**
 * RFC 7692 §7.2.1 / §7.2.2: the four octets an empty stored block ends a sync flush with. A sender
 * removes them from the end of every compressed message; a receiver appends them before inflating.
 */
export const DEFLATE_TAIL: Readonly<Uint8Array> = Uint8Array.of(0x00, 0x00, 0xff, 0xff);

/**
 * permessage-deflate (RFC 7692): the negotiation in the opening handshake, as pure functions (the
 * server picks an offer and answers it, the client checks the answer), and what both sides agreed.
 * The DEFLATE itself runs on node:zlib in src/driver/deflate-zlib.ts.
 */

export const EXTENSION_NAME = 'permessage-deflate';

export interface PerMessageDeflateOptions {
  /**
   * Server: don't keep the compression context between messages (saves ~256 KiB of zlib state per
   * connection between messages, compresses worse). Client: ask the server for that.
   */
  serverNoContextTakeover?: boolean;
  /** Server: ask the client to reset its context per message. Client: announce that it does. */
  clientNoContextTakeover?: boolean;
  /** The server's LZ77 window, 8-15 (server: at most this; client: request at most this). */
  serverMaxWindowBits?: number;
  /** The client's LZ77 window, 8-15 (server: limit clients that support it; client: offer to limit). */
  clientMaxWindowBits?: number;
  /** zlib compression level, 0-9. Default 6 (zlib's default). */
  level?: number;
  /** zlib memLevel, 1-9. Default 8 (zlib's default). */
  memLevel?: number;
  /** Messages smaller than this many bytes are sent uncompressed. Default 1024. */
  threshold?: number;
}

/** What both sides agreed, from our point of view. */
export interface DeflateParams {
  /** Reset our compressor after each message. */
  ownNoContextTakeover: boolean;
  /** The peer resets its compressor after each message: we reset our inflater too. */
  peerNoContextTakeover: boolean;
  /** Window bits our compressor may use. */
  ownMaxWindowBits: number;
  /** Window bits the peer's compressor may use (our inflater's window). */
  peerMaxWindowBits: number;
}

/**
 * zlib's own defaults (level -1 is Z_DEFAULT_COMPRESSION, i.e. 6), and the size below which
 * messages go uncompressed.
 */
export const DEFLATE_DEFAULTS = Object.freeze({ level: -1, memLevel: 8, threshold: 1024 });

/** RFC 7692 §7.1.2: LZ77 window sizes are 2^8 to 2^15 bytes; 15 is DEFLATE's own maximum and the default. */
export const MIN_WINDOW_BITS = 8;
export const MAX_WINDOW_BITS = 15;

// ---------------------------------------------------------------------------------------------
// Negotiation (RFC 7692 §5, §7.1)
// ---------------------------------------------------------------------------------------------

const OFFER_PARAMS = new Set([
  'server_no_context_takeover',
  'client_no_context_takeover',
  'server_max_window_bits',
  'client_max_window_bits',
]);

/** RFC 7692 §7.1.2: a window size is a decimal integer from 8 to 15 "without leading zeroes". */
function windowBits(value: string | true): number | null {
  if (value === true || !/^(8|9|1[0-5])$/.test(value)) return null; // MIN_WINDOW_BITS..MAX_WINDOW_BITS
  return Number(value);
}

function checkWindowOption(name: string, value: number | undefined): void {
  if (value !== undefined && !(Number.isInteger(value) && value >= MIN_WINDOW_BITS && value <= MAX_WINDOW_BITS)) {
    throw new RangeError(`${name} must be an integer from 8 to 15`);
  }
}

/**
 * The `perMessageDeflate` option of a server or client: off (null), on with the defaults (true), or
 * on with these settings (checked; a RangeError for a window outside 8-15).
 */
export function deflateOptionsOf(
  option: boolean | PerMessageDeflateOptions | undefined,
): PerMessageDeflateOptions | null {
  if (option === undefined || option === false) return null;
  const options = option === true ? {} : { ...option };
  checkWindowOption('serverMaxWindowBits', options.serverMaxWindowBits);
  checkWindowOption('clientMaxWindowBits', options.clientMaxWindowBits);
  return options;
}

/**
 * Server side: pick the first offer of permessage-deflate we can accept (RFC 7692 §5.1) and build
 * the response parameters. An offer with an unknown parameter, an invalid value or a repeated
 * parameter is declined (§7); the next one is considered. Returns null when none is acceptable.
 */
export function acceptDeflateOffer(
  offers: readonly ExtensionOffer[],
  options: PerMessageDeflateOptions,
): { response: string; params: DeflateParams } | null {
  for (const offer of offers) {
    if (offer.name !== EXTENSION_NAME) continue;
    const seen = new Map<string, string | true>();
    let valid = true;
    for (const [name, value] of offer.params) {
      // §7: "contains an extension parameter not defined for use in an offer" / "multiple extension
      // parameters with the same name" / "an extension parameter with an invalid value" -> decline.
      if (!OFFER_PARAMS.has(name) || seen.has(name)) valid = false;
      else if ((name === 'server_no_context_takeover' || name === 'client_no_context_takeover') && value !== true)
        valid = false;
      else if (name === 'server_max_window_bits' && windowBits(value) === null) valid = false;
      else if (name === 'client_max_window_bits' && value !== true && windowBits(value) === null) valid = false;
      seen.set(name, value);
    }
    if (!valid) continue;

    const response: ExtensionOffer = { name: EXTENSION_NAME, params: [] };
    // §7.1.1.1: accepting server_no_context_takeover means saying it; we may also choose it ourselves.
    const serverNoTakeover = seen.has('server_no_context_takeover') || options.serverNoContextTakeover === true;
    if (serverNoTakeover) response.params.push(['server_no_context_takeover', true]);
    // §7.1.1.2: the server may tell the client not to take over context, offered or not. Offered,
    // the RFC calls it a hint that the client will not take over context anyway; but some clients
    // (autobahn-python, the library Autobahn|Testsuite runs on) offer it to say they *can* drop
    // their context, and keep it unless the response says so. So we say it back whenever it is
    // offered: then every client resets, whichever reading it follows, and our inflater may drop
    // its window between messages. Our state follows the response, never the offer alone.
    const clientNoTakeover = options.clientNoContextTakeover === true || seen.has('client_no_context_takeover');
    if (clientNoTakeover) response.params.push(['client_no_context_takeover', true]);

    // §7.1.2.1: with server_max_window_bits=N offered, answer with a value <= N.
    const offeredServerBits = seen.has('server_max_window_bits')
      ? windowBits(seen.get('server_max_window_bits')!)!
      : MAX_WINDOW_BITS;
    const serverBits = Math.min(offeredServerBits, options.serverMaxWindowBits ?? MAX_WINDOW_BITS);
    if (seen.has('server_max_window_bits') || serverBits < MAX_WINDOW_BITS)
      response.params.push(['server_max_window_bits', String(serverBits)]);

    // §7.1.2.2: client_max_window_bits only in answer to a client that offered it.
    let clientBits = MAX_WINDOW_BITS;
    if (seen.has('client_max_window_bits')) {
      const offered = seen.get('client_max_window_bits')!;
      const offeredBits = offered === true ? MAX_WINDOW_BITS : windowBits(offered)!;
      clientBits = Math.min(offeredBits, options.clientMaxWindowBits ?? MAX_WINDOW_BITS);
      if (options.clientMaxWindowBits !== undefined || offered !== true)
        response.params.push(['client_max_window_bits', String(clientBits)]);
    }

    return {
      response: formatExtension(response),
      params: {
        ownNoContextTakeover: serverNoTakeover,
        peerNoContextTakeover: clientNoTakeover,
        ownMaxWindowBits: serverBits,
        peerMaxWindowBits: clientBits,
      },
    };
  }
  return null;
}

/** Client side: the offer to send (RFC 7692 §5.1). */
export function deflateOffer(options: PerMessageDeflateOptions): string {
  const offer: ExtensionOffer = { name: EXTENSION_NAME, params: [] };
  if (options.serverNoContextTakeover === true) offer.params.push(['server_no_context_takeover', true]);
  if (options.clientNoContextTakeover === true) offer.params.push(['client_no_context_takeover', true]);
  if (options.serverMaxWindowBits !== undefined)
    offer.params.push(['server_max_window_bits', String(options.serverMaxWindowBits)]);
  // Without a value: "this client supports limiting its window; choose" (§7.1.2.2).
  offer.params.push([
    'client_max_window_bits',
    options.clientMaxWindowBits === undefined ? true : String(options.clientMaxWindowBits),
  ]);
  return formatExtension(offer);
}

/**
 * Client side: check the server's answer against our offer (RFC 7692 §7: the client MUST fail the
 * connection on an unknown or repeated parameter, an invalid value, or a configuration it did not
 * offer). Returns the agreed parameters, or throws an Error explaining what is wrong.
 */
export function acceptDeflateResponse(
  responses: readonly ExtensionOffer[],
  options: PerMessageDeflateOptions,
): DeflateParams {
  if (responses.length !== 1 || responses[0]!.name !== EXTENSION_NAME) {
    throw new Error(`server answered with extensions we did not offer: ${responses.map((r) => r.name).join(', ')}`);
  }
  const seen = new Map<string, string | true>();
  for (const [name, value] of responses[0]!.params) {
    if (!OFFER_PARAMS.has(name)) throw new Error(`unknown permessage-deflate parameter ${name}`);
    if (seen.has(name)) throw new Error(`repeated permessage-deflate parameter ${name}`);
    seen.set(name, value);
  }
  for (const name of ['server_no_context_takeover', 'client_no_context_takeover']) {
    if (seen.has(name) && seen.get(name) !== true) throw new Error(`${name} takes no value`);
  }
  // §7.1.1.1: our server_no_context_takeover must be accepted explicitly.
  if (options.serverNoContextTakeover === true && !seen.has('server_no_context_takeover')) {
    throw new Error('server did not accept server_no_context_takeover');
  }
  let serverBits = MAX_WINDOW_BITS;
  if (seen.has('server_max_window_bits')) {
    const bits = windowBits(seen.get('server_max_window_bits')!);
    if (bits === null) throw new Error('invalid server_max_window_bits');
    if (options.serverMaxWindowBits !== undefined && bits > options.serverMaxWindowBits)
      throw new Error('server_max_window_bits larger than offered');
    serverBits = bits;
  } else if (options.serverMaxWindowBits !== undefined) {
    // §7.1.2.1: a server that accepts our limit includes it in the response.
    throw new Error('server ignored server_max_window_bits');
  }
  let clientBits = options.clientMaxWindowBits ?? MAX_WINDOW_BITS;
  if (seen.has('client_max_window_bits')) {
    const bits = windowBits(seen.get('client_max_window_bits')!);
    if (bits === null) throw new Error('invalid client_max_window_bits');
    // §7.1.2.2: the server "may either ignore this value or use" it. autobahn-python ignores it
    // and answers with its own limit, which may be larger than what we offered: we keep to the
    // smaller of the two, which satisfies both (our offer was a promise to stay within it).
    clientBits = Math.min(clientBits, bits);
  }
  return {
    // §7.1.1.2: having offered client_no_context_takeover, we reset our compressor whatever the
    // response says (a server may have taken the offer as the promise the RFC calls it). Resetting
    // our own compressor never breaks the peer; only the peer's state must follow the response.
    ownNoContextTakeover: seen.has('client_no_context_takeover') || options.clientNoContextTakeover === true,
    // §7.1.1.1: our inflater drops its window only when the server says it drops its context.
    peerNoContextTakeover: seen.has('server_no_context_takeover'),
    ownMaxWindowBits: clientBits,
    peerMaxWindowBits: serverBits,
  };
}
