import { describe, expect, test } from "bun:test";
import { repeatedOption } from "../../src/commands/shared.ts";
import { parseCount, parseSize, parseWindow } from "../../src/commands/trace.ts";

describe("carnot trace arguments", () => {
  test("--window takes seconds, milliseconds or a bare number of milliseconds", () => {
    expect(parseWindow("2s")).toBe(2000);
    expect(parseWindow("1500ms")).toBe(1500);
    expect(parseWindow("2000")).toBe(2000);
    expect(parseWindow("0.5s")).toBe(500);
    expect(() => parseWindow("2 minutes")).toThrow(/invalid --window/);
    expect(() => parseWindow("0")).toThrow(/must be positive/);
  });

  test("--ringbuf-size takes bytes with an optional K/M/G suffix", () => {
    expect(parseSize("4096", "--ringbuf-size")).toBe(4096);
    expect(parseSize("8M", "--ringbuf-size")).toBe(8 * 1024 * 1024);
    expect(parseSize("64KiB", "--ringbuf-size")).toBe(64 * 1024);
    expect(() => parseSize("-1", "--ringbuf-size")).toThrow(/invalid --ringbuf-size/);
  });

  test("counts are integers with a minimum", () => {
    expect(parseCount("10", "--max-pending", 1)).toBe(10);
    expect(() => parseCount("0", "--max-pending", 1)).toThrow(/≥ 1/);
    expect(() => parseCount("1e3", "--pid", 1)).toThrow(/invalid --pid/);
  });

  test("--libssl is repeatable, in both spellings, and a comma stays in a path", () => {
    expect(
      repeatedOption(["--libssl", "/a.so", "--pid", "3", "--libssl=/b,c"], "libssl", { commas: false }),
    ).toEqual(["/a.so", "/b,c"]);
    expect(repeatedOption(["--region=a,b", "--region", "c"], "region")).toEqual(["a", "b", "c"]);
  });
});
