/**
 * Where on a function to put its uprobe so that a hit costs one trap, not two.
 *
 * x86-64 Linux emulates a few instructions at a uprobe (push of a register, jumps, calls); any other
 * instruction (endbr64, test, xor, mov, sub …) is single-stepped out of line: a second exception, ≈ 2.6 µs
 * per hit on this machine against ≈ 0.2 µs (measured in WORKLOG.md). So the probe moves past a short
 * straight-line run of leading instructions that cannot change what the probe reads, onto the first one the
 * kernel emulates. Nothing moves when no such run is recognised (the probe stays on the symbol).
 */

/** x86-64 register numbers (0 = rax … 15 = r15) as encoded in ModRM/REX. */
const RSP = 4;
/** The System V argument registers, in order: rdi, rsi, rdx, rcx, r8, r9. */
const ARG_REGISTERS = [7, 6, 2, 1, 8, 9] as const;
/** Longest leading run examined (bytes): SSL_read's stack-protector prologue is 22 (26 with endbr64). */
const MAX_SKIP = 32;

/** One decoded leading instruction: its length and the register it writes (null = flags only). */
interface Skippable {
  length: number;
  writes: number | null;
}

function rexOf(byte: number | undefined): number {
  return byte !== undefined && byte >= 0x40 && byte <= 0x4f ? byte : 0;
}

/** A leading instruction the probe may move past, or null (unknown, a branch, or a memory write). */
function decodeSkippable(code: Uint8Array, at: number): Skippable | null {
  // endbr64: a landing pad for indirect branches, no effect on registers
  if (code[at] === 0xf3 && code[at + 1] === 0x0f && code[at + 2] === 0x1e && code[at + 3] === 0xfa) {
    return { length: 4, writes: null };
  }
  // mov %fs:disp32, r64 (64 REX.W 8b, ModRM mod 0 with a SIB of no base and no index): the stack
  // protector's canary load
  if (
    code[at] === 0x64 &&
    (code[at + 1]! & 0xf8) === 0x48 &&
    code[at + 2] === 0x8b &&
    code[at + 3] !== undefined &&
    (code[at + 3]! & 0xc7) === 0x04 &&
    code[at + 4] === 0x25
  ) {
    return { length: 9, writes: ((code[at + 1]! & 4) << 1) | ((code[at + 3]! >> 3) & 7) };
  }
  const rex = rexOf(code[at]);
  const op = rex ? at + 1 : at;
  const opcode = code[op];
  const modrm = code[op + 1];
  const prefix = rex ? 1 : 0;
  if (opcode === undefined) return null;
  // mov $imm32, r32 (b8+r): writes that register
  if (opcode >= 0xb8 && opcode <= 0xbf && !(rex & 0x08)) {
    return { length: prefix + 5, writes: ((rex & 1) << 3) | (opcode - 0xb8) };
  }
  if (modrm === undefined) return null;
  const mod = modrm >> 6;
  const reg = ((rex & 4) << 1) | ((modrm >> 3) & 7);
  const rm = ((rex & 1) << 3) | (modrm & 7);
  // xor r, r (the same register: zeroes it)
  if ((opcode === 0x31 || opcode === 0x33) && mod === 3 && reg === rm)
    return { length: prefix + 2, writes: rm };
  // test r, r: flags only
  if (opcode === 0x85 && mod === 3) return { length: prefix + 2, writes: null };
  // mov r, r (89 /r register form): writes the r/m register
  if (opcode === 0x89 && mod === 3) return { length: prefix + 2, writes: rm };
  // mov r, disp8(%rsp) (89 /r, SIB 24): a store to the stack frame, no register written
  if (opcode === 0x89 && mod === 1 && (modrm & 7) === 4 && code[op + 2] === 0x24) {
    return { length: prefix + 4, writes: null };
  }
  // 83 /5 sub $imm8, r and 83 /7 cmp $imm8, r/m (no SIB, no RIP-relative)
  if (opcode === 0x83) {
    const ext = (modrm >> 3) & 7;
    if (mod === 3 && ext === 5) return { length: prefix + 3, writes: rm };
    if (ext === 7 && (modrm & 7) !== 4) {
      if (mod === 3) return { length: prefix + 3, writes: null };
      if (mod === 1) return { length: prefix + 4, writes: null };
      if (mod === 0 && (modrm & 7) !== 5) return { length: prefix + 3, writes: null };
    }
  }
  return null;
}

/** Does the kernel emulate the instruction at `at` (no single step)? push r64, jcc, jmp, call. */
function emulated(code: Uint8Array, at: number): boolean {
  const first = code[at];
  if (first === undefined) return false;
  if (first >= 0x50 && first <= 0x57) return true; // push r64
  if (first === 0x41 && code[at + 1] !== undefined && code[at + 1]! >= 0x50 && code[at + 1]! <= 0x57)
    return true;
  if (first >= 0x70 && first <= 0x7f) return true; // jcc rel8
  if (first === 0x0f && code[at + 1] !== undefined && code[at + 1]! >= 0x80 && code[at + 1]! <= 0x8f)
    return true;
  return first === 0xe8 || first === 0xe9 || first === 0xeb; // call, jmp
}

export interface ProbeSiteRule {
  /** How many arguments the probe reads at entry (their registers must still hold them). */
  argsRead: number;
  /** A return probe shares the site: the return address must still be on top of the stack. */
  returnProbed: boolean;
}

/**
 * Bytes to move a function's probe past its first instructions (0 = stay on the symbol). `code` starts at the
 * function's first byte. Only a straight-line run of recognised instructions is skipped, none writing an
 * argument the probe reads nor (when a return probe shares the site) the stack pointer, and only when it ends
 * on an instruction the kernel emulates.
 */
export function probeSkip(code: Uint8Array, rule: ProbeSiteRule): number {
  const protectedRegisters = new Set<number>(ARG_REGISTERS.slice(0, rule.argsRead));
  if (rule.returnProbed) protectedRegisters.add(RSP);
  let at = 0;
  while (at < MAX_SKIP) {
    if (emulated(code, at)) return at;
    const insn = decodeSkippable(code, at);
    if (insn === null || (insn.writes !== null && protectedRegisters.has(insn.writes))) return 0;
    at += insn.length;
  }
  return 0;
}
