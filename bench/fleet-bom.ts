/**
 * Fleet-wide BOM benchmark: --hosts files (default 1,000) of --per-host observations (default 10,000), made from
 * real trace records (test/fixtures/runtime/demo.jsonl, or --records FILE: e.g. a fresh `carnot trace`) with
 * each host's name, machine id, cgroup, containers, pids, times, server names and ports (test/support/fleet.ts),
 * then `carnot bom 'DIR/hosts/*\/runtime.jsonl'` → one fleet CryptoBOM and one CycloneDX 1.6 document, each
 * checked (the CryptoBOM's schema and counts, the CycloneDX against the official 1.6 schema). Prints
 * observations/s (wall and per CPU second) and peak RSS, median and spread of --runs runs, also for a tenth of
 * the hosts (a tenth of the components) and for those hosts with a tenth of the observations each (the same
 * components): memory follows the components, not the observations. The files are deleted afterwards.
 * Targets: ≥ 300,000 observations/s, peak RSS < 500 MB.
 *
 *   bun run bench/fleet-bom.ts [--hosts N] [--per-host N] [--runs N] [--records FILE] [--dir DIR] [--bun]
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statfsSync, statSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import * as v from "valibot";
import { type CryptoBom, CryptoBomSchema } from "../src/bom/cryptobom.ts";
import { compileCycloneDx16, describeErrors } from "../test/bom/cyclonedx-schema.ts";
import { DEMO_RECORDS, writeFleet } from "../test/support/fleet.ts";

const argv = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i === -1 ? undefined : argv[i + 1];
};
let hosts = Number(option("--hosts") ?? 1000);
const perHost = Number(option("--per-host") ?? 10_000);
const runs = Number(option("--runs") ?? 3);
const records = option("--records") ?? DEMO_RECORDS;
const useBun = argv.includes("--bun") || !existsSync("./carnot");
const cli = useBun ? [process.execPath, "src/cli.ts"] : ["./carnot"];

interface Run {
  secs: number;
  cpuSecs: number;
  rssMb: number;
}

/** One `carnot bom` over the files `pattern` matches: wall time, CPU time and peak RSS (from /usr/bin/time). */
async function measure(args: string[]): Promise<Run> {
  const started = performance.now();
  const proc = Bun.spawn(["/usr/bin/time", "-f", "%M %U %S", ...cli, ...args], {
    stdout: "ignore",
    stderr: "pipe",
  });
  const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
  const secs = (performance.now() - started) / 1000;
  if (code !== 0) throw new Error(`carnot ${args.join(" ")} failed (${code}): ${stderr}`);
  const [rssKb, user, sys] = (stderr.trim().split("\n").at(-1) ?? "").split(" ").map(Number) as [
    number,
    number,
    number,
  ];
  return { secs, cpuSecs: user + sys, rssMb: rssKb / 1024 };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const k = (n: number) => `${(n / 1000).toFixed(0)} k`;

function summarise(label: string, observations: number, rs: Run[]): { rate: number; rss: number } {
  const rates = rs.map((r) => observations / r.secs);
  const cpuRates = rs.map((r) => observations / r.cpuSecs);
  const rss = rs.map((r) => r.rssMb);
  console.log(
    `${label.padEnd(34)} ${k(median(rates)).padStart(6)} obs/s (${k(Math.min(...rates))}–${k(Math.max(...rates))}), ` +
      `${k(median(cpuRates))} per CPU second, peak RSS ${median(rss).toFixed(0)} MB (${Math.min(...rss).toFixed(0)}–${Math.max(...rss).toFixed(0)})`,
  );
  return { rate: median(rates), rss: Math.max(...rss) };
}

const dir = option("--dir") ?? mkdtempSync(join(tmpdir(), "carnot-bench-fleet-"));
try {
  // one host first: its size says whether the whole fleet fits on the disk
  await writeFleet(dir, { hosts: 1, perHost, records });
  const hostBytes = statSync(join(dir, "hosts/host-0000/runtime.jsonl")).size;
  const fs = statfsSync(dir);
  const free = fs.bavail * fs.bsize;
  const fits = Math.floor((free - 4 * 2 ** 30) / hostBytes);
  if (fits < hosts) {
    console.log(
      `disk: ${(free / 2 ** 30).toFixed(1)} GiB free, a host's file is ${(hostBytes / 2 ** 20).toFixed(1)} MiB: ${fits} hosts instead of ${hosts}`,
    );
    hosts = Math.max(10, Math.floor(fits / 10) * 10);
  }
  const generating = performance.now();
  await writeFleet(dir, { hosts, perHost, records });
  const total = hosts * perHost;
  console.log(
    `input: ${hosts} hosts × ${perHost} observations = ${total} (${((hosts * hostBytes) / 2 ** 30).toFixed(1)} GiB, ` +
      `${(hostBytes / perHost).toFixed(0)} B/line) from ${records}, made in ${((performance.now() - generating) / 1000).toFixed(0)} s; ` +
      `${useBun ? "bun src/cli.ts" : "./carnot"}; load ${loadavg()
        .map((l) => l.toFixed(1))
        .join(" ")}`,
  );
  // the same hosts with a tenth of the observations each: the same components
  const sparse = join(dir, "sparse");
  const tenthHosts = Math.ceil(hosts / 10);
  await writeFleet(sparse, { hosts: tenthHosts, perHost: Math.ceil(perHost / 10), records });
  const all = join(dir, "hosts/host-*/runtime.jsonl");
  const tenth = Array.from({ length: Math.ceil(hosts / 10) }, (_, h) =>
    join(dir, `hosts/host-${String(h).padStart(4, "0")}/runtime.jsonl`),
  );
  const out = join(dir, "fleet.bom.json");
  const cdx = join(dir, "fleet.cdx.json");
  const results: Record<string, Run[]> = { bom: [], cdx: [], bomTenth: [], bomSparse: [] };
  for (let r = 0; r < runs; r++) {
    results.bomSparse!.push(await measure(["bom", join(sparse, "hosts/host-*/runtime.jsonl"), "-o", out]));
    results.bomTenth!.push(await measure(["bom", ...tenth, "-o", out]));
    results.bom!.push(await measure(["bom", all, "-o", out]));
    results.cdx!.push(await measure(["bom", all, "--format", "cyclonedx", "-o", cdx]));
  }

  const bom: CryptoBom = JSON.parse(readFileSync(out, "utf8"));
  if (!v.safeParse(CryptoBomSchema, bom).success)
    throw new Error("the fleet CryptoBOM does not match its schema");
  if (bom.summary.observations !== total || bom.fleet?.inputs.length !== hosts)
    throw new Error(
      `the fleet CryptoBOM counts ${bom.summary.observations} observations in ${bom.fleet?.inputs.length} files`,
    );
  const validate = compileCycloneDx16();
  if (!validate(JSON.parse(readFileSync(cdx, "utf8")))) throw new Error(describeErrors(validate));
  console.log(
    `output: ${bom.summary.components} components (${(bom.summary.components / hosts).toFixed(1)} per host), ` +
      `${bom.fleet?.hosts} hosts, ${bom.fleet?.containers} containers; CryptoBOM ${(statSync(out).size / 2 ** 20).toFixed(1)} MiB ` +
      `(schema ok), CycloneDX ${(statSync(cdx).size / 2 ** 20).toFixed(1)} MiB (1.6 schema ok); ${runs} runs each`,
  );
  summarise(
    `bom, ${tenthHosts} hosts × ${Math.ceil(perHost / 10)}`,
    tenthHosts * Math.ceil(perHost / 10),
    results.bomSparse!,
  );
  summarise(`bom, ${tenth.length} hosts × ${perHost}`, tenth.length * perHost, results.bomTenth!);
  const main = summarise(`bom, ${hosts} hosts`, total, results.bom!);
  const cdxRun = summarise(`bom --format cyclonedx, ${hosts} hosts`, total, results.cdx!);
  const checks: [string, boolean][] = [
    [
      `≥ 300 k observations/s (median ${k(main.rate)}, CycloneDX ${k(cdxRun.rate)})`,
      Math.min(main.rate, cdxRun.rate) >= 300_000,
    ],
    [
      `peak RSS < 500 MB (max ${Math.max(main.rss, cdxRun.rss).toFixed(0)} MB)`,
      Math.max(main.rss, cdxRun.rss) < 500,
    ],
  ];
  for (const [what, ok] of checks) console.log(`${ok ? "ok  " : "MISS"} ${what}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
