/**
 * Measures a C header the way the compiler lays it out: compiles a tiny program that prints offsetof/sizeof of
 * the given struct fields and the value of the given constants (the layout tests compare them with the
 * TypeScript mirrors of bpf/*.h).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const REPO = join(import.meta.dir, "..", "..");
export const COMPILER = Bun.which("cc") ?? Bun.which("clang") ?? Bun.which("gcc");

/**
 * `structs`: C struct name → the TS layout table (field → [offset, size]); `constants`: key → C expression.
 * Returns `struct.field@offset`, `struct.field@size` and each constant key → value.
 */
export function measureHeader(
  header: string,
  structs: Record<string, Record<string, readonly [number, number]>>,
  constants: Record<string, string>,
): Map<string, number> {
  const dir = mkdtempSync(join(tmpdir(), "carnot-layout-"));
  try {
    const lines: string[] = [];
    for (const [struct, layout] of Object.entries(structs)) {
      for (const name of Object.keys(layout)) {
        lines.push(
          `  printf("${struct}.${name}@offset %zu\\n${struct}.${name}@size %zu\\n", offsetof(struct ${struct}, ${name}), sizeof(((struct ${struct} *)0)->${name}));`,
        );
      }
    }
    for (const [name, cName] of Object.entries(constants)) {
      lines.push(`  printf("${name} %lld\\n", (long long)(${cName}));`);
    }
    const source = `#include <stdio.h>\n#include <stddef.h>\n#include "${header}"\nint main(void) {\n${lines.join("\n")}\n  return 0;\n}\n`;
    writeFileSync(join(dir, "layout.c"), source);
    const compile = Bun.spawnSync([
      COMPILER!,
      "-Wall",
      "-Werror",
      "-I",
      join(REPO, "bpf"),
      "-o",
      join(dir, "layout"),
      join(dir, "layout.c"),
    ]);
    if (compile.exitCode !== 0) throw new Error(`cc failed: ${compile.stderr.toString()}`);
    const run = Bun.spawnSync([join(dir, "layout")]);
    const values = new Map<string, number>();
    for (const line of run.stdout.toString().trim().split("\n")) {
      const [name, value] = line.split(" ");
      values.set(name!, Number(value));
    }
    return values;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The fields of a layout table tile [0, size) exactly, in order, with no gap or overlap. */
export function tiles(layout: Record<string, readonly [number, number]>, size: number): boolean {
  const spans = Object.values(layout).toSorted((a, b) => a[0] - b[0]);
  let end = 0;
  for (const [offset, length] of spans) {
    if (offset !== end) return false;
    end = offset + length;
  }
  return end === size;
}
