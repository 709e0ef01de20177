/**
 * A coverage-guided fuzzing loop in the manner of libFuzzer: run the corpus, then mutate its inputs
 * and keep every mutant that reaches a new edge of `src/`, or an edge a new number of times
 * (libFuzzer's hit-count buckets). Findings (an exception out of `run`, an input slower than the
 * hang limit, the process past its memory limit) are written to the findings directory, one file
 * per distinct finding, and the run goes on. A watchdog thread ends the process, after saving the
 * input, when one input runs for far longer than the hang limit (an endless loop never returns).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { moduleCounters, recentCompares, resetCounters, totalEdges } from './instrument.js';
import { Random, mutate, type MutationContext } from './mutate.js';
import type { FuzzTarget } from '../targets/target.js';

export interface EngineOptions {
  name: string;
  target: FuzzTarget;
  corpusDir: string;
  findingsDir: string;
  /** Stop after this long (ms)... */
  durationMs: number;
  /** ...or this many executions, whichever comes first. */
  maxRuns: number;
  seed: number;
  /** An input that runs longer than this is a finding (RFC-sized inputs must never take a second). */
  hangMs: number;
  /** The watchdog ends the process when one input has run this long. */
  killMs: number;
  rssLimitMb: number;
  /** At the end, rewrite the corpus directory to the smallest inputs that keep its coverage. */
  minimize: boolean;
  log: (line: string) => void;
}

export interface EngineResult {
  executions: number;
  seconds: number;
  edgesCovered: number;
  edgesTotal: number;
  features: number;
  corpusSize: number;
  findings: string[];
}

const hash = (data: Buffer): string => createHash('sha1').update(data).digest('hex').slice(0, 16);

/** libFuzzer's hit-count buckets: 1, 2, 3, 4-7, 8-15, 16-31, 32-127, 128+. */
const BUCKET = new Uint8Array(256);
for (let n = 1; n < 256; n++) BUCKET[n] = 1 << (n <= 3 ? n - 1 : n < 8 ? 3 : n < 16 ? 4 : n < 32 ? 5 : n < 128 ? 6 : 7);

/** Which (edge, bucket) pairs have been seen: one byte of bucket bits per edge. */
class FeatureSet {
  private seen = new Uint8Array(0);
  features = 0;
  edges = 0;

  /** Merge the counters of the last execution; returns how many new features they brought. */
  merge(): number {
    const total = totalEdges();
    if (this.seen.length < total) {
      const grown = new Uint8Array(total);
      grown.set(this.seen);
      this.seen = grown;
    }
    let added = 0;
    let offset = 0;
    for (const counters of moduleCounters) {
      for (let i = 0; i < counters.length; i++) {
        const count = counters[i]!;
        if (count === 0) continue;
        const bit = BUCKET[count]!;
        const old = this.seen[offset + i]!;
        if ((old & bit) === 0) {
          if (old === 0) this.edges++;
          this.seen[offset + i] = old | bit;
          added++;
        }
      }
      offset += counters.length;
    }
    this.features += added;
    return added;
  }
}

/** Shared with the watchdog: [sequence, length, busy], then the input being run. */
class Watchdog {
  private readonly header: Int32Array;
  private readonly bytes: Uint8Array;
  private readonly worker: Worker;

  constructor(maxLength: number, killMs: number, findingsDir: string) {
    const shared = new SharedArrayBuffer(12 + maxLength);
    this.header = new Int32Array(shared, 0, 3);
    this.bytes = new Uint8Array(shared, 12);
    this.worker = new Worker(WATCHDOG, { eval: true, workerData: { shared, killMs, findingsDir } });
    this.worker.unref();
  }

  arm(input: Buffer): void {
    this.bytes.set(input.subarray(0, this.bytes.length));
    this.header[1] = Math.min(input.length, this.bytes.length);
    Atomics.add(this.header, 0, 1);
    Atomics.store(this.header, 2, 1);
  }

  disarm(): void {
    Atomics.store(this.header, 2, 0);
  }

  stop(): Promise<number> {
    return this.worker.terminate();
  }
}

