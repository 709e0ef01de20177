/**
 * Scale-out benchmark (issue 15), against the chat server (src/cli/chat.ts) in its own processes:
 *
 *   fanout   one 32 B message published to 10,000 subscribers of one room: the time from the
 *            publisher's send until every subscriber has it, (a) one process, (b) two workers with
 *            Redis (the publisher on one worker, subscribers on both), measured side by side.
 *   latency  one message in flight, from a member on one host to a member on another through Redis
 *            (127.0.0.2 -> 127.0.0.3), against the same from a member to another on the same
 *            process: p50/p99 µs.
 *
 * The subscribers are lean raw clients in this process (a handshake, then counting 34-byte frames),
 * so the fan-out time includes this process receiving 10,000 frames. Usage:
 *
 *   node --import tsx bench/scale.ts [--reps 15] [--samples 2000]
 *
 * Needs redis-server. Prints a Markdown table.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { RedisServer } from '../spec-tests/helpers/redis-server.js';

const { values } = parseArgs({
  options: {
    reps: { type: 'string', default: '15' },
    samples: { type: 'string', default: '2000' },
    subscribers: { type: 'string', default: '10000' },
  },
});
const REPS = Number(values.reps);
const SAMPLES = Number(values.samples);
const SUBSCRIBERS = Number(values.subscribers);
const MESSAGE = 'x'.repeat(32);
/** A server's unmasked text frame with a 32-byte payload: 2 header bytes (RFC 6455 §5.2). */
const FRAME_BYTES = 34;

