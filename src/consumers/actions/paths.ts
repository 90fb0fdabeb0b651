/** Actions on paths: files opened by name, paths looked up, files changed by name. */
import type { EnrichedRecord } from "../enriched-reader.ts";
import { Category, operationOf } from "./categories.ts";
import type { ActionCollapser } from "./collapse.ts";
import { commonDirectory, directoryOf, formatMode } from "./describe.ts";
import { fdCall, openFd } from "./fds.ts";
import { extendSpan, type ProcessState, startSpan } from "./state.ts";

/** open, openat, creat: a new fd; a failed open is a look-up that found nothing. */
export function open(
  c: ActionCollapser,
  state: ProcessState,
  record: EnrichedRecord,
  line: number,
  ok: boolean,
): void {
  if (ok) openFd(c, state, record, line, record.retval!);
  else lookup(state, record, line, false);
}

/** stat and the like; fstat through newfstatat/statx(fd, "", AT_EMPTY_PATH) is about the open fd. */
export function statPath(
  c: ActionCollapser,
  state: ProcessState,
  record: EnrichedRecord,
  line: number,
  ok: boolean,
): void {
  const fd = record.args[0];
  if (typeof fd === "number" && state.fds.has(fd) && record.raw_line.includes("AT_EMPTY_PATH"))
    fdCall(c, state, record, line, ok, Category.FdMetadata);
  else lookup(state, record, line, ok);
}

/** A path looked up (stat, access, a failed open or exec): one more in the process's run of look-ups. */
export function lookup(state: ProcessState, record: EnrichedRecord, line: number, found: boolean): void {
  const path = record.abs_path ?? null;
  const run = state.lookup;
  if (!run) {
    state.lookup = {
      span: startSpan(record, line),
      paths: 1,
      missing: found ? 0 : 1,
      first: path,
      directory: path ? directoryOf(path) : null,
    };
    return;
  }
  extendSpan(run.span, record, line);
  run.paths++;
  if (!found) run.missing++;
  if (path) {
    run.first ??= path;
    run.directory = run.directory ? commonDirectory(run.directory, directoryOf(path)) : directoryOf(path);
  }
}

/** A file changed by name (unlink, rename, mkdir, chmod, …): one action each. */
export function change(
  c: ActionCollapser,
  state: ProcessState,
  record: EnrichedRecord,
  line: number,
  ok: boolean,
): void {
  const path = record.abs_path ?? null;
  const where = path ?? "a path";
  const operation = operationOf(record);
  const mode = record.perm_bits ?? null;
  let summary: string;
  if (operation === "CHMOD" && mode !== null) summary = `changed mode of ${where} to ${formatMode(mode)}`;
  else if (operation === "CHOWN") summary = `changed owner of ${where}`;
  else {
    summary = `${changeVerb(record.call, operation)} ${where}`;
    if (record.call.startsWith("mkdir") && mode !== null) summary += ` (mode ${formatMode(mode)})`;
  }
  if (!ok) summary += ` (failed: ${record.errno ?? "error"})`;
  c.action(state, "file-change", summary, path, startSpan(record, line));
}

/** What a file change did, by operation; the calls that share one are told apart by name. */
function changeVerb(call: string, operation: string | null): string {
  switch (operation) {
    case "DELETE":
      return call === "rmdir" ? "removed directory" : "deleted";
    case "RENAME":
      return "renamed";
    case "CREATE":
      if (call.startsWith("mkdir")) return "created directory";
      if (call.startsWith("symlink")) return "created symlink";
      return call.startsWith("link") ? "hard-linked" : "created";
    case "TRUNCATE":
      return "truncated";
    default:
      return "changed";
  }
}
