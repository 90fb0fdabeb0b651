/**
 * Start-up time of compiled binaries, interleaved so a busy host slows each alike:
 *   bun bench/startup.ts [--runs N] BINARY… [-- ARGS]   (default args: --version)
 * Prints the median and p90 wall time of each, in milliseconds.
 */
const argv = process.argv.slice(2);
const sep = argv.indexOf("--");
const own = sep === -1 ? argv : argv.slice(0, sep);
const args = sep === -1 ? ["--version"] : argv.slice(sep + 1);
let runs = 30;
const binaries: string[] = [];
for (let i = 0; i < own.length; i++) {
  if (own[i] === "--runs") runs = Number(own[++i]);
  else binaries.push(own[i]!);
}
if (binaries.length === 0 || !Number.isInteger(runs) || runs < 1) {
  console.error("usage: bun bench/startup.ts [--runs N] BINARY… [-- ARGS]");
  process.exit(2);
}
const times = new Map<string, number[]>(binaries.map((b) => [b, []]));
for (let r = 0; r < runs; r++) {
  for (const b of binaries) {
    const t0 = Bun.nanoseconds();
    const p = Bun.spawnSync([b, ...args], { stdout: "ignore", stderr: "ignore" });
    if (p.exitCode !== 0) throw new Error(`${b} ${args.join(" ")}: exit ${p.exitCode}`);
    times.get(b)!.push((Bun.nanoseconds() - t0) / 1e6);
  }
}
const at = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
for (const [b, t] of times) {
  t.sort((x, y) => x - y);
  const size = Bun.file(b).size;
  console.log(
    `${b}: ${args.join(" ")}: median ${at(t, 0.5).toFixed(1)} ms, p90 ${at(t, 0.9).toFixed(1)} ms (${runs} runs); ${(size / 1e6).toFixed(1)} MB`,
  );
}
