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
  replayText,
  schemaProblem,
  strace,
  straceToStderr,
  tempDir,
} from "./strace-run.ts";

// real strace runs and subprocesses: slow when the shared machine is busy
setDefaultTimeout(60_000);

const CLI = join(import.meta.dir, "../../src/cli.ts");
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

/** The records after `rec`, in trace order. */
const after = (rs: EnhancedEvent[], rec: EnhancedEvent): EnhancedEvent[] => rs.slice(rs.indexOf(rec) + 1);

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

describe("O_TMPFILE", () => {
  const body = `import os
fd = os.open("/tmp", os.O_RDWR | os.O_EXCL | os.O_TMPFILE, 0o600)
os.write(fd, b"hello")
os.lseek(fd, 0, 0)
os.read(fd, 5)
`;
  for (const flags of [["-f"], ["-f", "-yy"]]) {
    test(`an unnamed regular file in /tmp, not the directory (${flags.join(" ")})`, async () => {
      const py = await script("tmpfile.py", body);
      const r = await replayChecked(await strace(dir, `tmpfile${flags.length}`, flags, [PYTHON, py]));
      const open = only(r.records, (x) => x.call === "openat" && x.raw_line.includes("O_TMPFILE"))[0]!;
      expect(open.resource_type).toBe("FILE");
      expect(open.operation).toBe("CREATE");
      expect(open.perm_bits).toBe(0o600);
      const io = after(r.records, open).filter((x) => x.fd === open.retval && x.raw_line.includes('"hello"'));
      expect(io.length).toBe(2);
      for (const x of io) {
        expect(x.resource_type).toBe("FILE");
        // no name without -yy; with it, the kernel's `/tmp/#N (deleted)`
        if (flags.includes("-yy")) expect(x.abs_path).toMatch(/^\/tmp\/#\d+ \(deleted\)$/);
        else expect(x.abs_path).toBeNull();
      }
      if (flags.includes("-yy")) expect(open.abs_path).toBe(io[0]!.abs_path);
    });
  }
});

describe("calls of other threads between the halves of a call", () => {
  test("a close that has begun frees its fd: another thread's new file keeps the number", async () => {
    const py = await script(
      "close-race.py",
      `import os, threading
go = threading.Barrier(2)
def a():
    go.wait()
    for i in range(3000):
        fd = os.open("/etc/hostname", os.O_RDONLY); os.close(fd)
def b():
    go.wait()
    for i in range(3000):
        fd = os.open("/etc/passwd", os.O_RDONLY); os.read(fd, 1); os.close(fd)
ts = [threading.Thread(target=a), threading.Thread(target=b)]
for t in ts: t.start()
for t in ts: t.join()
`,
    );
    // the scheduler decides whether the threads interleave so: a few runs give at least one such trace
    let path = "";
    for (let run = 0; run < 8; run++) {
      path = await strace(dir, "close-race", ["-f"], [PYTHON, py]);
      if (reusedWhileClosing(await Bun.file(path).text()) > 0) break;
    }
    expect(reusedWhileClosing(await Bun.file(path).text())).toBeGreaterThan(0);
    const r = await replayChecked(path);
    const reads = only(r.records, (x) => x.call === "read" && x.byte_count === 1 && x.tid !== x.pid);
    expect(reads.length).toBe(3000);
    for (const x of reads) expect(x.abs_path).toBe("/etc/passwd");
    const closes = r.records.filter((x) => x.call === "close" && x.tid !== x.pid && x.retval === 0);
    expect(closes.length).toBe(6000);
    const paths = new Map<number, Set<string | null>>();
    for (const x of closes) paths.set(x.tid!, (paths.get(x.tid!) ?? new Set()).add(x.abs_path));
    // each thread closes only its own file
    expect([...paths.values()].map((s) => [...s].sort())).toEqual(
      expect.arrayContaining([["/etc/hostname"], ["/etc/passwd"]]),
    );
  });

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

describe("paths that reopen an fd", () => {
  test("bash's process substitution: /dev/fd/63 is the pipe bash made", async () => {
    const r = await replayChecked(await strace(dir, "procsub", ["-f"], ["bash", "-c", "cat <(echo hi)"]));
    const open = only(r.records, (x) => x.call === "openat" && x.abs_path === "/dev/fd/63")[0]!;
    expect(open.resource_type).toBe("PIPE");
    const read = only(after(r.records, open), (x) => x.call === "read" && x.fd === open.retval)[0]!;
    expect(read.pid).toBe(open.pid);
    expect(read.resource_type).toBe("PIPE");
    expect(read.byte_count).toBe(3);
  });
});

describe("sockets", () => {
  test("a port bound as 0 is known from getsockname on: accepted sockets carry it", async () => {
    const py = await script(
      "port0.py",
      `import socket
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen()
port = srv.getsockname()[1]
c = socket.create_connection(("127.0.0.1", port))
conn, _ = srv.accept()
c.sendall(b"ping")
conn.recv(4)
print(port)
`,
    );
    const path = join(dir, "port0.strace");
    const p = Bun.spawn(["strace", "-f", "-o", path, "--", PYTHON, py], { stdout: "pipe", stderr: "ignore" });
    const port = Number((await new Response(p.stdout).text()).trim());
    expect(await p.exited).toBe(0);
    expect(port).toBeGreaterThan(0);
    const r = await replayChecked(path);
    const accept = only(r.records, (x) => x.call.startsWith("accept") && (x.retval ?? -1) >= 0)[0]!;
    expect(accept.net).toMatchObject({ family: "AF_INET", local_addr: "127.0.0.1", local_port: port });
    const recv = only(r.records, (x) => x.call.startsWith("recv") && x.fd === accept.retval)[0]!;
    expect(recv.net?.local_port).toBe(port);
    // bound to htons(0): the port the kernel chose is not in the trace before getsockname
    const bind = only(r.records, (x) => x.call === "bind")[0]!;
    expect(bind.net?.local_port).toBeNull();
  });
});

describe("st_mode says what a file is", () => {
  test("a directory opened without O_DIRECTORY, and an inherited pipe, after fstat", async () => {
    const py = await script(
      "stmode.py",
      `import os
d = os.open("/etc", os.O_RDONLY)
os.fstat(d)
try:
    os.read(d, 1)
except IsADirectoryError:
    pass
os.fstat(0)
os.read(0, 1)
`,
    );
    const path = join(dir, "stmode.strace");
    // fd 0 is a pipe made outside the trace: strace never sees it made
    const p = Bun.spawn(["sh", "-c", `echo x | strace -f -o ${path} -- ${PYTHON} ${py}`], {
      stdout: "ignore",
      stderr: "ignore",
    });
    expect(await p.exited).toBe(0);
    const r = await replayChecked(path);
    const open = only(r.records, (x) => x.call === "openat" && x.abs_path === "/etc")[0]!;
    const onDir = after(r.records, open).filter((x) => x.fd === open.retval || x.args[0] === open.retval);
    const stat = only(onDir, (x) => x.raw_line.includes("S_IFDIR"))[0]!;
    expect(stat.resource_type).toBe("DIR");
    const read = only(onDir, (x) => x.call === "read")[0]!;
    expect(read.errno).toBe("EISDIR");
    expect(read.resource_type).toBe("DIR");
    const stdin = only(r.records, (x) => x.call === "read" && x.fd === 0 && x.byte_count === 1)[0]!;
    expect(stdin.resource_type).toBe("PIPE");
    expect(stdin.high_level_kind).toBe("Ipc");
  });
});

describe("--strict", () => {
  test("every record counted before the bad line is written", async () => {
    const path = await strace(dir, "strict", ["-f", "-tt"], ["/bin/sh", "-c", "cat /etc/hostname"]);
    await Bun.write(path, `${await Bun.file(path).text()}this is not strace output\n`);
    const out = join(dir, "strict.jsonl");
    const p = Bun.spawn(["bun", CLI, "replay", path, "--strict", "-o", out], { stderr: "pipe" });
    const err = await new Response(p.stderr).text();
    expect(await p.exited).toBe(2);
    const events = Number(/ (\d+) events/.exec(err)?.[1]);
    expect(events).toBeGreaterThan(10);
    const written = (await Bun.file(out).text()).split("\n").filter(Boolean);
    expect(written.length).toBe(events);
    expect(JSON.parse(written.at(-1)!).call).toBe("exit_group");
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

describe("many processes with a call in flight", () => {
  test("100,000 processes with an unfinished call each replay in linear time", async () => {
    // the shape `strace -f -o` prints: each process enters read, then each returns
    const n = 100_000;
    const lines: string[] = [];
    for (let pid = 10_000; pid < 10_000 + n; pid++) lines.push(`${pid}  read(0,  <unfinished ...>`);
    for (let pid = 10_000; pid < 10_000 + n; pid++) lines.push(`${pid}  <... read resumed>"x", 1)      = 1`);
    const started = performance.now();
    const r = await replayText(`${lines.join("\n")}\n`);
    const secs = (performance.now() - started) / 1000;
    expect(r.counts).toMatchObject({ lines: 2 * n, events: n, merged: n, unparsed: 0 });
    // linear: ≈ 0.5 s here; the quadratic scan took minutes
    expect(secs).toBeLessThan(15);
  });
});

describe("every line accounted for", () => {
  test("a resumed half cut again, on a tid that has another call in flight, is its own record", async () => {
    // lines as strace printed them for a tracee whose earlier half was lost (strace -p, then -f)
    const text = [
      "4100  read(0,  <unfinished ...>",
      "4100  <... futex resumed> <unfinished ...>",
      "4100  +++ killed by SIGKILL +++",
    ].join("\n");
    const r = await replayText(`${text}\n`);
    const c = r.counts;
    expect(c.lines).toBe(3);
    expect(c.events + c.merged + c.stateOnly + c.unparsed).toBe(3);
    expect(r.records.map((x) => [x.call, x.retval])).toEqual([
      ["read", null],
      ["futex", null],
    ]);
  });
});

/** How often a thread's `close(N <unfinished ...>` is followed by another thread's call returning N. */
function reusedWhileClosing(trace: string): number {
  const closing = new Map<string, string>();
  let hits = 0;
  for (const line of trace.split("\n")) {
    const m = /^(\d+) +(?:close\((\d+) <unfinished|<\.\.\. close resumed)|^(\d+) +.*\) += (\d+)$/.exec(line);
    if (m === null) continue;
    if (m[2] !== undefined) closing.set(m[1]!, m[2]);
    else if (m[1] !== undefined) closing.delete(m[1]);
    else for (const [tid, fd] of closing) if (tid !== m[3] && fd === m[4]) hits++;
  }
  return hits;
}
