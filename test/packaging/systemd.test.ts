/**
 * packaging/carnot.service: systemd's own checks (`systemd-analyze verify`, the offline security review), then
 * the unit's ExecStart run the way the unit says — its user, capabilities, system call filter and read-only
 * file system, emulated by test/support/service-sandbox.sh (systemd is not PID 1 here) — tracing real TLS
 * handshakes of both sources and sealing its file on SIGTERM. Then the same without each capability the unit
 * grants, to show each is needed.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  chmodSync,
  chownSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { X86_64_SYSCALLS } from "../../src/consumers/seccomp/syscalls-x86_64.generated.ts";
import { curl, makeSelfSignedCert, type RunningServer, startOpenSslServer } from "../../src/lab/loopback.ts";
import { COMPILED, REPO, traceSkipReason } from "../support/tracer.ts";

const UNIT = join(REPO, "packaging", "carnot.service");
const SANDBOX = join(REPO, "test", "support", "service-sandbox.sh");
const NOBODY = 65534;
/** the clone flag of each namespace type RestrictNamespaces= names */
const NAMESPACE_FLAGS: Record<string, number> = {
  cgroup: 0x02000000,
  ipc: 0x08000000,
  net: 0x40000000,
  mnt: 0x00020000,
  pid: 0x20000000,
  user: 0x10000000,
  uts: 0x04000000,
};

const which = (tool: string) => Bun.which(tool) !== null;
const analyzeSkip = which("systemd-analyze") ? null : "systemd-analyze missing (make setup installs systemd)";
if (analyzeSkip) console.warn(`skipping the systemd unit checks: ${analyzeSkip}`);
const missingTool = ["capsh", "unshare", "systemd-analyze"].find((t) => !which(t));
const runSkip =
  traceSkipReason() ??
  (Bun.file(COMPILED).size ? null : "./carnot not built (make carnot)") ??
  (missingTool ? `${missingTool} missing (make setup installs it)` : null);
if (runSkip) console.warn(`skipping the unit's sandboxed run: ${runSkip}`);

/** The [Service] section: each key with its values in order (a key may be given several times). */
function serviceSettings(text: string): Map<string, string[]> {
  const settings = new Map<string, string[]>();
  let section = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    if (line.startsWith("[")) {
      section = line;
      continue;
    }
    if (section !== "[Service]") continue;
    const eq = line.indexOf("=");
    const key = line.slice(0, eq);
    settings.set(key, [...(settings.get(key) ?? []), line.slice(eq + 1)]);
  }
  return settings;
}

/**
 * RestrictNamespaces= as systemd's own filter has it: unshare and clone refused (EPERM) when a flag names a
 * namespace type not allowed, setns into one (or of any type) too, clone3 (whose flags a filter cannot read)
 * ENOSYS so that callers fall back to clone.
 */
function namespaceRules(setting: string) {
  const allowed =
    setting === "yes" ? [] : setting === "no" ? Object.keys(NAMESPACE_FLAGS) : setting.split(/\s+/);
  const refused = Object.entries(NAMESPACE_FLAGS).filter(([name]) => !allowed.includes(name));
  const mask = refused.reduce((m, [, flag]) => m | flag, 0);
  const when = (index: number, op: string, value: number, valueTwo = 0) => [{ index, value, valueTwo, op }];
  return [
    ...["unshare", "clone"].flatMap((names) => [
      { names: [names], action: "SCMP_ACT_ALLOW", args: when(0, "SCMP_CMP_MASKED_EQ", mask, 0) },
      ...refused.map(([, flag]) => ({
        names: [names],
        action: "SCMP_ACT_ERRNO",
        errnoRet: 1,
        args: when(0, "SCMP_CMP_MASKED_EQ", flag, flag),
      })),
    ]),
    ...allowed.map((name) => ({
      names: ["setns"],
      action: "SCMP_ACT_ALLOW",
      args: when(1, "SCMP_CMP_EQ", NAMESPACE_FLAGS[name]!),
    })),
    ...[0, ...refused.map(([, flag]) => flag)].map((flag) => ({
      names: ["setns"],
      action: "SCMP_ACT_ERRNO",
      errnoRet: 1,
      args: when(1, "SCMP_CMP_EQ", flag),
    })),
    { names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: 38 },
  ];
}

/** systemd's command-line words: bare words and '…' or "…" quoted ones (what this unit uses). */
function commandWords(line: string): string[] {
  const words: string[] = [];
  for (const m of line.matchAll(/'([^']*)'|"((?:[^"\\]|\\.)*)"|(\S+)/g)) words.push(m[1] ?? m[2] ?? m[3]!);
  return words;
}

const run = (cmd: string[]) => {
  const p = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
};

