/** The trace-event writer on hand-made records: where slices end, what has no duration, names, streaming. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { EnrichedRecord } from "../../src/consumers/enriched-reader.ts";
import { TraceEventWriter } from "../../src/consumers/timeline/trace-event.ts";
import { makeRecord, numbered, writeJsonl } from "../actions/make-record.ts";

const CLI = join(import.meta.dir, "../../src/cli.ts");

interface TraceEvent {
  name: string;
  cat?: string;
  ph: string;
  ts: number;
  dur?: number;
  pid: number;
  tid: number;
  args?: Record<string, unknown>;
}

/** The document for the records, and the writer's counts. */
function traceEvents(records: EnrichedRecord[], all = false) {
  let text = "";
  const writer = new TraceEventWriter((t) => (text += t), { source: "test.jsonl", all });
  for (const { line, record } of numbered(records)) writer.push(record, line);
  const counts = writer.finish();
  return { events: JSON.parse(text).traceEvents as TraceEvent[], counts, text };
}

const slices = (events: TraceEvent[]) => events.filter((e) => e.cat === "syscall");

describe("call slices", () => {
  test("a slice whose latency reaches past its thread's next call ends where that call begins; args keep the latency", () => {
    const { events, counts } = traceEvents([
      makeRecord({ ts: 10, call: "read", latency_us: 50 }),
      makeRecord({ ts: 30, call: "write", latency_us: 5 }),
    ]);
    expect(slices(events).map((e) => [e.name, e.ph, e.ts, e.dur, e.args!.latency_us])).toEqual([
      ["read", "X", 10, 20, 50],
      ["write", "X", 30, 5, 5],
    ]);
    expect(counts.clamped).toBe(1);
  });

  test("another thread's or process's call does not cut a slice short", () => {
    const { events, counts } = traceEvents([
      makeRecord({ ts: 10, pid: 100, tid: 100, call: "futex", latency_us: 500 }),
      makeRecord({ ts: 20, pid: 100, tid: 101, call: "read", latency_us: 5 }),
      makeRecord({ ts: 30, pid: 200, tid: 200, call: "read", latency_us: 5 }),
    ]);
    const futex = slices(events).find((e) => e.name === "futex")!;
    expect([futex.tid, futex.ts, futex.dur]).toEqual([100, 10, 500]);
    expect(counts.clamped).toBe(0);
  });

  test("a call without a true latency is an instant on its thread, its latency null", () => {
    const { events, counts } = traceEvents([
      makeRecord({ ts: 5, call: "getpid", latency_us: null }),
      makeRecord({ ts: 6, call: "getpid", latency_us: -3 }),
      makeRecord({ ts: 7, call: "getpid", latency_us: 1.5 }),
      makeRecord({ ts: 8, call: "getpid", latency_us: "9" as unknown as number }),
      makeRecord({ ts: 9, call: "exit_group", args: [3, null, null, null, null, null], retval: null }),
    ]);
    expect(slices(events).map((e) => [e.name, e.ph, e.ts, e.args!.latency_us])).toEqual([
      ["getpid", "i", 5, null],
      ["getpid", "i", 6, null],
      ["getpid", "i", 7, null],
      ["getpid", "i", 8, null],
      ["exit_group", "i", 9, null],
    ]);
    expect(slices(events).every((e) => (e as { s?: string }).s === "t" && e.dur === undefined)).toBe(true);
    expect([counts.slices, counts.instants]).toEqual([0, 5]);
  });

  test("args name the input line, the result, the errno and what the call touched", () => {
    const { events } = traceEvents([
      makeRecord({
        ts: 1,
        call: "openat",
        retval: -1,
        errno: "ENOENT",
        abs_path: "/etc/nope",
        latency_us: 3,
      }),
      makeRecord({
        ts: 9,
        call: "connect",
        retval: 0,
        latency_us: 40,
        net: {
          family: "AF_INET",
          protocol: "TCP",
          local_addr: null,
          local_port: null,
          remote_addr: "127.0.0.1",
          remote_port: 8080,
        },
      }),
    ]);
    expect(slices(events).map((e) => e.args)).toEqual([
      { line: 1, retval: -1, errno: "ENOENT", target: "/etc/nope", latency_us: 3 },
      { line: 2, retval: 0, target: "127.0.0.1:8080", latency_us: 40 },
    ]);
  });
});