async function startChat(args: string[]): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/chat.ts', '--port', '0', '--quiet', ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  for (;;) {
    const match = /listening on ws:\/\/[^:]+:(\d+)\//.exec(output);
    if (match !== null) return { child, port: Number(match[1]) };
    if (child.exitCode !== null) throw new Error(`chat exited: ${output}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function stopChat(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
}

/** A lean client: handshake, then counts bytes of frames (all 34-byte text frames here). */
class Lean {
  bytes = 0;
  private head = true;
  private buffered = '';
  onFrames: (() => void) | null = null;
  private constructor(readonly socket: Socket) {}

  static async open(port: number, host: string, path: string): Promise<Lean> {
    const socket = connect({ port, host });
    socket.setNoDelay(true);
    const client = new Lean(socket);
    await once(socket, 'connect');
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    await new Promise<void>((resolve, reject) => {
      socket.on('error', reject);
      socket.on('data', (chunk: Buffer) => {
        if (client.head) {
          client.buffered += chunk.toString('latin1');
          const end = client.buffered.indexOf('\r\n\r\n');
          if (end < 0) return;
          if (!client.buffered.startsWith('HTTP/1.1 101')) reject(new Error(client.buffered));
          client.head = false;
          client.bytes += client.buffered.length - end - 4;
          client.buffered = '';
          resolve();
        } else client.bytes += chunk.length;
        client.onFrames?.();
      });
    });
    return client;
  }

  /** A masked text frame of `text` (≤ 125 bytes), RFC 6455 §5.3 (zero key: the bytes are the text). */
  send(text: string): void {
    const payload = Buffer.from(text);
    this.socket.write(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length, 0, 0, 0, 0]), payload]));
  }
}

async function openMany(count: number, port: number, host: string, path: string): Promise<Lean[]> {
  const clients: Lean[] = [];
  for (let i = 0; i < count; i += 200) {
    const batch = Array.from({ length: Math.min(200, count - i) }, () => Lean.open(port, host, path));
    clients.push(...(await Promise.all(batch)));
  }
  return clients;
}

/** Until every subscriber has `frames` frames; resolves with the time it took from `start`. */
function allReceived(clients: Lean[], frames: number, start: bigint): Promise<number> {
  return new Promise((resolve) => {
    let missing = clients.filter((c) => c.bytes < frames * FRAME_BYTES).length;
    const done = (): void => resolve(Number(process.hrtime.bigint() - start) / 1e6);
    if (missing === 0) return done();
    for (const client of clients) {
      if (client.bytes >= frames * FRAME_BYTES) continue;
      client.onFrames = () => {
        if (client.bytes < frames * FRAME_BYTES) return;
        client.onFrames = null;
        if (--missing === 0) done();
      };
    }
  });
}

/** The fan-out: `REPS` publications, each waited for at every subscriber. Milliseconds per publication. */
async function fanout(port: number, hostOf: (i: number) => string, warm: () => Promise<void>): Promise<number[]> {
  const subscribers = await openMany(SUBSCRIBERS, port, hostOf(0), '/fanout');
  const publisher = await Lean.open(port, hostOf(0), '/fanout');
  subscribers.push(publisher);
  await warm();
  // Until a probe reaches everyone (subscriptions in place on both workers).
  let frames = 0;
  for (;;) {
    publisher.send(MESSAGE);
    frames++;
    const ready = await Promise.race([
      allReceived(subscribers, frames, process.hrtime.bigint()).then(() => true),
      new Promise((resolve) => setTimeout(resolve, 2000, false)),
    ]);
    if (ready) break;
    for (const client of subscribers) client.onFrames = null;
    await new Promise((resolve) => setTimeout(resolve, 500));
    frames = Math.max(...subscribers.map((c) => Math.floor(c.bytes / FRAME_BYTES)));
    for (const c of subscribers) c.bytes = frames * FRAME_BYTES;
  }
  const times: number[] = [];
  for (let rep = 0; rep < REPS; rep++) {
    const start = process.hrtime.bigint();
    publisher.send(MESSAGE);
    frames++;
    times.push(await allReceived(subscribers, frames, start));
  }
  for (const client of subscribers) client.socket.destroy();
  return times;
}

/** One message in flight from `from` to `to`, `SAMPLES` times: µs each. */
async function latency(from: Lean, to: Lean): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < SAMPLES + 100; i++) {
    const target = to.bytes + FRAME_BYTES;
    const start = process.hrtime.bigint();
    const arrived = new Promise<void>((resolve) => {
      to.onFrames = () => {
        if (to.bytes >= target) resolve();
      };
    });
    from.send(MESSAGE);
    await arrived;
    // The first 100 warm up.
    if (i >= 100) out.push(Number(process.hrtime.bigint() - start) / 1e3);
  }
  to.onFrames = null;
  return out;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function main(): Promise<void> {
  const redis = await RedisServer.start();
  const rows: string[] = [];
  try {
    // (a) one process.
    const single = await startChat([]);
    const one = await fanout(
      single.port,
      () => '127.0.0.1',
      async () => {},
    );
    await stopChat(single.child);
    // (b) two workers, Redis between them.
    const pair = await startChat(['--workers', '2', '--broker', redis.url]);
    const two = await fanout(
      pair.port,
      () => '127.0.0.1',
      async () => {},
    );
    await stopChat(pair.child);
    rows.push(
      `| fan-out, 1 process | ms from send to all ${SUBSCRIBERS} | ${percentile(one, 50).toFixed(1)} | ${percentile(one, 90).toFixed(1)} |`,
      `| fan-out, 2 workers + Redis | ms from send to all ${SUBSCRIBERS} | ${percentile(two, 50).toFixed(1)} | ${percentile(two, 90).toFixed(1)} |`,
    );

    // Latency: same process against across hosts through Redis, blocks interleaved.
    const hostA = await startChat(['--host', '127.0.0.2', '--broker', redis.url]);
    const hostB = await startChat(['--host', '127.0.0.3', '--broker', redis.url]);
    const sender = await Lean.open(hostA.port, '127.0.0.2', '/lat');
    const near = await Lean.open(hostA.port, '127.0.0.2', '/lat');
    const far = await Lean.open(hostB.port, '127.0.0.3', '/lat');
    await new Promise((resolve) => setTimeout(resolve, 500));
    const same: number[] = [];
    const cross: number[] = [];
    for (let block = 0; block < 4; block++) {
      same.push(...(await latency(sender, near)));
      cross.push(...(await latency(sender, far)));
    }
    rows.push(
      `| latency, same process | µs, p50 / p99 | ${percentile(same, 50).toFixed(0)} | ${percentile(same, 99).toFixed(0)} |`,
      `| latency, across hosts through Redis | µs, p50 / p99 | ${percentile(cross, 50).toFixed(0)} | ${percentile(cross, 99).toFixed(0)} |`,
    );
    for (const client of [sender, near, far]) client.socket.destroy();
    await Promise.all([stopChat(hostA.child), stopChat(hostB.child)]);
  } finally {
    await redis.stop();
  }
  console.log(`| scenario | metric | p50 | p90 (fan-out) / p99 (latency) |\n|---|---|--:|--:|\n${rows.join('\n')}`);
}

await main();
