/**
 * Real strace output, produced here on small workloads, replayed end to end. Every line of every trace
 * must be accounted for with nothing unparsed, and every record must match the EnhancedEvent schema.
 */
import { afterAll, setDefaultTimeout, beforeAll, describe, expect, test } from "bun:test";
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

const tmp = tempDir("replay");
const dir = tmp.dir;
afterAll(() => tmp.remove());

async function script(name: string, body: string): Promise<string> {
  const path = join(dir, name);
  await Bun.write(path, body);
  return path;
}

/** Replays a trace and checks what holds for every real trace. */
async function replayChecked(path: string): Promise<Replayed> {
  const r = await replayFile(path);
  const c = r.counts;
  expect(c.lines).toBe(await lineCount(path));
  expect(c.events + c.merged + c.stateOnly + c.unparsed).toBe(c.lines);
  if (c.unparsed > 0) {
    const lines = (await Bun.file(path).text()).split("\n");
    throw new Error(`unparsed lines in ${path}: ${c.firstUnparsed.map((n) => lines[n - 1]).join(" | ")}`);
  }
  expect(r.records.length).toBe(c.events);
  expect(schemaProblem(r.records)).toBeNull();
  return r;
}

const find = (rs: EnhancedEvent[], pred: (r: EnhancedEvent) => boolean): EnhancedEvent => {
  const hit = rs.find(pred);
  if (!hit) throw new Error("no such record");
  return hit;
};

const FILEIO = `
import os, fcntl
os.chdir("/usr")
d = os.open("/etc", os.O_RDONLY | os.O_DIRECTORY)
f = os.open("hostname", os.O_RDONLY, dir_fd=d)
os.read(f, 100)
os.close(f)
g = os.open("share/../lib", os.O_RDONLY | os.O_DIRECTORY)
os.fchdir(d)
h = os.open("passwd", os.O_RDONLY)
os.dup2(h, 50)
os.read(50, 10)
k = fcntl.fcntl(h, fcntl.F_DUPFD, 60)
os.read(k, 10)
os.closerange(60, 70)
try:
    os.read(60, 10)
except OSError:
    pass
`;

describe("file IO without -y: paths come from the fd table", () => {
  let r: Replayed;
  beforeAll(async () => {
    const py = await script("fileio.py", FILEIO);
    r = await replayChecked(await strace(dir, "fileio", ["-f", "-tt", "-T"], [PYTHON, py]));
  });

  test("openat relative to a dirfd resolves against that directory", () => {
    const rec = find(r.records, (x) => x.call === "openat" && x.raw_line.includes('"hostname"'));
    expect(rec.args[0]).toBeGreaterThanOrEqual(3);
    expect(rec.abs_path).toBe("/etc/hostname");
    expect(rec.resource_type).toBe("FILE");
    expect(rec.operation).toBe("OPEN");
  });

  test("a relative path against the cwd is joined and normalised", () => {
    const rec = find(r.records, (x) => x.call === "openat" && x.raw_line.includes('"share/../lib"'));
    expect(rec.abs_path).toBe("/usr/lib");
    expect(rec.resource_type).toBe("DIR");
    expect(rec.cwd).toBe("/usr");
  });

  test("fchdir moves the cwd to the fd's directory", () => {
    const rec = find(r.records, (x) => x.call === "openat" && x.raw_line.includes('"passwd"'));
    expect(rec.cwd).toBe("/etc");
    expect(rec.abs_path).toBe("/etc/passwd");
  });

  test("dup2 and fcntl(F_DUPFD) carry the path to the new fd; close_range drops it", () => {
    const viaDup = find(r.records, (x) => x.call === "read" && x.args[0] === 50);
    expect(viaDup.abs_path).toBe("/etc/passwd");
    expect(viaDup.fd).toBe(50);
    expect(viaDup.byte_count).toBe(10);
    const fcntl = find(r.records, (x) => x.call === "fcntl" && x.args[1] === 0);
    expect(fcntl.retval).toBeGreaterThanOrEqual(60);
    const viaFcntl = find(
      r.records,
      (x) => x.call === "read" && x.args[0] === fcntl.retval && x.retval === 10,
    );
    expect(viaFcntl.abs_path).toBe("/etc/passwd");
    const afterClose = find(r.records, (x) => x.call === "read" && x.args[0] === 60 && x.retval === -1);
    expect(afterClose.errno).toBe("EBADF");
    expect(afterClose.abs_path).toBeNull();
  });

  test("time starts at 0 and -T gives latency", () => {
    expect(r.records[0]!.ts).toBe(0);
    expect(r.records.at(-1)!.ts).toBeGreaterThan(0);
    expect(r.records.filter((x) => x.latency_us !== null).length).toBeGreaterThan(r.records.length / 2);
  });

  test("exe_path comes from execve", () => {
    expect(r.records.at(-1)!.exe_path).toBe(PYTHON);
  });
});

