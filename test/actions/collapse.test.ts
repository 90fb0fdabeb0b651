import { describe, expect, test } from "bun:test";
import { type Action, ActionCollapser } from "../../src/consumers/actions/collapse.ts";
import { execArgv, formatBytes, formatCommand } from "../../src/consumers/actions/describe.ts";
import type { EnrichedRecord } from "../../src/consumers/enriched-reader.ts";
import { makeRecord, numbered } from "./make-record.ts";

function collapse(records: EnrichedRecord[]): Action[] {
  const actions: Action[] = [];
  const collapser = new ActionCollapser((a) => actions.push(a));
  for (const { line, record } of numbered(records)) collapser.push(record, line);
  collapser.finish();
  return actions;
}

const O_RDONLY_CLOEXEC = 0o2000000;
const O_WRONLY_CREAT_TRUNC = 0o1 | 0o100 | 0o1000;

describe("actions from hand-made records", () => {
  test("open, three reads, close: one read action with count, bytes, time span and line range", () => {
    const actions = collapse([
      makeRecord({
        ts: 10,
        call: "openat",
        args: [-100, null, O_RDONLY_CLOEXEC, null, null, null],
        retval: 3,
        fd: 3,
        abs_path: "/etc/passwd",
        resource_type: "FILE",
      }),
      makeRecord({
        ts: 20,
        call: "read",
        args: [3, null, 4096, null, null, null],
        retval: 4096,
        fd: 3,
        abs_path: "/etc/passwd",
        byte_count: 4096,
      }),
      makeRecord({
        ts: 30,
        call: "read",
        args: [3, null, 4096, null, null, null],
        retval: 100,
        fd: 3,
        abs_path: "/etc/passwd",
        byte_count: 100,
      }),
      makeRecord({
        ts: 40,
        call: "read",
        args: [3, null, 4096, null, null, null],
        retval: 0,
        fd: 3,
        abs_path: "/etc/passwd",
        byte_count: 0,
      }),
      makeRecord({
        ts: 50,
        call: "close",
        args: [3, null, null, null, null, null],
        retval: 0,
        fd: 3,
        abs_path: "/etc/passwd",
      }),
    ]);
    expect(actions).toHaveLength(1);
    expect(actions[0]).toMatchObject({
      pid: 100,
      kind: "file-read",
      summary: "read /etc/passwd (3 reads, 4.1 KiB)",
      target: "/etc/passwd",
      start_ts: 10,
      end_ts: 50,
      first_line: 1,
      last_line: 5,
      records: 5,
    });
  });

  test("a created file written with mode 0600", () => {
    const [action] = collapse([
      makeRecord({
        call: "openat",
        args: [-100, null, O_WRONLY_CREAT_TRUNC, 0o600, null, null],
        retval: 4,
        abs_path: "/tmp/x",
        perm_bits: 0o600,
      }),
      makeRecord({ call: "write", args: [4, null, 120, null, null, null], retval: 120, byte_count: 120 }),
      makeRecord({ call: "close", args: [4, null, null, null, null, null] }),
    ]);
    expect(action!.summary).toBe("wrote /tmp/x (created, mode 0600, 1 write, 120 B)");
    expect(action!.kind).toBe("file-write");
  });

  test("a TCP connection: sent and received bytes, address from net", () => {
    const net = {
      family: "AF_INET",
      protocol: "TCP",
      local_addr: "127.0.0.1",
      local_port: 40000,
      remote_addr: "127.0.0.1",
      remote_port: 8000,
    };
    const [action] = collapse([
      makeRecord({ call: "socket", args: [2, 1, 6, null, null, null], retval: 5, resource_type: "SOCKET" }),
      makeRecord({ call: "connect", args: [5, null, 16, null, null, null], retval: 0, net }),
      makeRecord({ call: "sendto", args: [5, null, 120, 0, null, null], retval: 120, byte_count: 120, net }),
      makeRecord({
        call: "recvfrom",
        args: [5, null, 8192, 0, null, null],
        retval: 4096,
        byte_count: 4096,
        net,
      }),
      makeRecord({ call: "close", args: [5, null, null, null, null, null], net }),
    ]);
    expect(action!.summary).toBe("connected to 127.0.0.1:8000 over TCP, sent 120 B, received 4 KiB");
    expect(action!.kind).toBe("net-connect");
  });

  test("a refused connection names the errno", () => {
    const [action] = collapse([
      makeRecord({ call: "socket", args: [10, 1, 6, null, null, null], retval: 3 }),
      makeRecord({
        call: "connect",
        args: [3, null, 28, null, null, null],
        retval: -1,
        errno: "ECONNREFUSED",
        net: { remote_addr: "::1", remote_port: 9 },
      }),
      makeRecord({ call: "close", args: [3, null, null, null, null, null] }),
    ]);
    expect(action!.summary).toBe("failed to connect to [::1]:9 (ECONNREFUSED)");
  });

  test("fork + exec in the child: the parent spawned the command, the child executed it", () => {
    const actions = collapse([
      makeRecord({
        pid: 100,
        ts: 1,
        call: "clone",
        raw_line: "clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD) = 101",
        retval: 101,
      }),
      makeRecord({
        pid: 101,
        ppid: 100,
        ts: 2,
        call: "execve",
        exe_path: "/bin/sh",
        raw_line: 'execve("/bin/sh", ["sh", "-c", "echo hi | wc -l"], 0x7ffd /* 3 vars */) = 0',
      }),
      makeRecord({
        pid: 101,
        ppid: 100,
        ts: 3,
        call: "exit_group",
        args: [0, null, null, null, null, null],
        retval: null,
        exe_path: "/bin/sh",
      }),
    ]);
    const spawn = actions.find((a) => a.kind === "spawn");
    expect(spawn).toMatchObject({
      pid: 100,
      summary: 'spawned /bin/sh -c "echo hi | wc -l" (pid 101)',
      first_line: 1,
      last_line: 2,
    });
    expect(actions.find((a) => a.kind === "exec")).toMatchObject({
      pid: 101,
      summary: 'executed /bin/sh -c "echo hi | wc -l"',
    });
    expect(actions.find((a) => a.kind === "exit")).toMatchObject({
      pid: 101,
      summary: "exited with status 0",
    });
  });

  test("the child's execve printed before its parent's vfork returned: still the parent's spawn", () => {
    // as strace prints it under load: the vfork is entered at ts 1, the child executes at ts 2, and only
    // then does the parent's call return (its record comes last, with the ts it was entered at)
    const child = (ts: number, pid: number) =>
      makeRecord({
        pid,
        ppid: 100,
        ts,
        call: "execve",
        exe_path: "/usr/bin/curl",
        raw_line: 'execve("/usr/bin/curl", ["curl", "-sS", "http://127.0.0.1:1/"], 0x7ffd /* 3 vars */) = 0',
      });
    const vfork = (ts: number, pid: number) =>
      makeRecord({ pid: 100, ts, call: "vfork", raw_line: `vfork() = ${pid}`, retval: pid });
    const actions = collapse([child(2, 101), vfork(1, 101)]);
    expect(actions.filter((a) => a.kind === "spawn" || a.kind === "fork")).toEqual([
      expect.objectContaining({
        pid: 100,
        kind: "spawn",
        summary: "spawned /usr/bin/curl -sS http://127.0.0.1:1/ (pid 101)",
        start_ts: 1,
        end_ts: 2,
        first_line: 2,
        last_line: 2,
      }),
    ]);
    // a pid used again: the earlier process executed before this clone began, so it is not this child
    const reused = collapse([child(2, 102), vfork(5, 102)]);
    expect(reused.filter((a) => a.kind === "spawn" || a.kind === "fork").map((a) => a.summary)).toEqual([
      "forked pid 102 (same program, no exec)",
    ]);
  });

  test("path look-ups of a program collapse into one, with the common directory", () => {
    const actions = collapse([
      makeRecord({ call: "openat", retval: -1, errno: "ENOENT", abs_path: "/usr/lib/python3.11/a.py" }),
      makeRecord({ call: "newfstatat", retval: -1, errno: "ENOENT", abs_path: "/usr/lib/python3.11/b/c.py" }),
      makeRecord({ call: "newfstatat", retval: 0, abs_path: "/usr/lib/python3.11/d.py" }),
      makeRecord({
        call: "openat",
        args: [-100, null, 0, null, null, null],
        retval: 3,
        abs_path: "/usr/lib/python3.11/d.py",
      }),
    ]);
    expect(actions[0]).toMatchObject({ kind: "file-open", summary: "opened /usr/lib/python3.11/d.py" });
    expect(actions[1]).toMatchObject({
      kind: "lookup",
      summary: "checked 3 paths under /usr/lib/python3.11 (2 not found)",
      records: 3,
    });
  });

  test("a shared library: opened, read, mapped executable", () => {
    const [action] = collapse([
      makeRecord({
        call: "openat",
        args: [-100, null, O_RDONLY_CLOEXEC, null, null, null],
        retval: 3,
        abs_path: "/lib/libc.so.6",
      }),
      makeRecord({ call: "read", args: [3, null, 832, null, null, null], retval: 832, byte_count: 832 }),
      makeRecord({ call: "mmap", args: [0, 1000, 5, 2050, 3, 0], retval: 140000 }),
      makeRecord({ call: "close", args: [3, null, null, null, null, null] }),
    ]);
    expect(action!.summary).toBe("loaded /lib/libc.so.6");
    expect(action!.kind).toBe("library");
  });

  test("similar files opened one after another are named once", () => {
    const libs = ["libc.so.6", "libm.so.6", "libz.so.1"];
    const records = libs.flatMap((lib) => [
      makeRecord({
        call: "openat",
        args: [-100, null, O_RDONLY_CLOEXEC, null, null, null],
        retval: 3,
        abs_path: `/usr/lib/x86_64-linux-gnu/${lib}`,
      }),
      makeRecord({ call: "mmap", args: [0, 1000, 5, 2050, 3, 0], retval: 1 }),
      makeRecord({ call: "close", args: [3, null, null, null, null, null] }),
    ]);
    const actions = collapse([
      ...records,
      makeRecord({ call: "exit_group", args: [0, null, null, null, null, null], retval: null }),
    ]);
    expect(actions[0]).toMatchObject({
      kind: "library",
      summary: "loaded 3 libraries from /usr/lib/x86_64-linux-gnu (libc.so.6, libm.so.6, libz.so.1)",
      first_line: 1,
      last_line: 9,
      records: 9,
    });
    expect(actions[1]!.summary).toBe("exited with status 0");
  });

  test("plumbing calls are counted, not listed; a risk-tagged call keeps its own action", () => {
    const actions = collapse([
      makeRecord({ call: "brk", retval: 1 }),
      makeRecord({ call: "mmap", args: [0, 4096, 3, 34, -1, 0], retval: 1 }),
      makeRecord({ call: "mmap", args: [0, 4096, 3, 34, -1, 0], retval: 1 }),
      makeRecord({ call: "setuid", args: [0, null, null, null, null, null], risk_tags: ["PRIV_ESC"] }),
    ]);
    expect(actions.map((a) => a.summary)).toEqual(["called setuid", "runtime calls: mmap ×2, brk"]);
    expect(actions[0]!.risk_tags).toEqual(["PRIV_ESC"]);
  });
});

