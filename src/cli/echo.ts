#!/usr/bin/env node
/**
 * The echo server: every message comes back as it came (text as text, binary as binary,
 * fragmented messages reassembled; with --stream, streamed back as it arrives, in bounded memory).
 * By default on 127.0.0.1:9001, the address Autobahn|Testsuite's fuzzingclient connects to.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { WebSocketServer } from '../websocket/server.js';
import { FrameExplainer, describeHandshake, describeReport } from '../learn/explain.js';
import { Explorer } from '../learn/explorer.js';
import type { ConnectionObserver } from '../websocket/hooks.js';
import { formatFrame } from '../protocol/trace.js';
import type { ConnectionOptions } from '../protocol/options.js';
import { isEntryPoint } from './entry.js';

const HELP = `Usage: wsrfc echo [options]   (or: wsrfc-echo [options])

An RFC 6455 echo server.

  --host HOST              address to listen on (default 127.0.0.1)
  --port PORT              port to listen on (default 9001)
  --max-message-size N     largest message accepted, in bytes (default 67108864); bigger ones close with 1009
  --ping-interval MS       ping every MS milliseconds; 0 turns pings off (default 54000)
  --stream                 echo every message as a stream, as it arrives: a message of any size in bounded
                           memory (no size limit then; --max-message-size still bounds it if given)
  --deflate                accept permessage-deflate (RFC 7692) offers (the default)
  --no-deflate             don't: every message goes uncompressed
  --trace                  print each handshake and every frame in and out, decoded and explained
  --no-explorer            serve nothing but WebSocket upgrades (by default, GET / serves the protocol explorer,
                           over HTTPS too with TLS, whether the browser picks HTTP/2 or HTTP/1.1)
  --tls-cert FILE          serve wss:// with this certificate (PEM), over HTTP/2 (RFC 8441) and HTTP/1.1
  --tls-key FILE           ... and this private key (PEM); both or neither
  --page FILE              with TLS: serve FILE as the HTML page at / instead of the explorer (over HTTP/2 or
                           HTTP/1.1; a browser's WebSockets from that page then share its HTTP/2 connection)
  -h, --help               this text
`;

/** `wsrfc echo ...` and `wsrfc-echo ...`: `argv` is what follows the command's name. */
export function echoMain(argv: string[] = process.argv.slice(2)): void {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        host: { type: 'string', default: '127.0.0.1' },
        port: { type: 'string', default: '9001' },
        'max-message-size': { type: 'string' },
        'ping-interval': { type: 'string' },
        trace: { type: 'boolean', default: false },
        stream: { type: 'boolean', default: false },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        page: { type: 'string' },
        deflate: { type: 'boolean', default: false },
        'no-deflate': { type: 'boolean', default: false },
        'no-explorer': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${HELP}`);
    process.exit(2);
  }
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }

  const options: ConnectionOptions = {};
  const number = (name: string, text: string | undefined): number | undefined => {
    if (text === undefined) return undefined;
    const value = Number(text);
    if (!Number.isInteger(value) || value < 0) {
      process.stderr.write(`--${name} must be a whole number >= 0\n`);
      process.exit(2);
    }
    return value;
  };
  const maxMessageSize = number('max-message-size', values['max-message-size']);
  if (maxMessageSize !== undefined) options.maxMessageSize = options.maxStreamedMessageSize = maxMessageSize;
  const pingInterval = number('ping-interval', values['ping-interval']);
  if (pingInterval !== undefined) options.pingInterval = pingInterval;
  const port = number('port', values.port)!;

  let online = 0;
  // On by default: browsers offer compression on every connection, and Autobahn's 12.x/13.x cases
  // only pass (rather than count as unimplemented) when the server accepts it.
  if (values.deflate && values['no-deflate']) {
    process.stderr.write('--deflate and --no-deflate: choose one\n');
    process.exit(2);
  }
  const deflate = values.deflate || !values['no-deflate'];
  const explorerOn = !values['no-explorer'];
  if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined) || (values.page && !values['tls-key'])) {
    process.stderr.write('--tls-cert and --tls-key go together (and --page needs them)\n');
    process.exit(2);
  }
  let tls: { cert: Buffer; key: Buffer } | undefined;
  let page: Buffer | undefined;
  try {
    if (values['tls-cert'] !== undefined)
      tls = { cert: readFileSync(values['tls-cert']), key: readFileSync(values['tls-key']!) };
    if (values.page !== undefined) page = readFileSync(values.page);
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`);
    process.exit(2);
  }
  // The explorer plugs in through the server's public hooks: the page for plain requests, an
  // observer for its connections' frames, and its own observer sockets taken before the echo.
  const explorer = explorerOn ? new Explorer() : null;
  const server = new WebSocketServer({
    ...options,
    perMessageDeflate: deflate,
    // --page, then the explorer, answer plain requests (over HTTP/1.1, and HTTP/2 with TLS).
    onHttpRequest: (request) => {
      if (page !== undefined && request.method === 'GET' && request.target === '/')
        return { status: 200, headers: { 'content-type': 'text/html; charset=utf-8' }, body: page };
      return explorer?.onHttpRequest(request);
    },
    observe: both(explorer?.observe, values.trace ? teach : undefined),
    // With TLS, HTTP/2 and HTTP/1.1 share the port (ALPN); other plain HTTP/2 requests get 404.
    ...(tls !== undefined
      ? { tls, http2: { onRequest: (stream) => stream.respond({ ':status': 404 }, { endStream: true }) } }
      : {}),
  });
  server.on('connection', (connection, request) => {
    if (explorer?.adopt(connection, request) === true) return;
    online++;
    const from = `${request.remoteAddress ?? '?'}:${request.remotePort ?? '?'}`;
    // Which protocol carried the handshake: HTTP/1.1 (an upgrade) or HTTP/2 (a stream, RFC 8441).
    const over = request.httpVersion === '2.0' ? 'HTTP/2' : `HTTP/${request.httpVersion}`;
    console.log(`+ #${connection.id} ${from} ${request.url}  over ${over}  (${online} online)`);
    connection.on('message', (data, isBinary) => {
      connection.send(data, { binary: isBinary });
    });
    // --stream: each chunk goes back as a fragment as it arrives; the next message waits its turn.
    // (Set here, not for the whole server: the explorer's own sockets take their messages whole.)
    connection.streamMessages = values.stream;
    connection.on('stream', (stream) => connection.send(stream, { binary: stream.isBinary }));
    connection.on('close', (code, reason, wasClean) => {
      online--;
      const why = reason === '' ? '' : ` "${reason}"`;
      console.log(`- #${connection.id} closed ${code}${why}${wasClean ? '' : ' (not clean)'}  (${online} online)`);
    });
  });
  server.on('rejected', (status, message, address) => console.log(`! refused ${address ?? '?'}: ${status} ${message}`));
  server.on('error', (error) => console.error(`error: ${error.message}`));

  server.listen(port, values.host).then(
    (address) => {
      const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      const compression = `permessage-deflate ${deflate ? 'on' : 'off'}`;
      const url = `${tls !== undefined ? 'wss' : 'ws'}://${host}:${address.port}/`;
      const carriers = tls !== undefined ? 'HTTP/2 and HTTP/1.1; ' : '';
      console.log(`echo server listening on ${url}  (${carriers}${compression}; Ctrl-C to stop)`);
      const page = `${tls !== undefined ? 'https' : 'http'}://${host}:${address.port}/`;
      if (explorerOn) console.log(`protocol explorer: ${page}  (--no-explorer turns it off)`);
    },
    (error: Error) => {
      console.error(`cannot listen on ${values.host}:${port}: ${error.message}`);
      process.exit(1);
    },
  );

  let stopping = false;
  const stop = (): void => {
    if (stopping) {
      console.log('\nforced exit');
      process.exit(1);
    }
    stopping = true;
    console.log(`\nshutting down: closing ${server.clients.size} connection(s) with 1001 (Ctrl-C again to force)`);
    server.close().then(() => {
      console.log('bye');
      process.exit(0);
    });
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

/**
 * --trace: each handshake's two heads (or HTTP/2 HEADERS), then every frame as formatFrame prints it, with a line
 * under it that explains it (src/learn/explain.ts): the header bytes, the length form, the masked bytes,
 * close codes by name, text, both sizes of a compressed message.
 */
const teach: ConnectionObserver = (handshake) => {
  console.log(describeHandshake(handshake));
  const explainer = new FrameExplainer(handshake.extensions);
  return (frame) => {
    console.log(formatFrame(frame));
    console.log(`   #${handshake.id} ${describeReport(explainer.explain(frame))}`);
  };
};

/** Two observers as one: each sees the handshake; both tracers get the frames. */
function both(a: ConnectionObserver | undefined, b: ConnectionObserver | undefined): ConnectionObserver | undefined {
  if (a === undefined || b === undefined) return a ?? b;
  return (handshake) => {
    const first = a(handshake);
    const second = b(handshake);
    if (first === null || second === null) return first ?? second;
    return (frame) => {
      first(frame);
      second(frame);
    };
  };
}

// Run as a program (the wsrfc-echo bin, `npm start`), not when `wsrfc echo` imports it.
if (isEntryPoint(import.meta.url)) echoMain();
