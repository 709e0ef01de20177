/**
 * What hostile peers can make the echo server hold, on Node, Bun and Deno: issue 24's three probes,
 * run by 1, 10 and 100 peers at once against one server per runtime, one probe after the other and
 * then again on the same server (rounds), measured from outside and from inside.
 *
 *   npm run bench -- hostile [--runtime node,bun,deno] [--peers 1,10,100] [--rounds 2] [--probes pings,heads,echoes]
 *                            [--library PATH]
 *   (or: node --import tsx bench/hostile-memory.ts [the same options])
 *
 * The server is spec-tests/helpers/echo-server-process.ts with the echo CLI's limits (highWaterMark
 * 1 MiB, maxHeaderSize 16 KiB) but no pings and no write deadline (a busy machine must not drop the
 * peers being measured), run by the runtime from src/ (--runtime takes what bench/runtime.ts
 * takes), or from --library, a compiled index.js (another commit's, to compare: `git archive REF src
 * tsconfig.json tsconfig.build.json | tar -x -C DIR`, then `npx tsc -p DIR/tsconfig.build.json`).
 * The probes, each peer over raw TCP with the test peer's frames:
 *
 *   pings    a handshake, then empty masked pings as fast as TCP takes them; the pongs are never read
 *   heads    a request head with a header line of 1 MiB (refused with 431, then dropped)
 *   echoes   a handshake, then 16 KiB binary messages as fast as TCP takes them; the echoes are never read
 *
 * Reported per probe: the peak growth of the server's resident set while it runs (sampled every
 * 10 ms from /proc), the server's CPU time meanwhile; then, for pings and echoes, with every peer
 * held back: live memory (reachable after a full garbage collection, the runtime's own count), what
 * is queued for the peers (their bufferedAmount, the sockets' unwritten bytes included), what the
 * paused sockets hold unread, and the resident set then; and live memory and the resident set once
 * the peers are gone (after a full collection). Live and resident figures are growths over the
 * server's values after its warm-up, before the first round.
 */
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { destroyCrowds, flood, unfinishedHeads } from '../spec-tests/helpers/hostile-crowd.js';
import { OP, clientFrame } from '../spec-tests/helpers/peer/index.js';
import { ServerProcess, rss, type ServerRuntime } from '../spec-tests/helpers/server-process.js';
import { benchRuntime } from './runtime.js';

const MiB = 1024 * 1024;
const PROBES = ['pings', 'heads', 'echoes'] as const;
type Probe = (typeof PROBES)[number];

function serverRuntime(spec: string, library: string | undefined): ServerRuntime {
  const runtime = benchRuntime(spec);
  return {
    kind: runtime.kind,
    label: library === undefined ? runtime.version : `${runtime.version}, ${library}`,
    ...(library === undefined ? {} : { library: () => resolve(library) }),
    command: (script, args) => {
      if (runtime.kind === 'bun') return [runtime.binary, [script, ...args]];
      if (runtime.kind === 'deno') {
        // Sloppy imports: the server script takes src/index.js for src/index.ts, as tsc's NodeNext wants.
        const flags = ['run', '--allow-all', '--unstable-sloppy-imports', '--v8-flags=--expose-gc'];
        return [runtime.binary, [...flags, script, ...args]];
      }
      return [runtime.binary, ['--expose-gc', '--import', 'tsx', script, ...args]];
    },
    env: { ...process.env, DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' },
  };
}

const KEY = Buffer.from([1, 2, 3, 4]);
const PING = clientFrame({ opcode: OP.PING, maskKey: KEY });
const MESSAGE = clientFrame({ opcode: OP.BINARY, payload: Buffer.alloc(16 * 1024, 0x61), maskKey: KEY });

interface Row {
  peers: number;
  round: number;
  probe: Probe;
  peak: number;
  cpu: number;
  held?: { live: number; buffered: number; readable: number; rss: number };
  after: { live: number; rss: number };
}

async function runProbe(server: ServerProcess, probe: Probe, peers: number): Promise<Omit<Row, 'round' | 'after'>> {
  let held: Row['held'];
  const { growth, cpu } = await server.peakGrowth(async () => {
    if (probe === 'heads') {
      const crowd = unfinishedHeads(server.port, peers, MiB);
      await Promise.race([Promise.all(crowd.map((peer) => peer.closed)), new Promise((r) => setTimeout(r, 60_000))]);
      return;
    }
    const flooders = await flood(server, probe === 'pings' ? PING : MESSAGE, peers);
    const memory = await server.memory();
    held = { live: memory.live, buffered: memory.buffered, readable: memory.readable, rss: rss(server.pid) };
    for (const socket of flooders) socket.destroy();
  });
  await server.until('the peers to leave', (state) => state.clients === 0);
  return { peers, probe, peak: growth, cpu, held };
}

function mib(bytes: number): string {
  return (bytes / MiB).toFixed(1);
}

export async function runHostileMemoryBench(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      runtime: { type: 'string', default: 'node,bun,deno' },
      peers: { type: 'string', default: '1,10,100' },
      rounds: { type: 'string', default: '2' },
      probes: { type: 'string', default: PROBES.join(',') },
      library: { type: 'string' },
    },
  });
  const peerCounts = values.peers.split(',').map(Number);
  const rounds = Number(values.rounds);
  const probes = values.probes.split(',') as Probe[];
  for (const spec of values.runtime.split(',')) {
    const runtime = serverRuntime(spec, values.library);
    console.log(
      `\n${runtime.label}: peak = resident growth during the probe; held = with every peer held back; after = peers gone`,
    );
    console.log(
      '| peers | round | probe | peak RSS | CPU s | held: live | queued | unread | RSS | after: live | RSS |',
    );
    console.log('|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|');
    for (const peers of peerCounts) {
      // A fresh server per crowd size, warmed up; its values then are the baseline.
      const server = await ServerProcess.start(runtime, {
        pingInterval: 0,
        // Nothing dropped for being slow: what the server holds is the question.
        writeTimeout: 0,
        handshakeTimeout: 60_000,
      });
      try {
        await server.warmUp();
        const base = await server.memory();
        for (let round = 1; round <= rounds; round++) {
          for (const probe of probes) {
            const row = await runProbe(server, probe, peers);
            const after = await server.memory();
            const h = row.held;
            const cells = [
              peers,
              round,
              probe,
              `+${mib(row.peak)}`,
              row.cpu.toFixed(1),
              h === undefined ? '' : `+${mib(h.live - base.live)}`,
              h === undefined ? '' : mib(h.buffered),
              h === undefined ? '' : mib(h.readable),
              h === undefined ? '' : `+${mib(h.rss - base.rss)}`,
              `+${mib(after.live - base.live)}`,
              `+${mib(after.rss - base.rss)}`,
            ];
            console.log(`| ${cells.join(' | ')} |`);
          }
        }
      } finally {
        destroyCrowds();
        server.stop();
      }
    }
  }
  console.log('\nfigures in MiB');
}

if (process.argv[1] !== undefined && pathToFileURL(process.argv[1]).href === import.meta.url) {
  await runHostileMemoryBench(process.argv.slice(2));
  process.exit(0);
}
