/**
 * bpf/record.h is the one definition of `carnot record`'s kernel→user layout: compile it into a tiny C program
 * that prints offsetof/sizeof of every field and the value of every constant, and compare with
 * src/record/events.ts. Editing one side only fails here.
 */
import { describe, expect, test } from "bun:test";
import {
  DescField,
  decodeRecordEvent,
  descriptor,
  RECORD_ARGV_LEN,
  RECORD_ARGV_MAX,
  RECORD_BLOB_MAX,
  RECORD_CONFIG_LAYOUT,
  RECORD_CONFIG_SIZE,
  RECORD_DATA_LAYOUT,
  RECORD_DATA_SIZE,
  RECORD_EVENT_LAYOUT,
  RECORD_HEADER_SIZE,
  RECORD_NR_MAX,
  RECORD_STAT_COUNT,
  RECORD_STR_MAX,
  RecordFlag,
  RecordKind,
  RecordStat,
  Share,
} from "../../src/record/events.ts";
import { COMPILER, measureHeader, tiles } from "../support/c-layout.ts";

const CONSTANTS: Record<string, [number, string]> = {
  RECORD_HEADER_SIZE: [RECORD_HEADER_SIZE, "sizeof(struct record_event)"],
  RECORD_DATA_SIZE: [RECORD_DATA_SIZE, "sizeof(struct record_data)"],
  RECORD_CONFIG_SIZE: [RECORD_CONFIG_SIZE, "sizeof(struct record_config)"],
  RECORD_NR_MAX: [RECORD_NR_MAX, "RECORD_NR_MAX"],
  RECORD_STR_MAX: [RECORD_STR_MAX, "RECORD_STR_MAX"],
  RECORD_ARGV_MAX: [RECORD_ARGV_MAX, "RECORD_ARGV_MAX"],
  RECORD_ARGV_LEN: [RECORD_ARGV_LEN, "RECORD_ARGV_LEN"],
  RECORD_BLOB_MAX: [RECORD_BLOB_MAX, "RECORD_BLOB_MAX"],
  RECORD_STAT_COUNT: [RECORD_STAT_COUNT, "RECORD_STAT_COUNT"],
  "RecordStat.Attempted": [RecordStat.Attempted, "RECORD_STAT_ATTEMPTED"],
  "RecordStat.Dropped": [RecordStat.Dropped, "RECORD_STAT_DROPPED"],
  "RecordKind.Enter": [RecordKind.Enter, "RECORD_EV_ENTER"],
  "RecordKind.Exit": [RecordKind.Exit, "RECORD_EV_EXIT"],
  "RecordKind.Fork": [RecordKind.Fork, "RECORD_EV_FORK"],
  "RecordKind.Exec": [RecordKind.Exec, "RECORD_EV_EXEC"],
  "RecordKind.Gone": [RecordKind.Gone, "RECORD_EV_GONE"],
  "Share.Thread": [Share.Thread, "RECORD_SHARE_THREAD"],
  "Share.Files": [Share.Files, "RECORD_SHARE_FILES"],
  "Share.Fs": [Share.Fs, "RECORD_SHARE_FS"],
  "Share.Vm": [Share.Vm, "RECORD_SHARE_VM"],
  "RecordFlag.Str0Cut": [RecordFlag.Str0Cut, "RECORD_F_STR0_CUT"],
  "RecordFlag.Str1Cut": [RecordFlag.Str1Cut, "RECORD_F_STR1_CUT"],
  "RecordFlag.ArgvMore": [RecordFlag.ArgvMore, "RECORD_F_ARGV_MORE"],
  "RecordFlag.Str0Fault": [RecordFlag.Str0Fault, "RECORD_F_STR0_FAULT"],
  "RecordFlag.Str1Fault": [RecordFlag.Str1Fault, "RECORD_F_STR1_FAULT"],
  "RecordFlag.BlobFault": [RecordFlag.BlobFault, "RECORD_F_BLOB_FAULT"],
  "RecordFlag.Reread": [RecordFlag.Reread, "RECORD_F_REREAD"],
  "DescField.Str0": [DescField.Str0, "RECORD_D_STR0"],
  "DescField.Str1": [DescField.Str1, "RECORD_D_STR1"],
  "DescField.AddrIn": [DescField.AddrIn, "RECORD_D_ADDR_IN"],
  "DescField.StructIn": [DescField.StructIn, "RECORD_D_STRUCT_IN"],
  "DescField.Argv": [DescField.Argv, "RECORD_D_ARGV"],
  "DescField.AddrOut": [DescField.AddrOut, "RECORD_D_ADDR_OUT"],
  "DescField.FdsOut": [DescField.FdsOut, "RECORD_D_FDS_OUT"],
  "DescField.StrOut": [DescField.StrOut, "RECORD_D_STR_OUT"],
  "DescField.StatOut": [DescField.StatOut, "RECORD_D_STAT_OUT"],
  "descriptor.AddrOut": [descriptor({ AddrOut: 4 }), "(5 << (3 * RECORD_D_ADDR_OUT))"],
};

