/**
 * `--libssl FILE` never runs FILE's code with privilege. A file another user could have prepared (owned by a
 * user the test creates and removes, or in a directory that user or everyone can write) is refused with one
 * line naming the path, before anything runs. A file root owns in a root-only directory is calibrated
 * confined: an ELF "library" whose constructor reports what it may do (and an "executable" exporting SSL_*,
 * run as node would be) finds itself nobody, without capabilities, without the host's network, with
 * no_new_privs and a seccomp filter, and unable to become root. A carnot not privileged to make a network
 * namespace (carnot.service: its own user with three capabilities; root in a container without CAP_SYS_ADMIN)
 * confines it the same in a user namespace of its own: as that user, or as nobody for root; the unit's user
 * still reads the memory of node's confined run (no CAP_SYS_PTRACE: the same uid).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findSystemLibssl } from "../../src/trace/libssl/library.ts";
import { COMPILED, REPO, traceSkipReason } from "../support/tracer.ts";
import { createTestUser, type TestUser } from "../support/users.ts";

const skip = traceSkipReason() ?? (Bun.which("gcc") ? null : "gcc not installed (make test installs it)");
if (skip) console.warn(`skipping the calibration sandbox tests: ${skip}`);

/** Reports, from inside whatever loads or runs it, what it may do: one line to MARKER per run. */
const SPY_SOURCE = String.raw`
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

__attribute__((constructor)) static void spy(void) {
  FILE *out = fopen(MARKER, "a");
  FILE *status = fopen("/proc/self/status", "r");
  char line[256];
  if (!out) return;
  fprintf(out, "who=%s uid=%d euid=%d", WHO, (int)getuid(), (int)geteuid());
  while (status && fgets(line, sizeof line, status)) {
    if (strncmp(line, "CapEff:", 7) && strncmp(line, "NoNewPrivs:", 11) && strncmp(line, "Seccomp:", 8)) continue;
    line[strcspn(line, "\n")] = 0;
    char *value = strchr(line, ':');
    *value++ = 0;
    while (*value == ' ' || *value == '\t') value++;
    fprintf(out, " %s=%s", line, value);
  }
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(PORT) };
  to.sin_addr.s_addr = htonl(0x7f000001);
  int c = s < 0 ? -1 : connect(s, (struct sockaddr *)&to, sizeof to);
  fprintf(out, " connect=%d", c == 0 ? 0 : errno);
  int u = setuid(0);
  fprintf(out, " setuid0=%d\n", u == 0 ? 0 : errno);
  fclose(out);
}

void *SSL_new(void *ctx) { return 0; }
void SSL_free(void *ssl) {}
long SSL_ctrl(void *ssl, int cmd, long larg, void *parg) { return 0; }
int SSL_do_handshake(void *ssl) { return 0; }
#ifdef PROGRAM
int main(void) { return 1; }
#endif
`;

const cli = (args: string[], env: Record<string, string> = {}) =>
  Bun.spawnSync([process.execPath, join(REPO, "src", "cli.ts"), ...args], {
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ...env },
    timeout: 60_000,
  });

