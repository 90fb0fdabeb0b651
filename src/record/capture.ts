/**
 * The kernel side of `carnot record`: loads bpf/record.bpf.o with the descriptor table, attaches its five
 * tracepoint programs (sys_enter, sys_exit, sched_process_fork, _exec, _exit), and says which processes to
 * follow. Events come through its own ring buffer; its counters say exactly how many were lost.
 */
import { readFileSync } from "node:fs";
import { type BpfLink, type BpfObject, Libbpf } from "../../ffi/libbpf.ts";
import { RingBufferReader } from "../../ffi/ringbuf.ts";
import recordObjectPath from "../../bpf/record.bpf.o" with { type: "file" };
import { CarnotError } from "../errors.ts";
import { descriptorTable } from "./calls.ts";
import { encodeRecordConfig, RECORD_STAT_COUNT, RecordStat } from "./events.ts";

/** followed's values (record.bpf.c) */
const FOLLOW_ON = 1;
const FOLLOW_AT_EXEC = 2;
const FOLLOW_SPAWNING = 3;
const PROGRAMS = ["sys_enter", "sys_exit", "sched_process_fork", "sched_process_exec", "sched_process_exit"];

export interface CaptureStats {
  attempted: number;
  dropped: number;
}

export class RecordCapture {
  readonly reader: RingBufferReader;
  readonly attachMs: number;
  readonly #object: BpfObject;
  readonly #links: BpfLink[];
  readonly #libbpf: Libbpf;
  #closed = false;

  private constructor(
    libbpf: Libbpf,
    object: BpfObject,
    links: BpfLink[],
    reader: RingBufferReader,
    attachMs: number,
  ) {
    this.#libbpf = libbpf;
    this.#object = object;
    this.#links = links;
    this.reader = reader;
    this.attachMs = attachMs;
  }

  /** Loads and attaches; nothing is recorded until a process is followed. */
  static open(ringbufSize: number): RecordCapture {
    const libbpf = Libbpf.open();
    const elf = new Uint8Array(readFileSync(recordObjectPath));
    let object: BpfObject | null = null;
    const links: BpfLink[] = [];
    let reader: RingBufferReader | null = null;
    try {
      object = libbpf.openObject(elf, "carnot_record");
      object.setReadOnlyData(encodeRecordConfig(descriptorTable()));
      object.setMaxEntries("events", ringbufSize);
      object.load();
      reader = new RingBufferReader(libbpf.libc, object.mapFd("events"), object.maxEntries("events"));
      const start = performance.now();
      for (const name of PROGRAMS) links.push(object.attach(name));
      return new RecordCapture(libbpf, object, links, reader, performance.now() - start);
    } catch (err) {
      for (const link of links) link.destroy();
      reader?.close();
      object?.close();
      throw new CarnotError(`record: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Follows process `tgid` and what it starts; `atExec`: only from its next execve on (the command carnot ran). */
  follow(tgid: number, atExec = false): boolean {
    const key = new Uint32Array([tgid]);
    const value = new Uint32Array([atExec ? FOLLOW_AT_EXEC : FOLLOW_ON]);
    return this.#libbpf.updateElementByFd(
      this.#object.mapFd("followed"),
      new Uint8Array(key.buffer),
      new Uint8Array(value.buffer),
    );
  }

  /**
   * Runs `spawn` with the processes this process starts meanwhile followed from their execve on, and this
   * process itself not followed: the command is followed from its first instruction, with nothing in between.
   */
  spawnFollowed<T>(spawn: () => T): T {
    const fd = this.#object.mapFd("followed");
    const key = new Uint8Array(new Uint32Array([process.pid]).buffer);
    if (!this.#libbpf.updateElementByFd(fd, key, new Uint8Array(new Uint32Array([FOLLOW_SPAWNING]).buffer)))
      throw new CarnotError("cannot follow the command: the kernel table is full");
    try {
      return spawn();
    } finally {
      this.#object.deleteKey("followed", key);
    }
  }

  /** Exact kernel counters; drain first so that received + dropped === attempted. */
  stats(): CaptureStats {
    const v = this.#object.readU64Array("stats", RECORD_STAT_COUNT).map(Number);
    return { attempted: v[RecordStat.Attempted]!, dropped: v[RecordStat.Dropped]! };
  }

  /** Detaches every program and frees the object. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const link of this.#links) link.destroy();
    this.reader.close();
    this.#object.close();
  }
}
