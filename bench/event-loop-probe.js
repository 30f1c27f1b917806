// Loaded into a real `scopegate serve` process by bench/policy-sets.js (`node --import ./bench/event-loop-probe.js
// bin/scopegate.js serve …`, spawned with an IPC channel): watches that process's event loop with
// perf_hooks.monitorEventLoopDelay (1 ms resolution) and answers over IPC, so a bench can ask how long the loop
// was blocked while something happened (a policy file rewritten, a SIGHUP) without changing scopegate.
//   { probe: 'reset' } → clears the histogram and the CPU count, answers { probe: 'reset' }
//   { probe: 'read' }  → answers { probe: 'read', maxMs, p99Ms, meanMs, cpuMs, longestBlockCpuMs } since the last reset
// Without an IPC channel it does nothing.
import { monitorEventLoopDelay } from 'node:perf_hooks';

if (process.send !== undefined) {
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  let cpuAtReset = process.cpuUsage();
  // The CPU time spent between two turns of a 1 ms timer: the longest is what the longest block cost, which a
  // busy machine does not inflate the way it inflates the wall-clock delay (a process waiting for a core).
  let cpuAtTick = cpuAtReset;
  let longestBlockMicros = 0;
  const tick = setInterval(() => {
    const now = process.cpuUsage();
    longestBlockMicros = Math.max(
      longestBlockMicros,
      now.user - cpuAtTick.user + now.system - cpuAtTick.system,
    );
    cpuAtTick = now;
  }, 1);
  tick.unref();
  process.on('message', (message) => {
    if (message?.probe === 'reset') {
      delay.reset();
      cpuAtReset = process.cpuUsage();
      cpuAtTick = cpuAtReset;
      longestBlockMicros = 0;
      process.send({ probe: 'reset' });
    } else if (message?.probe === 'read') {
      const cpu = process.cpuUsage(cpuAtReset);
      process.send({
        probe: 'read',
        maxMs: delay.max / 1e6,
        p99Ms: delay.percentile(99) / 1e6,
        meanMs: delay.mean / 1e6,
        // The whole process (its main thread, libuv's threads, V8's GC threads): over the window, and the most
        // between two timer turns.
        cpuMs: (cpu.user + cpu.system) / 1000,
        longestBlockCpuMs: longestBlockMicros / 1000,
      });
    }
  });
  // The channel must not keep the server alive: SIGTERM still drains and exits as without the probe.
  process.channel?.unref();
}
