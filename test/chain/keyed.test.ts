/**
 * Keyed logs (carnot.chain.v2): every link is a MAC under a key derived from the secret and the previous
 * link, so someone without the key file can neither edit, insert, remove nor reorder a line and relink the
 * rest — also in a log cut short before its seal (a crash, SIGKILL, a removed seal).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { blake3 as nobleBlake3 } from "@noble/hashes/blake3.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import { deriveChainKeys } from "../../src/chain/keys.ts";
import { buildSeal } from "../../src/chain/seal.ts";
import { readLines, runCli, straceRecords, tempDir, writeLines, writeLog } from "./logs.ts";

const utf8 = (s: string) => new TextEncoder().encode(s);
const SECRET = new Uint8Array(40).map((_, i) => (i * 37 + 11) & 255);

let tmp: ReturnType<typeof tempDir>;
let records: Record<string, unknown>[];
let keyFile = "";
let otherKeyFile = "";
/** `carnot replay` of a real strace, written with --key-file, and its lines */
let keyedLog = "";
let lines: string[] = [];
let caseNo = 0;

beforeAll(() => {
  tmp = tempDir();
  records = straceRecords(tmp.dir);
  keyFile = join(tmp.dir, "secret.key");
  otherKeyFile = join(tmp.dir, "other.key");
  writeFileSync(keyFile, SECRET);
  writeFileSync(
    otherKeyFile,
    SECRET.map((b) => b ^ 1),
  );
  keyedLog = join(tmp.dir, "keyed.jsonl");
  const r = runCli(["replay", join(tmp.dir, "cat.strace"), "-o", keyedLog, "--key-file", keyFile]);
  if (r.exitCode !== 0) throw new Error(`replay failed: ${r.stderr}`);
  lines = readLines(keyedLog);
});
afterAll(() => tmp.cleanup());

/** The line's text without its chain key (what its link covers). */
const bodyOf = (line: string) => `${line.slice(0, line.lastIndexOf(',"chain":"'))}}`;
const chainOf = (line: string): string => JSON.parse(line).chain;

/**
 * What an attacker without the key can do: relink lines[from..] with the only chain rule they can compute
 * (each link keyed by the previous chain value, which is in the file).
 */
function relinkPublicly(edited: string[], from: number): string[] {
  const out = [...edited];
  for (let i = from; i < out.length; i++) {
    const prev = i === 0 ? deriveChainKeys().genesisHex : chainOf(out[i - 1]!);
    const body = bodyOf(out[i]!);
    const chain = bytesToHex(nobleBlake3(utf8(body), { key: Uint8Array.fromHex(prev) }));
    out[i] = `${body.slice(0, -1)},"chain":"${chain}"}`;
  }
  return out;
}

/** A copy of the keyed log with `edit` applied, relinked by the attacker from line `from` (0-based), no seal. */
function attacked(edit: (lines: string[]) => string[], from: number): string {
  const path = join(tmp.dir, `attacked-${++caseNo}.jsonl`);
  writeLines(path, relinkPublicly(edit([...lines]), from));
  return path;
}

/** Change raw_line of a line and recompute its raw_hash (public: blake3 of raw_line). */
function editRawLine(line: string): string {
  const rec = JSON.parse(line);
  rec.raw_line = rec.raw_line.replace(/= (-?\d+)/, "= 4242");
  rec.raw_hash = bytesToHex(nobleBlake3(utf8(rec.raw_line)));
  return JSON.stringify(rec);
}

