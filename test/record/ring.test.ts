/**
 * What `carnot record`'s kernel side puts in the ring buffer: each event in the room it needs (the header, then
 * its data part only up to the last field it uses), so a burst of calls fits the ring. Needs root and
 * bpf/record.bpf.o (make bpf).
 */
import { describe, expect, test } from "bun:test";
import { callName } from "../../src/record/calls.ts";
import { RecordCapture } from "../../src/record/capture.ts";
import {
  RECORD_DATA_LAYOUT,
  RECORD_HEADER_SIZE,
  RecordDecoder,
  RecordEvent,
  RecordKind,
} from "../../src/record/events.ts";

const OBJECT = new URL("../../bpf/record.bpf.o", import.meta.url).pathname;
const runnable = process.geteuid?.() === 0 && (await Bun.file(OBJECT).exists());
if (!runnable) console.warn("skip record ring: needs root and bpf/record.bpf.o (make bpf)");

interface Seen {
  kind: number;
  call: string;
  length: number;
  path: string | null;
}

/** Every event of one run of `argv`, with the length the ring gave it. */
async function eventsOf(argv: string[]): Promise<Seen[]> {
  const capture = RecordCapture.open(1 << 22);
  try {
    const child = capture.spawnFollowed(() => Bun.spawn(argv, { stdout: "ignore", stderr: "ignore" }));
    await child.exited;
    const reader = capture.reader;
    const decoder = new RecordDecoder(reader.dataBuffer, reader.dataOffset, 2 * reader.size);
    const ev = new RecordEvent();
    const seen: Seen[] = [];
    reader.drain((offset, length) => {
      if (decoder.decode(offset, length, ev) === null) throw new Error(`event at ${offset} refused`);
      const str0 = ev.str0;
      seen.push({
        kind: ev.kind,
        call: callName(ev.nr),
        length,
        path: str0 === null ? null : new TextDecoder().decode(str0),
      });
    });
    expect(capture.stats().dropped).toBe(0);
    return seen;
  } finally {
    capture.close();
  }
}

describe.skipIf(!runnable)("carnot record's ring buffer", () => {
  test("a path entry takes the header, the lengths and the path; an exit without data the header alone", async () => {
    const path = "/etc/hostname";
    const events = await eventsOf(["/usr/bin/cat", path]);
    const open = events.find((e) => e.kind === RecordKind.Enter && e.call === "openat" && e.path === path);
    // 8 bytes of lengths, then the path and its NUL: not the whole 904-byte data part
    expect(open?.length).toBe(RECORD_HEADER_SIZE + RECORD_DATA_LAYOUT.str0[0] + path.length + 1);
    const exits = events.filter((e) => e.kind === RecordKind.Exit && e.call === "close");
    expect(exits.length).toBeGreaterThan(0);
    for (const e of exits) expect(e.length).toBe(RECORD_HEADER_SIZE);
    // a stat's result: the data part up to the end of its 32 bytes in the blob
    const fstat = events.find((e) => e.kind === RecordKind.Exit && e.call === "newfstatat");
    expect(fstat?.length).toBe(RECORD_HEADER_SIZE + RECORD_DATA_LAYOUT.blob[0] + 32);
  });
});
