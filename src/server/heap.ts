// How far V8 may grow the heap past what survives a full GC, chosen by how much survives (`serve
// --heap-tuning`, on by default; README "Memory" has the measurements).
//
// Left alone, V8 grows the old generation to several times the live size when allocation is brisk, and every
// Check allocates; native memory freed only with the garbage (crypto buffers, keys) is not given back once
// grown. So with full caches RSS settles far above what the caches hold. Growing by a fixed 20 % keeps RSS
// near the live size, with no hard cap a burst could turn into an out-of-memory crash, but makes full GCs
// frequent: a CPU tax on every Check. On a small heap (warm, small caches) that tax buys nothing, so the
// heap may double there, and 20 % applies once the live heap is large. Never V8's own factor: a heap that grew
// fourfold on the way to full caches keeps the extra RSS for good. `--heap-growing-percent` is read by V8 at
// every GC, so it applies when set at runtime (it is refused in NODE_OPTIONS). The young generation's size
// is fixed at start-up instead (`--max-semi-space-size`, see the README for Node.js 24).
import { constants, type PerformanceEntry, PerformanceObserver } from 'node:perf_hooks';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';

export const SMALL_HEAP_GROWING_PERCENT = 100;
export const LARGE_HEAP_GROWING_PERCENT = 20;
const MiB = 1024 * 1024;
/** Live heap from which it is large, and below which it is small again (apart, so it never flaps). */
export const LARGE_HEAP_BYTES = 20 * MiB;
export const SMALL_HEAP_BYTES = 16 * MiB;

/** The growing percent for a live heap size, given the percent in force. */
export function growingPercentFor(liveBytes: number, current: number): number {
  if (current === LARGE_HEAP_GROWING_PERCENT) {
    return liveBytes < SMALL_HEAP_BYTES ? SMALL_HEAP_GROWING_PERCENT : LARGE_HEAP_GROWING_PERCENT;
  }
  return liveBytes >= LARGE_HEAP_BYTES ? LARGE_HEAP_GROWING_PERCENT : SMALL_HEAP_GROWING_PERCENT;
}

/**
 * Watches full GCs and sets V8's heap growing from what survives them; `onChange` hears each switch.
 * Returns a stop function.
 */
export function boundHeapGrowth(onChange?: (percent: number, liveBytes: number) => void): () => void {
  let percent = SMALL_HEAP_GROWING_PERCENT;
  setFlagsFromString(`--heap-growing-percent=${percent}`);
  const observer = new PerformanceObserver((list) => {
    const major = list.getEntries().some(isMajorGc);
    if (!major) return;
    // Read after the GC, so close to what survived it.
    const live = getHeapStatistics().used_heap_size;
    const next = growingPercentFor(live, percent);
    if (next !== percent) {
      percent = next;
      setFlagsFromString(`--heap-growing-percent=${percent}`);
      onChange?.(percent, live);
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  return () => observer.disconnect();
}

function isMajorGc(entry: PerformanceEntry): boolean {
  const { detail } = entry as PerformanceEntry & { detail?: { kind?: number } };
  return detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR;
}
