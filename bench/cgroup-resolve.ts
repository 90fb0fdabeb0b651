/**
 * What resolving a cgroup id to its path costs, both ways `carnot trace` can: a file handle
 * (open_by_handle_at + the path read back from /proc/self/fd, what it does with CAP_DAC_READ_SEARCH) against a
 * walk of the whole hierarchy (what it falls back to without), on N cgroups made for the purpose (systemd-style
 * slices of container scopes, removed after); then what a cached lookup costs on the tracer's hot path.
 * Run as root: `bun bench/cgroup-resolve.ts [cgroups]` (default 500).
 */
import { mkdirSync, rmdirSync, statSync } from "node:fs";
import { loadavg } from "node:os";
import { CgroupResolver, cgroupV2Root, walkCgroups } from "../src/trace/attribution/cgroups.ts";

const count = Number(process.argv[2] ?? 500);
const mount = cgroupV2Root();
if (mount === null || process.getuid?.() !== 0) {
  console.error("cgroup-resolve: needs root and a cgroup v2 hierarchy");
  process.exit(2);
}
const top = `/carnot-bench-${process.pid}`;
const made: string[] = [top];
const ids: number[] = [];
mkdirSync(mount + top);
try {
  for (let i = 0; i < count; i++) {
    const slice = `${top}/s${i % 20}.slice`;
    if (i < 20) {
      mkdirSync(mount + slice);
      made.push(slice);
    }
    const scope = `${slice}/docker-${i.toString(16).padStart(64, "0")}.scope`;
    mkdirSync(mount + scope);
    made.push(scope);
    ids.push(Number(statSync(mount + scope, { bigint: true }).ino));
  }
  const total = (() => {
    let n = 0;
    walkCgroups(mount, () => ++n > 0);
    return n;
  })();
  console.log(`cgroups in the hierarchy: ${total} (${count} made here); load ${loadavg()[0]!.toFixed(1)}`);

  const walks: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    walkCgroups(mount, () => true);
    walks.push(performance.now() - t);
  }
  walks.sort((a, b) => a - b);
  const walkMs = walks[2]!;
  console.log(
    `walk: median ${walkMs.toFixed(1)} ms (${walks.map((w) => w.toFixed(0)).join(", ")}), ` +
      `${((walkMs * 1000) / total).toFixed(0)} µs per cgroup`,
  );

  const resolver = CgroupResolver.open(mount);
  const firsts: number[] = [];
  for (const id of ids) {
    const t = performance.now();
    const facts = resolver.facts(id);
    firsts.push((performance.now() - t) * 1000);
    if (facts.containerId === null) throw new Error(`cgroup ${id} not resolved`);
  }
  firsts.sort((a, b) => a - b);
  const pick = (q: number) => firsts[Math.floor(q * (firsts.length - 1))]!.toFixed(0);
  console.log(`file handle, first lookup: median ${pick(0.5)} µs, p10 ${pick(0.1)}, p90 ${pick(0.9)}`);

  const rounds = 1_000_000;
  let sink = 0;
  const t = performance.now();
  for (let i = 0; i < rounds; i++) sink += resolver.facts(ids[i % ids.length]!).path!.length;
  const cachedNs = ((performance.now() - t) * 1e6) / rounds;
  console.log(`cached lookup: ${cachedNs.toFixed(0)} ns (${sink > 0 ? "ok" : "?"})`);
  resolver.close();
} finally {
  for (const path of made.reverse()) rmdirSync(mount + path);
}
