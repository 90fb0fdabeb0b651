/**
 * A rotated output (`carnot trace --rotate-*`): each file's chain starts from the previous file's final value
 * and its seal names its place, so `carnot verify A B C …` proves the files complete and in order, in the
 * unkeyed (v1) and the keyed (v2) chain; a missing, reordered, edited or foreign file is named. File 1 keeps a
 * single file's seal; --max-files deletes only regular files of the naming; a restart continues the sequence.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { numberedFiles, RotatingLog } from "../../src/chain/rotation.ts";
import { verifyLog, verifySequence } from "../../src/chain/verify.ts";
import { runCli, tempDir } from "./logs.ts";

const SECRET = new Uint8Array(32).map((_, i) => (i * 29 + 7) & 255);
/** What a single file's seal has had since its format was set: file 1 of a sequence keeps exactly that. */
const SINGLE_SEAL_KEYS = [
  "format",
  "tool",
  "count",
  "genesis",
  "key_id",
  "final",
  "complete",
  "reason",
  "created",
  "mac",
];

let tmp: ReturnType<typeof tempDir>;
beforeAll(() => {
  tmp = tempDir();
});
afterAll(() => tmp.cleanup());

let caseNo = 0;
const freshDir = () => {
  const dir = join(tmp.dir, `case-${++caseNo}`);
  mkdirSync(dir);
  return dir;
};

const record = (i: number) => ({ source: "test", n: i, sni: `host-${i % 7}.example`, pad: "x".repeat(40) });

/** Write `count` records, rotating whenever the live file is full; every file, oldest first. */
async function writeRotated(
  out: string,
  count: number,
  opts: { key?: Uint8Array; sizeBytes?: number; maxFiles?: number; from?: number } = {},
): Promise<string[]> {
  const log = await RotatingLog.open(
    out,
    { key: opts.key },
    { sizeBytes: opts.sizeBytes ?? 1500, maxFiles: opts.maxFiles, keepEarlier: true },
    { warn: () => {} },
  );
  for (let i = 0; i < count; i++) {
    log.append(record((opts.from ?? 0) + i));
    if (log.full) await log.rotate();
  }
  await log.close();
  return [...numberedFiles(out).map(([, p]) => p), out];
}

const linesOf = (path: string) => readFileSync(path, "utf8").split("\n").filter(Boolean);
const sealOf = (path: string) => JSON.parse(readFileSync(`${path}.seal.json`, "utf8"));

for (const keyed of [false, true]) {
  const key = keyed ? SECRET : undefined;
  const chain = keyed ? "carnot.chain.v2" : "carnot.chain.v1";

  describe(`a rotated sequence in ${chain}`, () => {
    test("every record once, in order; each file linked to the one before; file 1 has a single file's seal", async () => {
      const dir = freshDir();
      const out = join(dir, "runtime.jsonl");
      const files = await writeRotated(out, 60, { key });
      expect(files.length).toBeGreaterThanOrEqual(4);
      expect(files[0]).toBe(join(dir, "runtime.000001.jsonl"));
      const ns = files.flatMap((f) => linesOf(f).map((l) => JSON.parse(l).n));
      expect(ns).toEqual([...Array(60).keys()]);

      expect(Object.keys(sealOf(files[0]!))).toEqual(SINGLE_SEAL_KEYS);
      for (let i = 1; i < files.length; i++) {
        const seal = sealOf(files[i]!);
        expect(seal.sequence).toBe(i + 1);
        expect(seal.previous).toBe(sealOf(files[i - 1]!).final);
        // a keyed file names its chain on its own first line
        const first = linesOf(files[i]!)[0];
        if (keyed && first !== undefined) expect(JSON.parse(first).chain_format).toBe("carnot.chain.v2");
      }
      const r = await verifySequence(files, { key });
      expect(r).toMatchObject({ ok: true, files: files.length, records: 60, first: 1, last: files.length });
      // one file alone is intact too
      expect((await verifyLog(files[2]!, { key })).ok).toBe(true);
    });

    test("a missing, reordered, edited or foreign file is named", async () => {
      const dir = freshDir();
      const files = await writeRotated(join(dir, "runtime.jsonl"), 60, { key });
      const [a, b, c, d] = files as [string, string, string, string];

      const missing = await verifySequence([a, c, d], { key });
      expect(missing).toMatchObject({ ok: false, badFile: c });
      expect(missing.reason).toBe(`file 2 is missing between ${a} and it`);

      const reordered = await verifySequence([a, c, b, d], { key });
      expect(reordered).toMatchObject({ ok: false, badFile: b });
      expect(reordered.reason).toBe(`out of order: it is file 2 of its sequence, given after ${c} (file 3)`);
      const swapped = await verifySequence([b, a, c, d], { key });
      expect(swapped).toMatchObject({ ok: false, badFile: a });
      expect(swapped.reason).toBe(`out of order: it is file 1 of its sequence, after file 2 (${b})`);

      // an edited record in file 3: that file and its line
      const edited = join(dir, "edited.jsonl");
      copyFileSync(c, edited);
      copyFileSync(`${c}.seal.json`, `${edited}.seal.json`);
      const lines = linesOf(edited);
      lines[1] = lines[1]!.replace('"sni":"host-', '"sni":"evil-');
      writeFileSync(edited, `${lines.join("\n")}\n`);
      const bad = await verifySequence([a, b, edited, d], { key });
      expect(bad).toMatchObject({ ok: false, badFile: edited });
      expect(bad.reason).toStartWith("FAIL line 2: ");

      // file 3 of another run (its own chain, the same place in its sequence)
      const other = await writeRotated(join(freshDir(), "runtime.jsonl"), 60, { key, from: 1000 });
      const foreign = await verifySequence([a, b, other[2]!, d], { key });
      expect(foreign).toMatchObject({ ok: false, badFile: other[2] });
      expect(foreign.reason).toStartWith(`it does not continue ${b}`);

      // the command: exit 1, one line naming the file
      const cli = runCli(["verify", a, c, d, ...(keyed ? ["--key-file", writeKey(dir)] : [])]);
      expect(cli.exitCode).toBe(1);
      expect(cli.stdout).toBe(`FAIL ${c}: file 2 is missing between ${a} and it\n`);
      const whole = runCli(["verify", ...files, ...(keyed ? ["--key-file", writeKey(dir)] : [])]);
      expect(whole.exitCode).toBe(0);
      expect(whole.stdout).toBe(
        `ok: ${files.length} files, 60 records, files 1–${files.length} of one sequence, each chain intact, sealed and linked to the one before\n`,
      );
    });

    test("a restart moves the earlier live file aside and continues its sequence", async () => {
      const dir = freshDir();
      const out = join(dir, "runtime.jsonl");
      const first = await writeRotated(out, 30, { key });
      const lastSeal = sealOf(out);
      const files = await writeRotated(out, 30, { key, from: 30 });
      expect(files.length).toBeGreaterThan(first.length);
      // the earlier live file is now numbered, with its seal, its bytes untouched
      const moved = files[first.length - 1]!;
      expect(sealOf(moved)).toEqual(lastSeal);
      const ns = files.flatMap((f) => linesOf(f).map((l) => JSON.parse(l).n));
      expect(ns).toEqual([...Array(60).keys()]);
      expect((await verifySequence(files, { key })).ok).toBe(true);
    });
  });
}

