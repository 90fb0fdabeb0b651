/**
 * Replay benchmark: generates a realistic `strace -f -tt -T -yy` trace of LINES lines (default 1.2 M),
 * runs `carnot replay` on it end to end (read, parse, enrich, hash, chain, write) and prints lines/s,
 * peak RSS and the mean record size without raw_line.
 *
 *   bun run bench/replay.ts [--lines N] [--bun | --bin PATH]   (default ./carnot; --bun runs src/cli.ts)
 *   bun run bench/replay.ts --record-sizes [--bun | --bin PATH]
 *     record sizes on real strace output of small workloads like the tests' (loopback HTTP, file IO and a
 *     subprocess, a shell pipeline, threads): median and mean without raw_line, and also without the hashes
 *
 * Lines/s is wall clock; the CPU-time rate is printed too because the machine is shared.
 */
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const argv = process.argv.slice(2);
const linesWanted = Number(argv[argv.indexOf("--lines") + 1] ?? 0) || 1_200_000;
const binAt = argv.indexOf("--bin");
const bin = binAt >= 0 ? argv[binAt + 1]! : "./carnot";
const useBun = argv.includes("--bun") || !existsSync(bin);

/** A deterministic pseudo-random sequence, so every run replays the same trace. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const PATHS = [
  "/etc/ld.so.cache",
  "/usr/lib/x86_64-linux-gnu/libc.so.6",
  "/usr/lib/python3.11/encodings/__init__.py",
  "/srv/app/config/settings.json",
  "/var/log/app/access.log",
  "/proc/self/status",
  "/etc/hosts",
  "/tmp/cache/item-000123.bin",
];

function clock(us: number): string {
  const s = Math.floor(us / 1e6);
  const h = Math.floor(s / 3600) % 24;
  const m = Math.floor(s / 60) % 60;
  const frac = String(us % 1e6).padStart(6, "0");
  return `${String(h).padStart(2, "0")}:${String(m).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}.${frac}`;
}

/** Writes the trace in 4 MiB pieces; a few processes with threads, fds tracked so the trace is consistent. */
async function generate(path: string, total: number): Promise<number> {
  const rnd = lcg(42);
  const writer = Bun.file(path).writer();
  let now = 3_600_000_000 * 9;
  let lines = 0;
  let buf = "";
  const pids = [4101, 4102, 4103, 4104];
  const open = new Map<number, string[]>(pids.map((p) => [p, []]));
  const pendingOf = new Map<number, string>();
  const emit = (s: string): void => {
    buf += `${s}\n`;
    lines++;
  };
  while (lines < total) {
    now += 1 + Math.floor(rnd() * 40);
    const pid = pids[Math.floor(rnd() * pids.length)]!;
    const t = `${pid}  ${clock(now)}`;
    const lat = `<0.0000${10 + Math.floor(rnd() * 89)}>`;
    const fds = open.get(pid)!;
    const pend = pendingOf.get(pid);
    if (pend !== undefined) {
      emit(`${t} <... ${pend} resumed>) = 0 ${lat}`);
      pendingOf.delete(pid);
      continue;
    }
    const r = rnd();
    if (r < 0.18 && fds.length < 40) {
      const p = PATHS[Math.floor(rnd() * PATHS.length)]!;
      const fd = 3 + fds.length;
      fds.push(p);
      emit(`${t} openat(AT_FDCWD</srv/app>, "${p}", O_RDONLY|O_CLOEXEC) = ${fd}<${p}> ${lat}`);
    } else if (r < 0.36 && fds.length > 0) {
      const fd = 2 + fds.length;
      const p = fds[fds.length - 1]!;
      emit(
        `${t} read(${fd}<${p}>, "\\177ELF\\2\\1\\1\\3\\0\\0\\0\\0\\0\\0\\0\\0\\3\\0>\\0\\1\\0\\0\\0P\\237\\2\\0\\0\\0\\0\\0"..., 832) = 832 ${lat}`,
      );
    } else if (r < 0.46) {
      emit(`${t} write(1</dev/pts/0<char 136:0>>, "GET /index.html 200 1532\\n", 25) = 25 ${lat}`);
    } else if (r < 0.56 && fds.length > 0) {
      const fd = 2 + fds.length;
      const p = fds.pop()!;
      emit(`${t} close(${fd}<${p}>) = 0 ${lat}`);
    } else if (r < 0.66) {
      emit(
        `${t} mmap(NULL, 262144, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f${Math.floor(rnd() * 0xffffff).toString(16)}000 ${lat}`,
      );
    } else if (r < 0.74) {
      emit(
        `${t} newfstatat(AT_FDCWD</srv/app>, "${PATHS[Math.floor(rnd() * PATHS.length)]}", {st_mode=S_IFREG|0644, st_size=${Math.floor(rnd() * 99999)}, ...}, 0) = 0 ${lat}`,
      );
    } else if (r < 0.82) {
      emit(
        `${t} futex(0x7f3a2c1fe990, FUTEX_WAIT_BITSET_PRIVATE|FUTEX_CLOCK_REALTIME, 0, NULL, FUTEX_BITSET_MATCH_ANY <unfinished ...>`,
      );
      pendingOf.set(pid, "futex");
    } else if (r < 0.88) {
      emit(
        `${t} connect(7<TCP:[127.0.0.1:46172]>, {sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr("127.0.0.1")}, 16) = 0 ${lat}`,
      );
    } else if (r < 0.93) {
      emit(
        `${t} sendto(7<TCP:[127.0.0.1:46172->127.0.0.1:8080]>, "GET / HTTP/1.1\\r\\nHost: localhost\\r\\n"..., 78, MSG_NOSIGNAL, NULL, 0) = 78 ${lat}`,
      );
    } else if (r < 0.97) {
      emit(`${t} rt_sigprocmask(SIG_SETMASK, [], NULL, 8) = 0 ${lat}`);
    } else {
      emit(
        `${t} openat(AT_FDCWD</srv/app>, "missing/${Math.floor(rnd() * 1000)}.py", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory) ${lat}`,
      );
    }
    if (buf.length > 4 << 20) {
      writer.write(buf);
      buf = "";
    }
  }
  writer.write(buf);
  await writer.end();
  return lines;
}

