import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { blake3 as nobleBlake3 } from "@noble/hashes/blake3.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import { formatVerifyResult, type VerifyResult, verifyLog } from "../../src/chain/verify.ts";
import { readLines, runCli, straceRecords, tempDir, writeLines, writeLog } from "./logs.ts";

let tmp: ReturnType<typeof tempDir>;
let records: Record<string, unknown>[];
/** The intact log every case starts from, and its lines. */
let original: string;
let lines: string[];
let n: number;
let caseNo = 0;

beforeAll(async () => {
  tmp = tempDir();
  records = straceRecords(tmp.dir);
  original = join(tmp.dir, "original.jsonl");
  await writeLog(original, records);
  lines = readLines(original);
  n = lines.length;
});
afterAll(() => tmp.cleanup());

/** A copy of the intact log and its seal, with the lines changed by `edit`. */
function tampered(edit: (lines: string[]) => string[]): string {
  const path = join(tmp.dir, `case-${++caseNo}.jsonl`);
  writeLines(path, edit([...lines]));
  copyFileSync(`${original}.seal.json`, `${path}.seal.json`);
  return path;
}

/** Replace one field of line `i` (0-based), keeping everything else byte for byte. */
function editField(line: string, key: string, value: unknown): string {
  const rec = JSON.parse(line);
  rec[key] = value;
  return JSON.stringify(rec);
}

async function expectFail(path: string, line: number | null, reason: RegExp): Promise<VerifyResult> {
  const r = await verifyLog(path);
  expect(r.ok).toBe(false);
  expect(r.reason).toMatch(reason);
  expect(r.firstBadLine).toBe(line);
  // and the CLI says the same in one line, with exit code 1
  const cli = runCli(["verify", path]);
  expect(cli.exitCode).toBe(1);
  expect(cli.stdout).toBe(`${formatVerifyResult(r)}\n`);
  expect(cli.stdout.split("\n").length).toBe(2);
  expect(cli.stderr).toBe("");
  return r;
}

