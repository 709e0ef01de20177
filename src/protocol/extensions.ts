import { isTchar, isToken } from './http1.js';

/**
 * The Sec-WebSocket-Extensions header (RFC 6455 §9.1):
 *
 *   extension-list  = 1#extension
 *   extension       = extension-token *( ";" extension-param )
 *   extension-param = token [ "=" (token | quoted-string) ]
 *
 * Parsed into an ordered list of offers with their parameters in order, duplicates kept: the
 * extension's own rules decide what a duplicate means (RFC 7692 §7 declines the offer).
 */

export interface ExtensionOffer {
  name: string;
  /** Parameters in order; `true` for a parameter without a value. */
  params: [name: string, value: string | true][];
}

export class ExtensionHeaderError extends Error {
  override readonly name = 'ExtensionHeaderError';
}

/**
 * Parse every Sec-WebSocket-Extensions field of a message (repeated fields form one list).
 * Throws ExtensionHeaderError.
 */
export function parseExtensions(values: readonly string[]): ExtensionOffer[] {
  const offers: ExtensionOffer[] = [];
  for (const value of values) parseInto(value, offers);
  return offers;
}

function parseInto(text: string, offers: ExtensionOffer[]): void {
  let i = 0;
  const n = text.length;
  const skipSpace = (): void => {
    while (i < n && (text[i] === ' ' || text[i] === '\t')) i++;
  };
  const token = (what: string): string => {
    const start = i;
    while (i < n && isTchar(text.charCodeAt(i))) i++;
    if (i === start) throw new ExtensionHeaderError(`expected ${what} at offset ${start} of "${text}"`);
    return text.slice(start, i);
  };
  const quoted = (): string => {
    // RFC 7230 §3.2.6: quoted-string with backslash escapes.
    i++;
    let out = '';
    while (i < n && text[i] !== '"') {
      if (text[i] === '\\') {
        i++;
        if (i >= n) break;
      }
      out += text[i];
      i++;
    }
    if (i >= n) throw new ExtensionHeaderError(`unterminated quoted string in "${text}"`);
    i++;
    return out;
  };

  for (;;) {
    skipSpace();
    // 1#element allows empty elements between commas (RFC 7230 §7).
    if (i < n && text[i] === ',') {
      i++;
      continue;
    }
    if (i >= n) return;
    const offer: ExtensionOffer = { name: token('an extension name'), params: [] };
    skipSpace();
    while (i < n && text[i] === ';') {
      i++;
      skipSpace();
      const name = token('a parameter name');
      skipSpace();
      let value: string | true = true;
      if (i < n && text[i] === '=') {
        i++;
        skipSpace();
        value = i < n && text[i] === '"' ? quoted() : token('a parameter value');
        // RFC 6455 §9.1: a quoted value must still be a token once unquoted.
        if (!isToken(value)) throw new ExtensionHeaderError(`parameter ${name} has a value that is not a token`);
        skipSpace();
      }
      offer.params.push([name, value]);
    }
    offers.push(offer);
    skipSpace();
    if (i >= n) return;
    if (text[i] !== ',') throw new ExtensionHeaderError(`unexpected "${text[i]}" at offset ${i} of "${text}"`);
    i++;
  }
}

/** Format one extension with its parameters for a header value. */
export function formatExtension(offer: ExtensionOffer): string {
  let text = offer.name;
  for (const [name, value] of offer.params) text += value === true ? `; ${name}` : `; ${name}=${value}`;
  return text;
}
