/**
 * BLAKE3 candidates and the chained writer, measured on realistic records.
 * Run: bun bench/chain.ts [records]   (default 1,000,000; figures go into WORKLOG.md)
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { blake3 as nobleBlake3 } from "@noble/hashes/blake3.js";
import { Blake3, wordsToBytes } from "../src/chain/blake3.ts";
import { verifyLog } from "../src/chain/verify.ts";
import { ChainedWriter } from "../src/chain/writer.ts";

const writerMode = process.argv[2] === "--writer" ? (process.argv[3] ?? "in-thread") : null;
const RECORDS = Number(process.argv[writerMode ? 4 : 2] ?? 1_000_000);

/** A replay-like record: ~250-byte raw_line, ~600 bytes serialized with raw_hash. */
function makeRecord(i: number): Record<string, unknown> {
  const pid = 1000 + (i % 7);
  const path = `/srv/app/module_${i % 997}/__init__.py`;
  return {
    ts: i * 13,
    pid,
    tid: pid,
    ppid: 999,
    call: "newfstatat",
    args: [-100, null, null, 0, null, null],
    retval: 0,
    errno: null,
    raw_line: `[pid ${pid}] 01:19:28.${String(i % 1_000_000).padStart(6, "0")} newfstatat(AT_FDCWD, "${path}", {st_mode=S_IFREG|0644, st_size=${i % 4096}, st_blksize=4096, st_blocks=8, st_dev=makedev(0x8, 0x1), st_ino=1234567, ...}, AT_SYMLINK_NOFOLLOW) = 0 <0.000047>`,
    raw_hash: null,
    exe_path: "/usr/bin/python3.11",
    cwd: "/srv/app",
    uid: null,
    gid: null,
    caps: null,
    fd: -1,
    abs_path: path,
    resource_type: "FILE",
    operation: "STAT",
    perm_bits: null,
    byte_count: null,
    net: null,
    latency_us: 47,
    risk_tags: [],
    high_level_kind: "FileMetadata",
  };
}

