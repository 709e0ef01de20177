/**
 * A process-wide budget for inflated bytes held in unfinished compressed messages.
 *
 * Each message is held to `maxMessageSize` while it inflates (1009 past it), but permessage-deflate
 * (RFC 7692) lets a peer fill that for about a thousandth of the bytes on the wire, and a message
 * whose last fragment never comes holds what it has for as long as the connection lives. Many
 * peers doing that at once would hold many messages' worth: the limit per message does not bound
 * the process. This does (RFC 6455 §10.4: an implementation should protect itself against
 * exhausting its memory). Bytes count from the moment they are inflated until the message is
 * delivered to the application or dropped; the connection whose message would cross the limit is
 * closed with 1013 (Try Again Later: the server is overloaded, not the peer at fault).
 *
 * No socket and no timer: plain accounting, shared by every Receiver in the process.
 */

/** Eight messages of the default 64 MiB limit. */
export const DEFAULT_INFLATE_BUDGET = 512 * 1024 * 1024;

export class InflateBudget {
  /** Bytes inflated and not yet delivered or dropped, across the process. */
  private heldBytes = 0;

  constructor(
    /** The most inflated bytes the process holds in unfinished messages; may be changed at any time. */
    public limit = DEFAULT_INFLATE_BUDGET,
  ) {}

  get held(): number {
    return this.heldBytes;
  }

  /** Take `bytes` from the budget, or return false (taking nothing) if they do not fit. */
  reserve(bytes: number): boolean {
    if (this.heldBytes + bytes > this.limit) return false;
    this.heldBytes += bytes;
    return true;
  }

  release(bytes: number): void {
    this.heldBytes -= bytes;
  }
}

/** The one budget every connection of the process shares. */
export const inflateBudget = new InflateBudget();
