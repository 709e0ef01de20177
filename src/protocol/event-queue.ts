import { Opcode } from './constants.js';
import type { ProtocolError } from './errors.js';
import type { ProtocolEvent } from './events.js';
import type { Receiver, ReceiverHandler } from './receiver.js';

/**
 * The protocol's queue (src/protocol/protocol.ts): the events for the driver, and the effects of
 * frames the parse read ahead of the application, in order.
 *
 * The parse may run ahead through what has arrived (a read of many small messages is much cheaper
 * parsed in one go than a frame at a time between the application's calls), but a frame must take
 * effect only once the application is done with the events before it: it may answer a message,
 * close, or switch `streamMessages`, and that has to come first. So what a frame read ahead does
 * to the connection waits here as an entry, carried out when the driver reaches it: a ping's pong
 * (RFC 6455 §5.5.2), the echo of the peer's close (§5.5.1), a failure (§7.1.7). A frame read
 * with nothing ahead of it in the queue takes effect at once.
 *
 * The queue is the receiver's handler: the receiver pauses after each event it gives, and reads
 * ahead only over frames whose reading the application cannot change (receiver.ts,
 * `nextFrameReadyAhead()`).
 */

/**
 * How many entries parsing may run ahead of the driver: enough to parse a read's small messages in
 * one go, few enough that a read of tiny frames does not turn into a long queue of event objects.
 */
const READ_AHEAD = 32;

/** An effect of a frame read ahead, or a message read whole handed over as a stream. */
export type Deferred =
  /** A ping read ahead: its pong is due when it is reached. */
  | { type: 'pingAhead'; data: Buffer }
  /** The peer's close frame read ahead (§5.5.1, §7.1.5). */
  | { type: 'closeAhead'; code: number; reason: string }
  /** A violation read ahead (§7.1.7); `opensText`: in a text message's first frame (streamed, it had started). */
  | { type: 'failAhead'; error: ProtocolError; opensText: boolean }
  /** A message read whole before `streamMessages` was turned on: handed over as a stream. */
  | { type: 'wholeAsStream'; data: Buffer; isBinary: boolean }
  | { type: 'wholeData'; data: Buffer };

export type Entry = ProtocolEvent | Deferred;

/** What the protocol does when an entry with an effect is reached. */
export interface DeferredEffects {
  answerPing(data: Buffer): void;
  peerClosed(code: number, reason: string): void;
  failOn(error: ProtocolError): void;
}

const MESSAGE_END: ProtocolEvent = { type: 'messageEnd' };

export class EventQueue implements ReceiverHandler {
  /** A streamed message was handed over (`messageStart`) and has not ended (`messageEnd`, `messageAbort`). */
  private streamOpen = false;
  /** The receiver whose events these are, once there is one. */
  receiver: Receiver | null = null;
  // Allocated with the first entry: an idle connection should cost as few objects as possible.
  private entries: Entry[] | null = null;
  private head = 0;

  constructor(private readonly effects: DeferredEffects) {}

  /** Entries waiting. */
  get length(): number {
    return this.entries === null ? 0 : this.entries.length - this.head;
  }

  push(entry: Entry): void {
    (this.entries ??= []).push(entry);
  }

  // The receiver's events (ReceiverHandler).

  onMessage(data: Buffer, isBinary: boolean): void {
    this.parsed({ type: 'message', data, isBinary });
  }

  onMessageStart(isBinary: boolean): void {
    this.parsed({ type: 'messageStart', isBinary });
  }

  onMessageData(data: Buffer): void {
    this.parsed({ type: 'messageData', data });
  }

  onMessageEnd(): void {
    this.parsed({ type: 'messageEnd' });
  }

  onPing(data: Buffer): void {
    if (this.length > 0) return this.parsed({ type: 'pingAhead', data });
    this.effects.answerPing(data);
    this.parsed({ type: 'ping', data });
  }

  onPong(data: Buffer): void {
    this.parsed({ type: 'pong', data });
  }

