/**
 * Every fuzz target, by name. Loaded lazily: the engine must install its coverage instrumentation
 * before any module of src/ is imported. A new target is a file in this folder and a line here; its
 * corpus lives in fuzz/corpus/NAME/.
 */
import type { FuzzTarget } from './target.js';

export const TARGETS: Readonly<Record<string, () => Promise<FuzzTarget>>> = {
  handshake: async () => (await import('./handshake.js')).target,
  negotiation: async () => (await import('./negotiation.js')).target,
  'echo-server': async () => (await import('./echo-server.js')).target,
  topics: async () => (await import('./topics.js')).target,
  receiver: async () => (await import('./receiver.js')).target,
  connection: async () => (await import('./connection.js')).target,
};
