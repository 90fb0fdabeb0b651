import { describe, expect, test } from "bun:test";
import { parseUnistdHeader } from "../../src/consumers/seccomp/generate-syscall-table.ts";
import {
  buildSeccompProfile,
  kubernetesName,
  OPEN_FLAGS_MASK,
  renderSpoProfile,
  SyscallUsage,
} from "../../src/consumers/seccomp/profile.ts";
import { X86_64_SYSCALLS } from "../../src/consumers/seccomp/syscalls-x86_64.generated.ts";
import { makeRecord, numbered } from "../actions/make-record.ts";

function usageOf(records: ReturnType<typeof makeRecord>[], exe?: string): SyscallUsage {
  const usage = new SyscallUsage({ exe });
  for (const { line, record } of numbered(records)) usage.add(record, line);
  return usage;
}

describe("seccomp profile from hand-made records", () => {
  test("OCI shape: ERRNO default, errno 1, x86-64 architectures, one sorted allow rule with execve", () => {
    const profile = buildSeccompProfile(
      usageOf([
        makeRecord({ call: "write" }),
        makeRecord({ call: "read" }),
        makeRecord({ call: "write" }),
        makeRecord({ call: "exit_group" }),
      ]),
    );
    expect(profile).toEqual({
      defaultAction: "SCMP_ACT_ERRNO",
      defaultErrnoRet: 1,
      architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
      syscalls: [{ names: ["execve", "exit_group", "read", "write"], action: "SCMP_ACT_ALLOW" }],
    });
  });

  test("--exe keeps only that executable's syscalls", () => {
    const usage = usageOf(
      [
        makeRecord({ call: "read", exe_path: "/bin/sh" }),
        makeRecord({ call: "socket", exe_path: "/usr/bin/curl" }),
        makeRecord({ call: "connect", exe_path: "/usr/bin/curl" }),
      ],
      "/usr/bin/curl",
    );
    expect(buildSeccompProfile(usage).syscalls[0]!.names).toEqual(["connect", "execve", "socket"]);
    expect(usage.executablesSeen()).toEqual(["/usr/bin/curl", "/bin/sh"]);
  });

  test("unknown names are reported with count and first line, not put in the profile", () => {
    const usage = usageOf([
      makeRecord({ call: "read" }),
      makeRecord({ call: "syscall_0x1c9" }),
      makeRecord({ call: "syscall_0x1c9" }),
    ]);
    expect(usage.unknownSyscalls()).toEqual([{ name: "syscall_0x1c9", count: 2, firstLine: 2 }]);
    expect(buildSeccompProfile(usage).syscalls[0]!.names).toEqual(["execve", "read"]);
  });

  test("--args: one MASKED_EQ rule per observed open-flags class and socket family/type", () => {
    const usage = usageOf([
      makeRecord({ call: "openat", args: [-100, null, 0o2000000, null, null, null] }),
      makeRecord({ call: "openat", args: [-100, null, 0o2000000 | 0o4000, null, null, null] }),
      makeRecord({ call: "openat", args: [-100, null, 0o1 | 0o100 | 0o1000, 0o644, null, null] }),
      makeRecord({ call: "socket", args: [2, 1 | 0o2000000, 6, null, null, null] }),
    ]);
    const profile = buildSeccompProfile(usage, { withArgs: true });
    expect(profile.syscalls[0]!.names).toEqual(["execve"]);
    expect(profile.syscalls.slice(1)).toEqual([
      {
        names: ["openat"],
        action: "SCMP_ACT_ALLOW",
        args: [{ index: 2, value: OPEN_FLAGS_MASK, valueTwo: 0, op: "SCMP_CMP_MASKED_EQ" }],
      },
      {
        names: ["openat"],
        action: "SCMP_ACT_ALLOW",
        args: [{ index: 2, value: OPEN_FLAGS_MASK, valueTwo: 0o1101, op: "SCMP_CMP_MASKED_EQ" }],
      },
      {
        names: ["socket"],
        action: "SCMP_ACT_ALLOW",
        args: [
          { index: 0, value: 0xffffffff, valueTwo: 2, op: "SCMP_CMP_MASKED_EQ" },
          { index: 1, value: 0xf, valueTwo: 1, op: "SCMP_CMP_MASKED_EQ" },
        ],
      },
    ]);
  });

  test("--args: a call whose argument replay could not certify gets no filter", () => {
    const usage = usageOf([
      makeRecord({ call: "openat", args: [-100, null, 0, null, null, null] }),
      makeRecord({ call: "openat", args: [-100, null, null, null, null, null] }),
    ]);
    const profile = buildSeccompProfile(usage, { withArgs: true });
    expect(profile.syscalls).toEqual([{ names: ["execve", "openat"], action: "SCMP_ACT_ALLOW" }]);
  });

  test("SPO SeccompProfile resource", () => {
    const profile = buildSeccompProfile(usageOf([makeRecord({ call: "read" })]));
    const yaml = renderSpoProfile(profile, "My App.jsonl");
    expect(yaml).toStartWith(
      "apiVersion: security-profiles-operator.x-k8s.io/v1beta1\nkind: SeccompProfile\nmetadata:\n  name: my-app.jsonl\n",
    );
    expect(yaml).toContain("  defaultAction: SCMP_ACT_ERRNO\n  architectures:\n    - SCMP_ARCH_X86_64\n");
    expect(yaml).toContain("    - action: SCMP_ACT_ALLOW\n      names:\n        - execve\n        - read\n");
    expect(kubernetesName("--")).toBe("carnot-profile");
  });
});

describe("x86-64 syscall table", () => {
  test("the committed table is what the kernel header says", async () => {
    const header = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h";
    if (!(await Bun.file(header).exists())) {
      console.warn(`skip: ${header} missing (package linux-libc-dev)`);
      return;
    }
    const fromHeader = new Map(parseUnistdHeader(await Bun.file(header).text()));
    expect(fromHeader.size).toBeGreaterThan(300);
    expect(new Map(X86_64_SYSCALLS)).toEqual(fromHeader);
    expect(X86_64_SYSCALLS.get("openat")).toBe(257);
  });
});