describe("carnot verify", () => {
  test("an intact log passes: exit 0, one line", async () => {
    expect(await verifyLog(original)).toEqual({
      ok: true,
      count: n,
      firstBadLine: null,
      reason: null,
      sealed: true,
      format: "carnot.chain.v1",
      keyed: false,
    });
    const cli = runCli(["verify", original]);
    expect(cli).toEqual({ exitCode: 0, stdout: `ok: ${n} records, chain intact, sealed\n`, stderr: "" });
  });

  test("edited field", async () => {
    const path = tampered((l) => {
      l[4] = editField(l[4]!, "abs_path", "/tmp/innocent");
      return l;
    });
    await expectFail(path, 5, /^record edited: its content is not what was chained$/);
  });

  test("edited risk_tags (an enriched field, not covered by raw_hash)", async () => {
    const path = tampered((l) => {
      const i = l.findIndex((x) => x.includes("SENSITIVE_READ"));
      l[i] = editField(l[i]!, "risk_tags", []);
      return l;
    });
    const r = await verifyLog(path);
    expect(r.reason).toBe("record edited: its content is not what was chained");
    expect(lines[r.firstBadLine! - 1]).toContain("SENSITIVE_READ");
  });

  test("edited raw_line", async () => {
    const path = tampered((l) => {
      const raw = JSON.parse(l[6]!).raw_line as string;
      l[6] = editField(l[6]!, "raw_line", raw.replace(/= (-?\d+)/, "= 999"));
      return l;
    });
    await expectFail(path, 7, /^raw_hash does not match raw_line$/);
  });

  test("edited raw_line with a recomputed raw_hash", async () => {
    const path = tampered((l) => {
      const raw = `${JSON.parse(l[6]!).raw_line} `;
      l[6] = editField(
        editField(l[6]!, "raw_line", raw),
        "raw_hash",
        bytesToHex(nobleBlake3(new TextEncoder().encode(raw))),
      );
      return l;
    });
    await expectFail(path, 7, /^record edited/);
  });

  test("edited last line: the seal's final value stands in for the next line", async () => {
    const path = tampered((l) => {
      l[n - 1] = editField(l[n - 1]!, "ts", 1);
      return l;
    });
    await expectFail(path, n, /^record edited/);
  });

  test("inserted line", async () => {
    const path = tampered((l) => {
      l.splice(5, 0, l[2]!);
      return l;
    });
    await expectFail(path, 6, /^line inserted: line 5 and line 7 chain to each other$/);
  });

  test("inserted first line", async () => {
    const path = tampered((l) => [l[3]!, ...l]);
    await expectFail(path, 1, /^line inserted: the genesis and line 2 chain to each other$/);
  });

  test("deleted line", async () => {
    const path = tampered((l) => {
      l.splice(5, 1);
      return l;
    });
    await expectFail(
      path,
      6,
      /^line\(s\) deleted before this line: it does not follow line 5 \(the seal counts 1 more records\)$/,
    );
  });

  test("reordered lines (swapped neighbours)", async () => {
    const path = tampered((l) => {
      [l[3], l[4]] = [l[4]!, l[3]!];
      return l;
    });
    await expectFail(path, 4, /^lines reordered: line 5 is the one that follows line 3$/);
  });

  test("reordered lines (one moved further down)", async () => {
    const path = tampered((l) => {
      const [moved] = l.splice(2, 1);
      l.splice(8, 0, moved!);
      return l;
    });
    await expectFail(path, 3, /^lines reordered: line 9 is the one that follows line 2$/);
  });

  test("edited chain value", async () => {
    const path = tampered((l) => {
      l[8] = l[8]!.replace(/"chain":"(.)/, (_, c) => `"chain":"${c === "0" ? "1" : "0"}`);
      return l;
    });
    await expectFail(path, 9, /^chain value edited/);
  });

  test("cut-off tail (whole lines removed)", async () => {
    const path = tampered((l) => l.slice(0, n - 3));
    await expectFail(
      path,
      n - 2,
      new RegExp(`^log cut off: the seal counts ${n} records, the file has ${n - 3}$`),
    );
  });

  test("cut-off tail (inside a line, no newline at the end)", async () => {
    const path = tampered((l) => l);
    truncateSync(path, readFileSync(path).length - 40);
    await expectFail(path, n, /^last line is cut off \(no newline at the end\)$/);
  });

  test("lines appended after the sealed end", async () => {
    const path = join(tmp.dir, "longer.jsonl");
    await writeLog(path, [...records, ...records.slice(0, 2)]);
    copyFileSync(`${original}.seal.json`, `${path}.seal.json`);
    await expectFail(
      path,
      n + 1,
      new RegExp(`^2 line\\(s\\) appended after the sealed end \\(the seal counts ${n}\\)$`),
    );
  });

  test("garbage line", async () => {
    const path = tampered((l) => {
      l[2] = "not json at all";
      return l;
    });
    await expectFail(path, 3, /^not a chained record/);
  });

  test("tampered seal: count, completeness or final changed", async () => {
    for (const [key, value] of [
      ["count", n + 1],
      ["complete", false],
      ["final", "0".repeat(64)],
      ["tool", "someone else"],
    ] as const) {
      const path = tampered((l) => l);
      const seal = JSON.parse(readFileSync(`${path}.seal.json`, "utf8"));
      seal[key] = value;
      writeFileSync(`${path}.seal.json`, JSON.stringify(seal));
      await expectFail(path, null, /^seal .* was tampered with: its mac does not match its content$/);
    }
  });

  test("an aborted log whose seal was edited to say complete is caught", async () => {
    const path = join(tmp.dir, "aborted.jsonl");
    const { ChainedWriter } = await import("../../src/chain/writer.ts");
    const w = await ChainedWriter.open(path);
    w.append({ raw_line: "one" });
    await w.abort("input error");
    const seal = JSON.parse(readFileSync(`${path}.seal.json`, "utf8"));
    writeFileSync(`${path}.seal.json`, JSON.stringify({ ...seal, complete: true, reason: null }));
    await expectFail(path, null, /tampered/);
  });

  test("damaged seal", async () => {
    const path = tampered((l) => l);
    writeFileSync(`${path}.seal.json`, "{ not json");
    await expectFail(path, null, /^seal .* is damaged: not valid JSON$/);
    writeFileSync(`${path}.seal.json`, JSON.stringify({ format: "carnot.chain.v1" }));
    await expectFail(path, null, /^seal .* is damaged: field tool is missing or invalid$/);
  });

  test("missing seal", async () => {
    const path = tampered((l) => l);
    rmSync(`${path}.seal.json`);
    const r = await expectFail(
      path,
      null,
      /^no seal .*\.seal\.json: the log is incomplete or its seal was removed/,
    );
    expect(r.reason).toContain(`(${n} records chain intact)`);
  });

  test("keyed log: wrong key, missing key, and a key for an unkeyed log", async () => {
    const keyA = join(tmp.dir, "a.key");
    const keyB = join(tmp.dir, "b.key");
    writeFileSync(keyA, "A".repeat(32));
    writeFileSync(keyB, "B".repeat(32));
    const path = join(tmp.dir, "keyed.jsonl");
    await writeLog(path, records, { key: new TextEncoder().encode("A".repeat(32)) });

    expect(runCli(["verify", path, "--key-file", keyA])).toMatchObject({
      exitCode: 0,
      stdout: `ok: ${n} records, chain intact, sealed\n`,
    });
    const wrong = runCli(["verify", path, "--key-file", keyB]);
    expect(wrong.exitCode).toBe(1);
    expect(wrong.stdout).toMatch(
      /^FAIL: wrong key: its key_id is [0-9a-f]{16}, line 1 names [0-9a-f]{16}\n$/,
    );
    const missing = runCli(["verify", path]);
    expect(missing.exitCode).toBe(1);
    expect(missing.stdout).toMatch(
      /^FAIL: cannot vouch for this log without its key: it is keyed \(carnot\.chain\.v2, key_id [0-9a-f]{16}\); pass its --key-file\n$/,
    );
    const extra = runCli(["verify", original, "--key-file", keyA]);
    expect(extra.exitCode).toBe(1);
    expect(extra.stdout).toBe(
      "FAIL: the log is not keyed (written without a key), so --key-file cannot vouch for it\n",
    );

    // without a seal the first line still says the log is keyed, and by which key
    rmSync(`${path}.seal.json`);
    expect((await verifyLog(path)).reason).toMatch(/^cannot vouch for this log without its key/);
    expect((await verifyLog(path, { key: new TextEncoder().encode("B".repeat(32)) })).reason).toMatch(
      /^wrong key: /,
    );
  });

  test("usage errors: missing file or argument → exit 2, one line on stderr, no stack", () => {
    const missing = runCli(["verify", join(tmp.dir, "absent.jsonl")]);
    expect(missing.exitCode).toBe(2);
    expect(missing.stdout).toBe("");
    expect(missing.stderr).toMatch(/^carnot: cannot read .*absent\.jsonl: no such file or directory\n$/);
    const noArg = runCli(["verify"]);
    expect(noArg.exitCode).toBe(2);
    expect(noArg.stderr.trim().split("\n").length).toBe(1);
    const dir = runCli(["verify", tmp.dir]);
    expect(dir.exitCode).toBe(2);
    expect(dir.stderr).toMatch(/is a directory\n$/);
  });
});