/** CPU time of this process's main thread, in ms (Linux). */
function mainThreadCpuMs(): number {
  const fields = readFileSync(`/proc/self/task/${process.pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) * (1000 / 100);
}

/** Write RECORDS records through the writer (hashing in-thread or in its worker, `-keyed`: v2), then verify them. */
async function benchWriter(mode: string): Promise<void> {
  const key = mode.endsWith("-keyed") ? new Uint8Array(32).fill(7) : undefined;
  const dir = mkdtempSync(join(tmpdir(), "carnot-bench-chain-"));
  try {
    const path = join(dir, "bench.jsonl");
    const templates = Array.from({ length: 1000 }, (_, i) => makeRecord(i));
    const w = await ChainedWriter.open(path, {
      parallelAfter: mode.startsWith("worker") ? undefined : Number.POSITIVE_INFINITY,
      key,
    });
    const cpu0 = mainThreadCpuMs();
    const t0 = performance.now();
    for (let i = 0; i < RECORDS; i++) w.append({ ...templates[i % 1000]!, ts: i });
    await w.close();
    const writeS = (performance.now() - t0) / 1000;
    const cpuUs = ((mainThreadCpuMs() - cpu0) * 1000) / RECORDS;
    const size = statSync(path).size;
    console.log(
      `writer (${mode}): ${RECORDS} records in ${writeS.toFixed(2)} s = ${Math.round(RECORDS / writeS)} records/s, ${(size / 1e6 / writeS).toFixed(0)} MB/s, ${(size / RECORDS).toFixed(0)} B/line, main thread ${cpuUs.toFixed(2)} µs CPU/record, peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`,
    );
    if (!mode.startsWith("worker")) {
      const t1 = performance.now();
      const r = await verifyLog(path, { key });
      const verifyS = (performance.now() - t1) / 1000;
      console.log(`verify: ${r.ok ? "ok" : `FAIL ${r.reason}`}, ${Math.round(r.count / verifyS)} records/s`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (writerMode !== null) {
  await benchWriter(writerMode);
  process.exit(0);
}

function timeIt(label: string, iterations: number, fn: (i: number) => void): number {
  for (let i = 0; i < Math.min(iterations, 20_000); i++) fn(i); // warm up the JIT
  const t0 = performance.now();
  for (let i = 0; i < iterations; i++) fn(i);
  const us = ((performance.now() - t0) * 1000) / iterations;
  console.log(`${label.padEnd(58)} ${us.toFixed(3)} µs`);
  return us;
}

const sample = makeRecord(1);
const rawLine = sample.raw_line as string;
const enc = new TextEncoder();
const rawBytes = enc.encode(rawLine);
const recordBytes = enc.encode(JSON.stringify({ ...sample, raw_hash: "0".repeat(64) }));
console.log(`raw_line ${rawBytes.length} B, record ${recordBytes.length} B, ${RECORDS} records`);
const ITER = 200_000;

// Per record: raw_hash of the raw_line + one keyed chain step over the record.
const noble = timeIt("@noble/hashes 2.4.0: raw_hash + keyed chain step", ITER / 4, () => {
  const key = nobleBlake3(rawBytes);
  nobleBlake3(recordBytes, { key });
});
const h = new Blake3();
const ownKey = new Uint32Array(8);
const own = timeIt("src/chain/blake3.ts: raw_hash + keyed chain step", ITER, () => {
  h.digest(h.load(rawBytes));
  ownKey.set(h.out);
  h.digest(h.load(recordBytes), ownKey);
});
// carnot.chain.v2 adds one compression per link: k_i = blake3_keyed(link key, chain_{i-1})
const linkKey = new Uint32Array(8).fill(0x01020304);
const linkKeyNow = new Uint32Array(8);
timeIt("src/chain/blake3.ts: raw_hash + v2 chain step (+ link key)", ITER, () => {
  h.digest(h.load(rawBytes));
  ownKey.set(h.out);
  h.keyedWords(linkKey, ownKey, linkKeyNow);
  h.digest(h.load(recordBytes), linkKeyNow);
});
timeIt("src/chain/blake3.ts: the link key alone (one compression)", ITER, () =>
  h.keyedWords(linkKey, ownKey, linkKeyNow),
);
const big = new Uint8Array(1 << 20).map((_, i) => i * 31);
const mbs = (us: number, bytes: number) => (bytes / us).toFixed(0);
const ownBig = timeIt("src/chain/blake3.ts: 1 MiB", 200, () => h.digest(h.load(big)));
const nobleBig = timeIt("@noble/hashes: 1 MiB", 50, () => nobleBlake3(big));
const ownRec = timeIt("src/chain/blake3.ts: one record", ITER, () => h.digest(h.load(recordBytes)));
console.log(
  `MB/s: own ${mbs(ownBig, big.length)} (1 MiB), ${mbs(ownRec, recordBytes.length)} (record); noble ${mbs(nobleBig, big.length)} (1 MiB)`,
);

// Optional candidates, measured when installed (they are not dependencies).
async function optional(name: string): Promise<Record<string, unknown> | null> {
  try {
    return (await import(name)) as Record<string, unknown>;
  } catch {
    console.log(`${name}: not installed, skipped`);
    return null;
  }
}
const hw = await optional("hash-wasm");
if (hw) {
  const create = hw.createBLAKE3 as (
    bits: number,
    key?: Uint8Array,
  ) => Promise<{
    init(): void;
    update(d: Uint8Array): void;
    digest(f: "binary"): Uint8Array;
  }>;
  const unkeyed = await create(256);
  timeIt("hash-wasm: raw_hash only (keyed needs a new instance per key)", ITER, () => {
    unkeyed.init();
    unkeyed.update(rawBytes);
    unkeyed.digest("binary");
  });
  const t0 = performance.now();
  for (let i = 0; i < 2000; i++) await create(256, wordsToBytes(ownKey));
  console.log(
    `${"hash-wasm: new keyed instance".padEnd(58)} ${(((performance.now() - t0) * 1000) / 2000).toFixed(3)} µs`,
  );
}
const jit = await optional("blake3-jit");
if (jit) {
  const hash = jit.hash as (d: Uint8Array) => Uint8Array;
  const keyed = jit.createKeyed as (k: Uint8Array) => { update(d: Uint8Array): { finalize(): Uint8Array } };
  timeIt("blake3-jit: raw_hash + keyed chain step", ITER, () => {
    keyed(hash(rawBytes)).update(recordBytes).finalize();
  });
}
console.log(`hash speed-up over @noble/hashes: ${(noble / own).toFixed(1)}x`);

// The writer end to end, then verify, on a real file: each mode in its own process (own peak RSS).
for (const mode of ["in-thread", "worker", "in-thread-keyed", "worker-keyed"]) {
  const run = Bun.spawnSync([process.execPath, import.meta.path, "--writer", mode, String(RECORDS)], {
    stdout: "inherit",
    stderr: "inherit",
  });
  if (run.exitCode !== 0) process.exit(run.exitCode ?? 1);
}
