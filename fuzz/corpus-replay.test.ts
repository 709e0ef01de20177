/**
 * Every input of every fuzz target's corpus (fuzz/corpus/NAME/), replayed through the same target
 * function and its invariants (fuzz/targets/): the inputs the coverage-guided fuzzer kept, the seeds
 * from the spec tests, and every input of a fixed finding, as regression tests. No instrumentation
 * and no native code: `npm run fuzz:coverage` is where the fuzzer runs.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import { TARGETS } from './targets/index.js';

const corpusOf = (name: string): string[] => {
  const dir = new URL(`corpus/${name}/`, import.meta.url);
  return readdirSync(dir)
    .filter((file) => !file.startsWith('.'))
    .sort()
    .map((file) => new URL(file, dir).pathname);
};

describe('fuzz corpora: every kept input still holds every invariant', () => {
  for (const [name, load] of Object.entries(TARGETS)) {
    it(`${name}`, async () => {
      const target = await load();
      const files = corpusOf(name);
      if (files.length === 0) throw new Error(`fuzz/corpus/${name}/ is empty: run fuzz/engine/seed.ts`);
      for (const file of files) {
        try {
          await target.run(readFileSync(file));
        } catch (error) {
          if (error instanceof Error) error.message = `${file}: ${error.message}`;
          throw error;
        }
      }
    });
  }
});
