/**
 * permessage-deflate (RFC 7692) for the conformance engine, written from the RFC: the offers a
 * client makes and the answer a server gives (§5, §7.1), and the compression itself on node:zlib
 * (§7.2), with each direction's context kept across messages or dropped after each one (§7.1.1)
 * and its LZ77 window as agreed (§7.1.2). The inflater is strict: it is sized exactly to the
 * agreed window, so a back-reference the agreement does not allow fails.
 */
import zlib from 'node:zlib';
import type { ExtensionItem } from './http.js';

export const EXTENSION = 'permessage-deflate';

/** §7.1.2: window sizes are 8 to 15 bits. */
const WINDOW_BITS = /^(?:8|9|1[0-5])$/;

/** What a client offers (one element of its Sec-WebSocket-Extensions list). */
export interface DeflateOffer {
  /** §7.1.1.2: the client tells the server it will not use context takeover. */
  clientNoContextTakeover: boolean;
  /** §7.1.2.2: the client accepts a limit on its own window (true: no value given). */
  clientMaxWindowBits: boolean | number;
  /** §7.1.1.1: the client asks the server not to use context takeover. */
  serverNoContextTakeover: boolean;
  /** §7.1.2.1: the client asks the server to use at most this window (0: no request). */
  serverMaxWindowBits: number;
}

/** The parameters both ends use once a response is agreed (§7.1). Window bits are 8-15. */
export interface DeflateParams {
  serverNoContextTakeover: boolean;
  clientNoContextTakeover: boolean;
  serverMaxWindowBits: number;
  clientMaxWindowBits: number;
}

/** An offer as its header text, parameters in the order the reference suite writes them. */
export function offerString(offer: DeflateOffer): string {
  let text = EXTENSION;
  if (offer.clientNoContextTakeover) text += '; client_no_context_takeover';
  if (offer.clientMaxWindowBits === true) text += '; client_max_window_bits';
  else if (typeof offer.clientMaxWindowBits === 'number')
    text += `; client_max_window_bits=${offer.clientMaxWindowBits}`;
  if (offer.serverNoContextTakeover) text += '; server_no_context_takeover';
  if (offer.serverMaxWindowBits !== 0) text += `; server_max_window_bits=${offer.serverMaxWindowBits}`;
  return text;
}

/** Each parameter at most once (§7: "a server MUST decline an offer with ... duplicated parameters"). */
function paramsOf(item: ExtensionItem): Map<string, string | true> | Error {
  const params = new Map<string, string | true>();
  for (const [name, value] of item.params) {
    if (params.has(name)) return new Error(`${name} appears twice`);
    params.set(name, value);
  }
  return params;
}

/**
 * §7.1: read one permessage-deflate offer of a client. An Error means the offer is invalid (an
 * unknown parameter or a bad value) and must be declined.
 */
export function parseOffer(item: ExtensionItem): DeflateOffer | Error {
  const params = paramsOf(item);
  if (params instanceof Error) return params;
  const offer: DeflateOffer = {
    clientNoContextTakeover: false,
    clientMaxWindowBits: false,
    serverNoContextTakeover: false,
    serverMaxWindowBits: 0,
  };
  for (const [name, value] of params) {
    if (name === 'client_no_context_takeover' && value === true) offer.clientNoContextTakeover = true;
    else if (name === 'server_no_context_takeover' && value === true) offer.serverNoContextTakeover = true;
    else if (name === 'client_max_window_bits' && (value === true || WINDOW_BITS.test(value)))
      offer.clientMaxWindowBits = value === true ? true : Number(value);
    else if (name === 'server_max_window_bits' && value !== true && WINDOW_BITS.test(value))
      offer.serverMaxWindowBits = Number(value);
    else return new Error(`invalid parameter ${name}${value === true ? '' : `=${value}`}`);
  }
  return offer;
}

/**
 * §7.1: read the server's answer to our offer. Returns the agreed parameters, or an Error when
 * the answer is malformed (and the client must fail the connection).
 */
export function parseResponse(item: ExtensionItem): DeflateParams | Error {
  const params = paramsOf(item);
  if (params instanceof Error) return params;
  const agreed: DeflateParams = {
    serverNoContextTakeover: false,
    clientNoContextTakeover: false,
    serverMaxWindowBits: 15,
    clientMaxWindowBits: 15,
  };
  for (const [name, value] of params) {
    if (name === 'client_no_context_takeover' && value === true) agreed.clientNoContextTakeover = true;
    else if (name === 'server_no_context_takeover' && value === true) agreed.serverNoContextTakeover = true;
    else if (name === 'client_max_window_bits' && value !== true && WINDOW_BITS.test(value))
      agreed.clientMaxWindowBits = Number(value);
    else if (name === 'server_max_window_bits' && value !== true && WINDOW_BITS.test(value))
      agreed.serverMaxWindowBits = Number(value);
    else return new Error(`invalid parameter ${name}${value === true ? '' : `=${value}`} in the answer`);
  }
  return agreed;
}