/** Bytes of each record without raw_line, and also without raw_hash and chain (whose values are fixed-size). */
function recordSizes(jsonl: string): { withoutRaw: number[]; withoutHashes: number[] } {
  const withoutRaw: number[] = [];
  const withoutHashes: number[] = [];
  for (const line of jsonl.split("\n")) {
    if (line === "") continue;
    const { raw_line: _raw, ...rest } = JSON.parse(line) as Record<string, unknown>;
    withoutRaw.push(Buffer.byteLength(JSON.stringify(rest)) + 1);
    const { raw_hash: _h, chain: _c, ...bare } = rest;
    withoutHashes.push(Buffer.byteLength(JSON.stringify(bare)) + 1);
  }
  return { withoutRaw, withoutHashes };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1] ?? 0;
const mean = (xs: number[]): number => Math.round(xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length));

/** strace on small real workloads, replayed; prints the record sizes per workload and over all. */
async function realRecordSizes(cmd: string[], dir: string): Promise<void> {
  const server = Bun.spawn(["python3", "-m", "http.server", "0", "--bind", "127.0.0.1"], {
    cwd: dir,
    stdout: "pipe",
    stderr: "ignore",
  });
  // python prints "Serving HTTP on 127.0.0.1 port N" once it listens
  const banner = server.stdout.getReader();
  let head = "";
  while (!/port (\d+)/.test(head)) {
    const { value, done } = await banner.read();
    if (done) throw new Error("python http.server did not start");
    head += new TextDecoder().decode(value);
  }
  const port = /port (\d+)/.exec(head)![1]!;
  const workloads: [string, string[]][] = [
    [
      "loopback HTTP (curl)",
      ["-f", "-tt", "-T", "-yy", "curl", "-s", "-o", "/dev/null", `http://127.0.0.1:${port}/`],
    ],
    [
      "file IO + subprocess (python)",
      [
        "-f",
        "-tt",
        "-T",
        "python3",
        "-c",
        'import subprocess; open("/etc/hostname").read(); subprocess.run(["ls", "-la", "/usr/lib"], capture_output=True)',
      ],
    ],
    [
      "shell pipeline",
      ["-f", "-tt", "-T", "-yy", "sh", "-c", "cat /etc/passwd | grep root | wc -l; sleep 0.1 & wait"],
    ],
    [
      "threads (python, -ttt -y)",
      [
        "-f",
        "-ttt",
        "-T",
        "-y",
        "python3",
        "-c",
        'import threading; t = [threading.Thread(target=lambda: open("/etc/hosts").read()) for _ in range(4)]; [x.start() for x in t]; [x.join() for x in t]',
      ],
    ],
  ];
  const all = { withoutRaw: [] as number[], withoutHashes: [] as number[] };
  try {
    for (const [name, args] of workloads) {
      const trace = join(dir, "real.strace");
      const out = join(dir, "real.jsonl");
      const st = Bun.spawnSync(["strace", "-o", trace, ...args], { stdout: "ignore", stderr: "ignore" });
      if (st.exitCode !== 0) throw new Error(`strace ${args.join(" ")} failed`);
      const rp = Bun.spawnSync([...cmd, "replay", trace, "-o", out], { stderr: "pipe" });
      if (rp.exitCode !== 0) throw new Error(`replay failed: ${rp.stderr.toString()}`);
      const s = recordSizes(await Bun.file(out).text());
      all.withoutRaw.push(...s.withoutRaw);
      all.withoutHashes.push(...s.withoutHashes);
      console.log(
        `${name.padEnd(30)} ${String(s.withoutRaw.length).padStart(6)} records: without raw_line median ${median(s.withoutRaw)} B, mean ${mean(s.withoutRaw)} B; also without raw_hash and chain median ${median(s.withoutHashes)} B, mean ${mean(s.withoutHashes)} B`,
      );
    }
  } finally {
    server.kill();
  }
  console.log(
    `${"all".padEnd(30)} ${String(all.withoutRaw.length).padStart(6)} records: without raw_line median ${median(all.withoutRaw)} B, mean ${mean(all.withoutRaw)} B; also without raw_hash and chain median ${median(all.withoutHashes)} B, mean ${mean(all.withoutHashes)} B`,
  );
}

