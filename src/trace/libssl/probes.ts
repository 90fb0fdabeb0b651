/**
 * Loads bpf/carnot.bpf.o through libbpf (bun:ffi), attaches its uprobes to each OpenSSL library, and hands
 * the kernel's events to the caller from an mmap'ed ring buffer.
 *
 *   const probes = SslProbes.open({ libraries: [findSystemLibssl()!] });   // throws CarnotError
 *   const timer = setInterval(() => probes.drain(onEvent), 10);           // never blocks: poll with a timer
 *   …  probes.drain(onEvent); flush output; probes.close();                // then detach
 *
 * Two BPF programs (uprobe__libssl, uretprobe__libssl) serve every probed function; the attach cookie says
 * which function and library. With uprobe_multi (Linux 6.6+) that is 2 links per library, and close() costs
 * one RCU grace period per link (~50-100 ms here) instead of one per function.
 */
import { closeSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import {
  BPF_TRACE_UPROBE_MULTI,
  type BpfLink,
  type BpfObject,
  Libbpf,
  LIBBPF_WARN,
} from "../../../ffi/libbpf.ts";
import type { Libc } from "../../../ffi/libc.ts";
import { RingBufferReader } from "../../../ffi/ringbuf.ts";
import carnotObjectPath from "../../../bpf/carnot.bpf.o" with { type: "file" };
import { CarnotError } from "../../errors.ts";
import { log } from "../../log.ts";
import {
  COOKIE_FUNC_BITS,
  ProbeFunc,
  type CarnotEvent,
  EVENT_SIZE,
  EventDecoder,
  CONN_KEY_SIZE,
  CONN_STATE_SIZE,
  ConnFlags,
  decodeConn,
  type CgroupFilter,
  encodeConfig,
  encodeLibOffsets,
  type KernelHandshake,
  type LibOffsets,
  LIBS_MAX,
  STAT_ATTEMPTED,
  STAT_CONN_CREATED,
  STAT_CONN_DELETED,
  STAT_COUNT,
  STAT_DROPPED,
} from "./events.ts";
import { checkLibssl, IMPLICIT_CHECKPOINT_SYMBOLS, type LibsslCheck } from "./library.ts";
import type { SharedMaps } from "../shared-maps.ts";
import { probeSkip } from "./prologue.ts";
import { KernelLog, refCtrMismatches, uprobeHolders } from "./uprobe-conflicts.ts";

export const DEFAULT_RINGBUF_SIZE = 8 * 1024 * 1024;

export interface ProbeOptions {
  /** Libraries or executables exporting SSL_* (the system libssl, node, …); lib_id = index in this list. */
  libraries: string[];
  /** Only this process (tgid), filtered in the kernel. */
  pid?: number;
  /** Only tasks with exactly this comm (≤ 15 bytes), filtered in the kernel. */
  comm?: string;
  /** Only tasks in this cgroup v2 or below it (--container), filtered in the kernel. */
  cgroup?: CgroupFilter;
  /** Ring buffer bytes: a power of two ≥ the page size (default 8 MiB). */
  ringbufSize?: number;
  /** libbpf's messages and per-probe notes on stderr. */
  verbose?: boolean;
  /** Default "auto". */
  attachMode?: AttachMode;
  /** Verified struct offsets per library (same order as `libraries`); null = none verified. */
  offsets?: (LibOffsets | null)[];
  /** Also probe SSL_read/SSL_write(_ex) entries as checkpoints of implicit handshakes (costs a trap per call). */
  implicitProbes?: boolean;
  /** One HS_DONE event per handshake, correlated in the kernel (default: one event per call). */
  aggregate?: boolean;
  /** bound of the kernel's per-connection table (aggregated mode; default 65,536), as --max-pending */
  maxPending?: number;
}

export interface ProbeStats {
  /** Events the probes tried to emit. */
  attempted: number;
  /** Of those, dropped because the ring buffer was full (exact). received + dropped === attempted. */
  dropped: number;
  /** Entries the probes created in / deleted from the per-connection table (aggregated mode). */
  connCreated: number;
  connDeleted: number;
}

/** Functions whose return matters too (SSL_new's SSL*, the handshake result, SSL_get_error's code). */
const RETURN_PROBED: ReadonlySet<string> = new Set([
  "SSL_new",
  "SSL_do_handshake",
  "SSL_connect",
  "SSL_accept",
  "SSL_get_error",
]);
/** Arguments the entry program reads, per function (the others read the first only). */
const ARGS_READ: ReadonlyMap<string, number> = new Map([
  ["SSL_ctrl", 4],
  ["SSL_CTX_ctrl", 4],
  ["SSL_get_error", 2],
]);
const ENTRY_PROGRAM = "uprobe__libssl";
const RETURN_PROGRAM = "uretprobe__libssl";

/**
 * How probes are attached. "multi": one uprobe_multi link per library and direction (Linux 6.6+), so
 * close() waits for 2 grace periods per library; "perf-event": one link per function (older kernels,
 * ~100 ms each to detach); "auto": multi when the kernel accepts it.
 */
export type AttachMode = "auto" | "multi" | "perf-event";

const CAP_SYS_ADMIN = 21;
const CAP_PERFMON = 38;
const CAP_BPF = 39;
const PRIVILEGE_HINT = "needs root, or CAP_BPF + CAP_PERFMON (+ CAP_SYS_RESOURCE on kernels before 5.11)";

/** Effective capabilities of this process, from /proc (no libcap needed). */
function effectiveCapabilities(): bigint {
  const status = readFileSync("/proc/self/status", "utf8");
  const match = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  return match ? BigInt(`0x${match[1]}`) : 0n;
}

function hasCapability(caps: bigint, cap: number): boolean {
  return ((caps >> BigInt(cap)) & 1n) === 1n;
}

/** Throws the privilege error before libbpf gives a less helpful EPERM. */
function assertPrivileged(libc: Libc): void {
  if (libc.geteuid() === 0) return;
  const caps = effectiveCapabilities();
  const bpf = hasCapability(caps, CAP_BPF) || hasCapability(caps, CAP_SYS_ADMIN);
  const perfmon = hasCapability(caps, CAP_PERFMON) || hasCapability(caps, CAP_SYS_ADMIN);
  if (!bpf || !perfmon) throw new CarnotError(`carnot trace ${PRIVILEGE_HINT}`, { exitCode: 1 });
}

/**
 * Where each function's probe goes: its file offset plus the bytes of leading instructions a single step
 * would cost a second exception for (src/trace/prologue.ts). Entry and return probes share one site.
 */
export function probeSites(
  check: LibsslCheck,
  funcs: readonly string[],
): Map<string, { offset: number; skip: number }> {
  const sites = new Map<string, { offset: number; skip: number }>();
  const fd = openSync(check.path, "r");
  try {
    for (const name of funcs) {
      const offset = check.offsets.get(name)!;
      const code = new Uint8Array(48); // the longest skipped run plus one instruction
      const length = readSync(fd, code, 0, code.length, offset);
      const skip = probeSkip(code.subarray(0, length), {
        argsRead: ARGS_READ.get(name) ?? 1,
        returnProbed: RETURN_PROBED.has(name),
      });
      sites.set(name, { offset, skip });
    }
  } finally {
    closeSync(fd);
  }
  return sites;
}

function validRingbufSize(size: number, pageSize: number): boolean {
  return Number.isInteger(size) && size >= pageSize && size <= 2 ** 30 && (size & (size - 1)) === 0;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A function the kernel would not probe, and why. */
export interface RefusedProbe {
  func: string;
  reason: string;
}

/** The errno text at the end of an attach error ("failed to attach uprobes in …: Invalid argument"). */
function errnoText(err: unknown): string {
  return describe(err).split(": ").at(-1) ?? describe(err);
}

/**
 * Attaches `funcs` of one file: entry and return programs, all or none per function. When the kernel refuses
 * (another tracer holds a uprobe at one of these places with another ref_ctr_offset: EINVAL), the functions it
 * names in its log are left out and the rest attached; failing that, each function is tried on its own. What
 * could not be attached comes back with the kernel's reason and, where it can be found, the other holder.
 */
function attachFunctions(
  object: BpfObject,
  libc: Libc,
  mode: "multi" | "perf-event",
  path: string,
  funcs: readonly string[],
  sites: ReadonlyMap<string, { offset: number; skip: number }>,
  cookie: (name: string) => number,
): { links: BpfLink[]; refused: RefusedProbe[] } {
  const at = (name: string) => sites.get(name)!.offset + sites.get(name)!.skip;
  const attachSet = (set: readonly string[]): BpfLink[] => {
    const made: BpfLink[] = [];
    try {
      for (const retprobe of [false, true]) {
        const probed = retprobe ? set.filter((name) => RETURN_PROBED.has(name)) : set;
        const program = retprobe ? RETURN_PROGRAM : ENTRY_PROGRAM;
        if (probed.length === 0) continue;
        if (mode === "multi") {
          made.push(
            object.attachUprobeMulti(program, {
              path,
              offsets: probed.map(at),
              cookies: probed.map(cookie),
              retprobe,
            }),
          );
          continue;
        }
        for (const name of probed) {
          made.push(
            object.attachUprobe(program, {
              path,
              funcName: name,
              funcOffset: sites.get(name)!.skip,
              retprobe,
              cookie: cookie(name),
            }),
          );
        }
      }
      return made;
    } catch (err) {
      for (const link of made) link.destroy();
      throw err;
    }
  };
  const kernelLog = KernelLog.fromNow(libc);
  const inode = statSync(path).ino;
  const mismatches = new Map<number, string>();
  const kernelSaid = () => {
    for (const [offset, old] of refCtrMismatches(kernelLog?.messages() ?? [], inode))
      mismatches.set(offset, old);
  };
  const refused: { func: string; errno: string }[] = [];
  let links: BpfLink[] = [];
  try {
    let remaining = [...funcs];
    for (;;) {
      try {
        links = attachSet(remaining);
        break;
      } catch (err) {
        // the kernel logs the place it refused: without it, try the rest; else each function alone
        kernelSaid();
        const culprit = remaining.find((name) => mismatches.has(at(name)));
        if (culprit === undefined) {
          for (const name of remaining) {
            try {
              links.push(...attachSet([name]));
            } catch (alone) {
              refused.push({ func: name, errno: errnoText(alone) });
            }
          }
          kernelSaid();
          break;
        }
        refused.push({ func: culprit, errno: errnoText(err) });
        remaining = remaining.filter((name) => name !== culprit);
        if (remaining.length === 0) break;
      }
    }
  } finally {
    kernelLog?.close();
  }
  const holders =
    refused.length > 0
      ? uprobeHolders(
          libc,
          path,
          refused.map((r) => at(r.func)),
        )
      : new Map();
  return {
    links,
    refused: refused.map(({ func, errno }) => {
      const old = mismatches.get(at(func));
      const who = holders.get(at(func));
      const why =
        old === undefined ? "" : `the kernel: ref_ctr_offset mismatch, another uprobe there has ${old}`;
      const by = who ? `held by ${who.join(", ")}` : old === undefined ? "" : "its holder not found";
      const detail = [why, by].filter((part) => part !== "").join("; ");
      return { func, reason: detail === "" ? errno : `${errno} (${detail})` };
    }),
  };
}

/** A CarnotError from a failed step; EPERM as non-root gets the privilege hint (as root it is the verifier). */
function wrap(err: unknown, extra?: string): CarnotError {
  const message = describe(err);
  const eperm = /Operation not permitted|Permission denied/.test(message) && process.geteuid?.() !== 0;
  const suffix = eperm ? ` (${PRIVILEGE_HINT})` : extra ? `: ${extra}` : "";
  return new CarnotError(`${message}${suffix}`, { cause: err });
}

/** The attached probes: owns the BPF object, its links and the ring buffer mapping until close(). */
/** The `stats` map every carnot object has (bpf/output_maps.h): its exact counters (CARNOT_STAT_*). */
export function readStats(object: BpfObject): ProbeStats {
  const values = object.readU64Array("stats", STAT_COUNT);
  return {
    attempted: Number(values[STAT_ATTEMPTED]),
    dropped: Number(values[STAT_DROPPED]),
    connCreated: Number(values[STAT_CONN_CREATED]),
    connDeleted: Number(values[STAT_CONN_DELETED]),
  };
}

export class SslProbes {
  readonly libraries: { id: number; path: string }[];
  /** Milliseconds spent attaching every probe. */
  readonly attachMs: number;
  /** How the probes ended up attached. */
  readonly attachMode: "multi" | "perf-event";
  /** one event per handshake (the kernel correlates), else one per probed call */
  readonly aggregated: boolean;
  /** Per library id: the functions the kernel refused to probe, and why (another tracer in the way). */
  readonly refused: ReadonlyMap<number, readonly RefusedProbe[]>;
  readonly #object: BpfObject;
  readonly #libbpf: Libbpf;
  readonly #links: BpfLink[];
  readonly #reader: RingBufferReader;
  readonly #decoder: EventDecoder;
  #closed = false;
  /** entries of the kernel's table deleted from user space (forgetHandshake) */
  #forgotten = 0;
  #kernelEvictions = 0;

  private constructor(
    libbpf: Libbpf,
    object: BpfObject,
    links: BpfLink[],
    reader: RingBufferReader,
    libraries: { id: number; path: string }[],
    attachMs: number,
    attachMode: "multi" | "perf-event",
    aggregated: boolean,
    refused: ReadonlyMap<number, readonly RefusedProbe[]>,
  ) {
    this.attachMode = attachMode;
    this.aggregated = aggregated;
    this.refused = refused;
    this.#libbpf = libbpf;
    this.#object = object;
    this.#links = links;
    this.#reader = reader;
    this.#decoder = new EventDecoder(reader.dataBuffer, reader.dataOffset, 2 * reader.size);
    this.libraries = libraries;
    this.attachMs = attachMs;
  }

  /** open_mem → set globals → load → attach; throws CarnotError naming the step that failed. */
  static open(opts: ProbeOptions): SslProbes {
    if (opts.libraries.length === 0) throw new CarnotError("no OpenSSL library to probe (use --libssl PATH)");
    let libbpf: Libbpf;
    try {
      libbpf = Libbpf.open();
    } catch (err) {
      throw wrap(err);
    }
    assertPrivileged(libbpf.libc);
    const ringbufSize = opts.ringbufSize ?? DEFAULT_RINGBUF_SIZE;
    const pageSize = libbpf.libc.pageSize();
    if (!validRingbufSize(ringbufSize, pageSize)) {
      throw new CarnotError(
        `invalid ring buffer size ${ringbufSize}: must be a power of two from ${pageSize} to 1073741824`,
      );
    }
    let config: Uint8Array;
    try {
      config = encodeConfig({
        pid: opts.pid,
        comm: opts.comm,
        cgroup: opts.cgroup,
        aggregate: opts.aggregate,
      });
    } catch (err) {
      throw wrap(err);
    }
    const checks = opts.libraries.map((path) => {
      try {
        return checkLibssl(path);
      } catch (err) {
        throw wrap(err);
      }
    });
    // The same file named twice (a symlink and its target) would report every call twice.
    const firstIndex = checks.map((check) => checks.findIndex((other) => other.path === check.path));
    const unique = checks.filter((_, i) => firstIndex[i] === i);
    const uniqueOffsets = checks
      .map((_, i) => opts.offsets?.[i] ?? null)
      .filter((_, i) => firstIndex[i] === i);
    if (unique.length > LIBS_MAX) throw new CarnotError(`at most ${LIBS_MAX} libraries can be probed`);

    // libbpf's messages: kept for the load error, shown live only with --verbose.
    const messages: string[] = [];
    libbpf.setPrint((level, message) => {
      const line = message.trimEnd();
      // Debug chatter is only worth keeping when it is shown; warnings (and the verifier log) always are.
      if (level === LIBBPF_WARN || opts.verbose) messages.push(line);
      if (messages.length > 1000) messages.splice(0, messages.length - 1000);
      if (opts.verbose) log.debug(line);
    });

    let object: BpfObject | null = null;
    const links: BpfLink[] = [];
    let reader: RingBufferReader | null = null;
    try {
      const elf = new Uint8Array(readFileSync(carnotObjectPath));
      const load = (mode: "multi" | "perf-event"): BpfObject => {
        const loaded = libbpf.openObject(elf, "carnot");
        try {
          loaded.setMaxEntries("events", ringbufSize);
          if (opts.maxPending !== undefined) loaded.setMaxEntries("conns", opts.maxPending);
          loaded.setReadOnlyData(config);
          if (mode === "multi") {
            loaded.setExpectedAttachType(ENTRY_PROGRAM, BPF_TRACE_UPROBE_MULTI);
            loaded.setExpectedAttachType(RETURN_PROGRAM, BPF_TRACE_UPROBE_MULTI);
          }
          loaded.load();
          return loaded;
        } catch (err) {
          loaded.close();
          throw err;
        }
      };
      const loadOrExplain = (mode: "multi" | "perf-event"): BpfObject => {
        try {
          return load(mode);
        } catch (err) {
          // One line for the user; the whole log (verifier output included) rides along for --verbose and tests.
          const hint = opts.verbose ? undefined : "run with --verbose for the verifier log";
          throw Object.assign(wrap(err, hint), { verifierLog: messages.join("\n") });
        }
      };
      let mode: "multi" | "perf-event" = opts.attachMode === "perf-event" ? "perf-event" : "multi";
      if (opts.attachMode === "auto" || opts.attachMode === undefined) {
        try {
          object = load("multi");
        } catch (err) {
          if (opts.verbose) log.debug(`uprobe_multi not available (${describe(err)}), one link per function`);
          messages.length = 0;
          mode = "perf-event";
        }
      }
      object ??= loadOrExplain(mode);
      const loaded = object;

      for (const [id, offsets] of uniqueOffsets.entries()) {
        if (offsets) loaded.writeArrayElement("lib_offsets", id, encodeLibOffsets(offsets));
      }
      const started = performance.now();
      const libraries = unique.map((check, id) => ({ id, path: check.path }));
      const refused = new Map<number, RefusedProbe[]>();
      for (const [id, check] of unique.entries()) {
        for (const name of check.missingOptional) {
          if (opts.verbose) log.debug(`${check.path}: no ${name}, its probe is skipped`);
        }
        // the implicit checkpoints only help where the handshake state can be read (offsets verified)
        const verified = uniqueOffsets[id];
        const funcs = [...check.offsets.keys()].filter((name) => {
          if ((IMPLICIT_CHECKPOINT_SYMBOLS as readonly string[]).includes(name))
            return opts.implicitProbes === true && verified?.handState != null;
          // aggregated, the SSL_CTX* comes with each handshake's event when its offset is verified: SSL_new
          // (an entry and a return probe on every connection) is not needed
          if (name === "SSL_new") return !(opts.aggregate === true && verified?.sslCtx != null);
          return true;
        });
        const sites = probeSites(check, funcs);
        if (opts.verbose) {
          const moved = [...sites]
            .filter(([, site]) => site.skip > 0)
            .map(([name, site]) => `${name}+${site.skip}`);
          if (moved.length > 0)
            log.debug(`${check.path}: probes past single-stepped first instructions: ${moved.join(", ")}`);
        }
        const cookie = (name: string) =>
          id * 2 ** COOKIE_FUNC_BITS + ProbeFunc[name as keyof typeof ProbeFunc];
        const attached = attachFunctions(loaded, libbpf.libc, mode, check.path, funcs, sites, cookie);
        links.push(...attached.links);
        if (attached.links.length === 0) {
          const why = attached.refused.map((r) => `${r.func}: ${r.reason}`).join("; ");
          throw new CarnotError(`failed to attach uprobes in ${check.path}: ${why}`);
        }
        if (attached.refused.length > 0) refused.set(id, attached.refused);
      }
      const attachMs = performance.now() - started;
      if (opts.verbose) log.debug(`attached ${links.length} ${mode} links in ${attachMs.toFixed(0)} ms`);
      // The size the kernel really has (libbpf may round a ring buffer up).
      reader = new RingBufferReader(libbpf.libc, loaded.mapFd("events"), loaded.maxEntries("events"));
      return new SslProbes(
        libbpf,
        loaded,
        links,
        reader,
        libraries,
        attachMs,
        mode,
        opts.aggregate === true,
        refused,
      );
    } catch (err) {
      for (const link of links) link.destroy();
      reader?.close();
      object?.close();
      libbpf.setPrint(null);
      throw err instanceof CarnotError ? err : wrap(err);
    }
  }

  /** Number of links (each costs one RCU grace period, ~100 ms in a VM, to detach in close()). */
  get linkCount(): number {
    return this.#links.length;
  }

  /**
   * Decodes every event available now, in ring-buffer order, and frees their space. Never blocks; call it
   * from a short timer (≤ 10 ms keeps an 8 MiB buffer from filling at ~20 k events/ms). Returns events read.
   */
  drain(onEvent: (ev: CarnotEvent) => void, maxEvents = Infinity): number {
    if (this.#closed) return 0;
    const decoder = this.#decoder;
    return this.#reader.drain((offset, length) => {
      if (length >= EVENT_SIZE) onEvent(decoder.decode(offset));
    }, maxEvents);
  }

  /** The ring buffer the probes write to (the wire source writes to it too when it shares it). */
  get ring(): RingBufferReader {
    return this.#reader;
  }

  /** The maps another carnot object shares with these probes: the ring buffer and the per-thread handshakes. */
  sharedMaps(): SharedMaps {
    return {
      events: this.#object.mapFd("events"),
      hsStacks: this.#object.mapFd("hs_stacks"),
      implicitSsl: this.#object.mapFd("implicit_ssl"),
      exeAnnounced: this.#object.mapFd("exe_announced"),
    };
  }

  /** Bytes waiting in the ring buffer. */
  pendingBytes(): number {
    return this.#closed ? 0 : this.#reader.pending();
  }

  /**
   * Aggregated mode: the handshakes the kernel holds in progress (a handshake call seen, not finished). Reading
   * the table also brings `kernelEvictions` up to date when no probe changed the table during the read.
   */
  liveHandshakes(): KernelHandshake[] {
    if (this.#closed) return [];
    // The counters are read on both sides of the table: each entry created before the walk began is, by its
    // end, deleted (counted by then), forgotten, evicted or seen. Probes running meanwhile can then only make
    // the count lower, never invent an eviction (created and deleted read at other moments than the walk did).
    const before = readStats(this.#object);
    const entries = new Map<string, [Uint8Array, Uint8Array]>();
    // a walk that lost its place (its key deleted meanwhile) starts over: an entry may come twice
    for (const entry of this.#object.entries("conns", CONN_KEY_SIZE, CONN_STATE_SIZE))
      entries.set(entry[0].join(","), entry);
    const after = readStats(this.#object);
    const evicted = before.connCreated - after.connDeleted - this.#forgotten - entries.size;
    this.#kernelEvictions = Math.max(this.#kernelEvictions, evicted);
    return [...entries.values()]
      .map(([key, value]) => decodeConn(key, value))
      .filter((c) => (c.flags & ConnFlags.Live) !== 0);
  }

  /**
   * Entries the kernel's per-connection table evicted itself (full at --max-pending: an LRU hash drops its
   * least recently used entry), as of the last liveHandshakes(): at least entries created − deleted (by the
   * probes, or by forgetHandshake) − entries held; exact when no probe runs meanwhile (at exit), never lower
   * than before, never more than really were.
   */
  get kernelEvictions(): number {
    return this.#kernelEvictions;
  }

  /** Drops a handshake from the kernel's table (given up by user space: its end must not be reported). */
  forgetHandshake(hs: KernelHandshake): void {
    if (!this.#closed && this.#object.deleteKey("conns", hs.key)) this.#forgotten++;
  }

  /** Exact kernel counters; drain first so that received + dropped === attempted. */
  stats(): ProbeStats {
    return readStats(this.#object);
  }

  /** Detaches every probe, unmaps the ring buffer and frees the BPF object. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const link of this.#links) link.destroy();
    this.#reader.close();
    this.#object.close();
    this.#libbpf.setPrint(null);
  }
}