describe("one description of each call: the record's operation", () => {
  test("what a call did comes from the record, for every call name", () => {
    const actions = collapse([
      // a name actions has no word for, which the record says is an exec
      makeRecord({ call: "syscall_0x1c9", operation: "EXEC", exe_path: "/usr/bin/app", retval: 0 }),
      makeRecord({
        call: "openat",
        args: [-100, null, O_WRONLY_CREAT_TRUNC, 0o600, null, null],
        retval: 4,
        abs_path: "/tmp/x",
      }),
      makeRecord({ call: "write", args: [4, null, 3, null, null, null], retval: 3, byte_count: 3 }),
      // fsync is a FLUSH: part of the file's action, not a second write
      makeRecord({ call: "fsync", args: [4, null, null, null, null, null], operation: "FLUSH" }),
      // rt_sigaction sets a handler (SIGACTION), it sends nothing
      makeRecord({ call: "rt_sigaction", args: [2, null, null, 8, null, null], operation: "SIGACTION" }),
      makeRecord({ call: "close", args: [4, null, null, null, null, null] }),
    ]);
    expect(actions.map((a) => a.summary)).toEqual([
      "executed /usr/bin/app",
      "wrote /tmp/x (created, 1 write, 3 B)",
      "runtime calls: rt_sigaction",
    ]);
    expect(actions[1]!.records).toBe(4);
  });

  test("tee copies from its first fd to its second, like every COPY", () => {
    const actions = collapse([
      makeRecord({ call: "tee", args: [3, 5, 65536, 0, null, null], retval: 100, byte_count: 100 }),
    ]);
    expect(actions.map((a) => a.summary)).toEqual([
      "read fd 3 (1 read, 100 B)",
      "wrote fd 5 (1 write, 100 B)",
    ]);
  });

  test("close_range closes what the replay closes: a later write on the number is not the file's", () => {
    const actions = collapse([
      makeRecord({
        call: "openat",
        args: [-100, null, 1, null, null, null],
        retval: 6,
        abs_path: "/var/log/a",
      }),
      makeRecord({ call: "write", args: [6, null, 5, null, null, null], retval: 5, byte_count: 5 }),
      makeRecord({ call: "close_range", args: [3, 4294967295, 0, null, null, null], operation: "CLOSE" }),
      makeRecord({ call: "write", args: [6, null, 1, null, null, null], retval: -1, errno: "EBADF" }),
    ]);
    expect(actions.map((a) => [a.summary, a.records])).toEqual([
      ["wrote /var/log/a (1 write, 5 B)", 2],
      ["runtime calls: close_range, write", 2],
    ]);
  });
});