  onClose(code: number, reason: string): void {
    if (this.length > 0) this.push({ type: 'closeAhead', code, reason });
    else this.effects.peerClosed(code, reason);
  }

  onError(error: ProtocolError): void {
    if (this.length === 0) return this.effects.failOn(error);
    const opensText = error.violation === 'InvalidUtf8' && this.receiver!.frameOpcode === Opcode.Text;
    this.push({ type: 'failAhead', error, opensText });
  }

  /** An event from the receiver: parsing pauses after it, reading ahead at most READ_AHEAD entries. */
  private parsed(entry: Entry): void {
    this.push(entry);
    this.receiver!.pause(this.length < READ_AHEAD);
  }

  /**
   * The next event, carrying out the effects of the entries before it; null once none is left.
   * `streaming`: whether messages are streamed now (see `Deferred`'s `failAhead`).
   */
  next(streaming: boolean): ProtocolEvent | null {
    const effects = this.effects;
    const entries = this.entries;
    if (entries === null) return null;
    while (this.head < entries.length) {
      const entry = entries[this.head]!;
      // The common case first.
      if (entry.type === 'message') {
        this.head++;
        return entry;
      }
      switch (entry.type) {
        case 'messageStart':
          this.head++;
          this.streamOpen = true;
          return entry;
        case 'messageEnd':
          this.head++;
          this.streamOpen = false;
          return entry;
        case 'pingAhead':
          this.head++;
          effects.answerPing(entry.data);
          return { type: 'ping', data: entry.data };
        case 'closeAhead':
          this.head++;
          effects.peerClosed(entry.code, entry.reason);
          break;
        case 'failAhead':
          if (entry.opensText && streaming) {
            // Streamed, the message would have started before its bad byte was read.
            this.streamOpen = true;
            entries[this.head] = { type: 'failAhead', error: entry.error, opensText: false };
            return { type: 'messageStart', isBinary: false };
          }
          this.head++;
          effects.failOn(entry.error);
          break;
        case 'wholeAsStream':
          this.streamOpen = true;
          entries[this.head] = entry.data.length > 0 ? { type: 'wholeData', data: entry.data } : MESSAGE_END;
          return { type: 'messageStart', isBinary: entry.isBinary };
        case 'wholeData':
          entries[this.head] = MESSAGE_END;
          return { type: 'messageData', data: entry.data };
        default:
          this.head++;
          return entry;
      }
    }
    if (this.head > 0) {
      entries.length = 0;
      this.head = 0;
    }
    return null;
  }

  /** The streamed message handed over will not end: the connection is closing or failed. */
  abortStream(error: Error): void {
    if (!this.streamOpen) return;
    this.streamOpen = false;
    this.push({ type: 'messageAbort', error });
  }

  /**
   * `streamMessages` was switched: the messages read ahead (each one frame, read whole, within both
   * size limits: receiver.ts reads no other ahead) go to the application in the new form, as they
   * would have had they been read after the switch.
   */
  switchStreaming(on: boolean): void {
    const entries = this.entries;
    if (entries === null) return;
    for (let i = this.head; i < entries.length; i++) {
      const entry = entries[i]!;
      if (on && entry.type === 'message')
        entries[i] = { type: 'wholeAsStream', data: entry.data, isBinary: entry.isBinary };
      else if (!on && entry.type === 'wholeAsStream')
        entries[i] = { type: 'message', data: entry.data, isBinary: entry.isBinary };
    }
  }

  /**
   * The connection failed or the stream is gone: nothing read and not yet reached is delivered
   * (§7.1.7: no more data is processed), only what the application still has to hear of.
   */
  dropRead(): void {
    const entries = this.entries;
    if (entries === null) return;
    let kept = this.head;
    for (let i = this.head; i < entries.length; i++) {
      const entry = entries[i]!;
      if (entry.type === 'sendFailed' || entry.type === 'error' || entry.type === 'messageAbort')
        entries[kept++] = entry;
    }
    entries.length = kept;
  }
}
