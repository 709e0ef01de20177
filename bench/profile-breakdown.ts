/**
 * Where a server's CPU time per message goes, from a `--cpu-prof` profile of one measurement
 * (bench/server.ts --profile DIR writes them) and the server's CPU per message in that measurement.
 *
 *   node --import tsx bench/profile-breakdown.ts PROFILE.cpuprofile US_PER_MSG [LABEL]
 *
 * Every sample is put in one bucket by its innermost frame (and, for Node's own code, by whether our
 * code called it): the write system call (which on loopback also delivers the bytes to the
 * receiver), Node's read path and event loop, Node's write path, Node called from our code (Buffer,
 * events), our parser, our framing, our driver and state machine, the application, the garbage
 * collector. Each bucket's share of the busy time, times the CPU per message, is its µs per message.
 */
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}

const PARSE = /\/(receiver|mask|utf8|payload-buffer)\.js$/;
const FRAMING = /\/(writer|sender|frame)\.js$/;
const DRIVER = /\/(protocol|connection|websocket|options|timer-wheel)\.js$/;
const APP = /\/servers\/[^/]+\.ts$/;
/** Node's socket write path, from `stream.write()` down to the handle. */
const WRITE_PATH = new Set([
  'Writable.write',
  '_write',
  'writeOrBuffer',
  'Socket._write',
  'Socket._writeGeneric',
  'writeGeneric',
  'handleWriteReq',
  'createWriteWrap',
  'afterWriteDispatched',
  'onwrite',
  'afterWriteTick',
  'afterWrite',
]);

function bucketOf(stack: Node[]): string | null {
  const leaf = stack[0]!.callFrame;
  if (leaf.functionName === '(idle)') return null;
  if (leaf.functionName === '(garbage collector)') return 'GC';
  if (leaf.functionName === '(program)') return 'V8 and native, unattributed';
  if (leaf.functionName === 'writeBuffer' || leaf.functionName === 'writev') return 'the write system call';
  if (PARSE.test(leaf.url)) return 'ours: parse (header, unmask, UTF-8, message views)';
  if (FRAMING.test(leaf.url)) return 'ours: frame and queue the replies';
  if (DRIVER.test(leaf.url)) return 'ours: driver, state machine, send()';
  if (APP.test(leaf.url)) return 'the echo handler';
  if (stack.some((node) => WRITE_PATH.has(node.callFrame.functionName) && node.callFrame.url.startsWith('node:')))
    return 'Node: write path (Writable, WriteWrap)';
  const ours = stack.some((node) => /\/dist\/[^/]+\.js$/.test(node.callFrame.url));
  return ours ? 'Node: called by our code (Buffer, events, ...)' : 'Node: read path, event loop, timers';
}

const [file, usArg, label] = process.argv.slice(2);
if (file === undefined || usArg === undefined) {
  process.stderr.write('usage: profile-breakdown.ts PROFILE US_PER_MSG [LABEL]\n');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: Node[]; samples: number[]; timeDeltas: number[] };
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const parent = new Map<number, number>();
for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
const buckets = new Map<string, number>();
let busy = 0;
let elapsed = 0;
for (let i = 0; i < profile.samples.length; i++) {
  const delta = profile.timeDeltas[i] ?? 0;
  elapsed += delta;
  // The first second is start-up (module loading, the handshakes).
  if (elapsed < 1_000_000) continue;
  const stack: Node[] = [];
  for (let id: number | undefined = profile.samples[i]; id !== undefined; id = parent.get(id))
    stack.push(byId.get(id)!);
  const bucket = bucketOf(stack);
  if (bucket === null) continue;
  buckets.set(bucket, (buckets.get(bucket) ?? 0) + delta);
  busy += delta;
}
const us = Number(usArg);
process.stdout.write(`| ${label ?? file} | share of busy | µs per message |\n|---|--:|--:|\n`);
for (const [bucket, time] of [...buckets].sort((a, b) => b[1] - a[1])) {
  process.stdout.write(`| ${bucket} | ${((time / busy) * 100).toFixed(1)} % | ${((time / busy) * us).toFixed(3)} |\n`);
}
process.stdout.write(`| total | 100 % | ${us.toFixed(3)} |\n`);
