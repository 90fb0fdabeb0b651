/** Which action a record belongs to: read from its operation and kind, the replay's one description. */
import { callSpec } from "../../replay/syscalls.ts";
import type { EnrichedRecord } from "../enriched-reader.ts";

/** The kinds of record the collapser tells apart. */
export enum Category {
  Open,
  Socket,
  Accept,
  Connect,
  Bind,
  Listen,
  Read,
  Write,
  Copy,
  Listing,
  FdMetadata,
  Mmap,
  Close,
  CloseRange,
  Dup,
  Lookup,
  Exec,
  Clone,
  Exit,
  Signal,
  Change,
  Runtime,
}

export const operationOf = (record: EnrichedRecord): string | null =>
  record.operation ?? callSpec(record.call).operation;

/** The argument holding the fd a call acts on (mmap's fifth), as the replay's table has it. */
export function fdArgumentOf(record: EnrichedRecord): number | null {
  const at = callSpec(record.call).fd;
  const fd = at === undefined ? null : record.args[at];
  return typeof fd === "number" ? fd : null;
}

/**
 * The action category of a record, from its `operation` and `high_level_kind` — the replay's one
 * description of each call (src/replay/syscalls.ts), which also fills them in for a record that lacks them.
 */
export function categoryOf(record: EnrichedRecord): Category {
  const spec = callSpec(record.call);
  const kind = record.high_level_kind ?? spec.kind;
  // the call acts on an fd it is given (fstat, read), not on a path (stat) or its own memory (getrandom)
  const onFd = spec.fd !== undefined;
  switch (operationOf(record)) {
    case "OPEN":
      return Category.Open;
    case "CREATE":
      // a socket, a file opened (creat, O_CREAT), a name made (mkdir, link); pipes and the like are plumbing
      if (kind === "NetSocket") return Category.Socket;
      if (kind !== "FileRead" && kind !== "FileWrite") return Category.Runtime;
      return spec.returnsFd ? Category.Open : Category.Change;
    case "ACCEPT":
      return Category.Accept;
    case "CONNECT":
      return Category.Connect;
    case "BIND":
      return Category.Bind;
    case "LISTEN":
      return Category.Listen;
    case "READ":
      if (!onFd) return Category.Runtime;
      // getdents: the replay records every read of a directory as one
      return record.resource_type === "DIR" ? Category.Listing : Category.Read;
    case "WRITE":
      return onFd ? Category.Write : Category.Runtime;
    case "COPY":
      return Category.Copy;
    case "STAT":
      return onFd ? Category.FdMetadata : Category.Lookup;
    case "FCNTL":
    case "IOCTL":
    case "SEEK":
    case "LOCK":
    case "FLUSH":
    case "ALLOCATE":
      return Category.FdMetadata;
    case "TRUNCATE":
      return onFd ? Category.FdMetadata : Category.Change;
    case "MMAP":
      return Category.Mmap;
    case "CLOSE":
      return onFd ? Category.Close : Category.CloseRange;
    case "DUP":
      return Category.Dup;
    case "EXEC":
      return Category.Exec;
    case "CLONE":
      return Category.Clone;
    case "EXIT":
      return Category.Exit;
    case "SIGNAL":
      return Category.Signal;
    case "DELETE":
    case "RENAME":
    case "CHMOD":
    case "CHOWN":
      return Category.Change;
    default:
      return Category.Runtime;
  }
}
