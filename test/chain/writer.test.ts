import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { blake3 as nobleBlake3 } from "@noble/hashes/blake3.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import { canonicalJson } from "../../src/chain/canonical.ts";
import { deriveChainKeys } from "../../src/chain/keys.ts";
import { verifyLog } from "../../src/chain/verify.ts";
import { ChainedWriter, readKeyFile } from "../../src/chain/writer.ts";
import { copies, readLines, runCli, straceRecords, tempDir, writeLog } from "./logs.ts";

const utf8 = (s: string) => new TextEncoder().encode(s);
const hexBytes = (hex: string) => Uint8Array.fromHex(hex);

let tmp: ReturnType<typeof tempDir>;
let records: Record<string, unknown>[];
beforeAll(() => {
  tmp = tempDir();
  records = straceRecords(tmp.dir);
});
afterAll(() => tmp.cleanup());

describe("ChainedWriter", () => {
  test("each line is the record with raw_hash in place and chain last, as the chain definition says", async () => {
    const path = join(tmp.dir, "def.jsonl");
    const seal = await writeLog(path, records);
    const lines = readLines(path);
    expect(lines.length).toBe(records.length);
    // recompute everything with the reference implementation
    let state = hexBytes(deriveChainKeys().genesisHex);
    expect(bytesToHex(state)).toBe(bytesToHex(nobleBlake3(utf8("carnot.chain.v1 genesis"))));
    for (const [i, line] of lines.entries()) {
      const rec = JSON.parse(line);
      expect(Object.keys(rec)).toEqual([...Object.keys(records[i]!), "chain"]);
      expect(rec.raw_hash).toBe(bytesToHex(nobleBlake3(utf8(records[i]!.raw_line as string))));
      const body = `${line.slice(0, line.lastIndexOf(',"chain":"'))}}`;
      expect(JSON.stringify({ ...rec, chain: undefined })).toBe(body);
      state = nobleBlake3(utf8(body), { key: state });
      expect(rec.chain).toBe(bytesToHex(state));
    }
    expect(seal).toMatchObject({
      format: "carnot.chain.v1",
      tool: "carnot test",
      count: records.length,
      genesis: deriveChainKeys().genesisHex,
      key_id: null,
      final: bytesToHex(state),
      complete: true,
      reason: null,
    });
    expect(JSON.parse(readFileSync(`${path}.seal.json`, "utf8"))).toEqual(seal);
  });

  test("append sets raw_hash and chain on the record object too", async () => {
    const w = await ChainedWriter.open(join(tmp.dir, "obj.jsonl"));
    const rec: Record<string, unknown> = { ts: 1, raw_line: "x", raw_hash: null, chain: "stale", z: 2 };
    w.append(rec);
    expect(Object.keys(rec)).toEqual(["ts", "raw_line", "raw_hash", "z", "chain"]);
    expect(rec.raw_hash).toBe(bytesToHex(nobleBlake3(utf8("x"))));
    expect(rec.chain).toMatch(/^[0-9a-f]{64}$/);
    expect(w.count).toBe(1);
    await w.close();
    expect(() => w.append({ raw_line: "late" })).toThrow("after close");
  });

  test("without raw_line, raw_hash is blake3 of the record's canonical JSON (key order does not matter)", async () => {
    const path = join(tmp.dir, "obs.jsonl");
    const obs = {
      source: "runtime.ebpf",
      sni: "localhost",
      groups_offered: ["X25519"],
      net: { b: 1, a: 2 },
      "10": true,
    };
    await writeLog(path, [obs]);
    const rec = JSON.parse(readLines(path)[0]!);
    const canonical =
      '{"10":true,"groups_offered":["X25519"],"net":{"a":2,"b":1},"sni":"localhost","source":"runtime.ebpf"}';
    expect(canonicalJson(rec, ["raw_hash", "chain"])).toBe(canonical);
    expect(rec.raw_hash).toBe(bytesToHex(nobleBlake3(utf8(canonical))));
    expect((await verifyLog(path)).ok).toBe(true);
  });

  test("many records cross the flush size and still chain; a record larger than the buffer too", async () => {
    const path = join(tmp.dir, "many.jsonl");
    const many: Record<string, unknown>[] = Array.from({ length: 6000 }, (_, i) => ({
      ...records[i % records.length]!,
      ts: i,
    }));
    many.push({ ts: -1, raw_line: "y".repeat(3 << 20), raw_hash: null });
    many.push({ ts: -2, raw_line: 'päth 日本語 🦀 \u0000 \n "q"', raw_hash: null });
    const seal = await writeLog(path, many);
    expect(seal.count).toBe(6002);
    expect(readLines(path).length).toBe(6002);
    const r = await verifyLog(path);
    expect(r).toMatchObject({ ok: true, count: 6002, sealed: true });
  });

  test("a record that cannot be serialized is refused and nothing of it is written", async () => {
    const path = join(tmp.dir, "bigint.jsonl");
    const w = await ChainedWriter.open(path);
    w.append({ raw_line: "a" });
    expect(() => w.append({ raw_line: "b", n: 1n })).toThrow();
    w.append({ raw_line: "c" });
    await w.close();
    expect(readLines(path).map((l) => JSON.parse(l).raw_line)).toEqual(["a", "c"]);
    expect((await verifyLog(path)).ok).toBe(true);
  });

  test("an empty log is sealed with count 0 and verifies", async () => {
    const path = join(tmp.dir, "empty.jsonl");
    const seal = await writeLog(path, []);
    expect(seal.count).toBe(0);
    expect(seal.final).toBe(seal.genesis!);
    expect(readFileSync(path, "utf8")).toBe("");
    expect(await verifyLog(path)).toMatchObject({ ok: true, count: 0 });
  });

  test("reopening an output removes its old seal until the new log is complete", async () => {
    const path = join(tmp.dir, "reopen.jsonl");
    await writeLog(path, records);
    const w = await ChainedWriter.open(path);
    expect(existsSync(`${path}.seal.json`)).toBe(false);
    w.append(copies(records)[0]!);
    await w.close();
    expect(await verifyLog(path)).toMatchObject({ ok: true, count: 1 });
  });

  test("abort keeps whole lines only and seals them as incomplete", async () => {
    const path = join(tmp.dir, "abort.jsonl");
    const w = await ChainedWriter.open(path);
    for (const r of copies(records)) w.append(r);
    await w.abort("strace input ended inside a line");
    await w.abort("second abort is ignored");
    const text = readFileSync(path, "utf8");
    expect(text.endsWith("\n")).toBe(true);
    expect(readLines(path).length).toBe(records.length);
    const seal = JSON.parse(readFileSync(`${path}.seal.json`, "utf8"));
    expect(seal).toMatchObject({
      complete: false,
      reason: "strace input ended inside a line",
      count: records.length,
    });
    const r = await verifyLog(path);
    expect(r.ok).toBe(false);
    expect(r.reason).toBe(
      `log incomplete: the writer stopped early (strace input ended inside a line); ${records.length} records chain intact`,
    );
    const cli = runCli(["verify", path]);
    expect(cli.exitCode).toBe(1);
    expect(cli.stdout).toBe(`FAIL: ${r.reason}\n`);
  });

  test("stdout: the same chained lines, no seal", async () => {
    const script = join(tmp.dir, "to-stdout.ts");
    writeFileSync(
      script,
      `import { ChainedWriter } from ${JSON.stringify(join(import.meta.dir, "../../src/chain/writer.ts"))};
       const w = await ChainedWriter.open(null);
       for (let i = 0; i < 3000; i++) w.append({ ts: i, raw_line: "line " + i });
       console.error(String(await w.close()));`,
    );
    const p = Bun.spawnSync([process.execPath, script]);
    expect(p.stderr.toString().trim()).toBe("null");
    const out = join(tmp.dir, "stdout.jsonl");
    writeFileSync(out, p.stdout);
    expect(readLines(out).length).toBe(3000);
    const r = await verifyLog(out);
    expect(r.reason).toContain("no seal");
    expect(r.reason).toContain("3000 records chain intact");
  });

  test("an output in a missing directory is a clear error", async () => {
    const p = ChainedWriter.open(join(tmp.dir, "no", "such", "dir.jsonl"));
    expect(p).rejects.toThrow(/^cannot create .*dir\.jsonl: no such file or directory$/);
  });
});

