import { ptr } from "bun:ffi";
import * as v from "valibot";
import { cString, pointerArray } from "../../../ffi/libc.ts";
import {
  describeNegativeErrno,
  type LibcExec,
  type Libseccomp,
  lastErrno,
  openLibcExec,
  openLibseccomp,
  SCMP_ACT_ALLOW,
  SCMP_ACT_KILL_PROCESS,
  SCMP_ACT_KILL_THREAD,
  SCMP_ACT_LOG,
  SCMP_ACT_TRAP,
  SCMP_ARG_CMP_SIZE,
  SCMP_CMP,
  scmpActErrno,
} from "../../../ffi/libseccomp.ts";
import { CarnotError } from "../../errors.ts";

/** The part of the OCI / Docker seccomp profile format the loader understands; other keys are ignored. */
const ProfileArgSchema = v.object({
  index: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(5)),
  value: v.pipe(v.number(), v.integer(), v.minValue(0)),
  valueTwo: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0)), 0),
  op: v.picklist(Object.keys(SCMP_CMP)),
});
const ProfileRuleSchema = v.object({
  names: v.optional(v.array(v.string())),
  name: v.optional(v.string()),
  action: v.string(),
  errnoRet: v.optional(v.pipe(v.number(), v.integer())),
  args: v.optional(v.nullable(v.array(ProfileArgSchema))),
});
export const OciProfileSchema = v.object({
  defaultAction: v.string(),
  defaultErrnoRet: v.optional(v.pipe(v.number(), v.integer())),
  architectures: v.optional(v.nullable(v.array(v.string()))),
  syscalls: v.optional(v.nullable(v.array(ProfileRuleSchema))),
});
export type OciProfile = v.InferOutput<typeof OciProfileSchema>;
type OciRule = v.InferOutput<typeof ProfileRuleSchema>;

/** Reads and checks a profile file; one-line errors naming the file. */
export async function readOciProfile(path: string): Promise<OciProfile> {
  const file = Bun.file(path);
  if (!(await file.exists())) throw new CarnotError(`${path}: no such file`, { exitCode: 2 });
  let json: unknown;
  try {
    json = JSON.parse(await file.text());
  } catch (err) {
    throw new CarnotError(`${path}: not a JSON seccomp profile`, { exitCode: 2, cause: err });
  }
  const parsed = v.safeParse(OciProfileSchema, json);
  if (!parsed.success) {
    const issue = parsed.issues[0];
    const where = issue ? v.getDotPath(issue) : null;
    throw new CarnotError(
      `${path}: not an OCI seccomp profile: ${where ? `${where}: ` : ""}${issue?.message}`,
      {
        exitCode: 2,
      },
    );
  }
  return parsed.output;
}

/** SCMP_ACT_* name → libseccomp action value. */
export function actionValue(action: string, errnoRet: number | undefined): number {
  switch (action) {
    case "SCMP_ACT_ALLOW":
      return SCMP_ACT_ALLOW;
    case "SCMP_ACT_ERRNO":
      return scmpActErrno(errnoRet ?? 1);
    case "SCMP_ACT_KILL":
    case "SCMP_ACT_KILL_THREAD":
      return SCMP_ACT_KILL_THREAD;
    case "SCMP_ACT_KILL_PROCESS":
      return SCMP_ACT_KILL_PROCESS;
    case "SCMP_ACT_TRAP":
      return SCMP_ACT_TRAP;
    case "SCMP_ACT_LOG":
      return SCMP_ACT_LOG;
    default:
      throw new CarnotError(`unsupported seccomp action ${action}`, { exitCode: 2 });
  }
}

/** SCMP_ARCH_X86_64 → libseccomp's name for it ("x86_64"). */
function archName(arch: string): string {
  return arch.replace(/^SCMP_ARCH_/, "").toLowerCase();
}

/** The scmp_arg_cmp array of one rule. */
function argComparisons(rule: OciRule): { count: number; array: Uint8Array } {
  const list = rule.args ?? [];
  const buffer = new ArrayBuffer(Math.max(1, list.length) * SCMP_ARG_CMP_SIZE);
  const view = new DataView(buffer);
  list.forEach((arg, i) => {
    const base = i * SCMP_ARG_CMP_SIZE;
    view.setUint32(base, arg.index, true);
    view.setUint32(base + 4, SCMP_CMP[arg.op]!, true);
    view.setBigUint64(base + 8, BigInt(arg.value), true);
    view.setBigUint64(base + 16, BigInt(arg.valueTwo), true);
  });
  return { count: list.length, array: new Uint8Array(buffer) };
}

