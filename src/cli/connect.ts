/**
 * `wsrfc connect URL`: an interactive client on the library's public one (openClient), for trying a
 * server by hand and for scripts. Lines typed (or piped) go as text messages, or are slash commands
 * (src/cli/connect-lines.ts); what arrives is printed; the exit status says how the connection closed.
 */
import { readFileSync } from 'node:fs';
import { clearLine, createInterface, cursorTo, type Interface } from 'node:readline';
import { parseArgs } from 'node:util';
import { openClient, type WebSocket } from '../websocket/websocket.js';
import type { ClientOptions } from '../websocket/client.js';
import { ReadyState } from '../protocol/constants.js';
import { deflateOffer, deflateOptionsOf } from '../protocol/permessage-deflate.js';
import { formatFrame, type TracedFrame } from '../protocol/trace.js';
import { FrameExplainer, describeReport } from '../learn/explain.js';
import {
  COMMANDS_HELP,
  EXIT,
  closeLine,
  controlPayload,
  exitStatusOf,
  messageLine,
  parseLine,
} from './connect-lines.js';

const HELP = `Usage: wsrfc connect URL [options]

A WebSocket client for trying a server by hand or from a script. URL is ws://HOST[:PORT][/PATH] or wss://...
Each line read (typed, or from a pipe) is sent as a text message; what arrives is printed ("< " and
the text; binary messages in hex; pings, pongs and the close). At the end of the input (Ctrl-D, or
the end of a pipe) the client closes with 1000 and waits for the server's close.

  -H, --header "NAME: VALUE"  add a request header (repeatable)
  -s, --subprotocol NAME      offer a subprotocol (repeatable, most preferred first)
  -o, --origin ORIGIN         send this Origin header
      --no-deflate            don't offer permessage-deflate (RFC 7692; offered by default)
      --http2                 open the WebSocket as a stream of an HTTP/2 connection (RFC 8441): over TLS
                              (ALPN h2) for wss://, cleartext h2c with prior knowledge for ws://
      --trace                 print the server's handshake answer and every frame in and out, explained
      --ca FILE               for wss://: trust this certificate (PEM) instead of the system's authorities
  -k, --insecure              for wss://: don't check the server's certificate at all
  -x, --execute LINE          once connected, send LINE (a message or a command), then end (repeatable;
                              stdin is not read then)
  -w, --wait N                at the end of the input, wait until N messages have arrived before closing
  -t, --timeout MS            with --wait: wait at most MS milliseconds, then close anyway (exit status 5)
  -h, --help                  this text

${COMMANDS_HELP}
Exit status: 0 closed cleanly with 1000, 1001 or no code (1005); 1 never connected (refused, failed
handshake, network or TLS error); 2 bad arguments; 3 closed cleanly with any other code; 4 closed
without a closing handshake (dropped: 1006; or failed by this client because the server broke the
protocol: 1002, 1007, ... and a line on stderr says how); 5 --wait timed out.
`;

/** Bytes of input sent but not yet taken by the socket before reading more input (memory stays bounded). */
const IN_FLIGHT_BYTES = 64 * 1024;
/** Input lines sent between two turns of the event loop. */
const YIELD_EVERY_LINES = 256;

interface Config {
  url: string;
  options: ClientOptions;
  trace: boolean;
  /** --execute's lines, or null to read stdin. */
  execute: string[] | null;
  wait: number;
  timeout: number | null;
}

/** `wsrfc connect ...`: `argv` is what follows `connect`. Resolves with the exit status. */
export async function connectMain(argv: string[]): Promise<number> {
  const config = parseArguments(argv);
  if (typeof config === 'number') return config;
  return new Session(config).run();
}

function usage(message: string): number {
  process.stderr.write(`wsrfc connect: ${message}\n(wsrfc connect --help lists the options)\n`);
  return EXIT.USAGE;
}