describe.skipIf(analyzeSkip !== null)("carnot.service: systemd's checks", () => {
  test("systemd-analyze verify accepts it without a word; a misspelt key would not pass", () => {
    const ok = run(["systemd-analyze", "verify", "--man=no", "--generators=no", UNIT]);
    expect({ code: ok.code, out: ok.out, err: ok.err }).toEqual({ code: 0, out: "", err: "" });
    const dir = mkdtempSync(join(tmpdir(), "carnot-unit-"));
    try {
      const broken = join(dir, "carnot.service");
      writeFileSync(
        broken,
        readFileSync(UNIT, "utf8").replace("ProtectSystem=strict", "ProtectSytem=strict"),
      );
      expect(run(["systemd-analyze", "verify", "--man=no", "--generators=no", broken]).err).toContain(
        "Unknown key 'ProtectSytem' in section [Service]",
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the offline security review rates it OK or better, and it runs as no fixed user", () => {
    const review = run(["systemd-analyze", "security", "--offline=yes", UNIT]);
    const level = /Overall exposure level for carnot\.service: ([\d.]+) (\w+)/.exec(review.out);
    console.log(`systemd-analyze security: exposure ${level?.[1]} ${level?.[2]}`);
    expect(Number(level?.[1])).toBeLessThanOrEqual(4.0);
    const s = serviceSettings(readFileSync(UNIT, "utf8"));
    expect(s.get("DynamicUser")).toEqual(["yes"]);
    expect(s.get("User")).toBeUndefined();
  });
});

describe.skipIf(runSkip !== null)("carnot.service: its command, run as the unit says", () => {
  const settings = serviceSettings(readFileSync(UNIT, "utf8"));
  /** CAP_BPF → cap_bpf, as capsh writes them */
  const unitCaps = (settings.get("AmbientCapabilities") ?? [])
    .flatMap((v) => v.split(/\s+/))
    .map((c) => c.toLowerCase());
  let base = "";
  let server: RunningServer | undefined;
  /** the unit's filter as a seccomp profile; and the same under RestrictNamespaces=yes */
  let profile = "";
  let profileNoNamespaces = "";
  /** the compiled carnot where the unit's sandbox sees it (a checkout under /tmp is hidden by its private /tmp) */
  let installed = "";

  beforeAll(async () => {
    // not under /tmp: the unit's private /tmp hides it
    base = mkdtempSync("/var/lib/carnot-packaging-test-");
    chmodSync(base, 0o755);
    installed = join(base, "carnot");
    copyFileSync(COMPILED, installed);
    chmodSync(installed, 0o755);
    const cert = await makeSelfSignedCert(base);
    server = await startOpenSslServer(cert);
    // SystemCallFilter=, expanded by systemd itself into system call names (those of x86-64: native only)
    const expand = (group: string): string[] =>
      run(["systemd-analyze", "syscall-filter", group])
        .out.split("\n")
        .slice(1)
        .map((l) => l.trim())
        .filter((l) => l !== "" && !l.startsWith("#"))
        .flatMap((l) => (l.startsWith("@") ? expand(l) : [l]));
    const filter = (settings.get("SystemCallFilter") ?? []).flatMap((v) => v.split(/\s+/));
    const names = [...new Set(filter.flatMap((f) => (f.startsWith("@") ? expand(f) : [f])))]
      .filter((n) => X86_64_SYSCALLS.has(n))
      .sort();
    // systemd's default for a call outside the filter: the process is killed; the calls RestrictNamespaces=
    // restricts, only as it allows them
    const restricted = ["unshare", "clone", "clone3", "setns"];
    const write = (file: string, restrictNamespaces: string) => {
      const oci = {
        defaultAction: "SCMP_ACT_KILL_PROCESS",
        architectures: ["SCMP_ARCH_X86_64"],
        syscalls: [
          { names: names.filter((n) => !restricted.includes(n)), action: "SCMP_ACT_ALLOW" },
          ...namespaceRules(restrictNamespaces),
        ],
      };
      writeFileSync(file, JSON.stringify(oci));
      chmodSync(file, 0o644);
      return file;
    };
    profile = write(join(base, "profile.json"), settings.get("RestrictNamespaces")?.[0] ?? "no");
    profileNoNamespaces = write(join(base, "profile-no-namespaces.json"), "yes");
  });

  afterAll(async () => {
    await server?.stop();
    if (base) rmSync(base, { recursive: true, force: true });
  });

  /** The unit's ExecStart in the sandbox with `caps`; a handshake to the local server; SIGTERM; what it wrote. */
  async function runUnit(name: string, caps: string[], filter = profile) {
    const state = join(base, name, "state");
    const cache = join(base, name, "cache");
    for (const d of [state, cache]) {
      mkdirSync(d, { recursive: true });
      chownSync(d, NOBODY, NOBODY);
    }
    const [exec] = settings.get("ExecStart")!;
    const words = commandWords(exec!).map((w) =>
      w.replaceAll("%%", "%").replaceAll("/usr/local/bin/carnot", installed),
    );
    const env = (settings.get("Environment") ?? []).map((e) => e.replace("%C/carnot", cache));
    const proc = Bun.spawn(
      ["bash", SANDBOX, state, cache, caps.join(","), filter, installed, "env", ...env, ...words],
      {
        stdin: "ignore",
        stdout: "pipe",
        stderr: "pipe",
      },
    );
    let err = "";
    const reading = (async () => {
      for await (const chunk of proc.stderr) err += new TextDecoder().decode(chunk);
    })();
    const deadline = Date.now() + 20_000;
    while (!err.includes("carnot: ready") && proc.exitCode === null && Date.now() < deadline)
      await Bun.sleep(50);
    if (!err.includes("carnot: ready")) {
      proc.kill("SIGKILL");
      throw new Error(`the unit's command did not start: ${err}`);
    }
    const sni = `${name}.unit.example`;
    expect((await curl(server!.port, sni)).exitCode).toBe(0);
    // the live file gets the server's line once carnot has it (later on a busy machine), then the stop
    const serverLine = () =>
      readdirSync(state)
        .filter((f) => f.endsWith(".jsonl"))
        .some((f) => readFileSync(join(state, f), "utf8").includes(`"pid":${server!.pid},`));
    for (const until = Date.now() + 20_000; !serverLine() && Date.now() < until; ) await Bun.sleep(200);
    await Bun.sleep(500);
    // KillSignal=
    proc.kill((settings.get("KillSignal")?.[0] ?? "SIGTERM") as NodeJS.Signals);
    const exitCode = await proc.exited;
    await reading;
    const files = readdirSync(state);
    const log = files.find((f) => f.endsWith(".jsonl"));
    const lines = log
      ? readFileSync(join(state, log), "utf8")
          .trimEnd()
          .split("\n")
          .map((l) => JSON.parse(l))
      : [];
    // the client by its server name; the server (which serves this file's handshakes only) by its pid
    const mine = lines.filter((r) => r.server_name === sni || r.sni === sni || r.pid === server!.pid);
    return { exitCode, stderr: err, files, mine, state, log };
  }

  test("with the unit's capabilities: both sources, the library calibrated confined, the executable named, a sealed file", async () => {
    // the executable comes from the kernel: the unit grants no CAP_SYS_PTRACE, nor CAP_SYS_ADMIN or CAP_SETUID
    expect([...unitCaps].sort()).toEqual(["cap_bpf", "cap_net_admin", "cap_perfmon"]);
    const r = await runUnit("granted", unitCaps);
    expect(r.stderr).not.toContain("stays writable");
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toMatch(/carnot: ready: .*probes on .*libssl.* and the wire of every TCP connection/);
    // the calibration ran (in a user and network namespace of its own): no warning at all
    expect(r.stderr).not.toContain("warning");
    expect(r.log).toMatch(/^runtime-\d{8}T\d{6}Z\.jsonl$/);
    expect(r.files).toContain(`${r.log}.seal.json`);
    const server = r.mine.find((o) => o.role === "server");
    expect(server).toMatchObject({
      observed_by: ["libssl", "wire"],
      exe: expect.stringMatching(/openssl$/),
      library: expect.stringMatching(/libssl/),
    });
    expect(r.mine.find((o) => o.role === "client")?.comm).toBe("curl");
    const verify = run([COMPILED, "verify", join(r.state, r.log!)]);
    expect(verify.code).toBe(0);
  }, 90_000);

  test("without CAP_NET_ADMIN the wire source cannot attach; under RestrictNamespaces=yes the calibration fails, in one warning", async () => {
    const noNet = await runUnit(
      "no-net-admin",
      unitCaps.filter((c) => c !== "cap_net_admin"),
    );
    expect(noNet.stderr).not.toContain("the wire of every TCP connection");
    expect(noNet.mine.every((o) => !o.observed_by.includes("wire"))).toBe(true);
    const noNamespaces = await runUnit("no-namespaces", unitCaps, profileNoNamespaces);
    expect(noNamespaces.exitCode).toBe(0);
    expect(noNamespaces.stderr.split("\n").filter((l) => l.includes("warning"))).toEqual([
      expect.stringMatching(
        /^carnot: warning: .*libssl.*: struct offsets not verified \(calibration failed: carnot: sandbox: cannot enter a network namespace of its own: a system call filter refuses user namespaces \(systemd: RestrictNamespaces=\)(; .*)?\): /,
      ),
    ]);
    // the wire still sees the server, and its executable
    const server = noNamespaces.mine.find((o) => o.role === "server");
    expect(server).toMatchObject({ observed_by: ["wire"], exe: expect.stringMatching(/openssl$/) });
  }, 150_000);
});
