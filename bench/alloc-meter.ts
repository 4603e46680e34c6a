/**
 * Preloaded (`node -r`) into an app by `npm run bench:alloc`: what the app allocates between two SIGWINCH
 * signals, written as JSON to ALLOC_METER_OUT at the second. Counted, not timed: the JS heap's bytes (from
 * V8's own figures before and after each GC in the window), the part of them the young generation's GC found alive
 * and promoted, and the async resources created (promises, timers),
 * so two runs of the same code agree to a fraction of a percent on a machine whose timings do not.
 */
import { createHook } from 'node:async_hooks';
import { writeFileSync } from 'node:fs';
import { getHeapStatistics, GCProfiler } from 'node:v8';

const created = new Map<string, number>();
// On only inside a window: a promise hook slows every promise of the app down, and the app's CPU time is measured outside.
const hook = createHook({
  init(_id, type) {
    created.set(type, (created.get(type) ?? 0) + 1);
  },
});

let window: { profiler: GCProfiler; usedAtStart: number } | undefined;

// SIGWINCH: Nest's shutdown hooks take SIGUSR2 and the termination signals.
process.on('SIGWINCH', () => {
  if (!window) {
    const profiler = new GCProfiler();
    profiler.start();
    window = { profiler, usedAtStart: getHeapStatistics().used_heap_size };
    hook.enable();
    return;
  }
  const usedAtEnd = getHeapStatistics().used_heap_size;
  const { statistics } = window.profiler.stop();
  hook.disable();
  // Allocated = what the heap grew by between GCs: up to each GC from where the previous one left it.
  let allocated = 0;
  let promoted = 0;
  let from = window.usedAtStart;
  for (const gc of statistics) {
    allocated += gc.beforeGC.heapStatistics.usedHeapSize - from;
    from = gc.afterGC.heapStatistics.usedHeapSize;
    // What a young-generation GC found still alive and moved to the old generation, where a full GC must collect it.
    if (gc.gcType === 'Scavenge') promoted += oldSpaceUsed(gc.afterGC) - oldSpaceUsed(gc.beforeGC);
  }
  allocated += usedAtEnd - from;
  writeFileSync(
    process.env.ALLOC_METER_OUT ?? 'alloc-meter.json',
    JSON.stringify({ allocated, promoted, gcs: statistics.length, created: Object.fromEntries(created) }),
  );
  created.clear();
  window = undefined;
});

function oldSpaceUsed(at: { heapSpaceStatistics: Array<{ spaceName: string; spaceUsedSize: number }> }): number {
  return at.heapSpaceStatistics.find((space) => space.spaceName === 'old_space')?.spaceUsedSize ?? 0;
}
