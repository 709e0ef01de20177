#!/usr/bin/env node
/**
 * The chat server (`npm run chat`): each client joins the room named by its URL's path; every text
 * message it sends is published to that room, and every member receives it (the sender too),
 * wherever they are connected: another worker (`--workers`), another host (`--broker redis://...`).
 */
import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import type { Broker } from '../websocket/broker.js';
import { CloseCode } from '../protocol/constants.js';
import { WebSocketServer } from '../websocket/server.js';
import { runWorkers } from '../scale/workers.js';

const HELP = `Usage: npm run chat -- [options]

A chat server: a client joins the room named by its URL path (ws://HOST:PORT/lobby joins /lobby);
each text message it sends goes to every member of the room, wherever they are connected.

  --host HOST              address to listen on (default 127.0.0.1)
  --port PORT              port to listen on (default 9002; 0 for any free one)
  --workers [N]            N processes sharing the port (node:cluster); without N, one per core
  --broker URL             reach the servers of other hosts through Redis (redis://HOST:PORT)
  --wait-for-redis         at start, wait for Redis to answer instead of failing
  --quiet                  don't print a line per connection
  -h, --help               this text
`;

interface ChatOptions {
  host: string;
  port: number;
  broker: string | undefined;
  waitForRedis: boolean;
  quiet: boolean;
}

function fail(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(2);
}

/** `--workers` may come without a value: parseArgs cannot say that, so it is read here first. */
function takeWorkers(args: string[]): { args: string[]; workers: number | undefined } {
  const at = args.findIndex((arg) => arg === '--workers' || arg.startsWith('--workers='));
  if (at < 0) return { args, workers: undefined };
  const rest = [...args];
  let text: string | undefined;
  if (rest[at]!.startsWith('--workers=')) {
    text = rest[at]!.slice('--workers='.length);
    rest.splice(at, 1);
  } else if (rest[at + 1] !== undefined && !rest[at + 1]!.startsWith('-')) {
    text = rest[at + 1];
    rest.splice(at, 2);
  } else rest.splice(at, 1);
  if (text === undefined) return { args: rest, workers: availableParallelism() };
  const workers = Number(text);
  if (!Number.isInteger(workers) || workers < 1) fail('--workers must be a whole number >= 1');
  return { args: rest, workers };
}

function parse(): { options: ChatOptions; workers: number | undefined } {
  const { args, workers } = takeWorkers(process.argv.slice(2));
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        host: { type: 'string', default: '127.0.0.1' },
        port: { type: 'string', default: '9002' },
        broker: { type: 'string' },
        'wait-for-redis': { type: 'boolean', default: false },
        quiet: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (error) {
    fail(`${(error as Error).message}\n\n${HELP}`);
  }
  if (values.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail('--port must be a port number (0-65535)');
  const options = {
    host: values.host,
    port,
    broker: values.broker,
    waitForRedis: values['wait-for-redis'],
    quiet: values.quiet,
  };
  return { options, workers };
}

/** One chat server (one process, or one worker), listening. */
async function startChat(options: ChatOptions, clusterBroker: Broker | undefined): Promise<WebSocketServer> {
  let broker = clusterBroker;
  if (options.broker !== undefined) {
    // Loaded only when asked for: the redis package is an optional peer dependency.
    const { RedisBroker } = await import('../scale/redis-broker.js');
    const redis = await RedisBroker.connect(options.broker, { waitForRedis: options.waitForRedis });
    redis.on('down', (error) => console.error(`[${process.pid}] Redis unreachable (${error.message}); reconnecting`));
    redis.on('up', () => console.error(`[${process.pid}] Redis back`));
    broker = redis;
  }
  // Without context takeover on our side, one compressed copy of a message serves every member that
  // negotiated compression (src/websocket/topics.ts).
  const server = new WebSocketServer({ broker, perMessageDeflate: { serverNoContextTakeover: true } });
  const log = options.quiet ? () => {} : (line: string) => console.log(`[${process.pid}] ${line}`);
  server.on('connection', (socket, request) => {
    const room = request.path;
    socket.subscribe(room);
    log(`+ #${socket.id} ${request.remoteAddress ?? '?'}:${request.remotePort ?? '?'} ${room}`);
    socket.on('message', (data, isBinary) => {
      // RFC 6455 §7.4.1: 1003, a type of data the endpoint cannot accept.
      if (isBinary) socket.close(CloseCode.UnsupportedData, 'text messages only');
      else server.publish(room, data, { binary: false });
    });
    socket.on('close', (code) => log(`- #${socket.id} ${room} ${code}`));
  });
  await server.listen(options.port, options.host);
  return server;
}

function describe(address: { address: string; port: number; family: string }): string {
  return `ws://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}/`;
}

async function main(): Promise<void> {
  const { options, workers } = parse();
  const via = options.broker === undefined ? '' : `, broker ${options.broker}`;
  if (workers === undefined) {
    let server: WebSocketServer;
    try {
      server = await startChat(options, undefined);
    } catch (error) {
      console.error(`cannot start: ${(error as Error).message}`);
      process.exit(1);
    }
    console.log(`chat listening on ${describe(server.address()!)}  (1 process${via}; Ctrl-C to stop)`);
    const stop = (): void => void server.close().then(() => process.exit(0));
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    return;
  }
  let pool;
  try {
    pool = await runWorkers(({ broker }) => startChat(options, broker), { workers });
  } catch (error) {
    console.error(`cannot start: ${(error as Error).message}`);
    process.exit(1);
  }
  if (!cluster.isPrimary || pool === undefined) return;
  pool.on('exit', (pid, code, signal) => console.log(`worker ${pid} died (${signal ?? code}); starting another`));
  pool.on('listening', (pid) => console.log(`worker ${pid} listening`));
  const broker = options.broker === undefined ? 'between workers through the primary' : `broker ${options.broker}`;
  console.log(
    `chat listening on ${describe(pool.address!)}  (${workers} workers, ${broker}; pids ${pool.pids.join(' ')})`,
  );
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    console.log('draining every worker');
    void pool.close().then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

void main();
