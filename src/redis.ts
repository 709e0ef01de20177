/**
 * `wsrfc/redis`: the Redis pub/sub broker (src/scale/redis-broker.ts), the one part of the package
 * that needs the `redis` package (an optional peer dependency). `import 'wsrfc'` never loads it.
 */
export * from './scale/redis-broker.js';