describe("tracks", () => {
  test("a process is named after its executable, again after an exec; its threads after the executable's name", () => {
    const { events } = traceEvents([
      makeRecord({ ts: 1, pid: 7, tid: 7, call: "brk", exe_path: null, latency_us: 1 }),
      makeRecord({ ts: 2, pid: 7, tid: 7, call: "execve", exe_path: "/usr/bin/wc", latency_us: 9 }),
      makeRecord({ ts: 20, pid: 7, tid: 8, call: "read", exe_path: "/usr/bin/wc", latency_us: 1 }),
    ]);
    const names = events.filter((e) => e.ph === "M").map((e) => [e.name, e.ts, e.pid, e.tid, e.args!.name]);
    expect(names).toEqual([
      ["process_name", 1, 7, 7, "(executable unknown)"],
      ["thread_name", 1, 7, 7, "(executable unknown)"],
      ["process_name", 2, 7, 7, "/usr/bin/wc"],
      ["thread_name", 2, 7, 7, "wc"],
      ["thread_name", 20, 7, 8, "wc"],
    ]);
  });

  test("a thread that exits is forgotten; its held call is written then, with its whole latency", () => {
    const { events } = traceEvents([
      makeRecord({ ts: 1, pid: 7, tid: 8, call: "read", latency_us: 4 }),
      makeRecord({ ts: 9, pid: 7, tid: 8, call: "exit", retval: null }),
    ]);
    expect(slices(events).map((e) => [e.name, e.ph, e.ts, e.dur])).toEqual([
      ["read", "X", 1, 4],
      ["exit", "i", 9, undefined],
    ]);
    const writer = new TraceEventWriter(() => {}, { source: "t", all: false });
    writer.push(makeRecord({ ts: 1, pid: 7, tid: 7, call: "read", latency_us: 4 }), 1);
    writer.push(makeRecord({ ts: 2, pid: 7, tid: 8, call: "read", latency_us: 4 }), 2);
    writer.push(makeRecord({ ts: 3, pid: 9, tid: 9, call: "read", latency_us: 4 }), 3);
    expect(writer.threadsHeld).toBe(3);
    writer.push(makeRecord({ ts: 4, pid: 7, tid: 8, call: "exit", retval: null }), 4);
    expect(writer.threadsHeld).toBe(2);
    // exit_group ends every thread of the process
    writer.push(makeRecord({ ts: 5, pid: 9, tid: 9, call: "exit_group", retval: null }), 5);
    writer.push(makeRecord({ ts: 6, pid: 7, tid: 7, call: "exit_group", retval: null }), 6);
    expect(writer.threadsHeld).toBe(0);
    writer.finish();
  });

  test("risk tags are instants at the call, on its thread", () => {
    const { events, counts } = traceEvents([
      makeRecord({
        ts: 4,
        pid: 5,
        tid: 6,
        call: "execve",
        latency_us: 30,
        risk_tags: ["TMP_EXEC", "PRIV_ESC"],
      }),
    ]);
    expect(
      events.filter((e) => e.cat === "risk").map((e) => [e.name, e.ph, e.ts, e.pid, e.tid, e.args]),
    ).toEqual([
      ["TMP_EXEC", "i", 4, 5, 6, { call: "execve", line: 1 }],
      ["PRIV_ESC", "i", 4, 5, 6, { call: "execve", line: 1 }],
    ]);
    expect(counts.risk_tags).toBe(2);
  });

  test("text that is not plain (quotes, newlines, control bytes) stays one valid document", () => {
    const { events } = traceEvents([
      makeRecord({
        ts: 1,
        call: 'open"at\n',
        exe_path: '/tmp/a"b\u0001\\c',
        latency_us: 1,
        risk_tags: ["X\u0000"],
      }),
    ]);
    expect(events.find((e) => e.name === "process_name")!.args!.name).toBe('/tmp/a"b\u0001\\c');
    expect(events.find((e) => e.cat === "syscall")!.name).toBe('open"at\n');
  });
});

