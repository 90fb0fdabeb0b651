/**
 * The tracer's data path once its sources are attached:
 *   ring buffer → decode (by kind) → correlate (libssl) | reassemble and parse (wire) → join → record → writer
 * plus giving up what idles past the window, and the counters. No timers and no I/O of its own but the
 * kernel calls its sources expose: run.ts drives it, the warm-up feeds it synthetic events.
 */
import type { GroupIndex } from "./groups.ts";
import { HandshakeJoiner } from "./join.ts";
import { type CorrelatedHandshake, HandshakeCorrelator } from "./libssl/correlate.ts";
import type { ExeTable } from "./exe-table.ts";
import { EVENT_SIZE, EventDecoder, EventKind, type KernelHandshake } from "./libssl/events.ts";
import type { TraceMetrics } from "./metrics.ts";
import type { LibraryFacts, ObservationContext, ObservationSink } from "./observation.ts";
import { appendObservation, type HandshakeSeen } from "./record.ts";
import { WireConnection, type WireContext, wireContext } from "./wire/connection.ts";
import { WIRE_HEADER_SIZE, WireDecoder, WireKind } from "./wire/events.ts";
import { type WireObservation, WireSource } from "./wire/source.ts";

/** How often pending handshakes are checked against the window (a scan of the pending tables). */
const EXPIRE_INTERVAL_NS = 100e6;
/** Aggregated mode: how often the kernel's table of handshakes in progress is scanned for stale ones. */
const KERNEL_EXPIRE_INTERVAL_NS = 500e6;

/** Where events are read: a ring buffer's data area (or a synthetic region) and how to walk its records. */
export interface EventRegion {
  readonly dataBuffer: ArrayBufferLike;
  readonly dataOffset: number;
  /** bytes of the data area the decoders may address */
  readonly length: number;
  drain(onRecord: (offset: number, length: number) => void): number;
}

/** Records laid out as the ring buffer holds them (8-byte aligned), walked in order: synthetic or replayed events. */
export class RecordRegion implements EventRegion {
  readonly dataBuffer: ArrayBuffer;
  readonly dataOffset = 0;
  readonly length: number;
  /** each record's offset and length (typed arrays: walking them costs what walking the ring buffer does) */
  readonly #offsets: Uint32Array;
  readonly #lengths: Uint32Array;
  #next = 0;

  /** `gcEvery`: a young-generation collection every so many records (a tight loop outgrows the heap otherwise) */
  constructor(
    records: Uint8Array[],
    private readonly gcEvery = Number.POSITIVE_INFINITY,
  ) {
    let size = 0;
    for (const r of records) size += (r.byteLength + 7) & ~7;
    const bytes = new Uint8Array(size);
    this.#offsets = new Uint32Array(records.length);
    this.#lengths = new Uint32Array(records.length);
    let offset = 0;
    records.forEach((r, i) => {
      bytes.set(r, offset);
      this.#offsets[i] = offset;
      this.#lengths[i] = r.byteLength;
      offset += (r.byteLength + 7) & ~7;
    });
    this.dataBuffer = bytes.buffer;
    this.length = size;
  }

  /** From the first record again (a benchmark drains one region many times). */
  rewind(): void {
    this.#next = 0;
  }

