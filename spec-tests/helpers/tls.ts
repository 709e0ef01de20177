/**
 * A self-signed certificate for `localhost`, made by openssl for the TLS tests (wss://, HTTP/2 over
 * TLS), in a temporary directory of its own so that the CLI can be given the files too.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCertificate {
  /** The directory holding key.pem and cert.pem (and whatever else the test puts there). */
  dir: string;
  keyFile: string;
  certFile: string;
  key: Buffer;
  cert: Buffer;
  /** Remove the directory. */
  remove(): void;
}

/** A new certificate, or why there is none (no openssl): the caller skips, saying so. */
export function makeTestCertificate(prefix: string): TestCertificate | string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const remove = (): void => rmSync(dir, { recursive: true, force: true, maxRetries: 20, retryDelay: 100 });
  try {
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem', '-days', '1'].concat([
        '-subj',
        '/CN=localhost',
      ]),
      { cwd: dir, stdio: 'ignore', timeout: 20_000 },
    );
    const keyFile = join(dir, 'key.pem');
    const certFile = join(dir, 'cert.pem');
    return { dir, keyFile, certFile, key: readFileSync(keyFile), cert: readFileSync(certFile), remove };
  } catch (error) {
    remove();
    return `openssl is not available to make a test certificate: ${(error as Error).message}`;
  }
}
