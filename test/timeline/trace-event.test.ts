/**
 * `carnot timeline --format trace-event` on a real trace: a threaded Python program reading files and
 * fetching from a loopback HTTP server, then a shell pipeline and a program run from a temporary directory —
 * recorded by strace, enriched by `carnot replay`. The document is checked event by event here, and read by
 * Chrome DevTools' own trace engine in headless Chromium.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Action } from "../../src/consumers/actions/collapse.ts";
import type { EnhancedEvent } from "../../src/replay/schema.ts";
import { CHROMIUM } from "../support/chromium.ts";
import { loadInDevTools } from "../support/devtools-trace.ts";

const CLI = join(import.meta.dir, "../../src/cli.ts");
const PYTHON = "/usr/bin/python3";

interface Run {
  exitCode: number;
  stdout: string;
  stderr: string;
}

async function carnot(args: string[]): Promise<Run> {
  const child = Bun.spawn([process.execPath, CLI, ...args], { stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  return { exitCode, stdout, stderr };
}

/** One event of the document, as the Trace Event Format describes it. */
interface TraceEvent {
  name: string;
  cat?: string;
  ph: string;
  ts: number;
  dur?: number;
  pid: number;
  tid: number;
  s?: string;
  id2?: { local: string };
  args?: Record<string, unknown>;
}

const WORKLOAD = `
import http.server, threading, urllib.request, subprocess, sys
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
threading.Thread(target=server.serve_forever, daemon=True).start()
def files():
    for i in range(20):
        with open("/etc/passwd", "rb") as f: f.read()
def fetch():
    for i in range(3): urllib.request.urlopen(f"http://127.0.0.1:{server.server_address[1]}/").read()
workers = [threading.Thread(target=files) for n in range(2)] + [threading.Thread(target=fetch)]
for w in workers: w.start()
for w in workers: w.join()
server.shutdown()
subprocess.run(["/bin/sh", "-c", f"cat /etc/hostname | wc -c; {sys.argv[1]}"], check=True)
`;

const missing = ["strace", "sh"].filter((tool) => !Bun.which(tool));
if (!(await Bun.file(PYTHON).exists())) missing.push(PYTHON);
if (missing.length > 0) console.warn(`skip trace-event on a real trace: ${missing.join(", ")} not installed`);

let dir = "";
let enriched = "";
let records: EnhancedEvent[] = [];
let events: TraceEvent[] = [];
let documentText = "";

