/**
 * The kernel side of `carnot trace` against real programs: uprobes on the system libssl, an `openssl s_server`
 * on 127.0.0.1 with a throwaway certificate, and real clients (curl, python3 ssl, openssl s_client).
 * Needs root; skips with the reason otherwise.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LIBBPF_WARN, Libbpf } from "../../ffi/libbpf.ts";
import { calibrate } from "../../src/trace/libssl/calibration/calibrate.ts";
import {
  type CarnotEvent,
  decodeDone,
  EventKind,
  HandshakeFunc,
  Role,
} from "../../src/trace/libssl/events.ts";
import {
  checkLibssl,
  definedFunctions,
  findSystemLibssl,
  opensslVersion,
} from "../../src/trace/libssl/library.ts";
import { makeSelfSignedCert, type RunningServer, startOpenSslServer } from "../../src/lab/loopback.ts";
import { type AttachMode, SslProbes } from "../../src/trace/libssl/probes.ts";

const REPO = join(import.meta.dir, "..", "..");
const PYTHON = "/usr/bin/python3";
const LIBSSL = findSystemLibssl();

function skipReason(): string | null {
  if (process.getuid?.() !== 0) return "needs root (BPF uprobes)";
  if (!existsSync("/sys/kernel/btf/vmlinux")) return "kernel without BTF (/sys/kernel/btf/vmlinux)";
  if (!existsSync(join(REPO, "bpf", "carnot.bpf.o"))) return "bpf/carnot.bpf.o not built (make bpf)";
  if (LIBSSL === null) return "no system libssl";
  for (const tool of ["openssl", "curl", "bpftool"]) if (!Bun.which(tool)) return `${tool} not installed`;
  if (!existsSync(PYTHON)) return `${PYTHON} not installed`;
  return null;
}
const SKIP = skipReason();
if (SKIP) console.warn(`probes tests skipped: ${SKIP}`);

/** A python3 client: one handshake per host name, optionally after a line on stdin. */
const PYTHON_CLIENT = `
import socket, ssl, sys
port = int(sys.argv[1])
if sys.argv[2] == "wait":
    sys.stdin.readline()
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
for host in sys.argv[3:]:
    with socket.create_connection(("127.0.0.1", port)) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as tls:
            pass
`;

async function run(cmd: string[], stdin?: string): Promise<{ pid: number; stdout: string }> {
  const proc = Bun.spawn(cmd, {
    stdin: stdin === undefined ? "ignore" : "pipe",
    stdout: "pipe",
    stderr: "pipe",
  });
  if (stdin !== undefined && proc.stdin) {
    proc.stdin.write(stdin);
    await proc.stdin.end();
  }
  const [code, stdout, stderr] = await Promise.all([
    proc.exited,
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
  ]);
  if (code !== 0) throw new Error(`${cmd.join(" ")} exited ${code}: ${stderr.trim()}`);
  return { pid: proc.pid, stdout };
}

/**
 * Every event, checked against the kernel's counters: whatever the probes counted as emitted must arrive.
 * Other processes on the host may add events meanwhile, so drain until the counted ones are all in.
 */
async function drainAccounted(probes: SslProbes): Promise<CarnotEvent[]> {
  const events: CarnotEvent[] = [];
  probes.drain((ev) => events.push(ev));
  const { attempted, dropped } = probes.stats();
  expect(dropped).toBe(0);
  const deadline = Date.now() + 2000;
  while (events.length < attempted && Date.now() < deadline) {
    probes.drain((ev) => events.push(ev));
    await Bun.sleep(5);
  }
  expect(events.length).toBeGreaterThanOrEqual(attempted);
  return events;
}