describe("pipes and fork/exec (-f -tt -T -yy, and without -y)", () => {
  for (const flags of [
    ["-f", "-tt", "-T", "-yy"],
    ["-f", "-tt", "-T"],
  ]) {
    test(`${flags.join(" ")}: pipe ends, children's exe and ppid`, async () => {
      const name = `pipes${flags.length}`;
      const path = await strace(dir, name, flags, [
        "/bin/sh",
        "-c",
        "echo hi | cat > out.txt; /bin/ls /nonexistent 2>/dev/null",
      ]);
      const r = await replayChecked(path);
      // the starting cwd is in the trace only with -yy (AT_FDCWD</dir>) or when the shell calls getcwd
      const cwdKnown = flags.includes("-yy") || (await Bun.file(path).text()).includes("getcwd(");
      const shell = r.records[0]!;
      expect(shell.call).toBe("execve");
      expect(shell.exe_path).toBe("/bin/sh");
      expect(shell.risk_tags).toContain("SHELL_SPAWN");
      const pipe = find(r.records, (x) => x.call === "pipe2" || x.call === "pipe");
      expect(pipe.resource_type).toBe("PIPE");
      const echo = find(r.records, (x) => x.call === "write" && x.raw_line.includes('"hi\\n"'));
      expect(echo.resource_type).toBe("PIPE");
      expect(echo.high_level_kind).toBe("Ipc");
      expect(echo.ppid).toBe(shell.pid);
      const cat = find(r.records, (x) => x.call === "openat" && x.raw_line.includes('"out.txt"'));
      expect(cat.abs_path).toBe(cwdKnown ? join(dir, "out.txt") : null);
      expect(cat.cwd).toBe(cwdKnown ? dir : null);
      expect(cat.operation).toBe("CREATE");
      expect(cat.perm_bits).toBe(0o666);
      const catWrite = find(r.records, (x) => x.call === "write" && x.pid === cat.pid && x.args[0] === 1);
      expect(catWrite.abs_path).toBe(cwdKnown ? join(dir, "out.txt") : null);
      expect(catWrite.exe_path).toBe("/usr/bin/cat");
      expect(catWrite.ppid).toBe(shell.pid);
      const ls = find(r.records, (x) => x.call === "execve" && x.exe_path === "/bin/ls");
      expect(ls.ppid).toBe(shell.pid);
      const missing = find(
        r.records,
        (x) => x.pid === ls.pid && x.errno === "ENOENT" && x.abs_path === "/nonexistent",
      );
      expect(missing.retval).toBe(-1);
    });
  }
});

