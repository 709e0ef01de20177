/**
 * One timer for every connection's deadlines (ping due, pong overdue, write stalled, close
 * handshake too slow, handshake too slow), instead of a timer or two per connection.
 *
 * A hashed timing wheel: time is cut into ticks of `resolution` ms, and a target due at tick T sits
 * in slot T mod slotCount. Each target is in at most one slot. Moving a deadline later costs
 * nothing: the target keeps its earlier wake-up, and when woken it works out what is actually due
 * and asks for its next wake-up. So a connection that receives a frame does not touch the wheel at
 * all: it only records the time. Moving a deadline earlier, or cancelling, takes the target out of
 * its slot at once (it knows its place), so nothing finished stays referenced.
 */

export interface WheelTarget {
  /** The tick this target is due at; 0 when it has no wake-up, -1 while being woken. Owned by the wheel. */
  wheelTick: number;
  /** Its index in its slot. Owned by the wheel. */
  wheelIndex: number;
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

  /** Targets waiting (for tests and diagnostics). */
  get size(): number {
    return this.entries;
  }

  /**
   * Wake `target` at `at` (ms since the epoch) or less than two resolutions after it: `at` is rounded
   * up to a tick, and the wheel looks at its ticks once per resolution.
   */
  schedule(target: WheelTarget, at: number): void {
    // Round up, and never into a tick already processed.
    const tick = Math.max(Math.ceil(at / this.resolution), this.tick + 1);
    if (target.wheelTick > 0) {
      if (target.wheelTick <= tick) return;
      this.remove(target);
    }
    target.wheelTick = tick;
    const slot = this.slots[tick % this.slotCount]!;
    target.wheelIndex = slot.length;
    slot.push(target);
    if (this.entries++ === 0) this.start();
  }

  /** Drop `target`'s wake-up. */
  cancel(target: WheelTarget): void {
    if (target.wheelTick === 0) return;
    // (A target about to be woken, -1, is in no slot any more.)
    if (target.wheelTick > 0) this.remove(target);
    target.wheelTick = 0;
    if (this.entries === 0) this.stop();
  }

  /** Take a target out of its slot: the last entry fills its place. */
  private remove(target: WheelTarget): void {
    const slot = this.slots[target.wheelTick % this.slotCount]!;
    const last = slot.pop()!;
    if (last !== target) {
      slot[target.wheelIndex] = last;
      last.wheelIndex = target.wheelIndex;
    }
    this.entries--;
  }

  private start(): void {
    // Already running (a target rescheduled itself from onWheel, say): one interval only.
    if (this.interval !== null) return;
    // Re-base on the clock: nothing was scheduled, so no tick in between has entries.
    this.tick = Math.max(this.tick, Math.floor(Date.now() / this.resolution) - 1);
    this.interval = setInterval(() => this.advance(), this.resolution);
    // The wheel alone never keeps a process alive; the sockets it watches do.
    this.interval.unref();
  }

  private stop(): void {
    if (this.interval !== null) {
      clearInterval(this.interval);
      this.interval = null;
    }
  }

  private advance(): void {
    const now = Date.now();
    const target = Math.floor(now / this.resolution);
    while (this.tick < target && this.entries > 0) {
      this.tick++;
      const index = this.tick % this.slotCount;
      const slot = this.slots[index]!;
      if (slot.length === 0) continue;
      // Targets due at this tick leave the slot; those due in a later turn of the wheel stay.
      const due: WheelTarget[] = [];
      let kept = 0;
      for (const item of slot) {
        if (item.wheelTick === this.tick) {
          // Marked before any is woken: one target's onWheel may cancel or reschedule another.
          item.wheelTick = -1;
          due.push(item);
        } else {
          item.wheelIndex = kept;
          slot[kept++] = item;
        }
      }
      slot.length = kept;
      this.entries -= due.length;
      for (const item of due) {
        if (item.wheelTick !== -1) continue;
        item.wheelTick = 0;
        item.onWheel(now);
      }
    }
    if (this.entries === 0) this.stop();
    this.tick = Math.max(this.tick, target);
  }
}

/** The wheel all connections of the process share. */
export const sharedWheel = new TimerWheel();
