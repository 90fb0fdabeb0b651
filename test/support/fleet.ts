/**
 * A fleet's runtime files made from real records (test/fixtures/runtime/demo.jsonl): each host gets every
 * record many times over with its own host name, machine id, cgroup (one in three records in a container of
 * its pod), pids, times, server names and ports, all derived from the host's and the line's number, so the
 * same arguments always give the same bytes. Server names come from a pool of 24 that hosts share, four per host.
 */
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

export const DEMO_RECORDS = join(import.meta.dir, "../fixtures/runtime/demo.jsonl");

export interface FleetShape {
  hosts: number;
  perHost: number;
  /** a runtime.jsonl of real records (default: the demo's) */
  records?: string;
}

const FIELDS = [
  "pid",
  "tid",
  "time",
  "sni",
  "server_name",
  "local_port",
  "remote_port",
  "raw_hash",
  "chain",
  "host",
  "machine_id",
  "cgroup",
  "container_id",
  "pod_uid",
] as const;
type Field = (typeof FIELDS)[number];

/** Each record as its JSON text cut at the values that vary (fleet keys added before raw_hash). */
function templates(path: string): { parts: string[]; holes: Field[]; record: Record<string, unknown> }[] {
  const lines = readFileSync(path, "utf8").trimEnd().split("\n");
  return lines.map((line) => {
    const record = JSON.parse(line) as Record<string, unknown>;
    const { raw_hash: _r, chain: _c, ...rest } = record;
    const withFleet: Record<string, unknown> = {
      ...rest,
      host: null,
      machine_id: null,
      cgroup: null,
      container_id: null,
      pod_uid: null,
      raw_hash: null,
      chain: null,
    };
    const marked: Record<string, unknown> = {};
    const holes: Field[] = [];
    for (const [k, val] of Object.entries(withFleet)) {
      const field = FIELDS.find((f) => f === k);
      // a value the record does not have stays as it is (a server-side line without its own SNI)
      if (field && !((field === "sni" || field === "server_name") && val === null)) {
        marked[k] = `@@${field}@@`;
        holes.push(field);
      } else marked[k] = val;
    }
    const parts = JSON.stringify(marked).split(/"@@[a-z_]+@@"/);
    return { parts, holes, record };
  });
}

const hex = (n: number, width: number): string => n.toString(16).padStart(width, "0");

/** Writes hosts/host-NNNN/runtime.jsonl under `dir`; returns the paths. */
export async function writeFleet(dir: string, shape: FleetShape): Promise<string[]> {
  const tpl = templates(shape.records ?? DEMO_RECORDS);
  const base = Date.parse("2026-11-01T00:00:00Z");
  const paths: string[] = [];
  for (let h = 0; h < shape.hosts; h++) {
    const host = `host-${String(h).padStart(4, "0")}`;
    const machine = hex(h * 2654435761, 32);
    const pod = `${hex(h, 8)}-0000-4000-8000-${hex(h * 7, 12)}`;
    const container = hex(h * 40503 + 1, 64);
    const names = [0, 1, 2, 3].map((k) => `svc-${(h * 3 + k) % 24}.fleet.example`);
    const file = join(dir, "hosts", host, "runtime.jsonl");
    mkdirSync(join(dir, "hosts", host), { recursive: true });
    const writer = Bun.file(file).writer({ highWaterMark: 1 << 20 });
    let chunk = "";
    for (let i = 0; i < shape.perHost; i++) {
      const t = tpl[i % tpl.length]!;
      const round = Math.floor(i / tpl.length);
      const inContainer = (i % tpl.length) % 3 === 0;
      const time = new Date(base + h * 60_000 + i * 5).toISOString().replace("Z", "123Z");
      const name = names[(i + round) % 2 === 0 ? (i % tpl.length) % 4 : ((i % tpl.length) + 1) % 4]!;
      const value = (f: Field): unknown => {
        switch (f) {
          case "pid":
          case "tid":
            return t.record[f] === null
              ? null
              : 1000 + ((Number(t.record[f]) + Math.floor(round / 50)) % 30000);
          case "time":
            return time;
          case "sni":
          case "server_name":
            return name;
          case "local_port":
          case "remote_port":
            return t.record[f] === null ? null : 1024 + ((i * 7 + h) % 60000);
          case "raw_hash":
          case "chain":
            return `${hex(h, 8)}${hex(i, 8)}${f === "chain" ? "c".repeat(48) : "a".repeat(48)}`;
          case "host":
            return host;
          case "machine_id":
            return machine;
          case "cgroup":
            return inContainer
              ? `/kubepods.slice/kubepods-pod${pod.replaceAll("-", "_")}.slice/cri-containerd-${container}.scope`
              : "/system.slice/carnot-fleet.service";
          case "container_id":
            return inContainer ? container : null;
          case "pod_uid":
            return inContainer ? pod : null;
        }
      };
      let line = t.parts[0]!;
      for (let k = 0; k < t.holes.length; k++) line += JSON.stringify(value(t.holes[k]!)) + t.parts[k + 1]!;
      chunk += `${line}\n`;
      if (chunk.length > 1 << 20) {
        writer.write(chunk);
        chunk = "";
      }
    }
    writer.write(chunk);
    await writer.end();
    paths.push(file);
  }
  return paths;
}
