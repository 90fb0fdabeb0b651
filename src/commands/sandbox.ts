/**
 * `carnot __sandbox [--fds N] -- PROGRAM ARGS…` (hidden; run by the calibration of `carnot trace`): executes
 * PROGRAM confined, without privilege, descriptors 3 to 3 + N − 1 handed over open
 * (src/trace/libssl/calibration/sandbox.ts). `--in-namespace --program-fd FD`: run again by unshare(1) inside
 * the user and network namespaces it made, PROGRAM open as FD. Returns only on failure.
 */
import { describeError } from "../errors.ts";
import { execConfined } from "../trace/libssl/calibration/sandbox.ts";

export function runSandbox(args: string[]): number {
  const separator = args.indexOf("--");
  const [program, ...rest] = separator < 0 ? [] : args.slice(separator + 1);
  if (program === undefined || !program.startsWith("/")) {
    process.stderr.write("carnot: __sandbox needs -- and an absolute program path\n");
    return 2;
  }
  const at = args.indexOf("--fds");
  const files = at >= 0 && at < separator && /^[0-9]$/.test(args[at + 1] ?? "") ? Number(args[at + 1]) : 0;
  const fdAt = args.indexOf("--program-fd");
  const programFd =
    fdAt >= 0 && fdAt < separator && /^[0-9]{1,4}$/.test(args[fdAt + 1] ?? "")
      ? Number(args[fdAt + 1])
      : null;
  const inNamespace = args.indexOf("--in-namespace");
  if (inNamespace >= 0 && inNamespace < separator && programFd === null) {
    process.stderr.write("carnot: __sandbox --in-namespace needs --program-fd FD\n");
    return 2;
  }
  try {
    execConfined(
      program,
      rest,
      files,
      inNamespace >= 0 && inNamespace < separator ? { programFd: programFd! } : null,
    );
  } catch (err) {
    process.stderr.write(`carnot: sandbox: ${describeError(err)}\n`);
  }
  return 126;
}
