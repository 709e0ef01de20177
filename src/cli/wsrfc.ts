#!/usr/bin/env node
/**
 * The `wsrfc` command: one program, a subcommand each (`wsrfc echo`, `wsrfc connect URL`,
 * `wsrfc conformance ...`). Each subcommand's module is loaded only when it is asked for, so that
 * `wsrfc connect` does not load the server and the explorer.
 */
import { readFileSync } from 'node:fs';

const HELP = `Usage: wsrfc <command> [options]

WebSockets (RFC 6455, RFC 7692 permessage-deflate, RFC 8441 over HTTP/2) from the command line.

Commands:
  echo [options]               an echo server, with the protocol explorer and --trace (wsrfc echo --help)
  connect URL [options]        an interactive client: lines become messages, what arrives is printed
                               (wsrfc connect --help)
  conformance server URL       run Autobahn|Testsuite's 517 cases against a WebSocket server (it must
                               echo), with the suite's verdicts and reports (wsrfc conformance --help)
  conformance client           ... or against a client: serves the cases on the suite's endpoints
                               (/getCaseCount, /runCase, /updateReports) to the client's driver

  -h, --help                   this text
  -v, --version                the version of wsrfc
`;

function version(): string {
  // package.json is two levels up from src/cli/ and from dist/cli/ alike.
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Runs `wsrfc ARGS...`; resolves with the exit status, or with null for a command that keeps running (echo). */
async function main(argv: string[]): Promise<number | null> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'echo': {
      const { echoMain } = await import('./echo.js');
      echoMain(rest);
      return null;
    }
    case 'connect': {
      const { connectMain } = await import('./connect.js');
      return connectMain(rest);
    }
    case 'conformance': {
      const { conformanceMain } = await import('../conformance/main.js');
      return conformanceMain(rest);
    }
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(HELP);
      return 0;
    case '-v':
    case '--version':
      process.stdout.write(`${version()}\n`);
      return 0;
    case undefined:
      process.stderr.write(`wsrfc: which command?\n\n${HELP}`);
      return 2;
    default:
      process.stderr.write(`wsrfc: unknown command ${JSON.stringify(command)}\n\n${HELP}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (status) => {
    // Exit once stdout has taken everything (a pipe may still be draining).
    if (status !== null) process.stdout.write('', () => process.exit(status));
  },
  (error: unknown) => {
    process.stderr.write(`wsrfc: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
