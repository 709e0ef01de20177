/**
 * One timer for every connection's deadlines (ping due, pong overdue, write stalled, close
 * handshake too slow, handshake too slow), instead of a timer or two per connection.
 *
 * A hashed timing wheel: time is cut into ticks of `resolution` ms, and a target due at tick T sits
 * in slot T mod slotCount. Each target has at most one live wake-up (`wheelTick`). Moving a deadline
 * later costs nothing: the target keeps its earlier wake-up, and when woken it works out what is
 * actually due and asks for its next wake-up. Moving a deadline earlier adds an entry; the old one
 * goes stale and is dropped when its slot comes round. So a connection that receives a frame does
 * not touch the wheel at all: it only records the time.
 */

export interface WheelTarget {
  /** The tick this target is due at, or 0 when it has no wake-up. Owned by the wheel. */
  wheelTick: number;
  /** Called at or shortly after the requested time; reschedule from here if needed. */
  onWheel(now: number): void;
}

export class TimerWheel {
  private readonly slots: WheelTarget[][];
  private entries = 0;
  /** The last tick processed. */
  private tick: number;
  private interval: ReturnType<typeof setInterval> | null = null;

  constructor(
    readonly resolution = 25,
    private readonly slotCount = 1024,
  ) {
    this.slots = Array.from({ length: slotCount }, () => []);
    this.tick = Math.floor(Date.now() / resolution);
  }

  /** Wake `target` at `at` (ms since the epoch) or within one resolution after it. */
  schedule(target: WheelTarget, at: number): void {
    // Round up, and never into a tick already processed.
    const tick = Math.max(Math.ceil(at / this.resolution), this.tick + 1);
    if (target.wheelTick !== 0 && target.wheelTick <= tick) return;
    target.wheelTick = tick;
    this.slots[tick % this.slotCount]!.push(target);
    if (this.entries++ === 0) this.start();
  }

  /** Drop `target`'s wake-up (its stale entry is discarded when its slot comes round). */
  cancel(target: WheelTarget): void {
    target.wheelTick = 0;
  }

  private start(): void {
    // Re-base on the clock: nothing was scheduled, so no tick in between has entries.
    this.tick = Math.max(this.tick, Math.floor(Date.now() / this.resolution) - 1);
    this.interval = setInterval(() => this.advance(), this.resolution);
    // The wheel alone never keeps a process alive; the sockets it watches do.
    this.interval.unref();
  }

  private advance(): void {
    const now = Date.now();
    const target = Math.floor(now / this.resolution);
    while (this.tick < target && this.entries > 0) {
      this.tick++;
      const index = this.tick % this.slotCount;
      const due = this.slots[index]!;
      if (due.length === 0) continue;
      this.slots[index] = [];
      this.entries -= due.length;
      for (const item of due) {
        if (item.wheelTick === this.tick) {
          item.wheelTick = 0;
          item.onWheel(now);
        } else if (item.wheelTick > this.tick && item.wheelTick % this.slotCount === index) {
          // Due in a later turn of the wheel: keep it in this slot.
          this.slots[index]!.push(item);
          this.entries++;
        }
        // Otherwise stale: cancelled, or moved to an earlier slot.
      }
    }
    if (this.entries === 0 && this.interval !== null) {
      clearInterval(this.interval);
      this.interval = null;
    }
    this.tick = Math.max(this.tick, target);
  }
}

/** The wheel all connections of the process share. */
export const sharedWheel = new TimerWheel();