/** §7.2.1: the 4 octets a sender removes from the end of each compressed message. */
const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);

/** The last `size` octets of `history` followed by `data` (an LZ77 window after `data`). */
function slide(history: Buffer | null, data: Buffer, size: number): Buffer {
  if (data.length >= size) return Buffer.from(data.subarray(data.length - size));
  const joined = history === null ? data : Buffer.concat([history, data]);
  return Buffer.from(joined.subarray(Math.max(0, joined.length - size)));
}

/**
 * Compressed messages the engine has made, by what determines them (the data set, the message's
 * place in its sequence, the parameters): the cases of groups 12 and 13 send the same sequences
 * with the same parameters again and again (12.x.10 and 12.x.15-18 differ only in how the
 * compressed message is cut into frames), so each is compressed once per run. Bounded: past the
 * budget nothing more is kept, and nothing that compressed poorly is kept at all.
 */
const cache = new Map<string, Buffer>();
let cached = 0;
const CACHE_BUDGET = 192 * 1024 * 1024;

/**
 * One endpoint's compression, once agreed: it compresses what it sends with its own side's
 * parameters and inflates what it receives with the peer's (§7.1.1, §7.1.2).
 *
 * Each message is compressed and inflated in one synchronous call (a round trip to zlib's thread
 * pool per message costs more than the work on a busy machine). Context takeover is carried by
 * the window itself: the next message is compressed, and inflated, with the last 2^windowBits
 * octets of the messages before it as a preset dictionary, which is exactly what a streaming
 * compressor that keeps its context may refer back to (§7.2.3.2). Without context takeover there
 * is no dictionary, so a peer that refers back into an earlier message fails to inflate.
 */
export class PerMessageDeflate {
  private sent: Buffer | null = null;
  private received: Buffer | null = null;
  private readonly sendTakeover: boolean;
  private readonly sendWindow: number;
  private readonly receiveTakeover: boolean;
  private readonly receiveWindow: number;

  constructor(
    readonly params: DeflateParams,
    isServer: boolean,
    /** zlib level for what this endpoint sends. */
    private readonly level: number,
  ) {
    this.sendTakeover = !(isServer ? params.serverNoContextTakeover : params.clientNoContextTakeover);
    this.sendWindow = isServer ? params.serverMaxWindowBits : params.clientMaxWindowBits;
    this.receiveTakeover = !(isServer ? params.clientNoContextTakeover : params.serverNoContextTakeover);
    this.receiveWindow = isServer ? params.clientMaxWindowBits : params.serverMaxWindowBits;
  }

  /**
   * §7.2.1: compress one message, the trailing 00 00 FF FF removed. `key` names the message and
   * everything before it in its sequence, when the caller knows it will send the same sequence again.
   */
  compress(message: Buffer, key?: string): Buffer {
    const cacheKey = key === undefined ? null : `${key}/${this.sendTakeover}/${this.sendWindow}/${this.level}`;
    const known = cacheKey === null ? undefined : cache.get(cacheKey);
    if (known !== undefined) {
      if (this.sendTakeover) this.sent = slide(this.sent, message, 1 << this.sendWindow);
      return known;
    }
    const compressed = this.deflate(message);
    if (
      cacheKey !== null &&
      cached < CACHE_BUDGET &&
      (compressed.length <= 1024 || compressed.length < message.length / 2)
    ) {
      cache.set(cacheKey, compressed);
      cached += compressed.length;
    }
    return compressed;
  }

  private deflate(message: Buffer): Buffer {
    const dictionary = this.sendTakeover && this.sent !== null ? { dictionary: this.sent } : {};
    const out = zlib.deflateRawSync(message, {
      // zlib cannot make an 8-bit window for raw deflate; Huffman coding alone uses no window at all.
      ...(this.sendWindow === 8
        ? { windowBits: 9, strategy: zlib.constants.Z_HUFFMAN_ONLY }
        : { windowBits: this.sendWindow, ...dictionary }),
      level: this.level,
      finishFlush: zlib.constants.Z_SYNC_FLUSH,
    });
    if (this.sendTakeover) this.sent = slide(this.sent, message, 1 << this.sendWindow);
    // A sync flush ends with an empty stored block, 00 00 FF FF.
    return out.subarray(0, out.length - 4);
  }

  /** §7.2.2: inflate one message from its frames' payloads; at most `limit` octets, else a RangeError. */
  decompress(parts: Buffer[], limit: number): Buffer {
    const dictionary = this.receiveTakeover && this.received !== null ? { dictionary: this.received } : {};
    const inflated = zlib.inflateRawSync(Buffer.concat([...parts, TAIL]), {
      windowBits: this.receiveWindow,
      finishFlush: zlib.constants.Z_SYNC_FLUSH,
      maxOutputLength: limit,
      ...dictionary,
    });
    if (this.receiveTakeover) this.received = slide(this.received, inflated, 1 << this.receiveWindow);
    return inflated;
  }

  close(): void {
    this.sent = null;
    this.received = null;
  }
}
