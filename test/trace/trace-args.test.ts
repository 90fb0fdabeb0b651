import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { repeatedOption } from "../../src/commands/shared.ts";
import {
  PID_MAX,
  parseDuration,
  parseInteger,
  parseSeconds,
  parseSize,
  parseWindow,
} from "../../src/commands/trace.ts";

const REPO = join(import.meta.dir, "..", "..");

describe("carnot trace arguments", () => {
  test("--window takes seconds, milliseconds or a bare number of milliseconds", () => {
    expect(parseWindow("2s")).toBe(2000);
    expect(parseWindow("1500ms")).toBe(1500);
    expect(parseWindow("2000")).toBe(2000);
    expect(parseWindow("0.5s")).toBe(500);
    expect(() => parseWindow("2 minutes")).toThrow(/invalid --window/);
    expect(() => parseWindow("0")).toThrow(/must be positive/);
    for (const bad of ["1e3", "+2s", " 2s", "0x10", "Infinity", "2.s", "90000000"])
      expect(() => parseWindow(bad)).toThrow(/invalid --window/);
  });

  test("--rotate-every takes a duration with a unit, or plain seconds, from 0.1 s", () => {
    expect(parseDuration("200ms", "--rotate-every")).toBe(0.2);
    expect(parseDuration("0.2", "--rotate-every")).toBe(0.2);
    expect(parseDuration("30s", "--rotate-every")).toBe(30);
    expect(parseDuration("15m", "--rotate-every")).toBe(900);
    expect(parseDuration("1h", "--rotate-every")).toBe(3600);
    expect(parseDuration("1d", "--rotate-every")).toBe(86_400);
    for (const bad of ["10ms", "0", "1w", "-1h", "1e3", " 1h", "1 h", "25d", "h"])
      expect(() => parseDuration(bad, "--rotate-every")).toThrow(/^invalid --rotate-every/);
  });

  test("--ringbuf-size takes bytes with an optional K/M/G suffix, at most 1G", () => {
    expect(parseSize("4096", "--ringbuf-size")).toBe(4096);
    expect(parseSize("8M", "--ringbuf-size")).toBe(8 * 1024 * 1024);
    expect(parseSize("64KiB", "--ringbuf-size")).toBe(64 * 1024);
    for (const bad of ["-1", "+4096", "0x1000", "1e6", "99999999999", "2G", " 8M"])
      expect(() => parseSize(bad, "--ringbuf-size")).toThrow(/invalid --ringbuf-size/);
  });

  test("integers are plain decimal within their range: nothing wraps modulo 2^32", () => {
    expect(parseInteger("10", "--max-pending", 1, 100)).toBe(10);
    expect(parseInteger(String(PID_MAX), "--pid", 1, PID_MAX)).toBe(PID_MAX);
    const refused = [
      "0",
      "4294995217",
      String(PID_MAX + 1),
      "1e3",
      "+12",
      "0x10",
      "012",
      " 12",
      "12 ",
      "-1",
      "",
    ];
    for (const bad of refused)
      expect(() => parseInteger(bad, "--pid", 1, PID_MAX)).toThrow(
        /^invalid --pid ".*": expected an integer from 1 to 4194304$/,
      );
  });

  test("seconds are plain decimal from 0 to 24 days (a timer beyond fires at once)", () => {
    expect(parseSeconds("0", "--duration")).toBe(0);
    expect(parseSeconds("0.5", "--duration")).toBe(0.5);
    for (const bad of ["1e3", "0x10", "-1", "Infinity", "2147484", " 5"])
      expect(() => parseSeconds(bad, "--duration")).toThrow(/invalid --duration/);
  });

  test("every numeric flag refuses a bad value with one line, exit 2, before anything runs", () => {
    const cases: [string, string][] = [
      ["--pid", "4294995217"],
      ["--pid", "+1"],
      ["--pid", "0x10"],
      ["--max-pending", "4294967312"],
      ["--ringbuf-size", "1e6"],
      ["--window", "1e3"],
      ["--metrics-interval", "0x10"],
      ["--duration", "3000000"],
    ];
    for (const [flag, value] of cases) {
      const res = Bun.spawnSync(
        [process.execPath, join(REPO, "src", "cli.ts"), "trace", `${flag}=${value}`],
        {
          stdout: "pipe",
          stderr: "pipe",
        },
      );
      const stderr = res.stderr.toString();
      expect({ flag, value, exit: res.exitCode, lines: stderr.trim().split("\n").length }).toEqual({
        flag,
        value,
        exit: 2,
        lines: 1,
      });
      expect(stderr).toStartWith(`carnot: invalid ${flag} "${value}"`);
      expect(stderr).not.toContain("ready");
    }
  });

  test("--libssl is repeatable, in both spellings, and a comma stays in a path", () => {
    expect(
      repeatedOption(["--libssl", "/a.so", "--pid", "3", "--libssl=/b,c"], "libssl", { commas: false }),
    ).toEqual(["/a.so", "/b,c"]);
    expect(repeatedOption(["--region=a,b", "--region", "c"], "region")).toEqual(["a", "b", "c"]);
  });
});
