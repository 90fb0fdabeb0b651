/**
 * Consumers benchmark: `carnot seccomp`, `carnot actions` and `carnot timeline` (text, HTML and
 * Trace Event JSON) on a 1-million-record enriched.jsonl, end to end (read, parse, collapse, write). Prints
 * records/s and peak RSS for 100 k and 1 M records: flat memory means the two RSS figures
 * stay close while the input grows tenfold.
 *
 * Input: --input FILE (any `carnot replay` output, e.g. the replay benchmark's), or by
 * default a real trace — a threaded Python program reading files and talking HTTP on
 * loopback, recorded by strace and enriched by `carnot replay` — repeated with shifted
 * timestamps until it has --records records (the hash chain is not kept; consumers do not read it).
 *
 *   bun run bench/consumers.ts [--records N] [--input FILE] [--bun]    (--bun: src/cli.ts instead of ./carnot)
 */
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const argv = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i === -1 ? undefined : argv[i + 1];
};
const recordsWanted = Number(option("--records") ?? 0) || 1_000_000;
const input = option("--input");
const useBun = argv.includes("--bun") || !existsSync("./carnot");
const cli = useBun ? [process.execPath, "src/cli.ts"] : ["./carnot"];

const WORKLOAD = `
import http.server, threading, urllib.request, os, hashlib
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_address[1]}/"
def files(n):
    for i in range(200):
        with open("/etc/passwd", "rb") as f: hashlib.sha256(f.read()).hexdigest()
        os.stat("/etc/hostname")
        try: os.stat(f"/nonexistent/{n}/{i}")
        except FileNotFoundError: pass
def requests():
    for i in range(20): urllib.request.urlopen(url).read()
workers = [threading.Thread(target=files, args=(n,)) for n in range(3)] + [threading.Thread(target=requests)]
for w in workers: w.start()
for w in workers: w.join()
server.shutdown()
`;

async function run(cmd: string[], cwd?: string): Promise<{ code: number; stderr: string; secs: number }> {
  const started = performance.now();
  const proc = Bun.spawn(cmd, { stdout: "ignore", stderr: "pipe", cwd });
  const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
  return { code, stderr, secs: (performance.now() - started) / 1000 };
}

/** Records a real workload and enriches it; returns the enriched lines. */
async function realRecords(dir: string): Promise<string[]> {
  const script = join(dir, "workload.py");
  await Bun.write(script, WORKLOAD);
  const trace = join(dir, "workload.strace");
  const traced = await run(
    ["strace", "-f", "-qq", "-ttt", "-T", "-yy", "-o", trace, "--", "/usr/bin/python3", script],
    dir,
  );
  if (traced.code !== 0) throw new Error(`workload failed: ${traced.stderr}`);
  const enriched = join(dir, "workload.jsonl");
  const replayed = await run([...cli, "replay", trace, "-o", enriched]);
  if (replayed.code !== 0) throw new Error(`replay failed: ${replayed.stderr}`);
  return (await Bun.file(enriched).text()).trimEnd().split("\n");
}

/** Repeats the records, each copy later in time, until `total` lines are written. */
async function tile(lines: string[], total: number, path: string): Promise<void> {
  const parsed = lines.map((l) => JSON.parse(l) as { ts: number });
  const span = parsed[parsed.length - 1]!.ts + 1000;
  const writer = Bun.file(path).writer({ highWaterMark: 4 << 20 });
  for (let written = 0, copy = 0; written < total; copy++) {
    let chunk = "";
    for (const record of parsed) {
      if (written >= total) break;
      chunk += `${JSON.stringify({ ...record, ts: record.ts + copy * span })}\n`;
      written++;
    }
    writer.write(chunk);
  }
  await writer.end();
}

/** One consumer on one file: wall time and peak RSS (from /usr/bin/time). */
async function measure(args: string[]): Promise<{ secs: number; rssMb: number }> {
  const result = await run(["/usr/bin/time", "-f", "%M", ...cli, ...args]);
  if (result.code !== 0) throw new Error(`${args[0]} failed (${result.code}): ${result.stderr}`);
  const rssKb = Number(result.stderr.trim().split("\n").at(-1));
  return { secs: result.secs, rssMb: rssKb / 1024 };
}

const dir = mkdtempSync(join(tmpdir(), "carnot-bench-consumers-"));
try {
  const big = join(dir, "enriched-1m.jsonl");
  const small = join(dir, "enriched-100k.jsonl");
  const source = input ? (await Bun.file(input).text()).trimEnd().split("\n") : await realRecords(dir);
  await tile(source, recordsWanted, big);
  await tile(source, Math.round(recordsWanted / 10), small);
  console.log(
    `input: ${input ?? `real trace (${source.length} records) repeated`}, ${recordsWanted} records, ` +
      `${(statSync(big).size / 2 ** 20).toFixed(0)} MiB; ${useBun ? "bun src/cli.ts" : "./carnot"}`,
  );
  const consumers: Array<[string, string[]]> = [
    ["seccomp", ["seccomp", "--skip-unknown"]],
    ["seccomp --args", ["seccomp", "--args", "--skip-unknown"]],
    ["actions (json)", ["actions", "--format", "json"]],
    ["actions (text)", ["actions"]],
    ["timeline (text)", ["timeline"]],
    ["timeline (html)", ["timeline", "--format", "html"]],
    ["timeline (trace-event)", ["timeline", "--format", "trace-event"]],
  ];
  for (const [name, args] of consumers) {
    const [command, ...rest] = args;
    const tenth = await measure([command!, small, ...rest, "-o", join(dir, "out-small")]);
    const full = await measure([command!, big, ...rest, "-o", join(dir, "out-big")]);
    const rate = recordsWanted / full.secs;
    console.log(
      `${name.padEnd(22)} ${(rate / 1000).toFixed(0).padStart(5)} k records/s  ` +
        `${full.secs.toFixed(2)} s  peak RSS ${full.rssMb.toFixed(0)} MB at 1×, ${tenth.rssMb.toFixed(0)} MB at 0.1×`,
    );
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
