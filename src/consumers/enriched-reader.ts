import { CarnotError } from "../errors.ts";

/**
 * The fields of an EnhancedEvent (docs: /work/shared/specs/enhanced-event.md) that the
 * consumers read. Unknown keys are ignored; every optional field may be null or absent.
 */
export interface EnrichedRecord {
  ts: number;
  pid: number;
  call: string;
  args: Array<number | null>;
  retval: number | null;
  raw_line: string;
  tid?: number | null;
  ppid?: number | null;
  errno?: string | null;
  exe_path?: string | null;
  cwd?: string | null;
  fd?: number | null;
  abs_path?: string | null;
  resource_type?: string | null;
  operation?: string | null;
  perm_bits?: number | null;
  byte_count?: number | null;
  net?: NetEndpoint | null;
  latency_us?: number | null;
  risk_tags?: string[] | null;
  high_level_kind?: string | null;
}

export interface NetEndpoint {
  family?: string | null;
  protocol?: string | null;
  local_addr?: string | null;
  local_port?: number | null;
  remote_addr?: string | null;
  remote_port?: number | null;
}

/** Why a parsed JSON value is not an EnhancedEvent, or null when it is one. */
export function recordProblem(value: unknown): string | null {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "not a JSON object";
  const r = value as Record<string, unknown>;
  if (!Number.isInteger(r.ts)) return r.ts === undefined ? 'missing key "ts"' : '"ts" is not an integer';
  if (!Number.isInteger(r.pid)) return r.pid === undefined ? 'missing key "pid"' : '"pid" is not an integer';
  if (typeof r.call !== "string" || r.call === "")
    return r.call === undefined ? 'missing key "call"' : '"call" is not a syscall name';
  if (!Array.isArray(r.args)) return r.args === undefined ? 'missing key "args"' : '"args" is not an array';
  if (r.retval !== null && !Number.isInteger(r.retval))
    return r.retval === undefined ? 'missing key "retval"' : '"retval" is not an integer or null';
  if (typeof r.raw_line !== "string")
    return r.raw_line === undefined ? 'missing key "raw_line"' : '"raw_line" is not a string';
  return null;
}

/** Parses one JSONL line; throws a one-line CarnotError naming the file and line. */
export function parseEnrichedLine(text: string, file: string, line: number): EnrichedRecord {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new CarnotError(`${file}:${line}: not JSON (is this an enriched.jsonl from \`carnot replay\`?)`);
  }
  const problem = recordProblem(value);
  if (problem) throw new CarnotError(`${file}:${line}: not an enriched record: ${problem}`);
  return value as EnrichedRecord;
}

/** The input as a stream of byte chunks: a file path, or "-" for stdin. */
async function openInput(file: string): Promise<ReadableStream<Uint8Array>> {
  if (file === "-") return Bun.stdin.stream();
  const handle = Bun.file(file);
  if (!(await handle.exists())) throw new CarnotError(`${file}: no such file`, { exitCode: 2 });
  return handle.stream();
}

/**
 * Streams the records of an enriched.jsonl to `onRecord`, one at a time, with flat memory:
 * only the current chunk and one partial line are held. A callback rather than an async
 * iterator, because a promise per record costs more than parsing it. Blank lines are
 * skipped; anything else that is not an EnhancedEvent stops the stream with a one-line
 * error naming file:line. Returns the number of records.
 */
export async function forEachEnrichedRecord(
  file: string,
  onRecord: (record: EnrichedRecord, line: number) => void,
): Promise<number> {
  const stream = await openInput(file);
  const decoder = new TextDecoder();
  let carry = "";
  let line = 0;
  let records = 0;
  for await (const chunk of stream) {
    const text = carry + decoder.decode(chunk, { stream: true });
    let start = 0;
    let newline = text.indexOf("\n", start);
    while (newline !== -1) {
      line++;
      if (newline > start) {
        onRecord(parseEnrichedLine(text.slice(start, newline), file, line), line);
        records++;
      }
      start = newline + 1;
      newline = text.indexOf("\n", start);
    }
    carry = text.slice(start);
  }
  carry += decoder.decode();
  if (carry.trim() !== "") {
    line++;
    onRecord(parseEnrichedLine(carry, file, line), line);
    records++;
  }
  return records;
}
