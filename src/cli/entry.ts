import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * Whether the module at `moduleUrl` is the program the runtime was started with, so that a CLI file
 * can be both a bin (`wsrfc-echo`, `node dist/cli/echo.js`) and a module the `wsrfc` command imports
 * without it running. `import.meta.main` would say it, but Node 20 and 22 lack it; the script's path
 * does on every runtime once both sides have their symbolic links resolved (npm links a bin into
 * node_modules/.bin; Node reports the module by its real path, Deno by the link's).
 */
export function isEntryPoint(moduleUrl: string): boolean {
  const script = process.argv[1];
  if (script === undefined || !moduleUrl.startsWith('file:')) return false;
  const real = (path: string): string | null => {
    try {
      return realpathSync(path);
    } catch {
      return null;
    }
  };
  const self = real(fileURLToPath(moduleUrl));
  // `node dist/cli/echo` (no extension) runs dist/cli/echo.js too.
  return self !== null && [script, `${script}.js`].some((path) => real(path) === self);
}
