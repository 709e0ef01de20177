/**
 * Waiting, for the test peer and for the tests: a delay, a timeout around a promise, polling a
 * condition. Plain Node, nothing from src/.
 */

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolve with `promise`, or reject after `ms` with a message naming what was awaited. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/** Poll `predicate` every few ms until true; reject after `ms`. For state not exposed as events. */
export async function waitUntil(predicate: () => boolean, ms: number, what: string, every = 5): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await delay(every);
  }
}

export const KiB = 1024;
export const MiB = 1024 * 1024;