const WATCHDOG = `
const { workerData } = require('node:worker_threads');
const { writeFileSync, writeSync, mkdirSync } = require('node:fs');
const { createHash } = require('node:crypto');
const header = new Int32Array(workerData.shared, 0, 3);
const bytes = new Uint8Array(workerData.shared, 12);
let last = -1, since = Date.now();
setInterval(() => {
  const seq = Atomics.load(header, 0);
  if (seq !== last || Atomics.load(header, 2) === 0) { last = seq; since = Date.now(); return; }
  if (Date.now() - since < workerData.killMs) return;
  const input = Buffer.from(bytes.subarray(0, header[1]));
  mkdirSync(workerData.findingsDir, { recursive: true });
  const file = workerData.findingsDir + '/timeout-' + createHash('sha1').update(input).digest('hex').slice(0, 16);
  writeFileSync(file, input);
  const ms = workerData.killMs;
  // Written synchronously: the process is killed on the next line.
  writeSync(2, '\\nFINDING timeout: one input ran for over ' + ms + ' ms; saved as ' + file + '\\n');
  process.kill(process.pid, 'SIGKILL');
}, 100);
`;

export async function runEngine(options: EngineOptions): Promise<EngineResult> {
  const { target, log } = options;
  const random = new Random(options.seed);
  const corpus: Buffer[] = [];
  const features = new FeatureSet();
  const findings = new Map<string, string>();
  const asyncErrors: unknown[] = [];
  const onAsyncError = (error: unknown): void => void asyncErrors.push(error);
  process.on('uncaughtException', onAsyncError);
  process.on('unhandledRejection', onAsyncError);
  const watchdog = new Watchdog(target.maxLength, options.killMs, options.findingsDir);
  const dictionary = target.dictionary.map((word) => Buffer.from(word, 'latin1'));
  const context: MutationContext = {
    random,
    maxLength: target.maxLength,
    dictionary,
    compares: recentCompares,
    other: () => (corpus.length === 0 ? Buffer.alloc(0) : random.pick(corpus)),
  };

  const saveFinding = (kind: string, input: Buffer, error: unknown): void => {
    const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    const stack = error instanceof Error ? (error.stack ?? '') : '';
    const where = /\n\s+at .*?\((.*?src\/[^)]*|.*?fuzz\/targets\/[^)]*)\)/.exec(stack)?.[1] ?? '';
    const key = `${kind} ${message.split('\n')[0]!.replace(/\d+/g, 'N').slice(0, 200)} ${where}`;
    if (findings.has(key)) return;
    mkdirSync(options.findingsDir, { recursive: true });
    const file = join(options.findingsDir, `${kind}-${hash(input)}`);
    writeFileSync(file, input);
    writeFileSync(`${file}.txt`, `${message}\n${stack}\n`);
    findings.set(key, file);
    log(`FINDING ${kind}: ${message.split('\n')[0]} (input saved as ${file})`);
  };

  let executions = 0;
  let confirming = false;
  /** Run one input; returns its new features, or -1 for a finding. */
  const execute = async (input: Buffer): Promise<number> => {
    resetCounters();
    watchdog.arm(input);
    const start = performance.now();
    let error: unknown = null;
    try {
      const result = target.run(input);
      if (result !== undefined) await result;
    } catch (thrown) {
      error = thrown;
    }
    const elapsed = performance.now() - start;
    watchdog.disarm();
    executions++;
    if (error === null && asyncErrors.length > 0) error = asyncErrors.shift();
    asyncErrors.length = 0;
    if (error !== null) {
      saveFinding('crash', input, error);
      return -1;
    }
    const added = features.merge();
    if (elapsed > options.hangMs && !confirming) {
      // Once more, to tell an input that is slow from a machine that was busy at that moment.
      confirming = true;
      const again = performance.now();
      await execute(input);
      const elapsedAgain = performance.now() - again;
      confirming = false;
      if (elapsedAgain > options.hangMs) {
        const times = `${Math.round(elapsed)} ms, then ${Math.round(elapsedAgain)} ms`;
        saveFinding('slow', input, new Error(`${input.length}-byte input ran for ${times}`));
      }
    }
    return added;
  };

  const started = Date.now();
  const seconds = (): number => (Date.now() - started) / 1000;
  const status = (label: string): void => {
    const rate = Math.round(executions / Math.max(seconds(), 0.001));
    const rss = Math.round(process.memoryUsage.rss() / 2 ** 20);
    log(
      `#${executions} ${label} cov: ${features.edges}/${totalEdges()} ft: ${features.features} ` +
        `corp: ${corpus.length} exec/s: ${rate} rss: ${rss}MB findings: ${findings.size}`,
    );
  };

  // The corpus first, smallest inputs first: each is kept in memory only if it adds coverage.
  mkdirSync(options.corpusDir, { recursive: true });
  const seeds = readCorpus(options.corpusDir);
  if (seeds.length === 0) seeds.push(Buffer.alloc(0));
  for (const seed of seeds) if ((await execute(seed)) > 0) corpus.push(seed);
  status('INITED');

  let lastStatus = Date.now();
  let rssExceeded = false;
  while (Date.now() - started < options.durationMs && executions < options.maxRuns && !rssExceeded) {
    const base = corpus.length === 0 ? Buffer.alloc(0) : pickBase(corpus, random);
    const input = mutate(base, context);
    const added = await execute(input);
    if (added > 0) {
      corpus.push(input);
      writeFileSync(join(options.corpusDir, hash(input)), input);
    }
    if ((executions & 0xff) === 0) {
      if (process.memoryUsage.rss() > options.rssLimitMb * 2 ** 20) {
        saveFinding('oom', input, new Error(`the process passed ${options.rssLimitMb} MB of resident memory`));
        rssExceeded = true;
      }
      // Let timers and I/O of earlier inputs run; a target's leftovers show up here as errors.
      await new Promise((resolve) => setImmediate(resolve));
      if (Date.now() - lastStatus > 10_000) {
        status('pulse');
        lastStatus = Date.now();
      }
    }
  }
  status('DONE');
  const result: EngineResult = {
    executions,
    seconds: seconds(),
    edgesCovered: features.edges,
    edgesTotal: totalEdges(),
    features: features.features,
    corpusSize: corpus.length,
    findings: [...findings.values()],
  };
  if (options.minimize) {
    const kept = await minimize(options.corpusDir, execute);
    log(`corpus minimised: ${kept.kept} of ${kept.total} inputs kept in ${options.corpusDir}`);
    result.corpusSize = kept.kept;
  }
  await watchdog.stop();
  process.off('uncaughtException', onAsyncError);
  process.off('unhandledRejection', onAsyncError);
  return result;
}

