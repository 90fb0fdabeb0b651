/**
 * A source of synthetic kernel events for tests and benchmarks: the flood program run by the kernel on demand,
 * drained like the probes' ring.
 */
import { type BpfObject, Libbpf } from "../../../ffi/libbpf.ts";
import { RingBufferReader } from "../../../ffi/ringbuf.ts";
import { type CarnotEvent, EVENT_SIZE, EventDecoder } from "./events.ts";
import { type ProbeStats, readStats } from "./probes.ts";

/**
 * Test and benchmark source of synthetic events: bpf/flood.bpf.o run through BPF_PROG_TEST_RUN, read through
 * the same ring-buffer reader, decoder and drop counter as SslProbes. `elf` = the bytes of flood.bpf.o.
 */
export class SyntheticEventSource {
  readonly ringbufSize: number;
  /** fd of the `flood` program, for emitting from a Worker (Libbpf.testRunByFd). */
  readonly programFd: number;
  readonly #libbpf: Libbpf;
  readonly #object: BpfObject;
  readonly #reader: RingBufferReader;
  readonly #decoder: EventDecoder;
  #nextSeq = 0;
  #closed = false;

  constructor(elf: Uint8Array, ringbufSize: number) {
    this.#libbpf = Libbpf.open();
    this.#libbpf.setPrint(null);
    this.#object = this.#libbpf.openObject(elf, "flood");
    try {
      this.#object.setMaxEntries("events", ringbufSize);
      this.#object.load();
      this.programFd = this.#object.programFd("flood");
      this.ringbufSize = this.#object.maxEntries("events");
      this.#reader = new RingBufferReader(this.#libbpf.libc, this.#object.mapFd("events"), this.ringbufSize);
      this.#decoder = new EventDecoder(
        this.#reader.dataBuffer,
        this.#reader.dataOffset,
        2 * this.ringbufSize,
      );
    } catch (err) {
      this.#object.close();
      throw err;
    }
  }

  /** Emits `count` events now (aux = consecutive sequence numbers); returns the first sequence number. */
  emit(count: number): number {
    const first = this.#nextSeq;
    this.#libbpf.testRunByFd(this.programFd, floodArgs(count, first));
    this.#nextSeq += count;
    return first;
  }

  drain(onEvent: (ev: CarnotEvent) => void, maxEvents = Infinity): number {
    const decoder = this.#decoder;
    return this.#reader.drain((offset, length) => {
      if (length >= EVENT_SIZE) onEvent(decoder.decode(offset));
    }, maxEvents);
  }

  /** Counts records without decoding them: the reader's own speed. */
  skip(): number {
    return this.#reader.drain(() => {});
  }

  pendingBytes(): number {
    return this.#reader.pending();
  }

  stats(): ProbeStats {
    return readStats(this.#object);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#reader.close();
    this.#object.close();
  }
}

/** struct flood_args of bpf/flood.bpf.c: u32 count, u32 reserved, u64 first_seq. */
export function floodArgs(count: number, firstSeq: number): Uint8Array {
  const bytes = new Uint8Array(16);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, count, true);
  view.setBigUint64(8, BigInt(firstSeq), true);
  return bytes;
}
