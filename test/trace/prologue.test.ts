/**
 * Probe sites past single-stepped first instructions: instruction bytes from the libraries carnot probes
 * (system OpenSSL 3.0, Debian 13's 3.5 with CET landing pads, Node's OpenSSL with frame pointers).
 */
import { describe, expect, test } from "bun:test";
import { checkLibssl, findSystemLibssl } from "../../src/trace/libssl/library.ts";
import { probeSites } from "../../src/trace/libssl/probes.ts";
import { probeSkip } from "../../src/trace/libssl/prologue.ts";

const bytes = (hex: string) =>
  new Uint8Array(
    hex
      .split(/\s+/)
      .filter(Boolean)
      .map((b) => Number.parseInt(b, 16)),
  );
const entryOnly = (argsRead: number) => ({ argsRead, returnProbed: false });
const withReturn = (argsRead: number) => ({ argsRead, returnProbed: true });

describe("probeSkip", () => {
  const cases: [string, string, { argsRead: number; returnProbed: boolean }, number][] = [
    ["push rbx first: already emulated", "53 48 83 ec 30", withReturn(1), 0],
    ["push rbp first (frame pointers)", "55 48 89 e5 41 57", withReturn(1), 0],
    ["test rdi,rdi; je", "48 85 ff 0f 84 97 03 00 00", entryOnly(1), 3],
    ["xor eax,eax; test esi,esi; jle (return probed)", "31 c0 85 f6 7e 0a", withReturn(2), 4],
    ["cmpq $0,0x30(%rdi); je", "48 83 7f 30 00 74 09", withReturn(1), 5],
    ["endbr64; push rbx", "f3 0f 1e fa 53 48 85 ff", withReturn(1), 4],
    ["endbr64; test rdi; je rel32", "f3 0f 1e fa 48 85 ff 0f 84 83 00 00 00", withReturn(1), 7],
    [
      "endbr64; mov $1,%edx; jmp: edx unread by a 2-argument probe",
      "f3 0f 1e fa ba 01 00 00 00 e9 32 fd ff ff",
      withReturn(2),
      9,
    ],
    [
      "endbr64; mov $1,%edx; jmp: edx read by a 3-argument probe",
      "f3 0f 1e fa ba 01 00 00 00 e9 32 fd ff ff",
      entryOnly(3),
      0,
    ],
    ["endbr64; xor r8d,r8d; jmp (4 arguments read)", "f3 0f 1e fa 45 31 c0 e9 04 fb ff ff", entryOnly(4), 7],
    ["sub rsp then call: entry only", "48 83 ec 08 e8 c7 fd ff ff", entryOnly(1), 4],
    [
      "sub rsp then call: a return probe needs the return address on top",
      "48 83 ec 08 e8 c7 fd ff ff",
      withReturn(1),
      0,
    ],
    ["endbr64; sub rsp; test: return probed stays", "f3 0f 1e fa 48 83 ec 08 48 85 ff", withReturn(1), 0],
    ["mov rdi,r10 keeps rdi", "49 89 fa 48 83 ec 08 48 85 ff 74 1f", entryOnly(4), 10],
    ["mov rsi,rdi overwrites the first argument", "48 89 f7 53", entryOnly(1), 0],
    ["xor edi,edi zeroes the first argument", "31 ff 53", entryOnly(1), 0],
    ["unknown instruction (mov 0x10(%rdi),%rax)", "48 8b 47 10 53", entryOnly(1), 0],
    [
      "no emulated instruction within the run",
      "f3 0f 1e fa 31 c0 31 c0 31 c0 31 c0 31 c0 31 c0",
      entryOnly(1),
      0,
    ],
    ["truncated code", "f3 0f 1e", entryOnly(1), 0],
    [
      "stack protector prologue (SSL_read): sub, canary load and store, xor, test; js",
      "48 83 ec 18 64 48 8b 04 25 28 00 00 00 48 89 44 24 08 31 c0 85 d2 78 2f",
      entryOnly(1),
      22,
    ],
    ["canary loaded into rdi", "64 48 8b 3c 25 28 00 00 00 53", entryOnly(1), 0],
  ];
  for (const [name, hex, rule, expected] of cases) {
    test(name, () => expect(probeSkip(bytes(hex), rule)).toBe(expected));
  }
});

const LIBSSL = findSystemLibssl();
const OBJDUMP = Bun.which("objdump");
describe.skipIf(LIBSSL === null || OBJDUMP === null)(
  "the system libssl's probe sites, against objdump",
  () => {
    test("a moved probe sits on an instruction boundary, on a push, jump or call, and no branch leads to it", () => {
      const check = checkLibssl(LIBSSL!);
      const sites = probeSites(check, [...check.offsets.keys()]);
      const moved = [...sites].filter(([, site]) => site.skip > 0);
      // OpenSSL 3.0's SSL_free (test rdi) and SSL_get_error (xor eax) start with single-stepped instructions
      if (check.offsets.has("SSL_get_error")) expect(moved.length).toBeGreaterThan(0);
      // the system libssl maps its text at file offset = virtual address
      const listing = Bun.spawnSync([OBJDUMP!, "-d", "--no-show-raw-insn", check.path]).stdout.toString();
      const instructions = new Map<string, string>();
      const branchTargets = new Set<string>();
      for (const line of listing.split("\n")) {
        const m = /^\s*([0-9a-f]+):\s+(\S+)\s*(\S*)/.exec(line);
        if (!m) continue;
        instructions.set(m[1]!, m[2]!);
        if (/^(j[a-z]+|call)$/.test(m[2]!) && /^[0-9a-f]+$/.test(m[3]!)) branchTargets.add(m[3]!);
      }
      // the listing was understood (a libssl has thousands of direct branches)
      expect(branchTargets.size).toBeGreaterThan(1000);
      for (const [name, { offset, skip }] of moved) {
        const at = (offset + skip).toString(16);
        const mnemonic = instructions.get(at) ?? "(not an instruction boundary)";
        expect({ name, mnemonic, emulated: /^(push|j[a-z]+|call)$/.test(mnemonic) }).toMatchObject({
          name,
          emulated: true,
        });
        // a jump back to the site would count one call twice
        expect({ name, branchedTo: branchTargets.has(at) }).toEqual({ name, branchedTo: false });
      }
    });
  },
);
