/**
 * What the tracer's thread and the exporter's thread (src/export/nats-worker.ts) say to each other; kept apart
 * so the tracer does not load the NATS client.
 */
import type { NatsTarget } from "./nats-url.ts";

/** Indexes in the shared counters. */
export const COUNTER = {
  published: 0,
  failures: 1,
  disconnects: 2,
  readBytes: 3,
  connected: 4,
} as const;
export const COUNTERS = 5;

export interface ExportWorkerInput {
  target: NatsTarget;
  /** Float64Array over it: the counters above */
  counters: SharedArrayBuffer;
}

export type ToExporter =
  | { kind: "file"; sequence: number; fd: number }
  | { kind: "written"; sequence: number; bytes: number; final: boolean }
  | { kind: "finish"; graceMs: number };

export type FromExporter =
  | { kind: "warning"; text: string }
  | { kind: "note"; text: string }
  /** at the end: the first record not acknowledged (its file's sequence and line, from 1), or null */
  | { kind: "done"; pending: { sequence: number; line: number } | null };
