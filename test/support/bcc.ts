/**
 * Running a bcc tool (Debian's bpfcc-tools) on a kernel without its own headers: bcc compiles its BPF C at
 * start-up against /lib/modules/$(uname -r)/build. Where that is missing (this machine's kernel ships none),
 * it is given Debian 12's kernel headers (linux-headers-amd64) as one tree in a temporary directory, with the
 * min() of kernels before 6.1 (bcc 0.26's sslsniff calls min() on mixed types that 6.1's checked min() refuses).
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { release, tmpdir } from "node:os";
import { join } from "node:path";

export interface BccSetup {
  env: Record<string, string>;
  cleanup(): void;
}

/** The environment a bcc tool needs here, or why it cannot run. */
export function bccSetup(): BccSetup | string {
  if (existsSync(`/lib/modules/${release()}/build`)) return { env: {}, cleanup: () => {} };
  const headers = existsSync("/usr/src") ? readdirSync("/usr/src") : [];
  const common = headers.find((d) => /^linux-headers-.*-common$/.test(d));
  const arch = common && headers.find((d) => d === common.replace(/-common$/, "-amd64"));
  if (!common || !arch) return "no kernel headers for bcc (Debian package linux-headers-amd64)";
  const tree = mkdtempSync(join(tmpdir(), "carnot-bcc-headers-"));
  for (const part of [common, arch]) {
    const copy = Bun.spawnSync(["cp", "-rsf", `/usr/src/${part}/.`, `${tree}/`], { stderr: "pipe" });
    if (copy.exitCode !== 0) return `cannot assemble kernel headers: ${copy.stderr.toString().trim()}`;
  }
  const minmax = join(tree, "include", "linux", "minmax.h");
  unlinkSync(minmax);
  writeFileSync(
    minmax,
    `#include "/usr/src/${common}/include/linux/minmax.h"\n#undef min\n#define min(x, y) ((x) < (y) ? (x) : (y))\n`,
  );
  return { env: { BCC_KERNEL_SOURCE: tree }, cleanup: () => rmSync(tree, { recursive: true, force: true }) };
}
