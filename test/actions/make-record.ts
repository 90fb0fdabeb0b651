import type { EnrichedRecord } from "../../src/consumers/enriched-reader.ts";

/** A hand-made EnhancedEvent: the Must fields plus whatever the test sets; the rest null. */
export function makeRecord(fields: Partial<EnrichedRecord> & { call: string }): EnrichedRecord {
  return {
    ts: 0,
    pid: 100,
    tid: fields.pid ?? 100,
    ppid: null,
    args: [null, null, null, null, null, null],
    retval: 0,
    errno: null,
    raw_line: `${fields.call}(...) = ${fields.retval ?? 0}`,
    exe_path: "/usr/bin/app",
    cwd: "/",
    fd: null,
    abs_path: null,
    resource_type: null,
    operation: null,
    perm_bits: null,
    byte_count: null,
    net: null,
    risk_tags: [],
    high_level_kind: null,
    ...fields,
  };
}

/** Numbers records as lines 1..n, as the reader would. */
export function numbered(records: EnrichedRecord[]): Array<{ line: number; record: EnrichedRecord }> {
  return records.map((record, i) => ({ line: i + 1, record }));
}

/** Writes records as JSONL to a temporary file and returns its path. */
export async function writeJsonl(dir: string, name: string, records: EnrichedRecord[]): Promise<string> {
  const path = `${dir}/${name}`;
  await Bun.write(path, `${records.map((r) => JSON.stringify(r)).join("\n")}\n`);
  return path;
}
