/** Test support: run real strace on small workloads and replay its output. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as v from "valibot";
import { replayStream } from "../../src/replay/run.ts";
import { type EnhancedEvent, EnhancedEventSchema } from "../../src/replay/schema.ts";
import type { ReplayCounts } from "../../src/replay/session.ts";

export const PYTHON = "/usr/bin/python3";

export function tempDir(prefix: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `carnot-${prefix}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Runs `strace <flags> -o out -- cmd…` and returns the trace path. Throws if strace itself fails to run. */
export async function strace(dir: string, name: string, flags: string[], cmd: string[]): Promise<string> {
  const out = join(dir, `${name}.strace`);
  const p = Bun.spawn(["strace", ...flags, "-o", out, "--", ...cmd], {
    stdout: "ignore",
    stderr: "pipe",
    cwd: dir,
  });
  const code = await p.exited;
  const err = await new Response(p.stderr).text();
  if (!(await Bun.file(out).exists())) throw new Error(`strace produced nothing (${code}): ${err}`);
  return out;
}

/** strace printing to stderr (no -o): the `[pid N]` prefix form, diagnostics interleaved. */
export async function straceToStderr(
  dir: string,
  name: string,
  flags: string[],
  cmd: string[],
): Promise<string> {
  const out = join(dir, `${name}.strace`);
  const p = Bun.spawn(["strace", ...flags, "--", ...cmd], {
    stdout: "ignore",
    stderr: Bun.file(out),
    cwd: dir,
  });
  await p.exited;
  return out;
}

export interface Replayed {
  records: EnhancedEvent[];
  counts: ReplayCounts;
}

export async function replayFile(path: string): Promise<Replayed> {
  const records: EnhancedEvent[] = [];
  const counts = await replayStream(Bun.file(path).stream(), { append: (r) => records.push(r) });
  return { records, counts };
}

export async function replayText(text: string): Promise<Replayed> {
  const records: EnhancedEvent[] = [];
  const bytes = new TextEncoder().encode(text);
  const counts = await replayStream([bytes], { append: (r) => records.push(r) });
  return { records, counts };
}

/** Every record must match the schema; returns the first problem, or null. */
export function schemaProblem(records: EnhancedEvent[]): string | null {
  for (const [i, r] of records.entries()) {
    const res = v.safeParse(EnhancedEventSchema, r);
    if (!res.success)
      return `record ${i}: ${res.issues.map((x) => `${v.getDotPath(x)}: ${x.message}`).join("; ")}`;
    const keys = Object.keys(r);
    const want = Object.keys(EnhancedEventSchema.entries).filter((k) => !k.startsWith("chain"));
    if (keys.join(",") !== want.join(",")) return `record ${i}: keys out of order: ${keys.join(",")}`;
  }
  return null;
}

/** Lines of a file; a missing last newline does not add an empty line. */
export async function lineCount(path: string): Promise<number> {
  const text = await Bun.file(path).text();
  if (text.length === 0) return 0;
  return text.split("\n").length - (text.endsWith("\n") ? 1 : 0);
}