/** What compiling a profile skipped, for the user to see. */
export interface CompiledFilter {
  context: NonNullable<ReturnType<Libseccomp["seccomp_init"]>>;
  unknownNames: string[];
}

/**
 * Builds the libseccomp filter for a profile (not yet loaded). Names this libseccomp does
 * not know are skipped and returned, as runc does, so newer profiles still load.
 */
export function compileProfile(seccomp: Libseccomp, libc: LibcExec, profile: OciProfile): CompiledFilter {
  const context = seccomp.seccomp_init(actionValue(profile.defaultAction, profile.defaultErrnoRet));
  if (!context) throw new CarnotError(`failed to initialise libseccomp for ${profile.defaultAction}`);
  for (const arch of profile.architectures ?? []) {
    const token = seccomp.seccomp_arch_resolve_name(cString(archName(arch)));
    if (token === 0) throw new CarnotError(`unknown architecture ${arch}`, { exitCode: 2 });
    const rc = seccomp.seccomp_arch_add(context, token);
    // -EEXIST: the native architecture is already in a new filter
    if (rc !== 0 && rc !== -17)
      throw new CarnotError(`failed to add ${arch}: ${describeNegativeErrno(libc, rc)}`);
  }
  const unknownNames: string[] = [];
  for (const rule of profile.syscalls ?? []) {
    const action = actionValue(rule.action, rule.errnoRet);
    const { count, array } = argComparisons(rule);
    for (const name of rule.names ?? (rule.name ? [rule.name] : [])) {
      const nr = seccomp.seccomp_syscall_resolve_name(cString(name));
      if (nr < 0) {
        unknownNames.push(name);
        continue;
      }
      const rc = seccomp.seccomp_rule_add_array(context, action, nr, count, ptr(array));
      if (rc !== 0)
        throw new CarnotError(`failed to add the rule for ${name}: ${describeNegativeErrno(libc, rc)}`);
    }
  }
  return { context, unknownNames };
}

/** Signals Bun ignores (SIGPIPE, SIGXFSZ) stay ignored across execve; the program must get the defaults. */
const SIGNALS_TO_RESET = [13, 25];
const SIG_SETMASK = 2;

/**
 * Loads the profile into this thread and replaces the process with `command`. Only the
 * calling thread gets the filter (no TSYNC); execve ends Bun's other threads and the new
 * program inherits it. Between seccomp_load and execve the thread makes no other syscall,
 * so the profile must allow execve and nothing else on the loader's behalf.
 * Returns only on failure (exit code 126/127 as a shell would).
 */
export function execUnderProfile(profile: OciProfile, command: string[]): number {
  const [program, ...rest] = command;
  if (!program) throw new CarnotError("no command to run after --", { exitCode: 2 });
  const path = program.includes("/") ? program : Bun.which(program);
  if (!path) throw new CarnotError(`${program}: command not found`, { exitCode: 127 });
  const seccomp = openLibseccomp();
  const libc = openLibcExec();
  const { context, unknownNames } = compileProfile(seccomp, libc, profile);
  if (unknownNames.length > 0)
    process.stderr.write(`carnot: skipped syscalls libseccomp does not know: ${unknownNames.join(", ")}\n`);

  // Everything execve reads is prepared and kept referenced before the filter is loaded.
  const pathC = cString(path);
  const argvC = [program, ...rest].map(cString);
  const envC = Object.entries(process.env).map(([k, value]) => cString(`${k}=${value}`));
  const argv = pointerArray(argvC);
  const envp = pointerArray(envC);
  const emptySet = new BigUint64Array(16);
  for (const signal of SIGNALS_TO_RESET) libc.signal(signal, null);
  libc.sigprocmask(SIG_SETMASK, ptr(emptySet), null);

  const rc = seccomp.seccomp_load(context);
  if (rc !== 0)
    throw new CarnotError(`failed to load the seccomp filter: ${describeNegativeErrno(libc, rc)}`);
  libc.execve(ptr(pathC), ptr(argv), ptr(envp));
  const { errno, message } = lastErrno(libc);
  // keep the buffers alive until execve has returned
  void [pathC, argvC, envC, argv, envp];
  process.stderr.write(`carnot: failed to execute ${path}: ${message} (errno ${errno})\n`);
  return errno === 2 ? 127 : 126;
}