/** Mostly recent inputs (where new coverage was just found), sometimes any. */
function pickBase(corpus: readonly Buffer[], random: Random): Buffer {
  if (random.chance(2)) return corpus[corpus.length - 1 - random.below(Math.min(corpus.length, 16))]!;
  return random.pick(corpus);
}

export function readCorpus(dir: string): Buffer[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((name) => !name.startsWith('.'));
  } catch {
    return [];
  }
  return names
    .sort()
    .map((name) => readFileSync(join(dir, name)))
    .sort((a, b) => a.length - b.length);
}

/**
 * libFuzzer's merge: run every input of the directory, smallest first, against an empty coverage
 * map, and keep only those that add to it; inputs that are findings now are dropped. Files named
 * finding-* (the inputs of fixed findings) are left alone.
 */
async function minimize(
  dir: string,
  execute: (input: Buffer) => Promise<number>,
): Promise<{ kept: number; total: number }> {
  const fresh = new FeatureSet();
  // Inputs of fixed findings are kept whatever their coverage: they are the regression tests.
  const entries = readdirSync(dir)
    .filter((name) => !name.startsWith('.') && !name.startsWith('finding-'))
    .map((name) => ({ name, data: readFileSync(join(dir, name)) }))
    .sort((a, b) => a.data.length - b.data.length || (a.name < b.name ? -1 : 1));
  let kept = 0;
  for (const { name, data } of entries) {
    const found = await execute(data);
    // execute() merged into the run's features; merge again into the fresh set to decide.
    const added = found < 0 ? 0 : fresh.merge();
    const canonical = hash(data);
    if (added > 0) {
      kept++;
      if (name !== canonical) {
        rmSync(join(dir, name));
        writeFileSync(join(dir, canonical), data);
      }
    } else rmSync(join(dir, name));
  }
  return { kept, total: entries.length };
}