describe("threads: tid → pid through clone(CLONE_THREAD)", () => {
  test("every thread's calls carry the process's pid", async () => {
    const py = await script(
      "threads.py",
      `import threading
def work():
    with open("/etc/hostname") as f:
        f.read()
ts = [threading.Thread(target=work) for _ in range(3)]
for t in ts: t.start()
for t in ts: t.join()
`,
    );
    for (const [name, flags, run] of [
      ["threads-o", ["-f", "-tt", "-T", "-yy"], strace],
      ["threads-stderr", ["-f", "-tt"], straceToStderr],
    ] as const) {
      const r = await replayChecked(await run(dir, name, [...flags], [PYTHON, py]));
      const opens = r.records.filter((x) => x.call === "openat" && x.abs_path === "/etc/hostname");
      expect(opens.length).toBe(3);
      const main = r.records[0]!.pid;
      for (const o of opens) {
        expect(o.pid).toBe(main);
        expect(o.tid).not.toBe(main);
        expect(o.exe_path).toBe(PYTHON);
      }
      expect(new Set(opens.map((o) => o.tid)).size).toBeGreaterThanOrEqual(2);
      // the fd a thread opened is known to the main thread too (CLONE_FILES)
      const reads = r.records.filter((x) => x.call === "read" && x.abs_path === "/etc/hostname");
      expect(reads.length).toBeGreaterThanOrEqual(3);
    }
  });

  test("exec from a thread: the tid is renamed to the pid (superseded)", async () => {
    const py = await script(
      "thread-exec.py",
      `import threading, os, time
threading.Thread(target=lambda: os.execv("/bin/true", ["true"])).start()
time.sleep(5)
`,
    );
    const path = await strace(dir, "thread-exec", ["-f", "-tt"], [PYTHON, py]);
    expect(await Bun.file(path).text()).toContain("superseded by execve");
    const r = await replayChecked(path);
    const main = r.records[0]!.pid;
    const exec = find(r.records, (x) => x.call === "execve" && x.exe_path === "/bin/true");
    expect(exec.retval).toBe(0);
    expect(exec.pid).toBe(main);
    expect(exec.tid).toBe(main);
    expect(exec.raw_line.split("\n").length).toBe(2);
    const after = r.records.slice(r.records.indexOf(exec) + 1);
    expect(after.length).toBeGreaterThan(5);
    for (const x of after) {
      expect(x.tid).toBe(main);
      expect(x.exe_path).toBe("/bin/true");
    }
  });
});

describe("a local HTTP request over loopback", () => {
  test("server bind/listen/accept and client connect carry addresses and ports", async () => {
    const port = await freePort();
    const server = await script(
      "server.py",
      `import http.server
s = http.server.HTTPServer(("127.0.0.1", ${port}), http.server.SimpleHTTPRequestHandler)
print("ready", flush=True)
s.handle_request()
`,
    );
    const serverTrace = join(dir, "server.strace");
    const srv = Bun.spawn(["strace", "-f", "-tt", "-T", "-yy", "-o", serverTrace, "--", PYTHON, server], {
      cwd: dir,
      stdout: "pipe",
      stderr: "ignore",
    });
    const reader = srv.stdout.getReader();
    await reader.read(); // "ready"
    const clientTrace = await strace(
      dir,
      "client",
      ["-f", "-tt", "-T"],
      ["curl", "-s", "-o", "/dev/null", `http://127.0.0.1:${port}/`],
    );
    expect(await srv.exited).toBe(0);

    const s = await replayChecked(serverTrace);
    const bind = find(s.records, (x) => x.call === "bind");
    expect(bind.net).toMatchObject({
      family: "AF_INET",
      protocol: "TCP",
      local_addr: "127.0.0.1",
      local_port: port,
    });
    const listen = find(s.records, (x) => x.call === "listen");
    expect(listen.risk_tags).toContain("NET_LISTEN");
    expect(listen.high_level_kind).toBe("NetListen");
    const accept = find(s.records, (x) => x.call.startsWith("accept") && (x.retval ?? -1) >= 0);
    expect(accept.net?.local_port).toBe(port);
    expect(accept.net?.remote_addr).toBe("127.0.0.1");
    expect(accept.net?.remote_port).toBeGreaterThan(0);
    expect(accept.operation).toBe("ACCEPT");

    const c = await replayChecked(clientTrace);
    const connect = find(c.records, (x) => x.call === "connect" && x.net?.remote_port === port);
    expect(connect.net).toMatchObject({ family: "AF_INET", protocol: "TCP", remote_addr: "127.0.0.1" });
    expect(connect.operation).toBe("CONNECT");
    expect(connect.high_level_kind).toBe("NetConnect");
    const send = find(
      c.records,
      (x) => (x.call === "sendto" || x.call === "write") && x.raw_line.includes("GET /"),
    );
    expect(send.resource_type).toBe("SOCKET");
    expect(send.net?.remote_port).toBe(port);
  });
});