describe.skipIf(skip !== null)("--libssl FILE never runs FILE's code with privilege", () => {
  const dir = mkdtempSync(join(tmpdir(), "carnot-sandbox-"));
  const lib = findSystemLibssl()!;
  let user: TestUser | string = "not created";
  let listener: Bun.TCPSocketListener<undefined> | null = null;
  let connections = 0;

  beforeAll(() => {
    chmodSync(dir, 0o755);
    user = createTestUser();
    listener = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open() {
          connections++;
        },
        data() {},
      },
    });
  });
  afterAll(() => {
    listener?.stop(true);
    rmSync(dir, { recursive: true, force: true });
    if (typeof user !== "string") user.remove();
  });

  /** A copy of the system libssl (and its libcrypto) in `sub`, made by root. */
  function copyLibssl(sub: string): string {
    const where = join(dir, sub);
    mkdirSync(where, { recursive: true });
    for (const name of ["libssl.so.3", "libcrypto.so.3"])
      copyFileSync(join(lib, "..", name), join(where, name));
    return join(where, "libssl.so.3");
  }

  function expectRefused(path: string, reason: RegExp, cache: string) {
    const res = cli(["trace", "--libssl", path, "--duration", "1", "--metrics-interval", "0"], {
      CARNOT_CACHE_DIR: cache,
    });
    const stderr = res.stderr.toString();
    expect({ exit: res.exitCode, lines: stderr.trim().split("\n") }).toEqual({
      exit: 2,
      lines: [expect.stringMatching(reason)],
    });
    // nothing ran: no calibration was made, so none was cached
    expect(existsSync(cache) ? readdirSync(cache).filter((f) => f.startsWith("offsets-")) : []).toEqual([]);
  }

  test("a copy of libssl owned by another user: refused, naming it and its owner", () => {
    if (typeof user === "string") return console.warn(`skipped: ${user}`);
    const path = copyLibssl("foreign-file");
    chownSync(path, user.uid, user.gid);
    const escaped = path.replace(/[.]/g, "\\.");
    expectRefused(
      path,
      new RegExp(`^carnot: refused --libssl ${escaped}: ${escaped} is owned by uid ${user.uid}, not root$`),
      join(dir, "cache-1"),
    );
  });

  test("a copy in a directory another user owns, or everyone may write: refused, naming the directory", () => {
    if (typeof user === "string") return console.warn(`skipped: ${user}`);
    const owned = copyLibssl("their-dir");
    chownSync(join(dir, "their-dir"), user.uid, user.gid);
    expectRefused(
      owned,
      new RegExp(
        `^carnot: refused --libssl .*: ${join(dir, "their-dir")} is owned by uid ${user.uid}, not root$`,
      ),
      join(dir, "cache-2"),
    );
    const open = copyLibssl("open-dir");
    chmodSync(join(dir, "open-dir"), 0o777);
    expectRefused(
      open,
      new RegExp(
        `^carnot: refused --libssl .*: ${join(dir, "open-dir")} is writable by group and others \\(mode 0777\\)$`,
      ),
      join(dir, "cache-3"),
    );
    // sticky does not help where the library's dependencies are looked up
    chmodSync(join(dir, "open-dir"), 0o1777);
    expectRefused(open, /is writable by group and others \(mode 1777\)$/, join(dir, "cache-4"));
  });

  /**
   * Builds the spy with gcc into a root-owned directory (root-only, unless `open` names one everyone may
   * enter); its reports go to a file nobody may create.
   */
  function buildSpy(
    kind: "library" | "program",
    name: string,
    open: string | null = null,
  ): { path: string; marker: string } {
    const label = open ?? `root-only-${kind}`;
    const where = join(dir, label);
    mkdirSync(where, { mode: 0o700 });
    if (open) chmodSync(where, 0o755);
    const reports = join(dir, `reports-${label}`);
    mkdirSync(reports);
    chmodSync(reports, 0o1777);
    const marker = join(reports, "marker");
    const source = join(where, "spy.c");
    writeFileSync(source, SPY_SOURCE);
    const path = join(where, name);
    const gcc = Bun.spawnSync(
      [
        "gcc",
        ...(kind === "library" ? ["-shared", "-fPIC"] : ["-DPROGRAM", "-rdynamic"]),
        `-DMARKER="${marker}"`,
        `-DWHO="${kind}"`,
        `-DPORT=${listener!.port}`,
        "-o",
        path,
        source,
      ],
      { stderr: "pipe" },
    );
    expect(gcc.stderr.toString()).toBe("");
    return { path, marker };
  }

  /** The key=value pairs of each report line. */
  const reports = (marker: string) =>
    readFileSync(marker, "utf8")
      .trim()
      .split("\n")
      .map((line) => Object.fromEntries(line.split(" ").map((kv) => kv.split("=") as [string, string])));

  for (const [kind, name] of [
    ["library", "libssl.so.3"],
    ["program", "node-like"],
  ] as const) {
    test(`a root-owned ${kind} in a root-only directory is calibrated confined: nobody, no caps, no network, no_new_privs, seccomp`, () => {
      const { path, marker } = buildSpy(kind, name);
      const before = connections;
      const res = cli(["trace", "--libssl", path, "--duration", "0.3", "--metrics-interval", "0"], {
        CARNOT_CACHE_DIR: join(dir, `cache-${kind}`),
      });
      expect(res.exitCode).toBe(0);
      // it was not verified, and the trace went on
      expect(res.stderr.toString()).toContain("struct offsets not verified");
      const lines = reports(marker);
      expect(lines.length).toBeGreaterThanOrEqual(1);
      for (const report of lines) {
        expect(report).toEqual({
          who: kind,
          uid: "65534",
          euid: "65534",
          CapEff: "0000000000000000",
          NoNewPrivs: "1",
          Seccomp: "2",
          connect: "111", // ECONNREFUSED: the host's loopback listener is not in its network
          setuid0: "1", // EPERM
        });
      }
      expect(connections).toBe(before);
    }, 60_000);
  }

  /** What the spy finds in itself, confined by a carnot not privileged to make a network namespace. */
  const confinedIn = (uid: number) => ({
    uid: String(uid),
    euid: String(uid),
    CapEff: "0000000000000000",
    NoNewPrivs: "1",
    Seccomp: "2",
    connect: "111",
    setuid0: "1",
  });

  /** The compiled carnot's trace of `path` for 0.3 s, started through `wrapper`. */
  function traceThrough(wrapper: string[], path: string, cache: string) {
    const res = Bun.spawnSync(
      [...wrapper, COMPILED, "trace", "--libssl", path, "--duration", "0.3", "--metrics-interval", "0"],
      { stdout: "pipe", stderr: "pipe", env: { ...process.env, CARNOT_CACHE_DIR: cache }, timeout: 60_000 },
    );
    return { exitCode: res.exitCode, stderr: res.stderr.toString() };
  }

  const unprivilegedSkip =
    (Bun.file(COMPILED).size ? null : "./carnot not built (make carnot)") ??
    (Bun.which("capsh") && Bun.which("setpriv")
      ? null
      : "capsh or setpriv missing (make test installs them)");
  if (unprivilegedSkip) console.warn(`skipping the unprivileged calibration tests: ${unprivilegedSkip}`);

  /** `user` with carnot.service's capabilities, ambient (as test/support/service-sandbox.sh does) */
  const asUnit = (u: TestUser) => {
    const caps = "cap_bpf,cap_perfmon,cap_net_admin";
    return [
      "capsh",
      `--caps=${caps}+eip cap_setpcap,cap_setuid,cap_setgid+ep`,
      "--keep=1",
      `--user=${u.name}`,
    ].concat([`--addamb=${caps}`, "--", "-c", 'exec "$@"', "carnot"]);
  };

  for (const [kind, name] of [
    ["library", "libssl.so.3"],
    ["program", "node-like"],
  ] as const) {
    test.skipIf(unprivilegedSkip !== null)(
      `as its own user with carnot.service's capabilities, a ${kind} is calibrated confined in a user namespace: that uid, no caps, no network, no_new_privs, seccomp`,
      () => {
        if (typeof user === "string") return console.warn(`skipped: ${user}`);
        const { path, marker } = buildSpy(kind, name, `open-${kind}`);
        const cache = join(dir, `cache-user-${kind}`);
        mkdirSync(cache, { mode: 0o700 });
        chownSync(cache, user.uid, user.gid);
        const before = connections;
        const res = traceThrough(asUnit(user), path, cache);
        expect(res.exitCode).toBe(0);
        expect(res.stderr).toContain("struct offsets not verified");
        expect(res.stderr).not.toContain("carnot: sandbox:");
        const lines = reports(marker);
        expect(lines.length).toBeGreaterThanOrEqual(1);
        for (const report of lines) expect(report).toEqual({ who: kind, ...confinedIn(user.uid) });
        expect(connections).toBe(before);
      },
      60_000,
    );
  }

  const node = Bun.which("node");
  test.skipIf(unprivilegedSkip !== null || node === null)(
    "as its own user with carnot.service's capabilities, node is calibrated: its confined run's memory is read without CAP_SYS_PTRACE",
    () => {
      if (typeof user === "string") return console.warn(`skipped: ${user}`);
      const cache = join(dir, "cache-user-node");
      mkdirSync(cache, { mode: 0o700 });
      chownSync(cache, user.uid, user.gid);
      const res = Bun.spawnSync(
        [...asUnit(user), COMPILED, "trace", "--libssl", realpathSync(node!), "--duration", "0.3"].concat([
          "--metrics-interval",
          "0",
          "--verbose",
        ]),
        { stdout: "pipe", stderr: "pipe", env: { ...process.env, CARNOT_CACHE_DIR: cache }, timeout: 60_000 },
      );
      const stderr = res.stderr.toString();
      expect(res.exitCode).toBe(0);
      expect(stderr).toMatch(/node.*: offsets verified \(\d+ calibration handshakes\)/);
      expect(stderr).not.toContain("not verified");
    },
    60_000,
  );

  test.skipIf(unprivilegedSkip !== null)(
    "as root without CAP_SYS_ADMIN (a container's capabilities), the code runs as nobody in a user namespace; without CAP_SETUID it does not run",
    () => {
      const { path, marker } = buildSpy("library", "libssl.so.3", "open-container");
      const container = "+bpf,+perfmon,+net_admin,+sys_resource,+kill";
      const as = (caps: string) => [
        "setpriv",
        "--no-new-privs",
        "--inh-caps=-all",
        `--bounding-set=-all,${caps}`,
      ];
      const res = traceThrough(as(`${container},+setuid,+setgid`), path, join(dir, "cache-container"));
      expect(res.exitCode).toBe(0);
      expect(reports(marker)).toEqual([{ who: "library", ...confinedIn(65534) }]);
      const refused = traceThrough(as(container), path, join(dir, "cache-container-2"));
      expect(refused.exitCode).toBe(0);
      expect(refused.stderr.split("\n").filter((l) => l.includes("warning"))).toEqual([
        expect.stringMatching(
          /struct offsets not verified \(calibration failed: carnot: sandbox: root without CAP_SYS_ADMIN needs CAP_SETUID and CAP_SETGID: .*Operation not permitted(; .*)?\)/,
        ),
      ]);
      // nothing more ran
      expect(reports(marker)).toHaveLength(1);
    },
    60_000,
  );
});