describe.skipIf(COMPILER === null)("bpf/record.h and src/record/events.ts agree", () => {
  if (COMPILER === null) console.warn("layout test skipped: no C compiler (cc, clang or gcc) on PATH");
  const measured =
    COMPILER === null
      ? new Map<string, number>()
      : measureHeader(
          "record.h",
          {
            record_event: RECORD_EVENT_LAYOUT,
            record_data: RECORD_DATA_LAYOUT,
            record_config: RECORD_CONFIG_LAYOUT,
          },
          Object.fromEntries(Object.entries(CONSTANTS).map(([name, [, cName]]) => [name, cName])),
        );

  test.each([
    ...Object.entries(RECORD_EVENT_LAYOUT).map(([n, span]) => [`record_event.${n}`, span] as const),
    ...Object.entries(RECORD_DATA_LAYOUT).map(([n, span]) => [`record_data.${n}`, span] as const),
    ...Object.entries(RECORD_CONFIG_LAYOUT).map(([n, span]) => [`record_config.${n}`, span] as const),
  ])("%s offset and size", (name, [offset, size]) => {
    expect([measured.get(`${name}@offset`), measured.get(`${name}@size`)]).toEqual([offset, size]);
  });

  test.each(Object.entries(CONSTANTS))("%s", (name, [value]) => {
    expect(measured.get(name)).toBe(value);
  });

  test("the decoder's fields tile each struct exactly", () => {
    expect(tiles(RECORD_EVENT_LAYOUT, RECORD_HEADER_SIZE)).toBe(true);
    expect(tiles(RECORD_DATA_LAYOUT, RECORD_DATA_SIZE)).toBe(true);
    expect(tiles(RECORD_CONFIG_LAYOUT, RECORD_CONFIG_SIZE)).toBe(true);
  });
});

describe("decoder", () => {
  test("a negative return value and a data part that does not fit are read right, or refused", () => {
    const at = RECORD_DATA_LAYOUT.str0[0];
    const bytes = new Uint8Array(RECORD_HEADER_SIZE + at + 4);
    const view = new DataView(bytes.buffer);
    view.setUint16(16, RecordKind.Exit, true);
    view.setBigInt64(24, -2n, true);
    view.setUint32(32, 0xffffff9c, true);
    expect(decodeRecordEvent(bytes, 0, RECORD_HEADER_SIZE)?.ret).toBe(-2);
    view.setUint16(22, at + 4, true);
    // a data part longer than the record is never read
    expect(decodeRecordEvent(bytes, 0, RECORD_HEADER_SIZE)).toBeNull();
    view.setUint16(RECORD_HEADER_SIZE, 4, true);
    bytes.set(new TextEncoder().encode("abc\0"), RECORD_HEADER_SIZE + at);
    const ev = decodeRecordEvent(bytes, 0, bytes.length);
    expect(new TextDecoder().decode(ev?.str0 ?? new Uint8Array())).toBe("abc");
    // the kernel sends a data part up to its last field: a field said to reach past it is refused
    view.setUint16(RECORD_HEADER_SIZE, 5, true);
    expect(decodeRecordEvent(bytes, 0, bytes.length)).toBeNull();
    view.setUint16(RECORD_HEADER_SIZE, 4, true);
    view.setUint16(RECORD_HEADER_SIZE + 4, 8, true);
    expect(decodeRecordEvent(bytes, 0, bytes.length)).toBeNull();
  });

  test("a decoded event reused for the next one keeps nothing of the last", () => {
    const at = RECORD_DATA_LAYOUT.str0[0];
    const withPath = new Uint8Array(RECORD_HEADER_SIZE + at + 4);
    const v1 = new DataView(withPath.buffer);
    v1.setUint16(16, RecordKind.Enter, true);
    v1.setUint16(22, at + 4, true);
    v1.setUint16(RECORD_HEADER_SIZE, 4, true);
    withPath.set(new TextEncoder().encode("abc\0"), RECORD_HEADER_SIZE + at);
    const bare = new Uint8Array(RECORD_HEADER_SIZE);
    const v2 = new DataView(bare.buffer);
    v2.setUint16(16, RecordKind.Exit, true);
    v2.setUint32(32, 7, true);
    const ev = decodeRecordEvent(withPath, 0, withPath.length)!;
    expect(decodeRecordEvent(bare, 0, bare.length, ev)).toBe(ev);
    expect([ev.kind, ev.str0, ev.blob, ev.argLo[0]]).toEqual([RecordKind.Exit, null, null, 7]);
  });
});