describe("a killed child", () => {
  test("its cut call is a record with retval null; killed/exit lines are state", async () => {
    const path = await strace(
      dir,
      "killed",
      ["-f", "-ttt", "-T"],
      ["/bin/sh", "-c", "/bin/sleep 10 & /bin/sleep 0.3; kill -9 $!; wait"],
    );
    expect(await Bun.file(path).text()).toContain("+++ killed by SIGKILL +++");
    const r = await replayChecked(path);
    const sleeper = find(r.records, (x) => x.call === "execve" && x.raw_line.includes('"10"'));
    const cut = find(r.records, (x) => x.pid === sleeper.pid && x.call === "clock_nanosleep");
    expect(cut.retval).toBeNull();
    expect(cut.errno).toBeNull();
    expect(r.counts.stateOnly).toBeGreaterThanOrEqual(3);
    // -ttt: epoch seconds, still µs since the start
    expect(r.records[0]!.ts).toBe(0);
    expect(r.records.at(-1)!.ts).toBeGreaterThan(300_000);
  });
});

describe("every output form of strace is parsed", () => {
  const workload = ["/bin/sh", "-c", "cat /etc/hostname >/dev/null; true"];
  const forms: [string, string[], boolean][] = [
    ["plain", [], false],
    ["f", ["-f"], false],
    ["t", ["-f", "-t"], false],
    ["tt", ["-f", "-tt"], false],
    ["ttt", ["-f", "-ttt", "-T"], false],
    ["r", ["-f", "-r"], false],
    ["ns", ["-f", "--timestamps=format:time,precision:ns", "-T"], false],
    ["y", ["-f", "-y"], false],
    ["yy", ["-f", "-yy", "-tt", "-T"], false],
    ["k", ["-f", "-k"], false],
    ["xverbose", ["-f", "-X", "verbose"], false],
    ["xraw", ["-f", "-X", "raw"], false],
    ["rawall", ["-f", "-e", "raw=all"], false],
    ["stderr-f", ["-f", "-tt", "-T"], true],
    ["stderr-plain", ["-tt"], true],
  ];
  for (const [name, flags, toStderr] of forms) {
    test(`${name}: ${flags.join(" ") || "(no options)"}${toStderr ? " to stderr" : ""}`, async () => {
      const path = toStderr
        ? await straceToStderr(dir, name, flags, workload)
        : await strace(dir, name, flags, workload);
      const r = await replayChecked(path);
      const follows = flags.includes("-f");
      const open = r.records.find((x) => x.call === "openat" && x.abs_path === "/etc/hostname");
      if (follows && !flags.includes("raw") && !flags.includes("raw=all")) {
        expect(open?.exe_path).toBe("/usr/bin/cat");
        expect(open?.resource_type).toBe("FILE");
      }
      // a prefix-less trace still learns its pid (set_tid_address / getpid)
      expect(r.records.every((x) => x.pid > 0)).toBe(true);
      if (flags.some((f) => f.startsWith("-t") || f === "-r" || f.startsWith("--timestamps"))) {
        expect(r.records[0]!.ts).toBe(0);
        // -t has whole seconds only: the run may fit in one
        if (!flags.includes("-t")) expect(r.records.at(-1)!.ts).toBeGreaterThan(0);
      }
      if (flags.includes("-k")) expect(r.records.some((x) => x.raw_line.includes("\n > "))).toBe(true);
    });
  }
});

async function freePort(): Promise<number> {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}
