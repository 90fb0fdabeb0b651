/**
 * The floor of any JavaScript replay on this machine: read the file, split it into lines, write each line as
 * a JSON string — nothing else. `bench/replay.ts` runs it beside `carnot replay` on the same input and prints
 * the ratio of the two.
 *
 *   bun bench/replay-floor.ts TRACE OUT
 */
import { closeSync, openSync, readSync, writeSync } from "node:fs";

const [input, output] = process.argv.slice(2);
if (!input || !output) throw new Error("usage: bun bench/replay-floor.ts TRACE OUT");
const fd = openSync(input, "r");
const out = openSync(output, "w");
// the same reads as the replay: 64 KiB, synchronous
const buf = Buffer.allocUnsafe(64 * 1024);
const decoder = new TextDecoder();
let carry = "";
let pending = "";
let lines = 0;
for (;;) {
  const n = readSync(fd, buf, 0, buf.length, null);
  if (n === 0) break;
  const text = carry + decoder.decode(buf.subarray(0, n), { stream: true });
  let start = 0;
  for (;;) {
    const nl = text.indexOf("\n", start);
    if (nl < 0) break;
    pending += `${JSON.stringify(text.slice(start, nl))}\n`;
    lines++;
    start = nl + 1;
  }
  carry = text.slice(start);
  if (pending.length >= 1 << 20) {
    writeSync(out, pending);
    pending = "";
  }
}
if (carry.length > 0) {
  pending += `${JSON.stringify(carry)}\n`;
  lines++;
}
writeSync(out, pending);
closeSync(fd);
closeSync(out);
process.stderr.write(`${lines} lines\n`);
