/** What the enrichment of one call knows and builds: the handlers of each family read and fill it. */
import type { ArgList } from "../scan.ts";
import type { Net } from "../schema.ts";
import type { CallSpec } from "../syscalls.ts";
import type { FdEntry, FdTable, ProcessTable, Task } from "../tables.ts";

/** The fd a call acts on, as it was when the call began (its first half). */
export interface EntryFd {
  fd: number;
  entry: FdEntry | undefined;
}

/** A system call with both halves joined. */
export interface CompleteCall {
  tid: number;
  ts: number;
  call: string;
  /** The arguments as printed; NO_ARGS for a resumed half with no first half (their positions are unknown). */
  args: ArgList;
  /** The return value; null when the call was cut (no return line at all) or returned `?`. */
  retval: number | null;
  errno: string | null;
  /** The fd annotation of the return value (`= 3</etc/passwd>`). */
  retAnnotation: string | null;
  latency: number | null;
  raw: string;
  /** Resolved when the first half was read; null or absent for a call read whole. */
  entry?: EntryFd | null;
  /** The six argument words when they are known without the text (from the kernel); else read from `args`. */
  words?: (number | null)[];
  /** The call's taxonomy when the caller already has it (callSpec(call)). */
  spec?: CallSpec;
}

export interface CallContext {
  readonly table: ProcessTable;
  readonly task: Task;
  readonly files: FdTable;
  readonly c: CompleteCall;
  readonly call: string;
  readonly spec: CallSpec;
  /** The arguments as printed; empty when their positions are unknown. */
  readonly args: ArgList;
  /** The six argument words. */
  readonly words: (number | null)[];
  readonly retval: number | null;
  readonly errno: string | null;
  /** The fd annotation of the return value (`= 3</etc/passwd>`). */
  readonly retAnnotation: string | null;
  /** The call succeeded (retval ≥ 0). */
  readonly ok: boolean;
  // what the record says, filled in by the common steps and the call's handler
  fd: number | null;
  fdEntry: FdEntry | undefined;
  absPath: string | null;
  destPath: string | null;
  resourceType: string | null;
  net: Net | null;
  perm: number | null;
  openFlags: number | null;
  byteCount: number | null;
  socketFamily: string | null;
  socketType: number | null;
  targetIds: (number | null)[] | null;
  kind: string;
  operation: string | null;
}

/** Enrichment of one call (or family of calls) beyond the common steps. */
export type Handler = (ctx: CallContext) => void;

/** int arguments are 32-bit: raw `0xffffff9c` is AT_FDCWD. */
export const int32 = (v: number | null | undefined): number | null =>
  v === null || v === undefined ? null : v | 0;
