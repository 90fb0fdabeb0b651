/**
 * The kernel side of the wire source: loads bpf/wire.bpf.o, attaches its cgroup_skb ingress and egress programs
 * to the cgroup v2 root (every socket of the host is below it), and tells the kernel which connections it has
 * seen enough of. The events go to a ring buffer of its own, or to the libssl probes' when given (one ring, one
 * drain). Why cgroup_skb and not TC: WORKLOG.md, "the wire source".
 */
import { readFileSync } from "node:fs";
import { type BpfLink, type BpfObject, Libbpf } from "../../../ffi/libbpf.ts";
import { RingBufferReader } from "../../../ffi/ringbuf.ts";
import wireObjectPath from "../../../bpf/wire.bpf.o" with { type: "file" };
import { CarnotError } from "../../errors.ts";
import { cgroupV2Root } from "../attribution/cgroups.ts";
import type { SharedMaps } from "../shared-maps.ts";
import { encodeWireConfig, WIRE_STAT_COUNT, type WireFilter, WireStat } from "./events.ts";

export interface WireCaptureOptions extends WireFilter {
  /** the libssl probes' maps (ring buffer, per-thread handshakes, announced executables); absent: its own */
  shared?: SharedMaps;
  /** size of the own ring buffer (ignored with `shared`) */
  ringbufSize?: number;
  /** where to attach (default: the cgroup v2 mount found in /proc/mounts) */
  cgroupRoot?: string;
}

export interface WireStats {
  attempted: number;
  dropped: number;
  followed: number;
  notTls: number;
  late: number;
  filtered: number;
  capped: number;
  released: number;
  undecided: number;
  /** ClientHellos that reached a listening socket (TCP_DEFER_ACCEPT) */
  deferred: number;
}

export class WireCapture {
  readonly cgroupRoot: string;
  /** the ring buffer this source reads from when it has its own (null when sharing the libssl one) */
  readonly reader: RingBufferReader | null;
  readonly attachMs: number;
  readonly #object: BpfObject;
  readonly #links: BpfLink[];
  readonly #releasedFd: number;
  readonly #key = new BigUint64Array(1);
  readonly #one = new Uint8Array([1]);
  readonly #libbpf: Libbpf;
  #closed = false;

  private constructor(
    libbpf: Libbpf,
    object: BpfObject,
    links: BpfLink[],
    reader: RingBufferReader | null,
    cgroupRoot: string,
    attachMs: number,
  ) {
    this.#libbpf = libbpf;
    this.#object = object;
    this.#links = links;
    this.reader = reader;
    this.cgroupRoot = cgroupRoot;
    this.attachMs = attachMs;
    this.#releasedFd = object.mapFd("released");
  }

  static open(opts: WireCaptureOptions = {}): WireCapture {
    const cgroupRoot = opts.cgroupRoot ?? cgroupV2Root();
    if (cgroupRoot === null) {
      throw new CarnotError(
        "no cgroup v2 hierarchy mounted: the wire source attaches there (mount -t cgroup2 none /sys/fs/cgroup)",
      );
    }
    const libbpf = Libbpf.open();
    const elf = new Uint8Array(readFileSync(wireObjectPath));
    let object: BpfObject | null = null;
    const links: BpfLink[] = [];
    let reader: RingBufferReader | null = null;
    try {
      object = libbpf.openObject(elf, "carnot_wire");
      object.setReadOnlyData(encodeWireConfig(opts));
      if (opts.shared) {
        object.reuseMap("events", opts.shared.events);
        object.reuseMap("hs_stacks", opts.shared.hsStacks);
        object.reuseMap("implicit_ssl", opts.shared.implicitSsl);
        object.reuseMap("exe_announced", opts.shared.exeAnnounced);
      } else if (opts.ringbufSize !== undefined) {
        object.setMaxEntries("events", opts.ringbufSize);
      }
      object.load();
      if (!opts.shared)
        reader = new RingBufferReader(libbpf.libc, object.mapFd("events"), object.maxEntries("events"));
      const start = performance.now();
      links.push(object.attachCgroup("cgroup_skb__egress", cgroupRoot));
      links.push(object.attachCgroup("cgroup_skb__ingress", cgroupRoot));
      return new WireCapture(libbpf, object, links, reader, cgroupRoot, performance.now() - start);
    } catch (err) {
      for (const link of links) link.destroy();
      reader?.close();
      object?.close();
      throw new CarnotError(`wire source: ${(err as Error).message}`, { cause: err });
    }
  }

  /** The kernel stops copying this connection at its next packet (user space has decided its handshake). */
  release(cookie: number): void {
    if (this.#closed) return;
    this.#key[0] = BigInt(cookie);
    // a full table only means the kernel copies up to its cap: nothing is lost
    this.#libbpf.updateElementByFd(this.#releasedFd, new Uint8Array(this.#key.buffer), this.#one);
  }

  /** Exact kernel counters; drain first so that received + dropped === attempted. */
  stats(): WireStats {
    const v = this.#object.readU64Array("stats", WIRE_STAT_COUNT).map(Number);
    return {
      attempted: v[WireStat.Attempted]!,
      dropped: v[WireStat.Dropped]!,
      followed: v[WireStat.Followed]!,
      notTls: v[WireStat.NotTls]!,
      late: v[WireStat.Late]!,
      filtered: v[WireStat.Filtered]!,
      capped: v[WireStat.Capped]!,
      released: v[WireStat.Released]!,
      undecided: v[WireStat.Undecided]!,
      deferred: v[WireStat.Deferred]!,
    };
  }

  /** Detaches both programs (no RCU wait per link for cgroup links) and frees the object. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const link of this.#links) link.destroy();
    this.reader?.close();
    this.#object.close();
  }
}