describe("wording", () => {
  test("bytes in binary units", () => {
    expect([0, 120, 1024, 1536, 4096, 5 * 1024 * 1024].map(formatBytes)).toEqual([
      "0 B",
      "120 B",
      "1 KiB",
      "1.5 KiB",
      "4 KiB",
      "5 MiB",
    ]);
  });
  test("execve argv from strace's raw line, truncation kept visible", () => {
    expect(execArgv('execve("/bin/sh", ["sh", "-c", "echo \\"hi\\""], 0x7ffd /* 3 vars */) = 0')).toEqual([
      "sh",
      "-c",
      'echo "hi"',
    ]);
    expect(execArgv('execve("/bin/x", ["x", "aaaa"..., ...], 0x1) = 0')).toEqual(["x", "aaaa…", "…"]);
    // escaped bytes are bytes, read as UTF-8 as the replay reads them
    expect(execArgv('execve("/bin/echo", ["echo", "caf\\303\\251\\t"], 0x1) = 0')).toEqual(["echo", "café\t"]);
    expect(formatCommand("/bin/sh", ["sh", "-c", "a b"])).toBe('/bin/sh -c "a b"');
  });
});

test("common directory of two paths", async () => {
  const { commonDirectory } = await import("../../src/consumers/actions/describe.ts");
  expect(commonDirectory("/usr/lib/a", "/usr/lib/b/c")).toBe("/usr/lib");
  expect(commonDirectory("/usr/lib", "/usr/lib/x")).toBe("/usr/lib");
  expect(commonDirectory("/usr/lib", "/usr/libexec")).toBe("/usr");
  expect(commonDirectory("/etc", "/usr")).toBe("/");
  expect(commonDirectory("/etc", "/etc")).toBe("/etc");
});