describe("key file", () => {
  test("a keyed log hides its genesis, names its key by fingerprint and verifies only with that key", async () => {
    const keyPath = join(tmp.dir, "secret.key");
    writeFileSync(
      keyPath,
      new Uint8Array(48).map((_, i) => i * 5 + 1),
    );
    const key = await readKeyFile(keyPath);
    const path = join(tmp.dir, "keyed.jsonl");
    const seal = await writeLog(path, records, { key });
    expect(seal.genesis).toBeNull();
    expect(seal.key_id).toMatch(/^[0-9a-f]{16}$/);
    const plain = join(tmp.dir, "plain.jsonl");
    await writeLog(plain, records);
    expect(JSON.parse(readLines(path)[0]!).chain).not.toBe(JSON.parse(readLines(plain)[0]!).chain);
    expect(await verifyLog(path, { key })).toMatchObject({ ok: true, count: records.length });
  });

  test("missing or short key files are usage errors", async () => {
    expect(readKeyFile(join(tmp.dir, "nope.key"))).rejects.toThrow(
      /cannot read key file .*nope\.key: no such file/,
    );
    const short = join(tmp.dir, "short.key");
    writeFileSync(short, "0123456789abcdef0123456789abcde");
    expect(readKeyFile(short)).rejects.toThrow("too short: 31 bytes, need at least 32");
    const cli = runCli(["verify", join(tmp.dir, "plain.jsonl"), "--key-file", short]);
    expect(cli.exitCode).toBe(2);
    expect(cli.stderr).toMatch(/^carnot: key file .* is too short: 31 bytes, need at least 32 .*\n$/);
  });
});