/** prog ids and link ids of the BPF links this process holds (from /proc/self/fdinfo). */
function ownLinks(): { linkIds: number[]; progIds: number[] } {
  const linkIds: number[] = [];
  const progIds: number[] = [];
  for (const fd of readdirSync("/proc/self/fdinfo")) {
    let info: string;
    try {
      info = readFileSync(`/proc/self/fdinfo/${fd}`, "utf8");
    } catch {
      continue;
    }
    const link = /^link_id:\s*(\d+)$/m.exec(info);
    const prog = /^prog_id:\s*(\d+)$/m.exec(info);
    if (link && prog) {
      linkIds.push(Number(link[1]));
      progIds.push(Number(prog[1]));
    }
  }
  return { linkIds, progIds };
}

/** Link and program ids the kernel still has, according to bpftool. */
function kernelIds(): { links: Set<number>; progs: Set<number> } {
  const links = JSON.parse(Bun.spawnSync(["bpftool", "-j", "link", "show"]).stdout.toString() || "[]") as {
    id: number;
  }[];
  const progs = JSON.parse(Bun.spawnSync(["bpftool", "-j", "prog", "show"]).stdout.toString() || "[]") as {
    id: number;
  }[];
  return { links: new Set(links.map((l) => l.id)), progs: new Set(progs.map((p) => p.id)) };
}

async function expectGone(ids: { linkIds: number[]; progIds: number[] }): Promise<void> {
  // Process exit releases fds before waitpid returns, but allow the kernel a moment for deferred frees.
  const deadline = Date.now() + 3000;
  for (;;) {
    const now = kernelIds();
    const left = [
      ...ids.linkIds.filter((id) => now.links.has(id)),
      ...ids.progIds.filter((id) => now.progs.has(id)),
    ];
    if (left.length === 0 || Date.now() > deadline) {
      expect(left).toEqual([]);
      return;
    }
    await Bun.sleep(50);
  }
}

