/**
 * The independent test peer: a raw WebSocket endpoint on node:net, in either role, with its own
 * frame encoder and decoder (RFC 6455 §5), its own HTTP/1.1 handshake code (§4) and
 * permessage-deflate driven by node:zlib (RFC 7692). It never imports src/: a test that runs our
 * server or client against it checks them against a second reading of the RFCs, not their own.
 * Over HTTP/2 (RFC 8441), node:http2 carries the streams and the same code does the frames.
 * (spec-tests/test-peer.test.ts checks the import lines of every file here.)
 */
export * from './frames.js';
export * from './http.js';
export * from './deflate.js';
export * from './connection.js';
export * from './client.js';
export * from './server.js';
export * from './wait.js';
export * from './http2.js';
export * from './pieces.js';
