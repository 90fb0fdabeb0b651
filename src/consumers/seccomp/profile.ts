import type { EnrichedRecord } from "../enriched-reader.ts";
import { X86_64_SYSCALLS } from "./syscalls-x86_64.generated.ts";

/** One argument comparison of an OCI seccomp rule (values as libseccomp takes them). */
export interface SeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: "SCMP_CMP_MASKED_EQ";
}

export interface SeccompRule {
  names: string[];
  action: "SCMP_ACT_ALLOW";
  args?: SeccompArg[];
}

/** The OCI runtime-spec / Docker seccomp profile. */
export interface SeccompProfile {
  defaultAction: "SCMP_ACT_ERRNO";
  defaultErrnoRet: number;
  architectures: string[];
  syscalls: SeccompRule[];
}

/** x86-64 traces: the native ABI and the two compat ABIs, as Docker's default profile lists them. */
export const X86_64_ARCHITECTURES = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"];

/**
 * Syscalls the profile always allows: the loader (`carnot seccomp --apply`, bwrap, runc)
 * installs the filter and then calls execve, so execve runs under the filter before the
 * program does anything; a trace that starts at the program's own execve has it anyway.
 */
export const LOADER_SYSCALLS = ["execve"];

/** O_ACCMODE | O_CREAT | O_TRUNC: the bits that decide whether an open can create or change a file. */
export const OPEN_FLAGS_MASK = 0o3 | 0o100 | 0o1000;
/** SOCK_TYPE_MASK: socket type without SOCK_CLOEXEC / SOCK_NONBLOCK. */
const SOCKET_TYPE_MASK = 0xf;
/** An `int` argument: the kernel compares 64-bit registers, only the low 32 bits are the value. */
const INT_MASK = 0xffffffff;

/**
 * Argument filters that are safe and certain: argument positions where strace prints the
 * kernel's own argument order and replay records a number, and values that do not vary
 * between runs of the same program (open flags that matter for writing, socket family/type).
 */
const ARG_FILTERS: Record<string, Array<{ index: number; mask: number }>> = {
  open: [{ index: 1, mask: OPEN_FLAGS_MASK }],
  openat: [{ index: 2, mask: OPEN_FLAGS_MASK }],
  socket: [
    { index: 0, mask: INT_MASK },
    { index: 1, mask: SOCKET_TYPE_MASK },
  ],
};

/** A syscall name the x86-64 table does not know, with where it was seen. */
export interface UnknownSyscall {
  name: string;
  count: number;
  firstLine: number;
}

/**
 * Accumulates which syscalls a trace used (optionally only those of one executable) and,
 * for the calls with safe argument filters, which argument values were seen. Memory is
 * bounded by the number of distinct names and argument combinations, not by the trace.
 */
export class SyscallUsage {
  readonly exe: string | null;
  records = 0;
  matched = 0;
  private readonly known = new Set<string>();
  private readonly unknown = new Map<string, UnknownSyscall>();
  /** per syscall: distinct masked argument tuples ("2,1"), or null once one call had an unknown value */
  private readonly argTuples = new Map<string, Set<string> | null>();
  private readonly executables = new Map<string, number>();

  constructor(options: { exe?: string | null } = {}) {
    this.exe = options.exe ?? null;
  }

