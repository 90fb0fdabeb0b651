/**
 * `carnot __sandbox [--fds N] -- PROGRAM ARGS…` (hidden; run by the calibration of `carnot trace`): executes
 * PROGRAM confined, without privilege, descriptors 3 to 3 + N − 1 handed over open
 * (src/trace/libssl/calibration/sandbox.ts). Returns only on failure.
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
  try {
    execConfined(program, rest, files);
  } catch (err) {
    process.stderr.write(`carnot: sandbox: ${describeError(err)}\n`);
  }
  return 126;
}