describe("carnot timeline --format trace-event", () => {
  let dir = "";
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "carnot-trace-event-cli-"));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function carnot(args: string[]) {
    const child = Bun.spawn([process.execPath, CLI, ...args], { stdout: "pipe", stderr: "pipe" });
    const [stdout, stderr, exitCode] = await Promise.all([
      new Response(child.stdout).text(),
      new Response(child.stderr).text(),
      child.exited,
    ]);
    return { exitCode, stdout, stderr };
  }

  test("an unknown format names the four", async () => {
    const file = await writeJsonl(dir, "one.jsonl", [makeRecord({ call: "read" })]);
    const result = await carnot(["timeline", file, "--format", "perfetto"]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toBe("carnot: --format must be text, html, json or trace-event, not perfetto\n");
  });

  test("no records: one line, exit 1, nothing on stdout and no file", async () => {
    const empty = join(dir, "empty.jsonl");
    await Bun.write(empty, "\n");
    const toStdout = await carnot(["timeline", empty, "--format", "trace-event"]);
    expect([toStdout.exitCode, toStdout.stdout, toStdout.stderr]).toEqual([
      1,
      "",
      `carnot: ${empty}: no records\n`,
    ]);
    const out = join(dir, "empty.trace.json");
    expect((await carnot(["timeline", empty, "--format", "trace-event", "-o", out])).exitCode).toBe(1);
    expect(await readdir(dir)).not.toContain("empty.trace.json");
  });

  test("a bad line halfway: the file is not written", async () => {
    const file = join(dir, "bad.jsonl");
    const good = JSON.stringify(makeRecord({ call: "read", latency_us: 1 }));
    await Bun.write(file, `${`${good}\n`.repeat(5000)}{"ts":1}\n`);
    const out = join(dir, "bad.trace.json");
    const result = await carnot(["timeline", file, "--format", "trace-event", "-o", out]);
    expect([result.exitCode, result.stderr]).toEqual([
      1,
      `carnot: ${file}:5001: not an enriched record: missing key "pid"\n`,
    ]);
    expect((await readdir(dir)).filter((f) => f.startsWith("bad.trace"))).toEqual([]);
  });

  test("streams: events come out on stdout while the records are still coming in", async () => {
    const child = Bun.spawn([process.execPath, CLI, "timeline", "-", "--format", "trace-event"], {
      stdin: "pipe",
      stdout: "pipe",
      stderr: "pipe",
    });
    // ≈ 1 MiB of events, more than the output buffer holds, then the input stays open
    for (let i = 0; i < 8000; i++)
      child.stdin.write(`${JSON.stringify(makeRecord({ ts: i * 10, call: "read", latency_us: 3 }))}\n`);
    await child.stdin.flush();
    const reader = child.stdout.getReader();
    const first = await Promise.race([reader.read(), Bun.sleep(30_000).then(() => null)]);
    expect(first?.value?.length ?? 0).toBeGreaterThan(0);
    expect(new TextDecoder().decode(first!.value!)).toStartWith('{"traceEvents":[\n');
    expect(child.exitCode).toBeNull();
    child.stdin.end();
    let rest = new TextDecoder().decode(first!.value!);
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read())
      rest += new TextDecoder().decode(chunk.value);
    expect(await child.exited).toBe(0);
    const events: TraceEvent[] = JSON.parse(rest).traceEvents;
    expect(events.filter((e) => e.ph === "X")).toHaveLength(8000);
  }, 60_000);
});
