/**
 * Which host a record comes from: its name and its machine id, read once at start (a fleet's records are put
 * together later; the name can repeat across hosts and change, the machine id identifies the installation).
 */
import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { hostname } from "node:os";

export interface HostIdentity {
  /** the kernel's host name (uname nodename) of carnot's UTS namespace; null when empty */
  host: string | null;
  /** /etc/machine-id; null when absent or not in its format */
  machineId: string | null;
}

/** machine-id(5): 32 lowercase hexadecimal digits, newline-terminated; all zeros is no id. */
const MACHINE_ID = /^[0-9a-f]{32}$/;
/** Read at most this much: a valid file has 33 bytes. */
const READ_MAX = 64;

/** The id in a machine-id file's text, or null when the text is anything else ("uninitialized", empty, …). */
export function parseMachineId(text: string): string | null {
  const id = text.endsWith("\n") ? text.slice(0, -1) : text;
  return MACHINE_ID.test(id) && id !== "0".repeat(32) ? id : null;
}

/** The machine id in `path`: only from a regular file, never blocking (a FIFO planted there), at most 64 bytes. */
export function readMachineId(path = "/etc/machine-id"): string | null {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch {
    return null;
  }
  try {
    if (!fstatSync(fd).isFile()) return null;
    const buffer = Buffer.alloc(READ_MAX + 1);
    const n = readSync(fd, buffer, 0, buffer.length, 0);
    return n > READ_MAX ? null : parseMachineId(buffer.toString("latin1", 0, n));
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

export function readHostIdentity(machineIdPath?: string): HostIdentity {
  const host = hostname();
  return { host: host === "" ? null : host, machineId: readMachineId(machineIdPath) };
}
