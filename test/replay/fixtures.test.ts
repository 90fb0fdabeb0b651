/**
 * Hand-picked tricky strace lines (test/fixtures/strace/), table-driven: the counts every case must give,
 * and what chosen records must contain.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileChunks, replayStream } from "../../src/replay/run.ts";
import type { EnhancedEvent } from "../../src/replay/schema.ts";
import { lineCount, replayFile, schemaProblem } from "./strace-run.ts";

const FIXTURES = join(import.meta.dir, "../fixtures/strace");

interface Case {
  file: string;
  counts: { events: number; merged: number; stateOnly: number; unparsed: number };
  firstUnparsed?: number[];
  /** record index (or a finder) → the fields it must have */
  expect: [number | ((r: EnhancedEvent) => boolean), Partial<EnhancedEvent>][];
}

const CASES: Case[] = [
  {
    file: "midnight-tt.strace",
    counts: { events: 4, merged: 0, stateOnly: 0, unparsed: 0 },
    expect: [
      [0, { ts: 0, pid: 700, latency_us: 2 }],
      [1, { ts: 900, abs_path: "/home/u/notes.txt", cwd: "/home/u", fd: 3, resource_type: "FILE" }],
      // 23:59:59.999 → 00:00:00.001 is 2 ms later, not 24 h earlier
      [2, { ts: 2000, abs_path: "/home/u/notes.txt", byte_count: 5, operation: "READ" }],
      [3, { ts: 1_001_000, operation: "CLOSE" }],
    ],
  },
  {
    file: "child-before-clone-returns.strace",
    counts: { events: 4, merged: 1, stateOnly: 1, unparsed: 0 },
    expect: [
      // the thread's line arrives before clone3 returns: it is already pid 100
      [(r) => r.call === "openat", { pid: 100, tid: 101, fd: 3, abs_path: "/etc/hosts" }],
      [
        (r) => r.call === "clone3",
        { pid: 100, retval: 101, operation: "CLONE", high_level_kind: "ProcessSpawn" },
      ],
      // fd 3 opened by the thread is in the shared table (CLONE_FILES)
      [(r) => r.call === "read", { pid: 100, tid: 100, abs_path: "/etc/hosts", byte_count: 20 }],
      [(r) => r.call === "exit", { pid: 100, tid: 101, retval: null }],
    ],
  },
  {
    file: "cut-calls.strace",
    counts: { events: 6, merged: 2, stateOnly: 4, unparsed: 0 },
    expect: [
      [
        (r) => r.call === "read",
        {
          pid: 200,
          retval: null,
          errno: "ERESTARTSYS",
          latency_us: 10,
          args: [0, 0x7ffc0000, 1024, null, null, null],
        },
      ],
      // a resumed half with no first half: its argument positions are unknown
      [
        (r) => r.call === "write",
        { pid: 202, retval: 4, args: [null, null, null, null, null, null], latency_us: 100 },
      ],
      [(r) => r.call === "rt_sigaction", { pid: 203, retval: null }],
      // `<unavailable>`: no -T time, so the time between the halves
      [(r) => r.call === "futex", { pid: 201, retval: null, latency_us: 25, ts: 5 }],
      [(r) => r.call === "exit_group", { pid: 200, retval: null, args: [130, null, null, null, null, null] }],
      // `strace -p` detached mid-call: written at the end, cut
      [(r) => r.call === "restart_syscall", { pid: 204, retval: null, ts: 60 }],
    ],
  },
  {
    file: "decorations.strace",
    counts: { events: 9, merged: 0, stateOnly: 0, unparsed: 0 },
    expect: [
      [0, { retval: 0x8002, errno: null, abs_path: "/srv/data.db", args: [3, 3, null, null, null, null] }],
      [1, { retval: 0, args: [null, 1, 100, null, null, null] }],
      [2, { abs_path: "/tmp/a>b\nc", fd: 7, byte_count: 0 }],
      [3, { abs_path: "/memfd:blob (deleted)", resource_type: "SHM", byte_count: 10 }],
      [
        4,
        {
          resource_type: "SOCKET",
          high_level_kind: "NetSend",
          net: {
            family: "AF_INET6",
            protocol: "UDP",
            local_addr: "::1",
            local_port: 45042,
            remote_addr: null,
            remote_port: null,
          },
        },
      ],
      [
        5,
        {
          args: [10, null, 7, null, null, null],
          net: {
            family: "AF_INET",
            protocol: "TCP",
            local_addr: "127.0.0.1",
            local_port: 46172,
            remote_addr: "127.0.0.1",
            remote_port: 18765,
          },
        },
      ],
      [6, { abs_path: "/dev/null", resource_type: "DEVICE", byte_count: 5 }],
      [7, { resource_type: "DIR", abs_path: "/usr/share/doc", operation: "READ" }],
      [
        8,
        {
          abs_path: "/srv/data.db",
          perm_bits: 0o640,
          operation: "CREATE",
          high_level_kind: "FileWrite",
          args: [-100, null, 0o2000102, 0o640, null, null],
        },
      ],
    ],
  },
  {
    file: "raw-and-verbose.strace",
    counts: { events: 5, merged: 0, stateOnly: 0, unparsed: 0 },
    expect: [
      [
        0,
        {
          pid: 4242,
          tid: 4242,
          args: [-100, null, 524288, null, null, null],
          abs_path: "/etc/passwd",
          fd: 3,
        },
      ],
      // -e raw=all: numbers as printed; AT_FDCWD as a 32-bit word still means the cwd
      [1, { pid: 4242, args: [4294967196, 0x7ffd5a3b, 524288, null, null, null], retval: 4, fd: 4 }],
      [2, { args: [0, 8192, 3, 34, 4294967295, 0], fd: -1, operation: "MMAP" }],
      [3, { args: [3, -1, 0, null, null, null], errno: "EINVAL", abs_path: "/etc/passwd" }],
    ],
  },
  {
    file: "ns-and-relative.strace",
    counts: { events: 4, merged: 0, stateOnly: 1, unparsed: 0 },
    expect: [
      [0, { ts: 0, pid: 555, latency_us: 69, exe_path: "/usr/bin/true" }],
      [1, { ts: 253, latency_us: 2 }],
      [2, { ts: 1253 }],
      [3, { ts: 1263, retval: null }],
    ],
  },
  {
    file: "stderr-prefix.strace",
    counts: { events: 6, merged: 3, stateOnly: 3, unparsed: 0 },
    expect: [
      [(r) => r.call === "vfork", { pid: 7320, retval: 7321 }],
      [(r) => r.call === "execve", { pid: 7321, ppid: 7320, exe_path: "/usr/bin/cat" }],
      [
        (r) => r.call === "openat",
        { pid: 7321, ppid: 7320, abs_path: "/etc/hostname", exe_path: "/usr/bin/cat" },
      ],
      // prefix-less again once the child is gone: the parent's
      [(r) => r.call === "exit_group" && r.pid !== 7321, { pid: 7320, tid: 7320 }],
    ],
  },
  {
    file: "fd-lifecycle.strace",
    counts: { events: 16, merged: 0, stateOnly: 0, unparsed: 0 },
    expect: [
      [0, { fd: 3, resource_type: "PIPE", operation: "CREATE" }],
      [1, { resource_type: "PIPE", high_level_kind: "Ipc", byte_count: 1 }],
      [
        6,
        {
          resource_type: "SOCKET",
          high_level_kind: "NetSend",
          net: {
            family: "AF_INET6",
            protocol: "TCP",
            local_addr: null,
            local_port: null,
            remote_addr: "::1",
            remote_port: 443,
          },
        },
      ],
      [
        8,
        {
          net: {
            family: "AF_INET",
            protocol: "TCP",
            local_addr: "127.0.0.1",
            local_port: 5555,
            remote_addr: null,
            remote_port: null,
          },
        },
      ],
      [9, { risk_tags: ["NET_LISTEN"], high_level_kind: "NetListen" }],
      [
        10,
        {
          fd: 9,
          net: {
            family: "AF_INET",
            protocol: "TCP",
            local_addr: "127.0.0.1",
            local_port: 5555,
            remote_addr: "127.0.0.1",
            remote_port: 40000,
          },
        },
      ],
      // execve closes the O_CLOEXEC fds (5, the pipe) and keeps the others (6)
      [12, { abs_path: "/var/log/app.log", exe_path: "/usr/bin/env", byte_count: 5 }],
      [13, { abs_path: null, resource_type: null, errno: "EBADF", byte_count: 1 }],
      // close_range(3, ~0) closes everything from 3 up
      [15, { abs_path: null, errno: "EBADF" }],
    ],
  },
  {
    file: "ids-and-fs.strace",
    counts: { events: 11, merged: 0, stateOnly: 1, unparsed: 0 },
    expect: [
      [0, { uid: 1000, euid: null }],
      [3, { uid: 1000, euid: 0, gid: 1000, risk_tags: ["PRIV_ESC"], operation: "SETID" }],
      [
        (r) => r.call === "clone" && r.retval === 801,
        { args: [0x1200011, 0, null, 0x7f4261599a10, null, null] },
      ],
      // fork: the child has its own copy of the ids and the cwd
      [6, { pid: 801, ppid: 800, uid: 1000, euid: 0, cwd: "/var/lib" }],
      // CLONE_FS: the thread's chdir moves the whole process
      [8, { pid: 800, tid: 802, cwd: "/tmp", abs_path: "/tmp" }],
      [9, { pid: 800, tid: 800, abs_path: "/tmp/x" }],
      [10, { pid: 801, abs_path: "/var/lib/y" }],
    ],
  },
  {
    file: "garbage-and-truncated.strace",
    counts: { events: 2, merged: 0, stateOnly: 0, unparsed: 3 },
    firstUnparsed: [2, 3, 5],
    expect: [[1, { abs_path: "/etc/hostname", byte_count: 3 }]],
  },
];

