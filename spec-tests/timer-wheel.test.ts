/**
 * The shared timer wheel behind every connection's deadlines (src/driver/timer-wheel.ts): targets wake
 * at (or just after) their time, earlier deadlines move them, later ones cost nothing, cancelled
 * ones are released at once, and the interval runs only while something is scheduled.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
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

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('TimerWheel', () => {
  it('wakes a target at or after its time, within a few resolutions', async () => {
    const wheel = new TimerWheel(10, 64);
    const t = target();
    const at = Date.now() + 50;
    wheel.schedule(t, at);
    await sleep(150);
    assert.equal(t.woken.length, 1, 'woken once');
    assert.ok(t.woken[0]! >= at, `woken at ${t.woken[0]! - at} ms from its time`);
    assert.equal(wheel.size, 0);
  });

  it('an earlier deadline moves the target; a later one keeps the earlier wake-up', async () => {
    const wheel = new TimerWheel(10, 64);
    const t = target();
    const now = Date.now();
    wheel.schedule(t, now + 300);
    wheel.schedule(t, now + 30);
    assert.equal(wheel.size, 1, 'one entry, not two');
    wheel.schedule(t, now + 500);
    await sleep(120);
    assert.equal(t.woken.length, 1, 'woken at the earliest time asked for');
    await sleep(300);
    assert.equal(t.woken.length, 1, 'and not again: the moved entry is gone');
  });

  it('cancel releases the target at once and stops the interval when nothing is left', async () => {
    const wheel = new TimerWheel(10, 64);
    const a = target();
    const b = target();
    const c = target();
    const now = Date.now();
    for (const t of [a, b, c]) wheel.schedule(t, now + 40);
    wheel.cancel(a);
    assert.equal(wheel.size, 2);
    assert.equal(a.wheelTick, 0);
    await sleep(120);
    assert.deepEqual([a.woken.length, b.woken.length, c.woken.length], [0, 1, 1]);
    assert.equal((wheel as unknown as { interval: unknown }).interval, null, 'no interval left running');
  });

  it('deadlines beyond one turn of the wheel wait for their turn', async () => {
    const wheel = new TimerWheel(5, 8); // one turn = 40 ms
    const t = target();
    const at = Date.now() + 130;
    wheel.schedule(t, at);
    await sleep(90);
    assert.equal(t.woken.length, 0, 'not woken a turn early');
    await sleep(120);
    assert.equal(t.woken.length, 1);
    assert.ok(t.woken[0]! >= at, `woken ${at - t.woken[0]!} ms early`);
  });

  it('a target may reschedule itself, and cancel another due at the same tick, from onWheel', async () => {
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
    await sleep(200);
    assert.equal(self.woken.length, 3, 'rescheduled itself twice');
    // Both due at the same tick, `self` first (scheduled first): its cancel reaches `other` in time.
    assert.equal(other.woken.length, 0, 'cancelled from the onWheel of a target due at the same tick');
    assert.equal(wheel.size, 0);
    assert.equal((wheel as unknown as { interval: unknown }).interval, null, 'a single interval, stopped at the end');
  });
});
