/**
 * RFC 6455 §10.4: "Implementations that have implementation- and/or platform-specific limitations
 * regarding the frame size or total message size after reassembly from multiple frames MUST protect
 * themselves against exceeding those limits." Here the limits are on memory: what a crowd of
 * hostile peers can make a fresh echo server hold, against what the README's limits say one peer
 * can cost; the server runs on this Node (runtime-matrix.test.ts runs the same tests with the
 * server on Bun and on Deno). The tests and their bounds: helpers/hostile-peers.ts.
 */
import { THIS_NODE, hostilePeerTests } from './helpers/hostile-peers.js';

hostilePeerTests(THIS_NODE);