describe("libssl discovery (no root needed)", () => {
  test("the system libssl exports every probed function, with file offsets inside the file", () => {
    if (LIBSSL === null) return void console.warn("skipped: no system libssl");
    const check = checkLibssl(LIBSSL);
    expect(check.path).toBe(LIBSSL);
    for (const name of [
      "SSL_new",
      "SSL_free",
      "SSL_ctrl",
      "SSL_do_handshake",
      "SSL_CTX_ctrl",
      "SSL_connect",
    ]) {
      const offset = check.offsets.get(name);
      expect(offset).toBeGreaterThan(0);
      expect(offset!).toBeLessThan(Bun.file(LIBSSL).size);
    }
    expect(opensslVersion(LIBSSL)).toMatch(/^\d+\.\d+\.\d+/);
  });

  test("offsets agree with the dynamic symbol table as binutils reads it", () => {
    if (LIBSSL === null || !Bun.which("nm")) return void console.warn("skipped: no libssl or nm");
    const nm = Bun.spawnSync(["nm", "-D", "--defined-only", LIBSSL]).stdout.toString();
    const address = /^([0-9a-f]+) T SSL_do_handshake(?:@@\S+)?$/m.exec(nm);
    expect(address).not.toBeNull();
    // libssl's text section has file offset == virtual address on Debian; both readings must agree.
    expect(definedFunctions(LIBSSL).get("SSL_do_handshake")).toBe(Number.parseInt(address![1]!, 16));
  });

  test("a file without SSL_* functions, a non-ELF file and a missing path give one clear error each", () => {
    expect(() => checkLibssl("/bin/ls")).toThrow(
      /\/bin\/ls does not export SSL_new, SSL_free, SSL_ctrl, SSL_do_handshake/,
    );
    const dir = mkdtempSync(join(tmpdir(), "carnot-libssl-"));
    try {
      writeFileSync(join(dir, "notes.txt"), "not a library\n");
      expect(() => checkLibssl(join(dir, "notes.txt"))).toThrow(
        /failed to read symbols of .*notes.txt: not an ELF file/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(() => checkLibssl("/nonexistent/libssl.so.3")).toThrow(
      /failed to find library \/nonexistent\/libssl.so.3/,
    );
  });
});

describe.skipIf(SKIP !== null)("SslProbes on the system libssl", () => {
  let dir = "";
  let server: RunningServer | null = null;
  let port = 0;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "carnot-probes-"));
    writeFileSync(join(dir, "client.py"), PYTHON_CLIENT);
    server = await startOpenSslServer(await makeSelfSignedCert(dir));
    port = server.port;
  });

  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const curl = (host: string, extra: string[] = []) => [
    "curl",
    "-sk",
    "-o",
    "/dev/null",
    "--resolve",
    `${host}:${port}:127.0.0.1`,
    ...extra,
    `https://${host}:${port}/`,
  ];
  const python = (hosts: string[], wait = false) => [
    PYTHON,
    join(dir, "client.py"),
    String(port),
    wait ? "wait" : "go",
    ...hosts,
  ];

  test.each(["multi", "perf-event"] as AttachMode[])(
    "raw events of real client handshakes arrive complete (%s links)",
    async (attachMode) => {
      const probes = SslProbes.open({ libraries: [LIBSSL!], attachMode });
      let events: CarnotEvent[];
      let curlPid: number;
      let pyPid: number;
      let sclientPid: number;
      try {
        expect(probes.attachMode).toBe(attachMode as "multi" | "perf-event");
        expect(probes.attachMs).toBeLessThan(1000);
        curlPid = (await run(curl("curl.example", ["--curves", "X25519:P-256"]))).pid;
        pyPid = (await run(python(["py.example"]))).pid;
        sclientPid = (
          await run(
            [
              "openssl",
              "s_client",
              "-connect",
              `127.0.0.1:${port}`,
              "-servername",
              "sclient.example",
              "-groups",
              "X25519:P-384",
            ],
            "",
          )
        ).pid;
        events = await drainAccounted(probes);
      } finally {
        probes.close();
      }

      // curl: SSL_CTX groups, SNI on the SSL*, SSL_connect calling SSL_do_handshake (nested), success, free.
      const c = events.filter((e) => e.pid === curlPid);
      const created = c.find((e) => e.kind === EventKind.SslNew)!;
      expect(created).toBeDefined();
      expect(created.comm).toBe("curl");
      expect(created.aux).toBeGreaterThan(0);
      expect(created.libId).toBe(0);
      const ssl = created.ptr;
      expect(c.find((e) => e.kind === EventKind.CtxGroupsList && e.ptr === created.aux)?.text).toBe(
        "X25519:P-256",
      );
      expect(c.find((e) => e.kind === EventKind.SetHostname && e.ptr === ssl)?.text).toBe("curl.example");
      const hs = c.filter(
        (e) => (e.kind === EventKind.HandshakeEnter || e.kind === EventKind.HandshakeReturn) && e.ptr === ssl,
      );
      expect(
        hs.some(
          (e) => e.kind === EventKind.HandshakeEnter && e.aux === HandshakeFunc.Connect && e.depth === 1,
        ),
      ).toBe(true);
      expect(
        hs.some(
          (e) => e.kind === EventKind.HandshakeEnter && e.aux === HandshakeFunc.DoHandshake && e.depth === 2,
        ),
      ).toBe(true);
      const lastReturn = hs.filter((e) => e.kind === EventKind.HandshakeReturn).at(-1)!;
      expect([lastReturn.aux, lastReturn.depth, lastReturn.ret]).toEqual([HandshakeFunc.Connect, 1, 1]);
      expect(hs.filter((e) => e.kind === EventKind.HandshakeEnter).length).toBe(
        hs.filter((e) => e.kind === EventKind.HandshakeReturn).length,
      );
      expect(c.some((e) => e.kind === EventKind.SslFree && e.ptr === ssl)).toBe(true);
      // Events of one thread come in time order.
      for (let i = 1; i < c.length; i++) expect(c[i]!.tsNs).toBeGreaterThanOrEqual(c[i - 1]!.tsNs);

      // python3: SNI, client state, one SSL_do_handshake at depth 1 returning 1, free.
      const p = events.filter((e) => e.pid === pyPid);
      const pyNew = p.find((e) => e.kind === EventKind.SslNew)!;
      expect(p.find((e) => e.kind === EventKind.SetHostname && e.ptr === pyNew.ptr)?.text).toBe("py.example");
      expect(p.find((e) => e.kind === EventKind.SetState && e.ptr === pyNew.ptr)?.aux).toBe(Role.Client);
      const pyReturn = p.filter((e) => e.kind === EventKind.HandshakeReturn && e.ptr === pyNew.ptr).at(-1)!;
      expect([pyReturn.aux, pyReturn.depth, pyReturn.ret]).toEqual([HandshakeFunc.DoHandshake, 1, 1]);
      expect(p.some((e) => e.kind === EventKind.SslFree && e.ptr === pyNew.ptr)).toBe(true);

      // openssl s_client sets its groups on the SSL_CTX and the SNI on the SSL*.
      const s = events.filter((e) => e.pid === sclientPid);
      expect(s.find((e) => e.kind === EventKind.CtxGroupsList)?.text).toBe("X25519:P-384");
      expect(s.find((e) => e.kind === EventKind.SetHostname)?.text).toBe("sclient.example");

      // The server side is seen too: s_server accepted three connections through the same libssl.
      const serverEvents = events.filter((e) => e.pid === server!.pid);
      expect(serverEvents.filter((e) => e.kind === EventKind.SslNew).length).toBeGreaterThanOrEqual(3);
    },
  );

  test("aggregated in the kernel: one event per handshake, with its facts; no per-call events", async () => {
    const cal = await calibrate(LIBSSL!, { cacheDir: join(dir, "cache") });
    expect(cal.calibration).not.toBeNull();
    const offsets = { ...cal.calibration!.offsets, handStateOk: cal.calibration!.handStateOk };
    const probes = SslProbes.open({ libraries: [LIBSSL!], aggregate: true, offsets: [offsets] });
    try {
      const curlPid = (await run(curl("agg.example", ["--curves", "secp384r1"]))).pid;
      const pyPid = (await run(python(["agg-py.example"]))).pid;
      await Bun.sleep(100); // s_server frees its SSL after the response
      const events = await drainAccounted(probes);
      const perCall: number[] = [
        EventKind.HandshakeEnter,
        EventKind.HandshakeReturn,
        EventKind.GetError,
        EventKind.SetState,
      ];
      expect(events.filter((e) => perCall.includes(e.kind))).toEqual([]);
      // SSL_new is not even probed: the context comes through its verified offset
      expect(events.filter((e) => e.kind === EventKind.SslNew)).toEqual([]);
      for (const [pid, group] of [
        [curlPid, 24],
        [pyPid, 29],
      ] as const) {
        const done = events.filter((e) => e.pid === pid && e.kind === EventKind.HandshakeDone);
        expect(done).toHaveLength(1);
        expect(done[0]!.aux).toBeGreaterThan(0); // start time
        expect(done[0]!.aux).toBeLessThan(done[0]!.tsNs);
        const facts = decodeDone(done[0]!.data)!;
        expect(facts).toMatchObject({ role: "client", error: null, implicit: false });
        expect(facts.kex).toMatchObject({ version: 0x304, group, group13: group });
        expect(facts.ctx).not.toBeNull();
        // the SNI is set on the connection, so user space hears of its SSL_free
        expect(
          events.some((e) => e.pid === pid && e.kind === EventKind.SslFree && e.ptr === done[0]!.ptr),
        ).toBe(true);
      }
      // s_server -www: both handshakes implicit (inside SSL_read), one event each, server side
      const serverDone = events.filter((e) => e.pid === server!.pid && e.kind === EventKind.HandshakeDone);
      expect(
        serverDone.map((e) => decodeDone(e.data)).map((d) => [d?.role, d?.error, d?.implicit, d?.kex?.group]),
      ).toEqual([
        ["server", null, true, 24],
        ["server", null, true, 29],
      ]);
    } finally {
      probes.close();
    }
  });

  test("--comm filters in the kernel: other processes' calls are not even counted", async () => {
    const probes = SslProbes.open({ libraries: [LIBSSL!], comm: "curl" });
    try {
      await run(python(["skipped.example"]));
      const curlPid = (await run(curl("kept.example"))).pid;
      const events = await drainAccounted(probes);
      expect(events.length).toBeGreaterThan(0);
      expect(new Set(events.map((e) => e.comm))).toEqual(new Set(["curl"]));
      expect(events.some((e) => e.pid === curlPid && e.text === "kept.example")).toBe(true);
    } finally {
      probes.close();
    }
  });

  test("--pid filters in the kernel: only the chosen process, all of its events", async () => {
    const target = Bun.spawn(python(["chosen-1.example", "chosen-2.example"], true), {
      stdin: "pipe",
      stdout: "ignore",
      stderr: "pipe",
    });
    const probes = SslProbes.open({ libraries: [LIBSSL!], pid: target.pid });
    try {
      await run(python(["other.example"]));
      target.stdin.write("go\n");
      await target.stdin.end();
      expect(await target.exited).toBe(0);
      const events: CarnotEvent[] = [];
      probes.drain((ev) => events.push(ev));
      expect(new Set(events.map((e) => e.pid))).toEqual(new Set([target.pid]));
      expect(events.filter((e) => e.kind === EventKind.SetHostname).map((e) => e.text)).toEqual([
        "chosen-1.example",
        "chosen-2.example",
      ]);
      expect(events.filter((e) => e.kind === EventKind.SslNew).length).toBe(2);
      expect(events.filter((e) => e.kind === EventKind.SslFree).length).toBe(2);
      expect(probes.stats()).toMatchObject({ attempted: events.length, dropped: 0 });
    } finally {
      probes.close();
    }
  });

  test.each(["multi", "perf-event"] as AttachMode[])(
    "close() detaches every probe and frees the programs (%s links)",
    async (attachMode) => {
      const before = ownLinks();
      const probes = SslProbes.open({ libraries: [LIBSSL!], attachMode });
      const during = ownLinks();
      const ours = {
        linkIds: during.linkIds.filter((id) => !before.linkIds.includes(id)),
        progIds: [...new Set(during.progIds.filter((id) => !before.progIds.includes(id)))],
      };
      expect(ours.linkIds.length).toBe(probes.linkCount);
      expect(ours.progIds.length).toBe(2); // one entry and one return program
      const now = kernelIds();
      expect(ours.linkIds.every((id) => now.links.has(id))).toBe(true);
      const started = performance.now();
      probes.close();
      const closeMs = performance.now() - started;
      await expectGone(ours);
      if (attachMode === "multi") expect(closeMs).toBeLessThan(1000);
      probes.close(); // idempotent
      expect(probes.drain(() => {})).toBe(0);
    },
  );

  test("a tracer killed with SIGKILL leaves nothing attached", async () => {
    const script = join(dir, "hold.ts");
    writeFileSync(
      script,
      `import { SslProbes } from ${JSON.stringify(join(REPO, "src/trace/libssl/probes.ts"))};
const probes = SslProbes.open({ libraries: [${JSON.stringify(LIBSSL)}] });
const ids = [];
for (const fd of require("node:fs").readdirSync("/proc/self/fdinfo")) {
  try {
    const info = require("node:fs").readFileSync("/proc/self/fdinfo/" + fd, "utf8");
    const link = /^link_id:\\s*(\\d+)$/m.exec(info);
    const prog = /^prog_id:\\s*(\\d+)$/m.exec(info);
    if (link && prog) ids.push([Number(link[1]), Number(prog[1])]);
  } catch {}
}
console.log(JSON.stringify(ids));
setInterval(() => probes.drain(() => {}), 10);
`,
    );
    const holder = Bun.spawn([process.execPath, script], { stdout: "pipe", stderr: "pipe" });
    const reader = holder.stdout.getReader();
    let out = "";
    while (!out.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`holder exited: ${await new Response(holder.stderr).text()}`);
      out += new TextDecoder().decode(value);
    }
    const pairs = JSON.parse(out) as [number, number][];
    expect(pairs.length).toBe(2);
    const ids = { linkIds: pairs.map(([l]) => l), progIds: pairs.map(([, p]) => p) };
    const now = kernelIds();
    expect(ids.linkIds.every((id) => now.links.has(id))).toBe(true);
    holder.kill("SIGKILL");
    await holder.exited;
    await expectGone(ids);
  });

  test("not root: one line naming the capabilities, no BPF touched", async () => {
    if (!Bun.which("setpriv")) return void console.warn("skipped: setpriv not installed");
    const probe = Bun.spawnSync(
      [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        process.execPath,
        "-e",
        `import { SslProbes } from ${JSON.stringify(join(REPO, "src/trace/libssl/probes.ts"))};
try { SslProbes.open({ libraries: [${JSON.stringify(LIBSSL)}] }); console.log("opened"); }
catch (e) { console.log(e.name + ": " + e.message); }`,
      ],
      { env: { ...process.env, HOME: "/tmp", BUN_INSTALL_CACHE_DIR: "/tmp/.bun-cache-nobody" } },
    );
    expect(probe.stdout.toString().trim()).toBe(
      "CarnotError: carnot trace needs root, or CAP_BPF + CAP_PERFMON (+ CAP_SYS_RESOURCE on kernels before 5.11)",
    );
  });

  test.skipIf(!Bun.which("clang"))(
    "a program the verifier refuses: the error names the step, libbpf's log carries the verifier's reason",
    () => {
      const source = join(dir, "refused.bpf.c");
      writeFileSync(
        source,
        `#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";
SEC("uprobe") int uprobe__refused(void *ctx) { return *(long *)0x1000; }
`,
      );
      const object = join(dir, "refused.bpf.o");
      const compile = Bun.spawnSync([
        "clang",
        "-O2",
        "-target",
        "bpf",
        "-I",
        join(REPO, "bpf", ".build"),
        "-c",
        source,
        "-o",
        object,
      ]);
      expect(compile.exitCode).toBe(0);
      const libbpf = Libbpf.open();
      const warnings: string[] = [];
      libbpf.setPrint((level, message) => {
        if (level === LIBBPF_WARN) warnings.push(message);
      });
      const bpf = libbpf.openObject(new Uint8Array(readFileSync(object)), "refused");
      try {
        expect(() => bpf.load()).toThrow("failed to load BPF object refused: Permission denied");
        const log = warnings.join("");
        expect(log).toContain("-- BEGIN PROG LOAD LOG --");
        expect(log).toContain("invalid mem access");
      } finally {
        bpf.close();
        libbpf.setPrint(null);
      }
    },
  );

  test("the same library named twice (once through a symlink) is probed once", async () => {
    const dir2 = mkdtempSync(join(tmpdir(), "carnot-link-"));
    const alias = join(dir2, "libssl-alias.so");
    symlinkSync(LIBSSL!, alias);
    const probes = SslProbes.open({ libraries: [LIBSSL!, alias], comm: "curl" });
    try {
      expect(probes.libraries).toEqual([{ id: 0, path: LIBSSL! }]);
      const curlPid = (await run(curl("once.example"))).pid;
      const events = await drainAccounted(probes);
      expect(events.filter((e) => e.pid === curlPid && e.kind === EventKind.SetHostname).length).toBe(1);
    } finally {
      probes.close();
      rmSync(dir2, { recursive: true, force: true });
    }
  });

  test("bad options are refused before anything is loaded", () => {
    expect(() => SslProbes.open({ libraries: [LIBSSL!], ringbufSize: 5000 })).toThrow(
      /invalid ring buffer size 5000: must be a power of two/,
    );
    expect(() => SslProbes.open({ libraries: [LIBSSL!], comm: "a-very-long-name" })).toThrow(
      /longer than 15 bytes/,
    );
    expect(() => SslProbes.open({ libraries: [] })).toThrow(/no OpenSSL library to probe/);
    expect(() => SslProbes.open({ libraries: ["/bin/ls"] })).toThrow(/\/bin\/ls does not export SSL_new/);
  });
});
