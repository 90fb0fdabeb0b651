/** Every risk tag in docs/risk-tags.md, from hand-picked lines and from a real traced workload. */
import { afterAll, setDefaultTimeout, describe, expect, test } from "bun:test";
import { join } from "node:path";
import type { EnhancedEvent } from "../../src/replay/schema.ts";
import { PYTHON, replayFile, schemaProblem, strace, tempDir } from "./strace-run.ts";

// real strace runs and subprocesses: slow when the shared machine is busy
setDefaultTimeout(60_000);

const FIXTURE = join(import.meta.dir, "../fixtures/strace/risks.strace");
const tagsOf = (rs: EnhancedEvent[], pred: (r: EnhancedEvent) => boolean): string[] =>
  rs.filter(pred).flatMap((r) => r.risk_tags);

describe("risk tags on hand-picked lines", () => {
  const cases: [string, (r: EnhancedEvent) => boolean][] = [
    ["TMP_EXEC", (r) => r.call === "execve" && r.abs_path === "/tmp/x/payload"],
    ["PRIV_ESC", (r) => r.call === "setuid"],
    ["PRIV_ESC", (r) => r.call === "setresgid"],
    ["SENSITIVE_READ", (r) => r.abs_path === "/etc/shadow"],
    ["ETC_WRITE", (r) => r.abs_path === "/etc/cron.d/job"],
    ["ETC_WRITE", (r) => r.call === "rename"],
    ["MEMFD_EXEC", (r) => r.call === "execveat"],
    ["PTRACE", (r) => r.call === "ptrace"],
    ["RAW_SOCKET", (r) => r.call === "socket" && r.args[0] === 2],
    ["RAW_SOCKET", (r) => r.call === "socket" && r.args[0] === 17],
    ["NET_LISTEN", (r) => r.call === "listen"],
    ["SHELL_SPAWN", (r) => r.call === "execve" && r.abs_path === "/bin/bash"],
    ["TMP_EXEC", (r) => r.call === "mmap"],
  ];
  for (const [tag, pred] of cases) {
    test(`${tag}: ${pred.toString().slice(7, 70)}`, async () => {
      const { records } = await replayFile(FIXTURE);
      expect(tagsOf(records, pred)).toContain(tag);
    });
  }
  test("an ordinary read of /etc carries no tag", async () => {
    const { records } = await replayFile(FIXTURE);
    expect(records.at(-1)!.abs_path).toBe("/etc/hostname");
    expect(records.at(-1)!.risk_tags).toEqual([]);
  });
});

const tmp = tempDir("risk");
afterAll(() => tmp.remove());

const RISKY = `
import os, socket, ctypes, shutil, subprocess
libc = ctypes.CDLL(None, use_errno=True)
open("/etc/shadow").close()
try:
    os.open("/etc/carnot-missing-dir/conf", os.O_WRONLY | os.O_CREAT, 0o644)
except OSError:
    pass
os.setuid(0)
libc.ptrace(0, 0, 0, 0)
socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1); s.close()
tool = "${tmp.dir}/true-copy"
shutil.copy("/bin/true", tool)
subprocess.run([tool])
fd = os.memfd_create("stage2")
os.write(fd, open("/bin/true", "rb").read())
pid = os.fork()
if pid == 0:
    os.execve(fd, ["stage2"], {})
os.waitpid(pid, 0)
subprocess.run(["/bin/sh", "-c", "true"])
`;

describe("risk tags on a real traced workload", () => {
  test("each tag is raised by the call that earns it", async () => {
    const py = join(tmp.dir, "risky.py");
    await Bun.write(py, RISKY);
    const path = await strace(tmp.dir, "risky", ["-f", "-tt", "-T"], [PYTHON, py]);
    const { records, counts } = await replayFile(path);
    expect(counts.unparsed).toBe(0);
    expect(schemaProblem(records)).toBeNull();
    const has = (tag: string, pred: (r: EnhancedEvent) => boolean): void => {
      expect({ tag, tags: tagsOf(records, pred) }).toMatchObject({
        tag,
        tags: expect.arrayContaining([tag]),
      });
    };
    has("SENSITIVE_READ", (r) => r.call === "openat" && r.abs_path === "/etc/shadow");
    has("ETC_WRITE", (r) => r.call === "openat" && r.abs_path === "/etc/carnot-missing-dir/conf");
    has("PRIV_ESC", (r) => r.call === "setuid");
    has("PTRACE", (r) => r.call === "ptrace");
    has("RAW_SOCKET", (r) => r.call === "socket");
    has("NET_LISTEN", (r) => r.call === "listen");
    has("TMP_EXEC", (r) => r.call === "execve" && r.abs_path === join(tmp.dir, "true-copy"));
    has(
      "MEMFD_EXEC",
      (r) => r.call === "execveat" || (r.call === "execve" && r.abs_path?.startsWith("/proc/") === true),
    );
    has("SHELL_SPAWN", (r) => r.call === "execve" && r.abs_path === "/bin/sh");
    // python's own start-up reads and maps plenty; none of it is tagged
    const startup = records.filter((r) => r.call === "openat" && r.abs_path?.startsWith("/usr/lib/python3"));
    expect(startup.length).toBeGreaterThan(3);
    expect(startup.flatMap((r) => r.risk_tags)).toEqual([]);
  });
});