function parseArguments(argv: string[]): Config | number {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        header: { type: 'string', short: 'H', multiple: true, default: [] },
        subprotocol: { type: 'string', short: 's', multiple: true, default: [] },
        origin: { type: 'string', short: 'o' },
        'no-deflate': { type: 'boolean', default: false },
        http2: { type: 'boolean', default: false },
        trace: { type: 'boolean', default: false },
        ca: { type: 'string' },
        insecure: { type: 'boolean', short: 'k', default: false },
        execute: { type: 'string', short: 'x', multiple: true },
        wait: { type: 'string', short: 'w' },
        timeout: { type: 'string', short: 't' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (error) {
    return usage((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(HELP);
    return EXIT.NORMAL;
  }
  if (positionals.length !== 1) return usage(positionals.length === 0 ? 'a URL is needed' : 'one URL only');
  const headers: Record<string, string> = {};
  for (const line of values.header) {
    const colon = line.indexOf(':');
    if (colon <= 0) return usage(`--header takes "NAME: VALUE", not ${JSON.stringify(line)}`);
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    // A repeated field is the same as one with the values joined by commas (RFC 9110 §5.3).
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  const count = (name: string, text: string | undefined): number | null | string => {
    if (text === undefined) return null;
    const value = Number(text);
    return /^\d+$/.test(text) && Number.isSafeInteger(value) ? value : `--${name} takes a whole number, not ${text}`;
  };
  const wait = count('wait', values.wait);
  const timeout = count('timeout', values.timeout);
  if (typeof wait === 'string') return usage(wait);
  if (typeof timeout === 'string') return usage(timeout);
  if (timeout !== null && wait === null) return usage('--timeout goes with --wait');
  if (values.ca !== undefined && values.insecure) return usage('--ca and --insecure: choose one');
  const options: ClientOptions = {
    headers,
    protocols: values.subprotocol,
    perMessageDeflate: !values['no-deflate'],
    http2: values.http2,
  };
  if (values.origin !== undefined) options.origin = values.origin;
  if (values.insecure) options.tls = { rejectUnauthorized: false };
  if (values.ca !== undefined) {
    try {
      options.tls = { ca: readFileSync(values.ca) };
    } catch (error) {
      return usage(`--ca: ${(error as Error).message}`);
    }
  }
  return {
    url: positionals[0]!,
    options,
    trace: values.trace,
    execute: values.execute ?? null,
    wait: wait ?? 0,
    timeout,
  };
}

/** Where lines go: stdout (stderr for errors), around the prompt when a person is typing. */
class Output {
  prompt: Interface | null = null;
  /** stdout went away (a closed pipe: `wsrfc connect ... | head -1`). */
  broken = false;

  /** False when stdout holds more than it can take at once (a slow reader of a pipe): wait for its 'drain'. */
  line(text: string): boolean {
    return this.broken || this.write(process.stdout, text);
  }

  error(text: string): void {
    this.write(process.stderr, text);
  }

  private write(stream: NodeJS.WriteStream, text: string): boolean {
    const prompt = this.prompt;
    if (prompt !== null) {
      // Print above the line being typed, then show the prompt and what was typed again.
      clearLine(process.stdout, 0);
      cursorTo(process.stdout, 0);
    }
    const taken = stream.write(`${text}\n`);
    prompt?.prompt(true);
    return taken;
  }
}

class Session {
  private readonly out = new Output();
  private socket: WebSocket | null = null;
  private explainer: FrameExplainer | null = null;
  private received = 0;
  private stdoutFull = false;
  private waitTimedOut = false;
  private interrupted = false;
  /** Whether a person is typing at a terminal (a prompt, line editing). */
  private readonly interactive: boolean;

  constructor(private readonly config: Config) {
    this.interactive = config.execute === null && process.stdin.isTTY === true && process.stdout.isTTY === true;
  }

  async run(): Promise<number> {
    const { config, out } = this;
    let ws: WebSocket;
    try {
      ws = this.socket = openClient(config.url, {
        ...config.options,
        ...(config.trace ? { trace: (frame: TracedFrame) => this.traceFrame(frame) } : {}),
      });
    } catch (error) {
      // A URL, subprotocol or header that cannot be sent: nothing went on the network.
      return usage((error as Error).message);
    }
    let failure: Error | null = null;
    let isOpen = false;
    ws.on('error', (error) => {
      if (isOpen) out.error(`error: ${error.message}`);
      else failure ??= error;
    });
    if (config.trace) ws.on('upgrade', (headers) => this.traceHandshake(headers));
    const closed = new Promise<[number, string, boolean]>((resolve) =>
      ws.once('close', (code, reason, wasClean) => resolve([code, reason, wasClean])),
    );
    const opened = await new Promise<boolean>((resolve) => {
      ws.once('open', () => {
        // Listening from 'open' on: nothing that arrives right after the handshake is missed.
        isOpen = true;
        this.listen(ws);
        resolve(true);
      });
      void closed.then(() => resolve(false));
    });
    if (!opened) {
      const why = (failure as Error | null)?.message ?? 'the connection closed during the handshake';
      const over = config.options.http2 === true ? ' over HTTP/2' : '';
      out.error(`wsrfc connect: cannot connect to ${config.url}${over}: ${why}`);
      return EXIT.NOT_OPENED;
    }
    process.stdout.on('error', () => {
      // Nobody reads what arrives any more: leave, as a browser leaving a page does (§7.4.1: 1001).
      out.broken = true;
      this.stdoutDrained(ws);
      if (ws.readyState === ReadyState.OPEN) ws.close(1001);
    });
    const onSignal = (): void => this.interrupt(ws);
    process.on('SIGINT', onSignal);
    try {
      await this.feed(ws, closed);
      if (ws.readyState === ReadyState.OPEN) {
        await this.awaitReplies(ws);
        if (ws.readyState === ReadyState.OPEN) ws.close(1000);
      }
      const [code, reason, wasClean] = await closed;
      out.line(closeLine(code, reason, wasClean));
      return this.waitTimedOut ? EXIT.WAIT_TIMED_OUT : exitStatusOf(code, wasClean);
    } finally {
      process.off('SIGINT', onSignal);
    }
  }

  private listen(ws: WebSocket): void {
    const { out } = this;
    const extensions = ws.extensions === '' ? '' : `; extensions: ${ws.extensions}`;
    const protocol = ws.protocol === '' ? '' : `; subprotocol: ${ws.protocol}`;
    const over = this.config.options.http2 === true ? 'HTTP/2' : 'HTTP/1.1';
    out.line(`connected to ${this.config.url} (over ${over}${protocol}${extensions})`);
    if (this.interactive) out.line('type a line and Enter to send it; /help lists the commands; Ctrl-D closes');
    ws.on('message', (data, isBinary) => {
      this.received++;
      this.show(messageLine(data, isBinary));
    });
    // RFC 6455 §5.5.2: the library answers each ping with a pong carrying the same data.
    ws.on('ping', (data) => this.show(`< ping ${controlPayload(data)} (answered with a pong)`));
    ws.on('pong', (data) => this.show(`< pong ${controlPayload(data)}`));
  }

  /**
   * Print what the server sent. Whoever reads our stdout sets the pace: reading the socket stops
   * while stdout is full, so that a server sending faster than that meets TCP backpressure instead
   * of filling our memory.
   */
  private show(text: string): void {
    const ws = this.socket!;
    if (this.out.line(text) || this.stdoutFull) return;
    this.stdoutFull = true;
    ws.pause();
    process.stdout.once('drain', () => this.stdoutDrained(ws));
  }

  private stdoutDrained(ws: WebSocket): void {
    if (!this.stdoutFull) return;
    this.stdoutFull = false;
    ws.resume();
  }

  /** Send each line of the input until it ends, a /close, or the connection closes. */
  private async feed(ws: WebSocket, closed: Promise<unknown>): Promise<void> {
    let input: Interface | null = null;
    if (this.config.execute === null) {
      input = createInterface({
        input: process.stdin,
        ...(this.interactive ? { output: process.stdout, terminal: true, prompt: '> ' } : { terminal: false }),
        crlfDelay: Infinity,
      });
      // At a terminal, Ctrl-C reaches readline, not the process.
      input.on('SIGINT', () => this.interrupt(ws));
      if (this.interactive) {
        this.out.prompt = input;
        input.prompt();
      }
      void closed.then(() => input!.close());
    }
    let lines = 0;
    try {
      for await (const line of input ?? this.config.execute!) {
        if (ws.readyState !== ReadyState.OPEN) break;
        const more = await this.perform(ws, line);
        if (!more) break;
        // A chunk of piped input holds thousands of short lines, all sent within one turn of the
        // event loop otherwise: let what arrives meanwhile be read and printed, and timers run.
        if (++lines % YIELD_EVERY_LINES === 0) await new Promise((resolve) => setImmediate(resolve));
        if (this.interactive && ws.readyState === ReadyState.OPEN) input!.prompt();
      }
    } finally {
      if (this.out.prompt !== null) {
        // The prompt is not coming back: take it off the screen.
        clearLine(process.stdout, 0);
        cursorTo(process.stdout, 0);
        this.out.prompt = null;
      }
      input?.close();
    }
  }

  /** Do what one line says. False when nothing more is to be read (a /close). */
  private async perform(ws: WebSocket, line: string): Promise<boolean> {
    const action = parseLine(line);
    switch (action.kind) {
      case 'text':
      case 'binary': {
        const data = action.kind === 'text' ? action.text : action.data;
        const sent = new Promise<void>((resolve) =>
          ws.send(data, { binary: action.kind === 'binary' }, () => resolve()),
        );
        // Read no more input until the socket has taken what waits (memory stays bounded). What the
        // server sends meanwhile is still read: the driver stops reading only while replies to what
        // it read wait (src/driver/connection.ts), never for what we send of our own accord.
        if (ws.bufferedAmount > IN_FLIGHT_BYTES) await sent;
        return true;
      }
      case 'ping':
        ws.ping(action.data);
        return true;
      case 'pong':
        ws.pong(action.data);
        return true;
      case 'close':
        ws.close(action.code, action.reason);
        return false;
      case 'help':
        this.out.line(COMMANDS_HELP.trimEnd());
        return true;
      case 'invalid':
        this.out.error(action.message);
        return true;
    }
  }

  /** --wait N: until N messages have arrived (or --timeout ms passed, or the connection closes). */
  private awaitReplies(ws: WebSocket): Promise<void> {
    const { wait, timeout } = this.config;
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | null = null;
      const check = (): void => {
        if (this.received < wait && ws.readyState === ReadyState.OPEN) return;
        finish();
      };
      const finish = (): void => {
        if (timer !== null) clearTimeout(timer);
        ws.off('message', check);
        ws.off('close', check);
        resolve();
      };
      ws.on('message', check);
      ws.on('close', check);
      if (timeout !== null) {
        timer = setTimeout(() => {
          this.waitTimedOut = true;
          this.out.error(`wsrfc connect: ${this.received} of ${wait} messages arrived within ${timeout} ms`);
          finish();
        }, timeout);
      }
      check();
    });
  }

  /** Ctrl-C: close with 1000 (as at the end of the input); a second one drops the connection. */
  private interrupt(ws: WebSocket): void {
    if (this.interrupted || ws.readyState !== ReadyState.OPEN) {
      ws.terminate();
      return;
    }
    this.interrupted = true;
    this.out.line('closing (Ctrl-C again drops the connection)');
    ws.close(1000);
  }

  /** --trace: the server's answer to the opening handshake (RFC 6455 §4.1; RFC 8441 §5 over HTTP/2). */
  private traceHandshake(headers: Record<string, string>): void {
    const { options } = this.config;
    const offered: string[] = [];
    const protocols = typeof options.protocols === 'string' ? [options.protocols] : (options.protocols ?? []);
    if (protocols.length > 0) offered.push(`subprotocols ${protocols.join(', ')}`);
    const deflate = deflateOptionsOf(options.perMessageDeflate);
    if (deflate !== null) offered.push(`extensions ${deflateOffer(deflate)}`);
    const http2 = options.http2 === true;
    const request = http2 ? 'an extended CONNECT (RFC 8441 §4)' : 'GET with Upgrade: websocket (RFC 6455 §4.1)';
    this.out.line(`opening handshake: ${request}${offered.length === 0 ? '' : `, offering ${offered.join('; ')}`}`);
    this.out.line(http2 ? '   <- :status 200' : '   <- 101 Switching Protocols');
    for (const [name, value] of Object.entries(headers)) this.out.line(`   <- ${name}: ${value}`);
  }

  /** --trace: each frame as formatFrame prints it, and a line that explains it (src/learn/explain.ts). */
  private traceFrame(frame: TracedFrame): void {
    this.explainer ??= new FrameExplainer(this.socket?.extensions ?? '', 'client');
    this.show(formatFrame(frame));
    this.show(`   ${describeReport(this.explainer.explain(frame))}`);
  }
}
