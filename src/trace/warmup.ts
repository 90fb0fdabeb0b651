/**
 * Warm-up of the tracer's hot path before any probe is attached: synthetic kernel events of the aggregated
 * mode (one HS_DONE per handshake, client and server, with SNI and SSL_free) go through the same decoder,
 * correlator, record builder and chained writer classes as the real ones, into a writer on /dev/null.
 *
 * Why: a fresh JavaScriptCore process interprets, then compiles, the pipeline while the first thousands of
 * handshakes arrive; that compilation would run on the traced host's CPU exactly when it is busiest. Done
 * here, it costs start-up time (tens of ms) instead, and nothing of it reaches the output. WORKLOG.md has the
 * figures.
 */
import { ChainedWriter } from "../chain/writer.ts";
import { HandshakeCorrelator } from "./correlate.ts";
import { EVENT_SIZE, EventDecoder, EventKind, encodeDone, encodeEvent } from "./events.ts";
import type { GroupIndex } from "./groups.ts";
import { appendObservation, type ObservationContext } from "./observation.ts";

/** Handshakes run through the pipeline: enough for the engine's optimizing tier to compile every step. */
export const WARMUP_HANDSHAKES = 4000;

/** Synthetic events: `count` handshakes, alternately a server's (one event) and a client's (SNI, done, free). */
function syntheticEvents(count: number): Uint8Array {
  const kex = { version: 0x0304, cipherId: 0x0300_1302, group: 29, group13: 29 };
  const server = encodeDone({ kex, ctx: null, role: "server", error: null, implicit: false });
  const client = encodeDone({ kex, ctx: 0x5500_0000_1000, role: "client", error: null, implicit: false });
  const events: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const pid = 1000 + (i % 7);
    const ptr = 0x5600_0000_0000 + (i % 64) * 0x1000;
    const base = { pid, tid: pid, ptr, libId: 0, comm: i % 2 === 0 ? "warm-up-server" : "warm-up-client" };
    const tsNs = 1_000_000_000 + i * 10_000;
    if (i % 2 === 0) {
      events.push(
        encodeEvent({ ...base, kind: EventKind.HandshakeDone, tsNs, aux: tsNs - 5000, data: server }),
      );
    } else {
      events.push(
        encodeEvent({ ...base, kind: EventKind.SetHostname, tsNs: tsNs - 6000, text: "warm-up.invalid" }),
      );
      events.push(
        encodeEvent({ ...base, kind: EventKind.HandshakeDone, tsNs, aux: tsNs - 5000, data: client }),
      );
      events.push(encodeEvent({ ...base, kind: EventKind.SslFree, tsNs: tsNs + 1000 }));
    }
  }
  const region = new Uint8Array(events.length * EVENT_SIZE);
  events.forEach((e, i) => {
    region.set(e, i * EVENT_SIZE);
  });
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
    appendObservation(hs, warmCtx, writer),
  );
  for (let offset = 0; offset < region.byteLength; offset += EVENT_SIZE)
    correlator.push(decoder.decode(offset));
  correlator.flush("incomplete");
  await writer.close();
  return writer.count;
}
