/**
 * An independent reading of Sec-WebSocket-Extensions (RFC 6455 §9.1) and of permessage-deflate's
 * parameters (RFC 7692 §7), for the negotiation target; imports nothing of src/. Where the parser
 * in src/ scans character by character, this one matches the whole value against the ABNF as a
 * regular expression, then splits it.
 *
 *   extension-list  = 1#extension
 *   extension       = extension-token *( ";" extension-param )
 *   extension-param = token [ "=" (token | quoted-string) ]
 *
 * with the implied whitespace of RFC 2616 §2.1 around separators, empty list elements allowed
 * (RFC 9110 §5.6.1.2), and a quoted value that must be a token once unescaped (§9.1).
 */

const OWS = '[ \\t]*';
const TOKEN = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]+";
// RFC 9110 §5.6.4: quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE.
const QUOTED = '"(?:[\\t \\x21\\x23-\\x5b\\x5d-\\x7e\\x80-\\xff]|\\\\[\\t \\x21-\\x7e\\x80-\\xff])*"';
const PARAM = `${TOKEN}(?:${OWS}=${OWS}(?:${TOKEN}|${QUOTED}))?`;
const EXTENSION = `${TOKEN}(?:${OWS};${OWS}${PARAM})*`;
const ELEMENT = `(?:${EXTENSION})?`;
const LIST = new RegExp(`^${OWS}${ELEMENT}(?:${OWS},${OWS}${ELEMENT})*${OWS}$`);
const EXTENSIONS = new RegExp(EXTENSION, 'g');
const PARAMS = new RegExp(`;${OWS}(${TOKEN})(?:${OWS}=${OWS}(${TOKEN}|${QUOTED}))?`, 'g');
const IS_TOKEN = new RegExp(`^${TOKEN}$`);

export interface Offer {
  name: string;
  params: [string, string | true][];
}

/** The offers of every field value, in order; null when a value does not follow the grammar. */
export function readExtensions(values: readonly string[]): Offer[] | null {
  const offers: Offer[] = [];
  for (const value of values) {
    if (!LIST.test(value)) return null;
    for (const match of value.matchAll(EXTENSIONS)) {
      const text = match[0];
      const name = /^[^ \t;]+/.exec(text)![0];
      const params: [string, string | true][] = [];
      for (const param of text.matchAll(PARAMS)) {
        let paramValue: string | true = true;
        if (param[2] !== undefined) {
          paramValue = param[2].startsWith('"') ? param[2].slice(1, -1).replace(/\\(.)/gs, '$1') : param[2];
          if (!IS_TOKEN.test(paramValue)) return null;
        }
        params.push([param[1]!, paramValue]);
      }
      offers.push({ name, params });
    }
  }
  return offers;
}

const KNOWN = [
  'server_no_context_takeover',
  'client_no_context_takeover',
  'server_max_window_bits',
  'client_max_window_bits',
];

/** RFC 7692 §7.1.2: a window size is an integer from 8 to 15 without leading zeros; null otherwise. */
export function bits(value: string | true | undefined): number | null {
  return typeof value === 'string' && /^(?:[89]|1[0-5])$/.test(value) ? Number(value) : null;
}

/**
 * RFC 7692 §7: the parameters of a permessage-deflate element as a map, or null when the element has
 * an unknown parameter, a repeated one, or a value the parameter does not take. `role` says who
 * wrote it: in an offer client_max_window_bits may have no value (§7.1.2.2), in a response it must.
 */
export function deflateParams(offer: Offer, role: 'offer' | 'response'): Map<string, string | true> | null {
  const params = new Map<string, string | true>();
  for (const [name, value] of offer.params) {
    if (!KNOWN.includes(name) || params.has(name)) return null;
    if (name.endsWith('_no_context_takeover') && value !== true) return null;
    if (name === 'server_max_window_bits' && bits(value) === null) return null;
    if (name === 'client_max_window_bits' && bits(value) === null && !(role === 'offer' && value === true)) return null;
    params.set(name, value);
  }
  return params;
}
