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
import { cgroupFacts } from "./attribution/cgroups.ts";
import type { GroupIndex } from "./groups.ts";
import { EVENT_LAYOUT, EventKind, encodeDone, encodeEvent } from "./libssl/events.ts";
import type { ObservationContext } from "./observation.ts";
import { RecordRegion, TracePipeline } from "./pipeline.ts";
import { encodeWireEvent, WireFlag, WireKind } from "./wire/events.ts";
import { syntheticFlights } from "./wire/synthetic.ts";

/** Handshakes run through the pipeline: enough for the engine's optimizing tier to compile every step. */
export const WARMUP_HANDSHAKES = 4000;
/**
 * A young-generation collection every so many events: in a loop this tight the collector running beside it
 * lets the heap outgrow what a trace needs (peak RSS 107 MB instead of 95 MB; 77 MB without a warm-up).
 */
const GC_EVERY_EVENTS = 1000;
/** The synthetic processes' cgroup: resolved by the warm-up's own context, never looked up on the host. */
const WARM_UP_CGROUP_ID = 2;
const WARM_UP_CGROUP = cgroupFacts(`/warm-up.slice/docker-${"0".repeat(64)}.scope`);

/**
 * Handshakes made and run at a time: all 4,000 at once held ≈ 60 MB of events (twice: made, then laid out)
 * that the process kept after the warm-up (idle RSS 148 MB instead of 84 MB without a warm-up).
 */
const CHUNK_HANDSHAKES = 250;

/**
 * Synthetic events: handshakes `from` to `to` − 1, alternately a server's and a client's, each seen by both
 * sources as the kernel hands them over: the socket's flights on the wire (linked to the SSL* by the sending
 * thread) and the libssl probes' one event per handshake (with SNI and SSL_free for a client's).
 */
function syntheticEvents(from: number, to: number): Uint8Array[] {
  const kex = { version: 0x0304, cipherId: 0x0300_1301, group: 29, group13: 29 };
  const base = { libId: 0, comm: "warm-up", cgroupId: WARM_UP_CGROUP_ID };
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
  const flights = syntheticFlights("warm-up.invalid");
  const libssl = (template: Uint8Array, pid: number, ssl: number, tsNs: number, aux: number) => {
    const e = template.slice();
    const view = new DataView(e.buffer);
    view.setBigUint64(EVENT_LAYOUT.ts_ns[0], BigInt(tsNs), true);
    view.setBigUint64(EVENT_LAYOUT.ptr[0], BigInt(ssl), true);
    view.setBigInt64(EVENT_LAYOUT.aux[0], BigInt(aux), true);
    view.setUint32(EVENT_LAYOUT.pid[0], pid, true);
    view.setUint32(EVENT_LAYOUT.tid[0], pid, true);
    return e;
  };
  const records: Uint8Array[] = [];
  for (let i = from; i < to; i++) {
    const tsNs = 1_000_000_000 + i * 10_000;
    const pid = 1000 + (i % 7);
    const ssl = 0x5600_0000_0000 + (i % 64) * 0x1000;
    const client = i % 2 === 1;
    const socket = {
      cookie: i + 1,
      localAddr: "127.0.0.1",
      remoteAddr: "127.0.0.1",
      localPort: client ? 40000 + (i % 20000) : 443,
      remotePort: client ? 443 : 40000 + (i % 20000),
      comm: "warm-up",
    };
    // what this socket sent (its role's flights) and received, with the owner and link on what it sent
    const sent = {
      ...socket,
      flags: WireFlag.Egress | WireFlag.Owner | WireFlag.Link,
      pid,
      tid: pid,
      linkSsl: ssl,
      cgroupId: WARM_UP_CGROUP_ID,
    };
    const got = { ...socket, flags: 0 };
    const seg = (side: typeof sent | typeof got, payload: Uint8Array, streamOffset: number, t: number) =>
      encodeWireEvent({ ...side, kind: WireKind.Segment, tsNs: t, streamOffset, payload });
    const ch = flights.clientHello.byteLength;
    const sf = flights.serverFlight.byteLength;
    if (client) {
      records.push(libssl(clientSni, pid, ssl, tsNs - 6000, 0));
      records.push(seg(sent, flights.clientHello, 0, tsNs - 5000));
      records.push(seg(got, flights.serverFlight, 0, tsNs - 4000));
      records.push(seg(sent, flights.clientFinished, ch, tsNs - 3000));
      records.push(libssl(clientDone, pid, ssl, tsNs, tsNs - 5000));
      records.push(seg(got, flights.serverAnswer, sf, tsNs + 500));
      records.push(libssl(clientFree, pid, ssl, tsNs + 1000, 0));
    } else {
      records.push(seg(got, flights.clientHello, 0, tsNs - 5000));
      records.push(seg(sent, flights.serverFlight, 0, tsNs - 4000));
      records.push(seg(got, flights.clientFinished, ch, tsNs - 3000));
      records.push(libssl(serverDone, pid, ssl, tsNs, tsNs - 5000));
      records.push(seg(sent, flights.serverAnswer, sf, tsNs + 500));
    }
  }
  return records;
}

/**
 * Runs `count` synthetic handshakes through the pipeline (both sources, the join, the records, the chained
 * writer) into /dev/null; returns how many records it made (every one of them, or the warm-up itself is broken).
 */
export async function warmUpPipeline(
  ctx: ObservationContext,
  groupIndex: GroupIndex,
  count = WARMUP_HANDSHAKES,
  out = "/dev/null",
): Promise<number> {
  const writer = await ChainedWriter.open(out, { parallelAfter: Number.POSITIVE_INFINITY });
  const pipeline = new TracePipeline({
    windowMs: 2000,
    maxPending: 1024,
    groupIndex,
    libssl: null,
    // nothing to tell a kernel: these connections exist nowhere
    wire: {
      release: () => {},
      stats: () => ({ dropped: 0, followed: 0, notTls: 0, late: 0, filtered: 0, capped: 0 }),
    },
    context: { ...ctx, exe: () => "/warm-up", cgroup: () => WARM_UP_CGROUP },
    sink: writer,
  });
  for (let from = 0; from < count; from += CHUNK_HANDSHAKES) {
    const to = Math.min(count, from + CHUNK_HANDSHAKES);
    pipeline.drain(new RecordRegion(syntheticEvents(from, to), GC_EVERY_EVENTS));
  }
  pipeline.finish(null, () => 1_000_000_000 + count * 10_000 + 1e9);
  if (pipeline.writeError) throw pipeline.writeError;
  await writer.close();
  // what the warm-up made is garbage now: collected before the trace starts, not kept as the heap's size
  Bun.gc(true);
  return writer.count;
}
