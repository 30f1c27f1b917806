// The heap-growth switch: the heap may double while small (little GC tax per Check), and grows by 20 % once
// the live heap is large (bounded RSS with full caches). The last test runs real full GCs in this process.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import {
  boundHeapGrowth,
  growingPercentFor,
  LARGE_HEAP_GROWING_PERCENT as LARGE,
  LARGE_HEAP_BYTES,
  SMALL_HEAP_GROWING_PERCENT as SMALL,
  SMALL_HEAP_BYTES,
} from '../../../src/server/heap.js';

describe('growingPercentFor', () => {
  it('grows by less from the large mark, and by more again only below the small mark', () => {
    expect(growingPercentFor(SMALL_HEAP_BYTES, SMALL)).toBe(SMALL);
    expect(growingPercentFor(LARGE_HEAP_BYTES - 1, SMALL)).toBe(SMALL);
    expect(growingPercentFor(LARGE_HEAP_BYTES, SMALL)).toBe(LARGE);
    // Between the marks it keeps what it has, so a heap hovering near one mark does not flap.
    expect(growingPercentFor(SMALL_HEAP_BYTES + 1, LARGE)).toBe(LARGE);
    expect(growingPercentFor(SMALL_HEAP_BYTES - 1, LARGE)).toBe(SMALL);
    expect(SMALL_HEAP_BYTES).toBeLessThan(LARGE_HEAP_BYTES);
    expect(LARGE).toBeLessThan(SMALL);
  });
});

describe('boundHeapGrowth', () => {
  it('switches on a full GC that leaves a large heap, and back when it is small again', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const heard: number[] = [];
    const stop = boundHeapGrowth((percent) => heard.push(percent));
    const settle = () => new Promise((resolve) => setTimeout(resolve, 50));
    try {
      // Live data well past the large mark: 48 MiB of distinct strings.
      let live: string[] | undefined = Array.from({ length: 48 * 1024 }, (_, i) => `${i}`.padEnd(1024, 'x'));
      gc();
      await settle();
      expect(live.length).toBe(48 * 1024);
      expect(heard).toEqual([LARGE]);
      live = undefined;
      gc();
      await settle();
      expect(heard).toEqual([LARGE, SMALL]);
    } finally {
      stop();
      setFlagsFromString('--heap-growing-percent=0'); // V8's own again, for the rest of this worker
    }
  });
});
