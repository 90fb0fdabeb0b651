/** The host's identity on every record: /etc/machine-id read as machine-id(5) defines it, or null. */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { readHostIdentity, readMachineId } from "../../../src/trace/attribution/host.ts";

const ID = "3d1219c7c4c5404aaa1f6d2a48adfda4";

describe("machine id", () => {
  const dir = mkdtempSync(join(tmpdir(), "carnot-machine-id-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  test.each([
    ["newline-terminated, as systemd writes it", `${ID}\n`, ID],
    ["without the newline", ID, ID],
    ["not yet initialized (first boot)", "uninitialized\n", null],
    ["empty", "", null],
    ["all zeros", `${"0".repeat(32)}\n`, null],
    ["upper case", `${ID.toUpperCase()}\n`, null],
    ["one digit short", `${ID.slice(1)}\n`, null],
    ["more after the id", `${ID}\n${ID}\n`, null],
    ["a UUID with dashes", "3d1219c7-c4c5-404a-aa1f-6d2a48adfda4\n", null],
  ])("%s", (name, text, expected) => {
    expect(readMachineId(file(name.replaceAll(/\W/g, "-"), text))).toBe(expected);
  });

  test("absent, a directory, or a FIFO (read without blocking): null", () => {
    expect(readMachineId(join(dir, "absent"))).toBeNull();
    mkdirSync(join(dir, "a-directory"));
    expect(readMachineId(join(dir, "a-directory"))).toBeNull();
    const fifo = join(dir, "fifo");
    expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
    expect(readMachineId(fifo)).toBeNull();
  });

  test("the host's name is the kernel's", () => {
    expect(readHostIdentity(file("valid", `${ID}\n`))).toEqual({ host: hostname(), machineId: ID });
  });
});
