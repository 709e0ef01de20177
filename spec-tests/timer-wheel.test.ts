/**
 * The shared timer wheel behind every connection's deadlines (src/driver/timer-wheel.ts): targets wake
 * at their time or less than two resolutions after it, earlier deadlines move them, later ones cost
 * nothing, cancelled ones are released at once, and the interval runs only while something is
 * scheduled.
 *
 * The wheel reads the time from Date.now() and turns on setInterval, so these tests run it on
 * node:test's mock timers: time moves only when a test moves it, and what the wheel did at each
 * moment is exact, however busy the machine is.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { TimerWheel, type WheelTarget } from '../src/driver/timer-wheel.js';

function target(onWheel: (now: number) => void = () => {}): WheelTarget & { woken: number[] } {
  const woken: number[] = [];
  return {
    wheelTick: 0,
    wheelIndex: 0,
    woken,
    onWheel(now) {
      woken.push(now);
      onWheel(now);
    },
  };
}

/** Move virtual time by `ms`, a millisecond at a time (the wheel's interval fires on its own schedule). */
function advance(ms: number): void {
  for (let i = 0; i < ms; i++) mock.timers.tick(1);
}

function intervalOf(wheel: TimerWheel): unknown {
  return (wheel as unknown as { interval: unknown }).interval;
}

describe('TimerWheel', () => {
  // A start that is not a multiple of any resolution: the wheel's ticks and its interval's firings
  // fall where they may, as they do on a real clock.
  beforeEach(() => mock.timers.enable({ apis: ['setInterval', 'Date'], now: 1_000_003 }));
  afterEach(() => mock.timers.reset());

  it('wakes a target at its time or less than two resolutions after it, once', () => {
    for (const delay of [1, 9, 10, 11, 50, 99]) {
      const wheel = new TimerWheel(10, 64);
      const t = target();
      const at = Date.now() + delay;
      wheel.schedule(t, at);
      advance(delay - 1);
      assert.equal(t.woken.length, 0, `woken ${at - Date.now()} ms early`);
      advance(2 * 10);
      assert.equal(t.woken.length, 1, `woken once, within two resolutions of its time (due in ${delay} ms)`);
      assert.ok(t.woken[0]! >= at, `woken at ${t.woken[0]! - at} ms from its time`);
      assert.equal(wheel.size, 0);
      advance(100);
      assert.equal(t.woken.length, 1, 'and not again');
    }
  });

  it('an earlier deadline moves the target; a later one keeps the earlier wake-up', () => {
    const wheel = new TimerWheel(10, 64);
    const t = target();
    const now = Date.now();
    wheel.schedule(t, now + 300);
    wheel.schedule(t, now + 30);
    assert.equal(wheel.size, 1, 'one entry, not two');
    wheel.schedule(t, now + 500);
    advance(30 + 2 * 10);
    assert.equal(t.woken.length, 1, 'woken at the earliest time asked for');
    advance(600);
    assert.equal(t.woken.length, 1, 'and not again: the moved entry is gone');
  });

  it('cancel releases the target at once and stops the interval when nothing is left', () => {
    const wheel = new TimerWheel(10, 64);
    const a = target();
    const b = target();
    const c = target();
    const now = Date.now();
    for (const t of [a, b, c]) wheel.schedule(t, now + 40);
    wheel.cancel(a);
    assert.equal(wheel.size, 2);
    assert.equal(a.wheelTick, 0);
    advance(40 + 2 * 10);
    assert.deepEqual([a.woken.length, b.woken.length, c.woken.length], [0, 1, 1]);
    assert.equal(intervalOf(wheel), null, 'no interval left running');
  });

  it('deadlines beyond one turn of the wheel wait for their turn', () => {
    const wheel = new TimerWheel(5, 8); // one turn = 40 ms
    const t = target();
    const at = Date.now() + 130;
    wheel.schedule(t, at);
    advance(129);
    assert.equal(t.woken.length, 0, 'not woken a turn early');
    advance(2 * 5);
    assert.equal(t.woken.length, 1);
    assert.ok(t.woken[0]! >= at, `woken ${at - t.woken[0]!} ms early`);
  });

  it('a target may reschedule itself, and cancel another due at the same tick, from onWheel', () => {
    const wheel = new TimerWheel(10, 64);
    const other = target();
    let rounds = 0;
    const self: WheelTarget & { woken: number[] } = target((now) => {
      wheel.cancel(other);
      if (++rounds < 3) wheel.schedule(self, now + 20);
    });
    const at = Date.now() + 20;
    wheel.schedule(self, at);
    wheel.schedule(other, at);
    advance(3 * (20 + 2 * 10));
    assert.equal(self.woken.length, 3, 'rescheduled itself twice');
    // Both due at the same tick, `self` first (scheduled first): its cancel reaches `other` in time.
    assert.equal(other.woken.length, 0, 'cancelled from the onWheel of a target due at the same tick');
    assert.equal(wheel.size, 0);
    assert.equal(intervalOf(wheel), null, 'a single interval, stopped at the end');
  });
});