describe("tricky strace lines", () => {
  for (const c of CASES) {
    test(c.file, async () => {
      const path = join(FIXTURES, c.file);
      const { records, counts } = await replayFile(path);
      expect(counts.lines).toBe(await lineCount(path));
      expect({
        events: counts.events,
        merged: counts.merged,
        stateOnly: counts.stateOnly,
        unparsed: counts.unparsed,
      }).toEqual(c.counts);
      if (c.firstUnparsed) expect(counts.firstUnparsed).toEqual(c.firstUnparsed);
      expect(schemaProblem(records)).toBeNull();
      for (const [at, fields] of c.expect) {
        const rec = typeof at === "number" ? records[at] : records.find(at);
        expect(rec).toBeDefined();
        expect(rec).toMatchObject(fields);
      }
    });
  }
});

describe("reading a file in chunks", () => {
  test("any chunk size gives the same records and counts as one read, multi-byte characters split too", async () => {
    const dir = mkdtempSync(join(tmpdir(), "carnot-chunks-"));
    try {
      const utf8 = join(dir, "utf8.strace");
      writeFileSync(
        utf8,
        '500   openat(AT_FDCWD, "/srv/päth/日本語/🦀.txt", O_RDONLY) = 3\n500   read(3, "é", 2) = 2\n500   close(3) = 0',
      );
      const files = [utf8, ...readdirSync(FIXTURES).map((f) => join(FIXTURES, f))];
      for (const path of files) {
        const whole = readFileSync(path);
        const once: EnhancedEvent[] = [];
        const onceCounts = await replayStream([whole], { append: (r) => once.push(r) });
        for (const size of [1, 3, 7, 4096]) {
          const chunked: EnhancedEvent[] = [];
          const counts = await replayStream(fileChunks(path, size), { append: (r) => chunked.push(r) });
          expect(counts).toEqual(onceCounts);
          expect(chunked).toEqual(once);
        }
      }
      const crab = await replayStream(fileChunks(utf8, 1), { append: () => {} });
      expect(crab.unparsed).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
