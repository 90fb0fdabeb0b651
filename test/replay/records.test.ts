/**
 * Records that real traces used to get wrong or lose (apt, git, an HTTP server, bash, threads): each case is
 * recorded here with strace, or, where the kernel cannot be made to interleave threads on demand, given as
 * the lines strace printed.
 */
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import type { EnhancedEvent } from "../../src/replay/schema.ts";
import {
  lineCount,
  PYTHON,
  type Replayed,
  replayFile,
  schemaProblem,
  strace,
  straceToStderr,
  tempDir,
} from "./strace-run.ts";

// real strace runs and subprocesses: slow when the shared machine is busy
setDefaultTimeout(60_000);

const tmp = tempDir("records");
const dir = tmp.dir;
afterAll(() => tmp.remove());

async function script(name: string, body: string): Promise<string> {
  const path = join(dir, name);
  await Bun.write(path, body);
  return path;
}

/** Replays a trace; every line accounted for, nothing unparsed, every record valid. */
async function replayChecked(path: string): Promise<Replayed> {
  const r = await replayFile(path);
  const c = r.counts;
  expect(c.lines).toBe(await lineCount(path));
  expect(c.events + c.merged + c.stateOnly + c.unparsed).toBe(c.lines);
  expect(c.firstUnparsed).toEqual([]);
  expect(r.records.length).toBe(c.events);
  expect(schemaProblem(r.records)).toBeNull();
  return r;
}

const only = (rs: EnhancedEvent[], pred: (r: EnhancedEvent) => boolean): EnhancedEvent[] => {
  const hits = rs.filter(pred);
  if (hits.length === 0) throw new Error("no such record");
  return hits;
};

describe("a `1<<N` in a line is not an fd annotation", () => {
  test("capget's capability sets parse (and --strict accepts the trace)", async () => {
    const path = await strace(dir, "capget", ["-f"], ["setpriv", "--dump"]);
    expect(await Bun.file(path).text()).toContain("effective=1<<CAP_CHOWN|");
    const r = await replayChecked(path);
    const caps = only(r.records, (x) => x.call === "capget" && x.raw_line.includes("1<<CAP_CHOWN"));
    expect(caps[0]!.retval).toBe(0);
    expect(caps[0]!.operation).toBe("QUERY");
  });
});

describe("calls of other threads between the halves of a call", () => {
  test("pipe2 read in two halves registers both ends", async () => {
    const py = await script(
      "pipe-split.py",
      `import os, threading
stop = False
def spin():
    while not stop:
        os.getppid()
t = threading.Thread(target=spin); t.start()
for i in range(100):
    r, w = os.pipe()
    os.write(w, b"x"); os.read(r, 1)
    os.close(r); os.close(w)
stop = True
t.join()
`,
    );
    const path = await strace(dir, "pipe-split", ["-f"], [PYTHON, py]);
    expect(await Bun.file(path).text()).toMatch(/<\.\.\. pipe2 resumed>\[\d+, \d+\]/);
    const r = await replayChecked(path);
    const pipes = only(r.records, (x) => x.call === "pipe2" && x.raw_line.includes("resumed"));
    expect(pipes.length).toBeGreaterThan(0);
    const io = r.records.filter(
      (x) => (x.call === "write" || x.call === "read") && x.raw_line.includes('"x"'),
    );
    expect(io.length).toBe(200);
    for (const x of io) {
      expect(x.resource_type).toBe("PIPE");
      expect(x.high_level_kind).toBe("Ipc");
    }
  });
});

describe("bytes that are not UTF-8", () => {
  test("raw_line keeps them as \\xNN escapes, and a file name keeps its bytes", async () => {
    const py = await script(
      "bytes.py",
      `import os
os.write(2, b"\\xff\\xfe")
with open(b"${dir}/bin-\\xff\\xfe-caf\\xc3\\xa9", "w"):
    pass
`,
    );
    // strace to stderr: the program's own stderr bytes land inside the trace line
    const path = await straceToStderr(dir, "bytes", ["-f"], [PYTHON, py]);
    expect((await Bun.file(path).bytes()).includes(0xff)).toBe(true);
    const r = await replayChecked(path);
    const write = only(r.records, (x) => x.call === "write" && x.args[0] === 2)[0]!;
    expect(write.raw_line).toMatch(/write\(2, "\\377\\376", 2\\xff\\xfe\) +=/);
    expect(write.raw_line).not.toContain("\uFFFD");
    const open = only(r.records, (x) => x.call === "openat" && x.raw_line.includes("/bin-"))[0]!;
    expect(open.abs_path).toBe(join(dir, "bin-\\xff\\xfe-café"));
  });
});