const writeKey = (dir: string) => {
  const path = join(dir, "secret.key");
  if (!existsSync(path)) writeFileSync(path, SECRET);
  return path;
};

describe("--max-files", () => {
  test("keeps the newest N files; a symlink with a numbered name is not followed, its target untouched", async () => {
    const dir = freshDir();
    const out = join(dir, "runtime.jsonl");
    const victim = join(dir, "victim.txt");
    writeFileSync(victim, "precious\n");
    // planted before the run, at a name the deletion would reach first
    symlinkSync(victim, join(dir, "runtime.000000.jsonl"));
    const files = await writeRotated(out, 80, { maxFiles: 3 });
    const kept = files.filter((f) => !f.endsWith("000000.jsonl"));
    expect(kept).toHaveLength(3);
    expect(readFileSync(victim, "utf8")).toBe("precious\n");
    // what is kept is the end of the sequence: it verifies from where it starts
    const r = await verifySequence(kept);
    expect(r.ok).toBe(true);
    expect(r.first).toBeGreaterThan(1);
    expect(
      kept
        .flatMap(linesOf)
        .map((l) => JSON.parse(l).n)
        .at(-1),
    ).toBe(79);
    // no seal is left without its file
    for (const [, path] of numberedFiles(out))
      if (!existsSync(path)) expect(existsSync(`${path}.seal.json`)).toBe(false);
  });

  test("without rotation flags the output is replaced at start, as a single file always was", async () => {
    const dir = freshDir();
    const out = join(dir, "plain.jsonl");
    for (let run = 0; run < 2; run++) {
      const log = await RotatingLog.open(out, {}, {}, { warn: () => {} });
      log.append(record(run));
      await log.close();
    }
    expect(linesOf(out).map((l) => JSON.parse(l).n)).toEqual([1]);
    expect(numberedFiles(out)).toEqual([]);
    expect(Object.keys(sealOf(out))).toEqual(SINGLE_SEAL_KEYS);
    expect((await verifyLog(out)).ok).toBe(true);
  });

  test("a file removed from the middle of a sequence on disk is named by verify of the rest", async () => {
    const dir = freshDir();
    const files = await writeRotated(join(dir, "runtime.jsonl"), 60);
    unlinkSync(files[1]!);
    rmSync(`${files[1]}.seal.json`);
    const rest = files.filter((_, i) => i !== 1);
    const r = runCli(["verify", ...rest]);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toContain(`FAIL ${files[2]}: file 2 is missing`);
    renameSync(files[0]!, join(dir, "gone.jsonl"));
  });
});
