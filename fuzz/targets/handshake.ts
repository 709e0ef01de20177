/**
 * Target 1: the opening handshake's heads as a peer sends them. The first byte picks the side: even,
 * a request head reaching a server (http-request.ts); odd, a response head reaching a client
 * (http-response.ts). One target, so that one corpus and one campaign cover both.
 */
import { target as request } from './http-request.js';
import { target as response } from './http-response.js';
import type { FuzzTarget } from './target.js';

export const target: FuzzTarget = {
  description: 'handshake heads: a request head (server) or a response head (client), by the first byte',
  maxLength: Math.max(request.maxLength, response.maxLength) + 1,
  dictionary: [...request.dictionary, ...response.dictionary],
  run(input) {
    const side = input.length === 0 || (input[0]! & 1) === 0 ? request : response;
    return side.run(input.subarray(1));
  },
};
