/**
 * What a fuzz target is: one surface a peer reaches, fed the fuzzer's bytes, checking invariants.
 * The same `run` serves the coverage-guided engine (`npm run fuzz:coverage`) and the corpus replay
 * in `npm test` (fuzz/corpus-replay.test.ts): a target imports nothing of the engine.
 */

export interface FuzzTarget {
  /** The surface, in a sentence: printed by the runner. */
  readonly description: string;
  /** The longest input the fuzzer makes for it. */
  readonly maxLength: number;
  /** Words of the surface's grammar for the mutator to insert (header names, parameter names, ...). */
  readonly dictionary: readonly string[];
  /**
   * Feed one input. Returns (or resolves) when every invariant held; throws an Error naming the
   * invariant otherwise. Inputs are arbitrary bytes: a target reads its own parameters from them.
   */
  run(input: Buffer): void | Promise<void>;
}

/** An invariant that failed: the message says which, with what. */
export class InvariantError extends Error {
  override readonly name = 'InvariantError';
}

export function check(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) throw new InvariantError(typeof message === 'string' ? message : message());
}

/**
 * Reads a target's parameters from the front of its input, then leaves the rest as data: an input
 * shorter than the parameters reads zeros, so every input is valid.
 */
export class InputReader {
  private at = 0;

  constructor(private readonly input: Buffer) {}

  byte(): number {
    return this.at < this.input.length ? this.input[this.at++]! : 0;
  }

  /** One of `choices`, chosen by the next byte. */
  choose<T>(choices: readonly T[]): T {
    return choices[this.byte() % choices.length]!;
  }

  /** The next `n` bytes, or as many as are left. */
  bytes(n: number): Buffer {
    const bytes = this.input.subarray(this.at, this.at + n);
    this.at += bytes.length;
    return bytes;
  }

  /** Whether the input is all read. */
  get done(): boolean {
    return this.at >= this.input.length;
  }

  /** What is left of the input. */
  rest(): Buffer {
    const rest = this.input.subarray(Math.min(this.at, this.input.length));
    this.at = this.input.length;
    return rest;
  }
}

/**
 * Cut `data` into chunks whose sizes come from `seed`: 0 delivers it whole, other values in pieces of
 * one byte up to a few hundred, so that every parser sees its input split at arbitrary places.
 */
export function chunks(data: Buffer, seed: number): Buffer[] {
  if (seed === 0 || data.length === 0) return [data];
  const out: Buffer[] = [];
  let x = seed * 0x9e3779b1 || 1;
  for (let at = 0; at < data.length;) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const size = seed % 4 === 1 ? 1 : 1 + ((x >>> 0) % (seed % 4 === 2 ? 8 : 300));
    out.push(data.subarray(at, at + size));
    at += size;
  }
  return out;
}