  /** Everything at once. */
  drain(onRecord: (offset: number, length: number) => void): number {
    const start = this.#next;
    const count = this.#offsets.length;
    // without collections, no remainder per record (a remainder by Infinity is a floating-point one)
    const gcEvery = Number.isFinite(this.gcEvery) ? this.gcEvery : 0;
    for (; this.#next < count; this.#next++) {
      onRecord(this.#offsets[this.#next]!, this.#lengths[this.#next]!);
      if (gcEvery > 0 && this.#next % gcEvery === 0) Bun.gc(false);
    }
    return this.#next - start;
  }
}

/** What the pipeline asks of the libssl probes in the kernel. */
export interface LibsslKernel {
  /** aggregated mode: the handshakes the kernel holds in progress */
  liveHandshakes(): KernelHandshake[];
  forgetHandshake(hs: KernelHandshake): void;
  readonly kernelEvictions: number;
  stats(): { dropped: number };
  /** one event per handshake (aggregated) or per call */
  readonly aggregated: boolean;
}

/** What the pipeline asks of the wire capture in the kernel. */
export interface WireKernel {
  release(cookie: number): void;
  stats(): {
    dropped: number;
    followed: number;
    notTls: number;
    late: number;
    filtered: number;
    capped: number;
  };
}

export interface PipelineOptions {
  windowMs: number;
  maxPending: number;
  groupIndex: GroupIndex;
  /** the libssl source; null when it is off */
  libssl: LibsslKernel | null;
  /** the wire source; null when it is off */
  wire: WireKernel | null;
  context: ObservationContext;
  sink: ObservationSink;
  /** why a value stayed null (the caller says each kind once) */
  onProblem?: (lib: LibraryFacts | null, problem: string) => void;
  /** learns each process's executable from the kernel's announcements (CARNOT_EV_EXE) */
  exeTable?: ExeTable;
  /** the comm of a live process, for handshakes the kernel gives up */
  commOf?: (pid: number) => string;
  /** --pid / --comm are set (the wire writes no line whose owner it could not check against them) */
  filtered?: boolean;
}

export class TracePipeline {
  readonly #opts: PipelineOptions;
  readonly #correlator: HandshakeCorrelator;
  readonly #wire: WireSource | null;
  readonly #joiner: HandshakeJoiner<WireObservation>;
  readonly #wireContext: WireContext;
  #libsslEvents = 0;
  #wireEvents = 0;
  #lastExpireNs = 0;
  #lastKernelExpireNs = 0;
  /** the first error of the sink: nothing more is appended after it */
  writeError: unknown = null;

  constructor(opts: PipelineOptions) {
    this.#opts = opts;
    const windowNs = opts.windowMs * 1e6;
    this.#wireContext = wireContext({}, opts.groupIndex);
    this.#joiner = new HandshakeJoiner<WireObservation>(
      { holdNs: windowNs, decideWire: (cookie) => this.#wire?.decideNow(cookie, this.#nowNs) ?? null },
      (seen) => this.#append(seen),
    );
    this.#correlator = new HandshakeCorrelator(
      { windowNs, maxPending: opts.maxPending, groupIndex: opts.groupIndex },
      (hs: CorrelatedHandshake) => this.#joiner.libssl(hs),
    );
    const wire = opts.wire;
    this.#wire =
      wire === null
        ? null
        : new WireSource(
            {
              windowNs,
              maxPending: opts.maxPending,
              newAnalyzer: () => new WireConnection(this.#wireContext),
              release: (cookie) => wire.release(cookie),
              requireOwner: opts.filtered === true,
            },
            {
              linked: (cookie, link) => this.#joiner.linked(cookie, link),
              decided: (obs) => this.#joiner.wire(obs),
            },
          );
  }

  /** ktime of the event being handled (or of the last tick): what "now" means for a decision made meanwhile */
  #nowNs = 0;

  #region: EventRegion | null = null;
  #libsslDecoder: EventDecoder | null = null;
  #wireDecoder: WireDecoder | null = null;

  /** Reads every record available in `region` (until it is empty); returns how many. */
  drain(region: EventRegion): number {
    if (region !== this.#region) {
      // decoders keep per-thread and per-connection caches: one pair per region
      this.#region = region;
      this.#libsslDecoder = new EventDecoder(region.dataBuffer, region.dataOffset, region.length);
      this.#wireDecoder = new WireDecoder(region.dataBuffer, region.dataOffset, region.length);
    }
    const libsslDecoder = this.#libsslDecoder!;
    const wireDecoder = this.#wireDecoder!;
    const exe = this.#opts.exeTable;
    let total = 0;
    for (;;) {
      const n = region.drain((offset, length) => {
        const kind = wireDecoder.kind(offset);
        if (kind === WireKind.Segment || kind === WireKind.End) {
          if (this.#wire === null || length < WIRE_HEADER_SIZE) return;
          const ev = wireDecoder.decode(offset, length);
          this.#nowNs = ev.tsNs;
          this.#wireEvents++;
          this.#wire.push(ev);
          return;
        }
        if (length < EVENT_SIZE) return;
        const ev = libsslDecoder.decode(offset);
        this.#nowNs = ev.tsNs;
        this.#libsslEvents++;
        if (ev.kind === EventKind.Exe) exe?.learn(ev);
        else this.#correlator.push(ev);
      });
      total += n;
      if (n === 0) return total;
    }
  }

  /** Gives up what idled past the window (called often; scans only every so often). */
  tick(nowNs: number): void {
    this.#nowNs = nowNs;
    if (nowNs - this.#lastExpireNs >= EXPIRE_INTERVAL_NS) {
      this.#lastExpireNs = nowNs;
      this.#correlator.expire(nowNs);
      this.#wire?.expire(nowNs);
      this.#joiner.expire(nowNs);
    }
    const libssl = this.#opts.libssl;
    if (libssl?.aggregated && nowNs - this.#lastKernelExpireNs >= KERNEL_EXPIRE_INTERVAL_NS) {
      this.#lastKernelExpireNs = nowNs;
      this.#giveUpKernelHandshakes(libssl, "timeout", nowNs - this.#opts.windowMs * 1e6, () => nowNs);
    }
  }

  /**
   * At the end: every handshake still in progress anywhere becomes a line as it is. `now` (ktime) is read
   * after the last drain and after the kernel's table: a handshake that began meanwhile ends after it began.
   */
  finish(region: EventRegion | null, now: () => number): void {
    if (region) this.drain(region);
    const libssl = this.#opts.libssl;
    if (libssl?.aggregated) this.#giveUpKernelHandshakes(libssl, "incomplete", Number.POSITIVE_INFINITY, now);
    this.#nowNs = now();
    this.#correlator.flush("incomplete");
    this.#wire?.flush(this.#nowNs);
    this.#joiner.flush();
  }

  metrics(): TraceMetrics {
    const c = this.#correlator.counters;
    const j = this.#joiner.counters;
    const libsslDrops = this.#opts.libssl?.stats().dropped ?? 0;
    const libssl = this.#opts.libssl
      ? {
          events: this.#libsslEvents,
          handshakes: c.handshakesEmitted,
          timeouts: c.correlationTimeouts,
          evictions: c.cacheEvictions + this.#opts.libssl.kernelEvictions,
          kernel_drops: libsslDrops,
        }
      : null;
    let wire: TraceMetrics["wire"] = null;
    if (this.#wire !== null && this.#opts.wire !== null) {
      const k = this.#opts.wire.stats();
      const w = this.#wire.counters;
      wire = {
        events: this.#wireEvents,
        segments: w.segments,
        connections_followed: k.followed,
        handshakes: w.observations,
        not_tls: k.notTls,
        late: k.late,
        filtered: k.filtered,
        unreadable: { ...w.unreadable },
        problems: { ...w.problems },
        timeouts: w.timeouts,
        evictions: w.evictions,
        capped: k.capped,
        kernel_drops: k.dropped,
      };
    }
    const events = this.#libsslEvents + this.#wireEvents;
    const drops = libsslDrops + (wire?.kernel_drops ?? 0);
    const seen = events + drops;
    return {
      eventsReceived: events,
      handshakesEmitted: j.joined + j.libsslOnly + j.wireOnly,
      correlationTimeouts: (libssl?.timeouts ?? 0) + (wire?.timeouts ?? 0),
      cacheEvictions: (libssl?.evictions ?? 0) + (wire?.evictions ?? 0),
      kernel_drops: drops,
      kernel_drop_rate: seen === 0 ? 0 : Number((drops / seen).toPrecision(6)),
      libssl,
      wire,
      join: {
        joined: j.joined,
        libssl_only: j.libsslOnly,
        wire_only: j.wireOnly,
        links_rejected: j.linksRejected,
      },
    };
  }

  /**
   * Aggregated mode: handshakes the kernel holds, untouched since `before`, become lines with `error`; a
   * timeout ends at the handshake's last call, anything else at `now()`, read once the table has been read.
   */
  #giveUpKernelHandshakes(libssl: LibsslKernel, error: string, before: number, now: () => number): void {
    const commOf = this.#opts.commOf ?? (() => "");
    const live = libssl.liveHandshakes();
    const nowNs = now();
    for (const hs of live) {
      if (hs.lastNs >= before) continue;
      libssl.forgetHandshake(hs);
      this.#correlator.giveUp(hs, error, error === "timeout" ? hs.lastNs : nowNs, commOf(hs.pid));
    }
  }

  #append(seen: HandshakeSeen): void {
    if (this.writeError !== null) return;
    try {
      appendObservation(seen, this.#opts.context, this.#opts.sink, this.#opts.onProblem);
    } catch (err) {
      this.writeError = err;
    }
  }
}
