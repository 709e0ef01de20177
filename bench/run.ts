/**
 * Entry point of `npm run bench`.
 *
 *   npm run bench                           every suite, in the order below
 *   npm run bench -- codec                  only the named suites (several may be given)
 *   npm run bench -- server --only B,C      options after the suite names go to the suites
 *   npm run bench -- --list                 the suites there are
 *
 * A suite is a function that runs its measurements (in child processes of its own, if it needs a
 * clean VM per measurement) and prints its results. To add one, add an entry to SUITES.
 */
import { runCodecBench } from './codec.js';
import { runHostileMemoryBench } from './hostile-memory.js';
import { runHttp2Bench } from './http2.js';
import { main as runServerBench } from './server.js';
import { runStreamBench } from './stream.js';

interface Suite {
  description: string;
  run(options: string[]): Promise<void>;
}

const SUITES: Record<string, Suite> = {
  codec: {
    description: 'frame parser and writer throughput, ours vs ws (pure JS) vs ws + bufferutil',
    run: () => runCodecBench(),
  },
  server: {
    description:
      'servers under load: scenarios A-F, Fz, broadcast, deflate; ours vs ws vs raw TCP (bench/server.ts --help)',
    run: async (options) => {
      const code = await runServerBench(options);
      if (code !== 0) process.exitCode = code;
    },
  },
  stream: {
    description:
      'one 1 GiB message echoed: ours streamed vs ours and ws assembling it whole; MB/s and server peak RSS (bench/stream.ts)',
    run: (options) => runStreamBench(options),
  },
  http2: {
    description: 'WebSockets over HTTP/2 (one h2c session) vs HTTP/1.1 (a connection each): scenario C, idle memory',
    run: (options) => runHttp2Bench(options),
  },
  hostile: {
    description: 'what 1, 10, 100 hostile peers make the server hold on Node, Bun, Deno (bench/hostile-memory.ts)',
    run: (options) => runHostileMemoryBench(options),
  },
};

function usage(): string {
  const names = Object.entries(SUITES).map(([name, suite]) => `  ${name.padEnd(10)} ${suite.description}`);
  return ['usage: npm run bench [-- <suite>...]', 'suites (all of them when none is named):', ...names].join('\n');
}

async function main(args: string[]): Promise<number> {
  if (
    args.includes('--list') ||
    ((args.includes('--help') || args.includes('-h')) && !Object.hasOwn(SUITES, args[0] ?? ''))
  ) {
    process.stdout.write(`${usage()}\n`);
    return 0;
  }
  const firstOption = args.findIndex((arg) => arg.startsWith('-'));
  const options = firstOption === -1 ? [] : args.slice(firstOption);
  args = firstOption === -1 ? args : args.slice(0, firstOption);
  const unknown = args.filter((name) => !Object.hasOwn(SUITES, name));
  if (unknown.length > 0) {
    process.stderr.write(`unknown suite${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}\n${usage()}\n`);
    return 2;
  }
  const names = args.length > 0 ? [...new Set(args)] : Object.keys(SUITES);
  for (const name of names) {
    process.stdout.write(`\n=== ${name}: ${SUITES[name]!.description}\n`);
    await SUITES[name]!.run(options);
  }
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