beforeAll(async () => {
  if (missing.length > 0) return;
  dir = await mkdtemp(join(tmpdir(), "carnot-trace-event-"));
  const script = join(dir, "workload.py");
  await Bun.write(script, WORKLOAD);
  // a program run from a temporary directory: the replay tags its execve TMP_EXEC
  const fromTmp = join(dir, "true");
  copyFileSync("/bin/true", fromTmp);
  const trace = join(dir, "work.strace");
  const strace = Bun.spawn(
    ["strace", "-f", "-qq", "-ttt", "-T", "-yy", "-o", trace, "--", PYTHON, script, fromTmp],
    { stdout: "ignore", stderr: "pipe", cwd: dir },
  );
  const [code, err] = await Promise.all([strace.exited, new Response(strace.stderr).text()]);
  if (code !== 0) throw new Error(`workload failed: ${err}`);
  enriched = join(dir, "work.jsonl");
  const replayed = await carnot(["replay", trace, "-o", enriched]);
  if (replayed.exitCode !== 0) throw new Error(`replay failed: ${replayed.stderr}`);
  records = (await Bun.file(enriched).text())
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  const out = join(dir, "work.trace.json");
  const result = await carnot(["timeline", enriched, "--format", "trace-event", "-o", out]);
  if (result.exitCode !== 0) throw new Error(`timeline failed: ${result.stderr}`);
  documentText = await Bun.file(out).text();
  events = JSON.parse(documentText).traceEvents;
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const tidOf = (r: EnhancedEvent) => r.tid ?? r.pid;
const calls = (ph: string) => events.filter((e) => e.cat === "syscall" && e.ph === ph);

describe.skipIf(missing.length > 0)("trace-event timeline of a real trace", () => {
  test("one closed JSON document; every event has the fields its phase requires", () => {
    const document = JSON.parse(documentText);
    expect(Object.keys(document)).toEqual(["traceEvents", "otherData"]);
    expect(document.otherData).toEqual({
      generator: "carnot timeline",
      source: enriched,
      records: String(records.length),
    });
    expect(events.length).toBeGreaterThan(records.length);
    const phases = new Set<string>();
    for (const event of events) {
      phases.add(event.ph);
      expect(typeof event.name).toBe("string");
      expect(Number.isInteger(event.ts) && event.ts >= 0).toBe(true);
      expect(Number.isInteger(event.pid)).toBe(true);
      expect(Number.isInteger(event.tid)).toBe(true);
      if (event.ph === "X") expect(Number.isInteger(event.dur) && event.dur! >= 0).toBe(true);
      else expect(event.dur).toBeUndefined();
      if (event.ph === "i") expect(event.s).toBe("t");
      if (event.ph === "b" || event.ph === "e") {
        expect(event.cat).toBe("action");
        expect(typeof event.id2?.local).toBe("string");
      }
      if (event.ph === "M") expect(typeof event.args?.name).toBe("string");
    }
    expect([...phases].sort()).toEqual(["M", "X", "b", "e", "i"]);
  });

  test("each process and each thread has a named track: the executable, and its name for the thread", () => {
    const processNames = new Map<number, string>();
    const threadNames = new Map<string, string>();
    for (const event of events.filter((e) => e.ph === "M").sort((a, b) => a.ts - b.ts)) {
      if (event.name === "process_name") processNames.set(event.pid, event.args!.name as string);
      else if (event.name === "thread_name")
        threadNames.set(`${event.pid}/${event.tid}`, event.args!.name as string);
    }
    const lastExe = new Map<number, string>();
    for (const r of records) if (r.exe_path) lastExe.set(r.pid, r.exe_path);
    const pids = new Set(records.map((r) => r.pid));
    expect(new Set(processNames.keys())).toEqual(pids);
    for (const pid of pids) expect(processNames.get(pid)).toBe(lastExe.get(pid) ?? "(executable unknown)");
    const threads = new Set(records.map((r) => `${r.pid}/${tidOf(r)}`));
    expect(new Set(threadNames.keys())).toEqual(threads);
    // the Python program's threads, and the pipeline's commands, each on its own track
    const python = records.find((r) => r.exe_path === PYTHON || r.exe_path?.startsWith("/usr/bin/python3"))!;
    const pythonThreads = [...threads].filter((t) => t.startsWith(`${python.pid}/`));
    expect(pythonThreads.length).toBeGreaterThanOrEqual(5);
    for (const t of pythonThreads) expect(threadNames.get(t)).toMatch(/^python3/);
    expect([...processNames.values()]).toContain("/usr/bin/wc");
    expect([...processNames.values()]).toContain(join(dir, "true"));
  });

  test("every record is one call event: a slice with its latency, or an instant when it has none", () => {
    const slices = calls("X");
    const instants = calls("i");
    const timed = records.filter((r) => r.latency_us !== null);
    expect(slices).toHaveLength(timed.length);
    expect(instants).toHaveLength(records.length - timed.length);
    // exit_group returns nothing (`= ?`): no duration to show
    expect(instants.map((e) => e.name)).toContain("exit_group");
    const byLine = new Map([...slices, ...instants].map((e) => [e.args!.line as number, e]));
    expect(byLine.size).toBe(records.length);
    records.forEach((r, i) => {
      const event = byLine.get(i + 1)!;
      expect([event.name, event.ts, event.pid, event.tid]).toEqual([r.call, r.ts, r.pid, tidOf(r)]);
      expect(event.args!.latency_us).toBe(r.latency_us);
      expect(event.args!.retval).toBe(r.retval);
      if (event.ph === "X") expect(event.dur!).toBeLessThanOrEqual(r.latency_us!);
    });
    const clamped = slices.filter((e) => e.dur !== e.args!.latency_us);
    expect(clamped.length).toBeLessThan(slices.length / 100);
  });

  test("slices nest on each thread's track: none overlaps another without lying inside it", () => {
    const tracks = new Map<string, TraceEvent[]>();
    for (const e of calls("X")) {
      const key = `${e.pid}/${e.tid}`;
      if (!tracks.has(key)) tracks.set(key, []);
      tracks.get(key)!.push(e);
    }
    const crossing: string[] = [];
    for (const [key, slices] of tracks) {
      slices.sort((a, b) => a.ts - b.ts || b.dur! - a.dur!);
      const open: number[] = [];
      for (const s of slices) {
        while (open.length > 0 && open[open.length - 1]! <= s.ts) open.pop();
        const enclosing = open[open.length - 1];
        if (enclosing !== undefined && s.ts + s.dur! > enclosing)
          crossing.push(`${key}: ${s.name}@${s.ts}+${s.dur} crosses the end ${enclosing}`);
        open.push(s.ts + s.dur!);
      }
    }
    expect(crossing).toEqual([]);
    expect(tracks.size).toBe(new Set(records.map((r) => `${r.pid}/${tidOf(r)}`)).size);
  });

  test("the actions `carnot actions` names are async spans of their process, each begun and ended", async () => {
    const result = await carnot(["actions", enriched, "--format", "json"]);
    expect(result.exitCode).toBe(0);
    const actions: Action[] = result.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    const shown = actions.filter(
      (a) => a.risk_tags.length > 0 || (a.kind !== "runtime" && a.kind !== "lookup"),
    );
    const begins = events.filter((e) => e.ph === "b");
    const ends = new Map(events.filter((e) => e.ph === "e").map((e) => [`${e.pid}/${e.id2!.local}`, e]));
    expect(ends.size).toBe(begins.length);
    const spans = begins.map((b) => {
      const e = ends.get(`${b.pid}/${b.id2!.local}`)!;
      expect([e.name, e.cat]).toEqual([b.name, b.cat]);
      return `${b.pid} ${b.ts}–${e.ts} ${b.args!.kind} ${b.name}`;
    });
    const expected = shown.map((a) => `${a.pid} ${a.start_ts}–${a.end_ts} ${a.kind} ${a.summary}`);
    expect(spans.sort()).toEqual(expected.sort());
    expect(spans.some((s) => /connected to 127\.0\.0\.1:\d+ over TCP/.test(s))).toBe(true);
    expect(spans.some((s) => / file-read read .*passwd/.test(s))).toBe(true);

    // --all: the plumbing and look-ups too, as the other formats show them
    const out = join(dir, "all.trace.json");
    expect(
      (await carnot(["timeline", enriched, "--format", "trace-event", "--all", "-o", out])).exitCode,
    ).toBe(0);
    const all: TraceEvent[] = (await Bun.file(out).json()).traceEvents;
    expect(all.filter((e) => e.ph === "b")).toHaveLength(actions.length);
  });

  test("each risk tag is an instant on the thread of the call that carries it", () => {
    const risks = events.filter((e) => e.cat === "risk");
    const expected = records.flatMap((r, i) =>
      r.risk_tags.map((tag) => `${tag} ${r.ts} ${r.pid}/${tidOf(r)} ${r.call} line ${i + 1}`),
    );
    expect(
      risks.map((e) => `${e.name} ${e.ts} ${e.pid}/${e.tid} ${e.args!.call} line ${e.args!.line}`),
    ).toEqual(expected);
    expect(risks.every((e) => e.ph === "i" && e.s === "t")).toBe(true);
    expect(new Set(risks.map((e) => e.name))).toContain("TMP_EXEC");
    expect(new Set(risks.map((e) => e.name))).toContain("SHELL_SPAWN");
  });

  test("Chrome DevTools' trace engine reads it: every process and thread named, every slice in its thread's tree", async () => {
    if (!CHROMIUM) {
      console.warn("skip DevTools check: chromium not installed (Debian package chromium)");
      return;
    }
    // a control: two slices of one thread that cross, which DevTools must keep out of the tree
    const crossing = JSON.stringify({
      traceEvents: [
        { name: "read", ph: "X", ts: 100, dur: 50, pid: 1, tid: 1 },
        { name: "write", ph: "X", ts: 120, dur: 50, pid: 1, tid: 1 },
      ],
    });
    const [devtools, control] = await loadInDevTools([documentText, crossing]);
    expect(control!.threads.map((t) => [t.entries, t.nodes])).toEqual([[2, 1]]);
    const pids = [...new Set(records.map((r) => r.pid))];
    for (const pid of pids) expect(devtools!.processNames[pid]).toBeString();
    const threads = new Map(devtools!.threads.map((t) => [`${t.pid}/${t.tid}`, t]));
    const perThread = new Map<string, number>();
    for (const e of calls("X"))
      perThread.set(`${e.pid}/${e.tid}`, (perThread.get(`${e.pid}/${e.tid}`) ?? 0) + 1);
    for (const [key, count] of perThread) {
      const thread = threads.get(key);
      expect(thread?.name).toBeString();
      // DevTools leaves a slice out of the tree when it overlaps a sibling without nesting
      expect([key, thread?.entries, thread?.nodes]).toEqual([key, count, count]);
    }
  }, 120_000);
});
