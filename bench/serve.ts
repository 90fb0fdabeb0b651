/**
 * Load test of `carnot serve` on loopback, bounded in requests and time:
 *   bun bench/serve.ts [--bin ./carnot] [--requests N] [--concurrency C]
 * POST /attest (signed, JSON) and POST /policy with the merged test BOM, GET /healthz; then one large
 * BOM (≈ 15 MiB) while /healthz is asked alongside. Prints requests/s and p50/p99 latency of each.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildCryptoBom } from "../src/bom/cryptobom.ts";
import { formatJson, parseRuntimeJsonl, readCryptoBom } from "../src/bom/read.ts";
import { mergeBoms } from "../src/merge/merge.ts";

const REPO = join(import.meta.dir, "..");
const FIXTURES = join(REPO, "test/fixtures/runtime");
const argv = process.argv.slice(2);
const opt = (name: string, fallback: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] ? argv[i + 1]! : fallback;
};
const bin = opt("bin", "");
const requests = Number(opt("requests", "2000"));
const concurrency = Number(opt("concurrency", "16"));
const DEADLINE_MS = 120_000;

const dir = mkdtempSync(join(tmpdir(), "carnot-bench-serve-"));
const started = Date.now();

const records = parseRuntimeJsonl("mixed.jsonl", readFileSync(join(FIXTURES, "mixed.jsonl"), "utf8")).records;
const merged = mergeBoms([
  { file: "runtime", bom: buildCryptoBom(records, { secrecy_lifetime_years: 15 }) },
  { file: "static", bom: await readCryptoBom(join(FIXTURES, "static.cryptobom.json")) },
  { file: "cloud", bom: await readCryptoBom(join(FIXTURES, "cloud.cryptobom.json")) },
]);
const body = formatJson(merged);
Bun.spawnSync(["openssl", "genpkey", "-algorithm", "ed25519", "-out", join(dir, "k.pem")]);

const cmd = bin ? [bin] : ["bun", join(REPO, "src/cli.ts")];
const proc = Bun.spawn([...cmd, "serve", "--addr", "127.0.0.1:0", "--key", join(dir, "k.pem")], {
  stderr: "pipe",
  stdout: "ignore",
});
const reader = proc.stderr.getReader();
let err = "";
while (!/listening on (\S+)\n/.test(err)) {
  const { done, value } = await reader.read();
  if (done) throw new Error(`serve did not start: ${err}`);
  err += new TextDecoder().decode(value);
}
const url = /listening on (\S+)\n/.exec(err)![1]!;

interface Result {
  name: string;
  n: number;
  seconds: number;
  lat: number[];
  bad: number;
}

async function load(name: string, n: number, c: number, send: () => Promise<Response>): Promise<Result> {
  const lat: number[] = [];
  let bad = 0;
  let next = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (next < n && Date.now() - started < DEADLINE_MS) {
      next++;
      const s = performance.now();
      const res = await send();
      await res.arrayBuffer();
      lat.push(performance.now() - s);
      if (res.status !== 200) bad++;
    }
  };
  await Promise.all(Array.from({ length: c }, worker));
  return {
    name,
    n: lat.length,
    seconds: (performance.now() - t0) / 1000,
    lat: lat.sort((a, b) => a - b),
    bad,
  };
}

const q = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
const show = (r: Result) =>
  console.log(
    `${r.name}: ${r.n} requests, ${r.bad} not 200, ${(r.n / r.seconds).toFixed(0)} req/s, ` +
      `p50 ${q(r.lat, 0.5).toFixed(1)} ms, p99 ${q(r.lat, 0.99).toFixed(1)} ms`,
  );
const post = (path: string, text: string) => () =>
  fetch(`${url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: text });

try {
  console.log(
    `carnot serve (${bin || "bun src/cli.ts"}) at ${url}; BOM ${body.length} bytes, ${merged.observations.length} observations, ${merged.assets?.length} assets; concurrency ${concurrency}`,
  );
  await load("warm-up", 200, concurrency, post("/attest", body));
  show(await load("POST /attest", requests, concurrency, post("/attest", body)));
  show(await load("POST /policy", requests, concurrency, post("/policy", body)));
  show(await load("GET /healthz", requests, concurrency, () => fetch(`${url}/healthz`)));

  // one document near the 16 MiB limit, /healthz asked alongside it
  const many = Array.from({ length: 2500 }, () => records)
    .flat()
    .map((r, i) => ({ ...r, raw_hash: undefined, pid: i }));
  const large = formatJson(buildCryptoBom(many, { secrecy_lifetime_years: 15 }));
  const bigStart = performance.now();
  const big = post("/attest", large)().then(
    async (r) => [r.status, performance.now() - bigStart, (await r.arrayBuffer()).byteLength] as const,
  );
  const during = await load("GET /healthz during the large POST", 50, 1, () => fetch(`${url}/healthz`));
  const [status, ms, bytes] = await big;
  console.log(
    `large POST /attest: ${(large.length / 2 ** 20).toFixed(1)} MiB, ${many.length} observations: ${status} in ${ms.toFixed(0)} ms (${bytes} bytes back)`,
  );
  show(during);
} finally {
  proc.kill("SIGTERM");
  await proc.exited;
  rmSync(dir, { recursive: true, force: true });
}
