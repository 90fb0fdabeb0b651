import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { blake3 as nobleBlake3 } from "@noble/hashes/blake3.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import { canonicalJson } from "../../src/chain/canonical.ts";
import { deriveChainKeys } from "../../src/chain/keys.ts";
import { verifyLog } from "../../src/chain/verify.ts";
import { ChainedWriter, OutputHeld, readKeyFile } from "../../src/chain/writer.ts";
import { copies, readLines, runCli, straceRecords, tempDir, writeLog } from "./logs.ts";

const utf8 = (s: string) => new TextEncoder().encode(s);

let tmp: ReturnType<typeof tempDir>;
let records: Record<string, unknown>[];
beforeAll(() => {
  tmp = tempDir();
  records = straceRecords(tmp.dir);
});
afterAll(() => tmp.cleanup());

/** The writer hashes in its own thread, in a worker from the first record, or switches midway. */
const MODES = [
  ["in this thread", Number.POSITIVE_INFINITY],
  ["in a worker", 0],
  ["switching to a worker after 7 records", 7],
] as const;

describe.each(MODES)("ChainedWriter, hashing %s", (mode, parallelAfter) => {
  const file = (name: string) => join(tmp.dir, `${name}-${parallelAfter}.jsonl`);

  test("each line is the record with raw_hash in place and chain last, as the chain definition says", async () => {
    const path = file("def");
    const seal = await writeLog(path, records, { parallelAfter });
    const lines = readLines(path);
    expect(lines.length).toBe(records.length);
    // recompute everything with the reference implementation
    let state = Uint8Array.fromHex(deriveChainKeys().genesisHex);
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

  test("raw_hash is added last when the record has no such key; count and append-after-close", async () => {
    const w = await ChainedWriter.open(file("obj"), { parallelAfter });
    for (let i = 0; i < 10; i++) w.append({ ts: i, raw_line: `x${i}`, chain: "stale", z: 2 });
    expect(w.count).toBe(10);
    await w.close();
    expect(() => w.append({ raw_line: "late" })).toThrow("after close");
    const rec = JSON.parse(readLines(file("obj"))[9]!);
    expect(Object.keys(rec)).toEqual(["ts", "raw_line", "z", "raw_hash", "chain"]);
    expect(rec.raw_hash).toBe(bytesToHex(nobleBlake3(utf8("x9"))));
  });

  test("without raw_line, raw_hash is blake3 of the record's canonical JSON (key order does not matter)", async () => {
    const path = file("obs");
    const obs = {
      source: "runtime.ebpf",
      sni: "localhost",
      groups_offered: ["X25519"],
      net: { b: 1, a: 2 },
      "10": true,
    };
    await writeLog(
      path,
      Array.from({ length: 12 }, () => obs),
      { parallelAfter },
    );
    const rec = JSON.parse(readLines(path)[11]!);
    const canonical =
      '{"10":true,"groups_offered":["X25519"],"net":{"a":2,"b":1},"sni":"localhost","source":"runtime.ebpf"}';
    expect(canonicalJson(rec, ["raw_hash", "chain"])).toBe(canonical);
    expect(rec.raw_hash).toBe(bytesToHex(nobleBlake3(utf8(canonical))));
    expect((await verifyLog(path)).ok).toBe(true);
  });

  test("a nested raw_hash key does not confuse the writer", async () => {
    const path = file("nested");
    const tricky = { raw_line: "t", raw_hash: null, meta: { raw_hash: "=".repeat(64) } };
    await writeLog(
      path,
      Array.from({ length: 12 }, () => tricky),
      { parallelAfter },
    );
    const rec = JSON.parse(readLines(path)[11]!);
    expect(rec.raw_hash).toBe(bytesToHex(nobleBlake3(utf8("t"))));
    expect(rec.meta.raw_hash).toBe("=".repeat(64));
    expect((await verifyLog(path)).ok).toBe(true);
  });

  test("many records cross the flush size and still chain; records larger than the buffers too", async () => {
    const path = file("many");
    const many: Record<string, unknown>[] = Array.from({ length: 6000 }, (_, i) => ({
      ...records[i % records.length]!,
      ts: i,
    }));
    many.splice(3000, 0, { ts: -1, raw_line: "y".repeat(9 << 20), raw_hash: null }); // larger than the ring
    many.push({ ts: -2, raw_line: 'päth 日本語 🦀 \u0000 \n "q"', raw_hash: null });
    const seal = await writeLog(path, many, { parallelAfter });
    expect(seal.count).toBe(6002);
    const lines = readLines(path);
    expect(lines.length).toBe(6002);
    expect(JSON.parse(lines[6001]!).raw_line).toBe('päth 日本語 🦀 \u0000 \n "q"');
    const r = await verifyLog(path);
    expect(r).toMatchObject({ ok: true, count: 6002, sealed: true });
  });

  test("a record that cannot be serialized is refused and nothing of it is written", async () => {
    const path = file("bigint");
    const w = await ChainedWriter.open(path, { parallelAfter });
    w.append({ raw_line: "a" });
    expect(() => w.append({ raw_line: "b", n: 1n })).toThrow();
    expect(() => w.append({ raw_line: "b", n: 1n })).toThrow();
    w.append({ raw_line: "c" });
    await w.close();
    expect(readLines(path).map((l) => JSON.parse(l).raw_line)).toEqual(["a", "c"]);
    expect((await verifyLog(path)).ok).toBe(true);
  });

  test("abort keeps whole lines only and seals them as incomplete", async () => {
    const path = file("abort");
    const w = await ChainedWriter.open(path, { parallelAfter });
    for (const r of copies(records)) w.append(r);
    await w.abort("strace input ended inside a line");
    await w.abort("second abort is ignored");
    expect(readFileSync(path, "utf8").endsWith("\n")).toBe(true);
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
    const script = join(tmp.dir, `to-stdout-${parallelAfter}.ts`);
    writeFileSync(
      script,
      `import { ChainedWriter } from ${JSON.stringify(join(import.meta.dir, "../../src/chain/writer.ts"))};
       const w = await ChainedWriter.open(null, { parallelAfter: ${parallelAfter} });
       for (let i = 0; i < 30000; i++) w.append({ ts: i, raw_line: "line " + i });
       console.error(String(await w.close()));`,
    );
    const p = Bun.spawnSync([process.execPath, script]);
    expect(p.stderr.toString().trim()).toBe("null");
    const out = join(tmp.dir, `stdout-${parallelAfter}.jsonl`);
    writeFileSync(out, p.stdout);
    expect(readLines(out).length).toBe(30000);
    const r = await verifyLog(out);
    expect(r.reason).toContain("no seal");
    expect(r.reason).toContain("30000 records chain intact");
  });

  test("flush puts every appended line in the file before close; the log is the same as without it", async () => {
    const path = file("flushed");
    const reference = file("unflushed");
    await writeLog(reference, records);
    const expected = readLines(reference);
    const w = await ChainedWriter.open(path, { parallelAfter, tool: "carnot test" });
    const recs = copies(records);
    const half = Math.floor(recs.length / 2);
    for (const r of recs.slice(0, half)) w.append(r);
    w.flush();
    expect(readLines(path)).toEqual(expected.slice(0, half));
    w.flush(); // nothing new: nothing changes
    expect(readLines(path)).toEqual(expected.slice(0, half));
    for (const r of recs.slice(half)) w.append(r);
    w.flush();
    expect(readLines(path)).toEqual(expected);
    expect(existsSync(`${path}.seal.json`)).toBe(false);
    await w.close();
    expect(readFileSync(path, "utf8")).toBe(readFileSync(reference, "utf8"));
    expect(await verifyLog(path)).toMatchObject({ ok: true, count: records.length });
  });

  test("flush on a pipe: the reader gets the lines while the writer is still open", async () => {
    const script = join(tmp.dir, `flush-pipe-${parallelAfter}.ts`);
    writeFileSync(
      script,
      `import { ChainedWriter } from ${JSON.stringify(join(import.meta.dir, "../../src/chain/writer.ts"))};
       const w = await ChainedWriter.open(null, { parallelAfter: ${parallelAfter} });
       for (let i = 0; i < 50; i++) w.append({ ts: i, raw_line: "line " + i });
       w.flush();
       // the reader answers on stdin once it has seen the 50 lines; only then the rest and close
       for await (const _ of Bun.stdin.stream()) break;
       for (let i = 50; i < 60; i++) w.append({ ts: i, raw_line: "line " + i });
       await w.close();`,
    );
    const p = Bun.spawn([process.execPath, script], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
    const reader = p.stdout.getReader();
    let text = "";
    const deadline = Date.now() + 20_000;
    while (text.split("\n").length <= 50 && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    // all 50 lines arrived while the writer still waits for us, i.e. before close()
    expect(text.split("\n").length - 1).toBe(50);
    expect(JSON.parse(text.split("\n")[49]!).raw_line).toBe("line 49");
    p.stdin.write("go\n");
    await p.stdin.end();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    expect(await p.exited).toBe(0);
    expect(text.split("\n").length - 1).toBe(60);
  });

  test(`keyed logs hide their genesis and verify only with the key (${mode})`, async () => {
    const key = new Uint8Array(48).map((_, i) => i * 5 + 1);
    const path = file("keyed");
    const seal = await writeLog(path, records, { key, parallelAfter });
    expect(seal.genesis).toBeNull();
    expect(seal.key_id).toMatch(/^[0-9a-f]{16}$/);
    expect(await verifyLog(path, { key })).toMatchObject({ ok: true, count: records.length });
    expect((await verifyLog(path)).reason).toContain("it is keyed (carnot.chain.v2");
  });
});

describe("ChainedWriter", () => {
  test("an empty log is sealed with count 0 and verifies", async () => {
    const path = join(tmp.dir, "empty.jsonl");
    const seal = await writeLog(path, []);
    expect(seal.count).toBe(0);
    expect(seal.final).toBe(seal.genesis!);
    expect(readFileSync(path, "utf8")).toBe("");
    expect(await verifyLog(path)).toMatchObject({ ok: true, count: 0 });
  });

  test("in this thread, append also sets raw_hash and chain on the record object", async () => {
    const w = await ChainedWriter.open(join(tmp.dir, "obj.jsonl"), {
      parallelAfter: Number.POSITIVE_INFINITY,
    });
    const rec: Record<string, unknown> = { ts: 1, raw_line: "x", raw_hash: null, z: 2 };
    w.append(rec);
    await w.close();
    expect(rec.raw_hash).toBe(bytesToHex(nobleBlake3(utf8("x"))));
    expect(rec.chain).toBe(JSON.parse(readLines(join(tmp.dir, "obj.jsonl"))[0]!).chain);
  });

  test("the same records give the same lines whichever thread hashes them", async () => {
    const a = join(tmp.dir, "same-a.jsonl");
    const b = join(tmp.dir, "same-b.jsonl");
    await writeLog(a, records, { parallelAfter: Number.POSITIVE_INFINITY });
    await writeLog(b, records, { parallelAfter: 3 });
    expect(readFileSync(b, "utf8")).toBe(readFileSync(a, "utf8"));
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

  test("an output in a missing directory is a clear error", async () => {
    const p = ChainedWriter.open(join(tmp.dir, "no", "such", "dir.jsonl"));
    await expect(p).rejects.toThrow(/^cannot create .*dir\.jsonl: no such file or directory$/);
  });
});

describe("key file", () => {
  test("a keyed log's chain differs from the plain one", async () => {
    const keyPath = join(tmp.dir, "secret.key");
    writeFileSync(
      keyPath,
      new Uint8Array(48).map((_, i) => i * 5 + 1),
    );
    const key = await readKeyFile(keyPath);
    const keyed = join(tmp.dir, "keyed.jsonl");
    const plain = join(tmp.dir, "plain.jsonl");
    await writeLog(keyed, records, { key });
    await writeLog(plain, records);
    expect(JSON.parse(readLines(keyed)[0]!).chain).not.toBe(JSON.parse(readLines(plain)[0]!).chain);
    expect(await verifyLog(keyed, { key })).toMatchObject({ ok: true, count: records.length });
  });

  test("missing or short key files are usage errors", async () => {
    await expect(readKeyFile(join(tmp.dir, "nope.key"))).rejects.toThrow(
      /cannot read key file .*nope\.key: no such file/,
    );
    const short = join(tmp.dir, "short.key");
    writeFileSync(short, "0123456789abcdef0123456789abcde");
    await expect(readKeyFile(short)).rejects.toThrow("too short: 31 bytes, need at least 32");
    const cli = runCli(["verify", join(tmp.dir, "plain.jsonl"), "--key-file", short]);
    expect(cli.exitCode).toBe(2);
    expect(cli.stderr).toMatch(/^carnot: key file .* is too short: 31 bytes, need at least 32 .*\n$/);
  });
});

describe("a write that fails (disk full)", () => {
  /** A 2 MiB tmpfs: real ENOSPC from the kernel. */
  function smallDisk(): { dir: string; unmount: () => void } | string {
    if (process.getuid?.() !== 0) return "needs root to mount a small tmpfs";
    const dir = join(tmp.dir, `disk-${Math.random().toString(36).slice(2)}`);
    Bun.spawnSync(["mkdir", "-p", dir]);
    const m = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", dir], { stderr: "pipe" });
    if (m.exitCode !== 0) return `cannot mount tmpfs: ${m.stderr.toString().trim()}`;
    return { dir, unmount: () => void Bun.spawnSync(["umount", dir]) };
  }

  test.each(MODES)(
    "hashing %s: an error, whole lines only, and an incomplete seal",
    async (_mode, parallelAfter) => {
      const disk = smallDisk();
      if (typeof disk === "string") {
        console.log(`skipped: ${disk}`);
        return;
      }
      try {
        const path = join(disk.dir, "full.jsonl");
        const w = await ChainedWriter.open(path, { parallelAfter });
        let failure: Error | null = null;
        try {
          for (let i = 0; i < 100_000; i++) w.append({ ...records[i % records.length]!, ts: i });
          await w.close();
        } catch (err) {
          failure = err as Error;
        }
        expect(failure?.message).toMatch(/^cannot write .*full\.jsonl: no space left on device \(ENOSPC\)$/);
        await w.abort("disk full");
        const text = readFileSync(path, "utf8");
        expect(text.length).toBeGreaterThan(0);
        expect(text.endsWith("\n")).toBe(true);
        const seal = JSON.parse(readFileSync(`${path}.seal.json`, "utf8"));
        expect(seal.complete).toBe(false);
        expect(seal.count).toBe(readLines(path).length);
        const r = await verifyLog(path);
        expect(r.reason).toMatch(
          /^log incomplete: the writer stopped early \(.*ENOSPC.*\); \d+ records chain intact$/,
        );
      } finally {
        disk.unmount();
      }
    },
  );
});

describe("flush on a full disk", () => {
  test.each(MODES)(
    "hashing %s: flush throws the write error, the log keeps whole lines",
    async (_m, parallelAfter) => {
      if (process.getuid?.() !== 0) return console.log("skipped: needs root to mount a small tmpfs");
      const dir = join(tmp.dir, `disk-flush-${parallelAfter}`);
      Bun.spawnSync(["mkdir", "-p", dir]);
      if (Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir]).exitCode !== 0) {
        return console.log("skipped: cannot mount tmpfs");
      }
      try {
        const path = join(dir, "full.jsonl");
        const w = await ChainedWriter.open(path, { parallelAfter });
        // fewer bytes than the writer buffers (1 MiB), more than the disk has left
        for (let i = 0; i < 400; i++) w.append({ ...records[i % records.length]!, ts: i });
        writeFileSync(join(dir, "filler"), Buffer.alloc(1024 * 1024 - 64 * 1024));
        expect(() => w.flush()).toThrow(/^cannot write .*full\.jsonl: no space left on device \(ENOSPC\)$/);
        await w.abort("disk full");
        const text = readFileSync(path, "utf8");
        expect(text === "" || text.endsWith("\n")).toBe(true);
        expect(JSON.parse(readFileSync(`${path}.seal.json`, "utf8")).complete).toBe(false);
      } finally {
        Bun.spawnSync(["umount", dir]);
      }
    },
  );
});

test("close after a failed write seals the log as incomplete and repeats the error", async () => {
  if (process.getuid?.() !== 0) return console.log("skipped: needs root to mount a small tmpfs");
  const dir = join(tmp.dir, "disk-close");
  Bun.spawnSync(["mkdir", "-p", dir]);
  if (Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir]).exitCode !== 0) {
    return console.log("skipped: cannot mount tmpfs");
  }
  try {
    const path = join(dir, "full.jsonl");
    const w = await ChainedWriter.open(path, { parallelAfter: Number.POSITIVE_INFINITY });
    let thrown = 0;
    for (let i = 0; i < 20_000; i++) {
      try {
        w.append({ ...records[i % records.length]!, ts: i });
      } catch {
        thrown++;
      }
    }
    expect(thrown).toBeGreaterThan(1); // every append after the failure fails too
    await expect(w.close()).rejects.toThrow(/ENOSPC/);
    const seal = JSON.parse(readFileSync(`${path}.seal.json`, "utf8"));
    expect(seal.complete).toBe(false);
    expect(seal.reason).toMatch(/ENOSPC/);
    expect(seal.count).toBe(readLines(path).length);
  } finally {
    Bun.spawnSync(["umount", dir]);
  }
});

test("holdWhenFull (the tracer): a full disk holds the lines, a later flush writes them all, in order", async () => {
  if (process.getuid?.() !== 0) return console.log("skipped: needs root to mount a small tmpfs");
  const dir = join(tmp.dir, "disk-hold");
  Bun.spawnSync(["mkdir", "-p", dir]);
  if (Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir]).exitCode !== 0) {
    return console.log("skipped: cannot mount tmpfs");
  }
  try {
    const path = join(dir, "held.jsonl");
    const filler = join(dir, "filler");
    writeFileSync(filler, Buffer.alloc(1024 * 1024 - 64 * 1024));
    const w = await ChainedWriter.open(path, { parallelAfter: Number.POSITIVE_INFINITY, holdWhenFull: true });
    // more than the disk has left, and more than the writer's 1 MiB buffer: nothing throws while appending
    for (let i = 0; i < 3000; i++) w.append({ ...records[i % records.length]!, ts: i });
    expect(() => w.flush()).toThrow(OutputHeld);
    expect(() => w.flush()).toThrow(/^cannot write .*held\.jsonl: no space left on device \(ENOSPC\)$/);
    rmSync(filler);
    w.flush();
    await w.close();
    expect(readLines(path).map((l) => JSON.parse(l).ts)).toEqual([...Array(3000).keys()]);
    expect((await verifyLog(path)).ok).toBe(true);
  } finally {
    Bun.spawnSync(["umount", dir]);
  }
});
