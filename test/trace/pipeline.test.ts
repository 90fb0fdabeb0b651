/**
 * The pipeline's end of a trace, without a kernel: what it gives up at exit ends after it began, even when the
 * last drain takes long enough for handshakes to start meanwhile (a busy host at the moment the trace stops).
 */
import { expect, test } from "bun:test";
import { indexGroups } from "../../src/trace/groups.ts";
import { ConnFlags, type KernelHandshake } from "../../src/trace/libssl/events.ts";
import type { ObservationContext } from "../../src/trace/observation.ts";
import { type EventRegion, type LibsslKernel, TracePipeline } from "../../src/trace/pipeline.ts";

test("a handshake that starts during the last drain is given up after its start, not before", () => {
  let clockNs = 5_000_000_000;
  // the last drain takes 12 ms; a server's handshake call comes 5 ms into it
  const startedDuringDrain = clockNs + 5_000_000;
  const region: EventRegion = {
    dataBuffer: new ArrayBuffer(8),
    dataOffset: 0,
    length: 8,
    drain: () => {
      clockNs += 12_000_000;
      return 0;
    },
  };
  const live: KernelHandshake = {
    pid: 4242,
    ssl: 0x5555_0000_1000,
    startNs: startedDuringDrain,
    lastNs: startedDuringDrain,
    role: "server",
    flags: ConnFlags.Live,
    libId: 0,
    key: new Uint8Array(16),
  };
  const libssl: LibsslKernel = {
    aggregated: true,
    liveHandshakes: () => [live],
    forgetHandshake: () => {},
    kernelEvictions: 0,
    stats: () => ({ dropped: 0 }),
  };
  const groupIndex = indexGroups();
  const context: ObservationContext = {
    library: () => ({ label: "libssl.so.3", ciphers: null, defaultGroups: null }),
    exe: () => null,
    cgroup: () => ({ path: null, containerId: null, podUid: null }),
    host: "test-host",
    machineId: null,
    clockOffsetUs: 0,
    groupIndex,
  };
  const records: Record<string, unknown>[] = [];
  const pipeline = new TracePipeline({
    windowMs: 2000,
    maxPending: 64,
    groupIndex,
    libssl,
    wire: null,
    context,
    sink: { append: (record) => records.push(record) },
  });
  pipeline.finish(region, () => clockNs);
  expect(records.map((r) => [r.pid, r.handshake_success, r.error, r.duration_us])).toEqual([
    [4242, false, "incomplete", 7000],
  ]);
});
