/**
 * Real records for the chain tests: lines of a real strace run (so raw_line is what users chain),
 * written through the real writer into a temporary directory.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ChainedWriter, type ChainSeal } from "../../src/chain/writer.ts";

export const REPO = join(import.meta.dir, "..", "..");

/** strace lines of `cat /etc/hostname /etc/os-release`, each a record like replay's (shortened). */
export function straceRecords(dir: string): Record<string, unknown>[] {
  const out = join(dir, "cat.strace");
  const run = Bun.spawnSync(["strace", "-f", "-tt", "-o", out, "cat", "/etc/hostname", "/etc/os-release"], {
    stdout: "ignore",
    stderr: "pipe",
  });
  if (run.exitCode !== 0) throw new Error(`strace failed: ${run.stderr.toString()}`);
  const lines = readFileSync(out, "utf8").split("\n").filter(Boolean);
  if (lines.length < 20) throw new Error(`strace wrote only ${lines.length} lines`);
  return lines.map((raw_line, i) => {
    const path = /"(\/[^"]*)"/.exec(raw_line)?.[1] ?? null;
    return {
      ts: i * 10,
      call: /^\d+\s+[\d:.]+\s+(\w+)\(/.exec(raw_line)?.[1] ?? null,
      raw_line,
      raw_hash: null,
      abs_path: path,
      risk_tags: path?.startsWith("/etc/") ? ["SENSITIVE_READ"] : [],
    };
  });
}

/** A fresh copy of each record (append mutates its argument). */
export const copies = (records: Record<string, unknown>[]) => records.map((r) => structuredClone(r));

export async function writeLog(
  path: string,
  records: Record<string, unknown>[],
  opts: { key?: Uint8Array; parallelAfter?: number } = {},
): Promise<ChainSeal> {
  const w = await ChainedWriter.open(path, { ...opts, tool: "carnot test" });
  for (const r of copies(records)) w.append(r);
  const seal = await w.close();
  if (!seal) throw new Error("no seal for a regular file");
  return seal;
}

export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "carnot-chain-"));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The log's lines without the trailing newline. */
export const readLines = (path: string): string[] => readFileSync(path, "utf8").split("\n").slice(0, -1);
export const writeLines = (path: string, lines: string[]): void =>
  writeFileSync(path, lines.map((l) => `${l}\n`).join(""));

/** `bun src/cli.ts …` as a user runs it. */
export function runCli(args: string[]): { exitCode: number; stdout: string; stderr: string } {
  const p = Bun.spawnSync([process.execPath, join(REPO, "src", "cli.ts"), ...args], {
    cwd: REPO,
    env: { ...process.env, NO_COLOR: "1" },
  });
  return { exitCode: p.exitCode ?? -1, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}
