/**
 * Warm-up of the tracer's hot path before it reports ready: synthetic kernel events of the aggregated
 * mode (one HS_DONE per handshake, client and server, with SNI and SSL_free) go through the same decoder,
 * correlator, record builder and chained writer classes as the real ones, into a writer on /dev/null.
 *
 * Why: a fresh JavaScriptCore process interprets, then compiles, the pipeline while the first thousands of
 * handshakes arrive; that compilation would run on the traced host's CPU exactly when it is busiest. Done
 * here, it costs start-up time (≈ 45 ms) instead, and nothing of it reaches the output. Over the first 5,000
 * nginx handshakes the tracer then runs ≈ 95 k instructions per handshake instead of ≈ 152 k (WORKLOG.md).
 */
import { ChainedWriter } from "../chain/writer.ts";
import { HandshakeCorrelator } from "./libssl/correlate.ts";
import {
  EVENT_LAYOUT,
  EVENT_SIZE,
  EventDecoder,
  EventKind,
  encodeDone,
  encodeEvent,
} from "./libssl/events.ts";
import type { GroupIndex } from "./groups.ts";
import type { ObservationContext } from "./observation.ts";
import { appendObservation } from "./record.ts";

/** Handshakes run through the pipeline: enough for the engine's optimizing tier to compile every step. */
export const WARMUP_HANDSHAKES = 4000;
/**
 * A young-generation collection every so many events: in a loop this tight the collector running beside it
 * lets the heap outgrow what a trace needs (peak RSS 107 MB instead of 95 MB; 77 MB without a warm-up).
 */
const GC_EVERY_EVENTS = 1000;

/**
 * Synthetic events: `count` handshakes, alternately a server's (one event) and a client's (SNI, done, free),
 * written into one region from four encoded templates (no allocation per event).
 */
function syntheticEvents(count: number): Uint8Array {
  const kex = { version: 0x0304, cipherId: 0x0300_1302, group: 29, group13: 29 };
  const base = { libId: 0, comm: "warm-up" };
  const serverDone = encodeEvent({
    ...base,
    kind: EventKind.HandshakeDone,
    data: encodeDone({ kex, ctx: null, role: "server", error: null, implicit: false }),
  });
  const clientSni = encodeEvent({ ...base, kind: EventKind.SetHostname, text: "warm-up.invalid" });
  const clientDone = encodeEvent({
    ...base,
    kind: EventKind.HandshakeDone,
    data: encodeDone({ kex, ctx: 0x5500_0000_1000, role: "client", error: null, implicit: false }),
  });
  const clientFree = encodeEvent({ ...base, kind: EventKind.SslFree });
  const events = Math.ceil(count / 2) + 3 * Math.floor(count / 2);
  const region = new Uint8Array(events * EVENT_SIZE);
  const view = new DataView(region.buffer);
  let offset = 0;
  const put = (template: Uint8Array, i: number, tsNs: number, aux: number) => {
    region.set(template, offset);
    const pid = 1000 + (i % 7);
    view.setBigUint64(offset + EVENT_LAYOUT.ts_ns[0], BigInt(tsNs), true);
    view.setBigUint64(offset + EVENT_LAYOUT.ptr[0], BigInt(0x5600_0000_0000 + (i % 64) * 0x1000), true);
    view.setBigInt64(offset + EVENT_LAYOUT.aux[0], BigInt(aux), true);
    view.setUint32(offset + EVENT_LAYOUT.pid[0], pid, true);
    view.setUint32(offset + EVENT_LAYOUT.tid[0], pid, true);
    offset += EVENT_SIZE;
  };
  for (let i = 0; i < count; i++) {
    const tsNs = 1_000_000_000 + i * 10_000;
    if (i % 2 === 0) put(serverDone, i, tsNs, tsNs - 5000);
    else {
      put(clientSni, i, tsNs - 6000, 0);
      put(clientDone, i, tsNs, tsNs - 5000);
      put(clientFree, i, tsNs + 1000, 0);
    }
  }
  return region;
}

/**
 * Runs `count` synthetic handshakes through the pipeline into /dev/null; returns how many records it made
 * (every one of them, or the warm-up itself is broken: the caller may check).
 */
export async function warmUpPipeline(
  ctx: ObservationContext,
  groupIndex: GroupIndex,
  count = WARMUP_HANDSHAKES,
): Promise<number> {
  const region = syntheticEvents(count);
  const decoder = new EventDecoder(region.buffer);
  const writer = await ChainedWriter.open("/dev/null", { parallelAfter: Number.POSITIVE_INFINITY });
  const warmCtx: ObservationContext = { ...ctx, exe: () => "/warm-up" };
  const correlator = new HandshakeCorrelator({ windowNs: 2e9, maxPending: 1024, groupIndex }, (hs) =>
    appendObservation({ libssl: hs, wire: null }, warmCtx, writer),
  );
  for (let offset = 0; offset < region.byteLength; offset += EVENT_SIZE) {
    correlator.push(decoder.decode(offset));
    if (offset % (GC_EVERY_EVENTS * EVENT_SIZE) === 0) Bun.gc(false);
  }
  correlator.flush("incomplete");
  await writer.close();
  return writer.count;
}