describe("carnot.chain.v2 (written with --key-file)", () => {
  test("each link is keyed by blake3_keyed(link key, previous link); line 1 names the format; same bytes in every thread", async () => {
    const master = nobleBlake3(SECRET);
    const derived = (name: string) => nobleBlake3(utf8(`carnot.chain.v2 ${name}`), { key: master });
    const keyId = bytesToHex(derived("key-id")).slice(0, 16);
    const paths = [];
    for (const parallelAfter of [Number.POSITIVE_INFINITY, 0, 7]) {
      const path = join(tmp.dir, `def-${parallelAfter}.jsonl`);
      paths.push({ path, seal: await writeLog(path, records, { key: SECRET, parallelAfter }) });
    }
    const text = readFileSync(paths[0]!.path, "utf8");
    for (const { path } of paths) expect(readFileSync(path, "utf8")).toBe(text);

    let chain = derived("genesis");
    const written = readLines(paths[0]!.path);
    for (const [i, line] of written.entries()) {
      const rec = JSON.parse(line);
      const marker = i === 0 ? ["chain_format", "chain_key_id"] : [];
      expect(Object.keys(rec)).toEqual([...Object.keys(records[i]!), ...marker, "chain"]);
      if (i === 0) expect(rec).toMatchObject({ chain_format: "carnot.chain.v2", chain_key_id: keyId });
      const linkKey = nobleBlake3(chain, { key: derived("link") });
      chain = nobleBlake3(utf8(bodyOf(line)), { key: linkKey });
      expect(rec.chain).toBe(bytesToHex(chain));
    }
    expect(paths[0]!.seal).toMatchObject({
      format: "carnot.chain.v2",
      genesis: null,
      key_id: keyId,
      count: records.length,
      final: bytesToHex(chain),
      complete: true,
    });
  });

  test("a line edited without the key, every later link recomputed and the seal removed: verify names the line", () => {
    const m = Math.floor(lines.length / 2);
    const path = attacked((l) => {
      l[m - 1] = editRawLine(l[m - 1]!);
      return l;
    }, m - 1);
    const r = runCli(["verify", path, "--key-file", keyFile]);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toMatch(new RegExp(`^FAIL line ${m}: `));
    expect(r.stderr).toBe("");
    // an honest log cut short says something else: every line intact, no seal
    const cut = join(tmp.dir, "honest-cut.jsonl");
    writeLines(cut, lines.slice(0, m + 3));
    const honest = runCli(["verify", cut, "--key-file", keyFile]);
    expect(honest.exitCode).toBe(1);
    expect(honest.stdout).toMatch(
      new RegExp(
        `^FAIL: no seal .*: the log is incomplete or its seal was removed \\(${m + 3} records chain intact\\)\\n$`,
      ),
    );
  });

  test.each([
    ["inserted", (l: string[], i: number) => [...l.slice(0, i), l[i + 3]!, ...l.slice(i)]],
    ["removed", (l: string[], i: number) => [...l.slice(0, i), ...l.slice(i + 1)]],
    ["reordered", (l: string[], i: number) => [...l.slice(0, i), l[i + 1]!, l[i]!, ...l.slice(i + 2)]],
  ] as const)("a line %s without the key and the rest relinked is named", (_, edit) => {
    const i = Math.floor(lines.length / 3);
    const r = runCli(["verify", attacked((l) => edit(l, i), i), "--key-file", keyFile]);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toMatch(new RegExp(`^FAIL line ${i + 1}: `));
  });

  test("without --key-file a keyed log is never ok, sealed or not; the wrong key is said as such", () => {
    for (const path of [keyedLog, attacked((l) => l, lines.length)]) {
      const r = runCli(["verify", path]);
      expect(r.exitCode).toBe(1);
      expect(r.stdout).toMatch(
        /^FAIL: cannot vouch for this log without its key: it is keyed \(carnot\.chain\.v2, key_id [0-9a-f]{16}\); pass its --key-file\n$/,
      );
      const wrong = runCli(["verify", path, "--key-file", otherKeyFile]);
      expect(wrong.exitCode).toBe(1);
      expect(wrong.stdout).toMatch(
        /^FAIL: wrong key: its key_id is [0-9a-f]{16}, line 1 names [0-9a-f]{16}\n$/,
      );
    }
    expect(runCli(["verify", keyedLog, "--key-file", keyFile])).toMatchObject({
      exitCode: 0,
      stdout: `ok: ${lines.length} records, chain intact, sealed\n`,
    });
  });

  test("an unkeyed log, sealed or cut short, given a --key-file is not vouched for", async () => {
    const plain = join(tmp.dir, "plain.jsonl");
    await writeLog(plain, records);
    const sealed = runCli(["verify", plain, "--key-file", keyFile]);
    rmSync(`${plain}.seal.json`);
    const unsealed = runCli(["verify", plain, "--key-file", keyFile]);
    for (const r of [sealed, unsealed]) {
      expect(r.exitCode).toBe(1);
      expect(r.stdout).toBe(
        "FAIL: the log is not keyed (written without a key), so --key-file cannot vouch for it\n",
      );
    }
  });

  test("a keyed log cut by SIGKILL of a running replay: every written line verifies with the key", async () => {
    const strace = readFileSync(join(tmp.dir, "cat.strace"), "utf8").split("\n").filter(Boolean);
    const out = join(tmp.dir, "killed.jsonl");
    const p = Bun.spawn(
      [
        process.execPath,
        join(import.meta.dir, "../../src/cli.ts"),
        "replay",
        "-",
        "-o",
        out,
        "--key-file",
        keyFile,
      ],
      {
        stdin: "pipe",
        stdout: "ignore",
        stderr: "ignore",
      },
    );
    const half = Math.floor(strace.length / 2);
    p.stdin.write(`${strace.slice(0, half).join("\n")}\n`);
    await p.stdin.flush();
    // a paused pipe is flushed: wait for the records of the first half (the last one waits for a next line)
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      const text = await Bun.file(out)
        .text()
        .catch(() => "");
      if (text.split("\n").length - 1 >= half - 1) break;
      await Bun.sleep(20);
    }
    p.kill("SIGKILL");
    expect(await p.exited).not.toBe(0);
    const written = readLines(out).length;
    expect(written).toBeGreaterThanOrEqual(half - 1);
    const r = runCli(["verify", out, "--key-file", keyFile]);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toMatch(
      new RegExp(
        `^FAIL: no seal .*: the log is incomplete or its seal was removed \\(${written} records chain intact\\)\\n$`,
      ),
    );
    // and without the key it still is not vouched for
    expect(runCli(["verify", out]).stdout).toMatch(/^FAIL: cannot vouch for this log without its key/);
  });

  test("a keyed carnot.chain.v1 log (written before v2) still verifies, said to protect its first link only", () => {
    const keys = deriveChainKeys(SECRET, "carnot.chain.v1");
    let chain = keys.genesisHex;
    const legacy = lines.map((line) => {
      const rec = JSON.parse(line);
      delete rec.chain_format;
      delete rec.chain_key_id;
      delete rec.chain;
      const body = JSON.stringify(rec);
      chain = bytesToHex(nobleBlake3(utf8(body), { key: Uint8Array.fromHex(chain) }));
      return `${body.slice(0, -1)},"chain":"${chain}"}`;
    });
    const path = join(tmp.dir, "legacy.jsonl");
    writeLines(path, legacy);
    const seal = buildSeal(
      {
        tool: "carnot 0.1",
        count: legacy.length,
        final: chain,
        complete: true,
        reason: null,
        created: "2026-11-01T00:00:00.000Z",
      },
      keys,
    );
    writeFileSync(`${path}.seal.json`, `${JSON.stringify(seal)}\n`);
    expect(runCli(["verify", path, "--key-file", keyFile])).toMatchObject({
      exitCode: 0,
      stdout: `ok: ${legacy.length} records, chain intact, sealed (carnot.chain.v1: the key protects its first link only)\n`,
    });
    expect(runCli(["verify", path]).stdout).toMatch(
      /^FAIL: cannot vouch for this log without its key: it is keyed \(carnot\.chain\.v1, key_id [0-9a-f]{16}\)/,
    );
  });
});