  add(record: EnrichedRecord, line: number): void {
    this.records++;
    const exe = record.exe_path ?? null;
    if (exe !== null) this.executables.set(exe, (this.executables.get(exe) ?? 0) + 1);
    if (this.exe !== null && exe !== this.exe) return;
    this.matched++;
    const name = record.call;
    if (!X86_64_SYSCALLS.has(name)) {
      const seen = this.unknown.get(name);
      if (seen) seen.count++;
      else this.unknown.set(name, { name, count: 1, firstLine: line });
      return;
    }
    this.known.add(name);
    const filters = ARG_FILTERS[name];
    if (!filters) return;
    const tuples = this.argTuples.get(name);
    if (tuples === null) return;
    const values: number[] = [];
    for (const { index, mask } of filters) {
      const value = record.args[index];
      if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
        this.argTuples.set(name, null);
        return;
      }
      values.push(maskValue(value, mask));
    }
    const key = values.join(",");
    if (tuples) tuples.add(key);
    else this.argTuples.set(name, new Set([key]));
  }

  /** Names seen in the trace that x86-64 does not have, sorted by name. */
  unknownSyscalls(): UnknownSyscall[] {
    return [...this.unknown.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Executables seen, most records first (for the error when --exe matches nothing). */
  executablesSeen(): string[] {
    return [...this.executables.entries()]
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .map((e) => e[0]);
  }

  /** Every syscall to allow: the trace's known names plus the loader's, sorted. */
  allowedNames(): string[] {
    return [...new Set([...this.known, ...LOADER_SYSCALLS])].sort();
  }

  /** Observed argument tuples per filterable syscall (null: no safe filter for it). */
  argumentTuples(name: string): number[][] | null {
    const tuples = this.argTuples.get(name);
    if (!tuples) return null;
    return [...tuples].map((t) => t.split(",").map(Number)).sort(compareTuples);
  }
}

/** `value & mask` without JavaScript's signed 32-bit bitwise operators. */
function maskValue(value: number, mask: number): number {
  return Number(BigInt(value) & BigInt(mask));
}

function compareTuples(a: number[], b: number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/**
 * The OCI profile: one sorted SCMP_ACT_ALLOW rule with every syscall used; with `withArgs`,
 * syscalls that have a safe filter move out of it into one rule per observed argument tuple
 * (rules for the same syscall are alternatives; comparisons within a rule all must hold).
 */
export function buildSeccompProfile(
  usage: SyscallUsage,
  options: { withArgs?: boolean } = {},
): SeccompProfile {
  const names = usage.allowedNames();
  const plain: string[] = [];
  const filtered: SeccompRule[] = [];
  for (const name of names) {
    const tuples = options.withArgs ? usage.argumentTuples(name) : null;
    const filters = ARG_FILTERS[name];
    if (!tuples || !filters) {
      plain.push(name);
      continue;
    }
    for (const tuple of tuples) {
      const args = filters.map(
        ({ index, mask }, i): SeccompArg => ({
          index,
          value: mask,
          valueTwo: tuple[i]!,
          op: "SCMP_CMP_MASKED_EQ",
        }),
      );
      filtered.push({ names: [name], action: "SCMP_ACT_ALLOW", args });
    }
  }
  return {
    defaultAction: "SCMP_ACT_ERRNO",
    defaultErrnoRet: 1,
    architectures: [...X86_64_ARCHITECTURES],
    syscalls: [{ names: plain, action: "SCMP_ACT_ALLOW" }, ...filtered],
  };
}

/** A Kubernetes object name: lowercase RFC 1123 subdomain. */
export function kubernetesName(raw: string): string {
  const name = raw
    .toLowerCase()
    .replace(/[^a-z0-9.-]+/g, "-")
    .replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, "")
    .slice(0, 253);
  return name === "" ? "carnot-profile" : name;
}

/**
 * The Security Profiles Operator `SeccompProfile` resource (v1beta1) as YAML. Its spec has
 * no defaultErrnoRet: the runtime's default for SCMP_ACT_ERRNO is EPERM, the same value.
 */
export function renderSpoProfile(profile: SeccompProfile, name: string): string {
  const out = [
    "apiVersion: security-profiles-operator.x-k8s.io/v1beta1",
    "kind: SeccompProfile",
    "metadata:",
    `  name: ${kubernetesName(name)}`,
    "spec:",
    `  defaultAction: ${profile.defaultAction}`,
    "  architectures:",
    ...profile.architectures.map((a) => `    - ${a}`),
    "  syscalls:",
  ];
  for (const rule of profile.syscalls) {
    out.push(`    - action: ${rule.action}`, "      names:", ...rule.names.map((n) => `        - ${n}`));
    if (rule.args) {
      out.push("      args:");
      for (const arg of rule.args) {
        out.push(`        - index: ${arg.index}`, `          value: ${arg.value}`);
        if (arg.valueTwo !== undefined) out.push(`          valueTwo: ${arg.valueTwo}`);
        out.push(`          op: ${arg.op}`);
      }
    }
  }
  return `${out.join("\n")}\n`;
}

/** The OCI profile as stable, indented JSON (key order as in the interface). */
export function renderOciProfile(profile: SeccompProfile): string {
  return `${JSON.stringify(profile, null, 2)}\n`;
}