const dir = mkdtempSync(join(tmpdir(), "carnot-bench-"));
if (argv.includes("--record-sizes")) {
  try {
    await realRecordSizes(useBun ? ["bun", "src/cli.ts"] : [bin], dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  process.exit(0);
}
try {
  const trace = join(dir, "bench.strace");
  const out = join(dir, "enriched.jsonl");
  const lines = await generate(trace, linesWanted);
  const bytes = statSync(trace).size;
  const cmd = useBun ? ["bun", "src/cli.ts"] : [bin];
  const started = performance.now();
  const proc = Bun.spawn(["/usr/bin/time", "-f", "%M %U %S", ...cmd, "replay", trace, "-o", out], {
    stderr: "pipe",
  });
  const code = await proc.exited;
  const secs = (performance.now() - started) / 1000;
  const stderr = await new Response(proc.stderr).text();
  if (code !== 0) throw new Error(`replay failed (${code}): ${stderr}`);
  const [rssKb, user, sys] = (stderr.trim().split("\n").at(-1) ?? "").split(" ").map(Number) as [
    number,
    number,
    number,
  ];
  // mean record size without raw_line, and also without the fixed-size raw_hash and chain (64 hex each)
  let sizeSum = 0;
  let n = 0;
  let withoutRawSum = 0;
  let withoutHashesSum = 0;
  const withoutRawSizes: number[] = [];
  const withoutHashesSizes: number[] = [];
  const file = Bun.file(out);
  const reader = file.stream().pipeThrough(new TextDecoderStream());
  let carry = "";
  for await (const chunk of reader) {
    const parts = (carry + chunk).split("\n");
    carry = parts.pop() ?? "";
    for (const line of parts) {
      if (n % 50 === 0) {
        const rec = JSON.parse(line) as Record<string, unknown>;
        const { raw_line: _raw, ...rest } = rec;
        const withoutRaw = Buffer.byteLength(JSON.stringify(rest)) + 1;
        withoutRawSum += withoutRaw;
        withoutRawSizes.push(withoutRaw);
        const { raw_hash: _h, chain: _c, ...bare } = rest;
        const withoutHashes = Buffer.byteLength(JSON.stringify(bare)) + 1;
        withoutHashesSum += withoutHashes;
        withoutHashesSizes.push(withoutHashes);
      }
      sizeSum += line.length + 1;
      n++;
    }
  }
  const sampled = Math.ceil(n / 50);
  console.log(`runner:            ${cmd.join(" ")}`);
  console.log(`input:             ${lines} lines, ${(bytes / 2 ** 20).toFixed(1)} MiB`);
  console.log(`records:           ${n}`);
  console.log(`${(lines / secs / 1000).toFixed(0).padStart(6)} k lines/s  (${secs.toFixed(2)} s end to end)`);
  console.log(
    `${(lines / (user + sys) / 1000).toFixed(0).padStart(6)} k lines/s of CPU time  (${user.toFixed(2)} s user, ${sys.toFixed(2)} s sys)`,
  );
  console.log(`peak RSS:          ${(rssKb / 1024).toFixed(0)} MiB`);
  console.log(
    `mean record:       ${(sizeSum / n).toFixed(0)} B with raw_line, ${(withoutRawSum / sampled).toFixed(0)} B without, ${(withoutHashesSum / sampled).toFixed(0)} B without raw_line, raw_hash and chain`,
  );
  console.log(
    `median record:     ${median(withoutRawSizes)} B without raw_line, ${median(withoutHashesSizes)} B without raw_line, raw_hash and chain`,
  );
  console.log(stderr.trim().split("\n").slice(0, -1).join("\n"));
} finally {
  if (!process.env.KEEP_BENCH) rmSync(dir, { recursive: true, force: true });
  else console.log(dir);
}
