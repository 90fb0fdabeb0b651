import { describe, expect, test } from "bun:test";
import * as v from "valibot";
import type { CorrelatedHandshake } from "../../src/trace/correlate.ts";
import { indexGroups } from "../../src/trace/groups.ts";
import {
  buildObservation,
  formatKtime,
  type ObservationContext,
  ObservationSchema,
} from "../../src/trace/observation.ts";

const SPEC_KEYS = [
  "source",
  "asset_id",
  "owner",
  "data_class",
  "secrecy_lifetime_years",
  "exposure",
  "sni",
  "groups_offered",
  "handshake_success",
  "pid",
  "tid",
  "ssl_ptr",
  "time",
  "confidence",
  "role",
  "negotiated_group",
  "negotiated_group_id",
  "kex_class",
  "tls_version",
  "cipher",
  "groups_source",
  "comm",
  "exe",
  "library",
  "duration_us",
  "error",
];

const hs: CorrelatedHandshake = {
  pid: 1234,
  tid: 5678,
  ssl: 0x5599ca9c6b10,
  libId: 0,
  comm: "curl",
  role: "client",
  sni: "api.example.org",
  groups: ["X25519", "secp256r1"],
  groupsSource: "context",
  success: true,
  error: null,
  startNs: 1_000_000_000,
  endNs: 1_001_830_500,
};

const ctx: ObservationContext = {
  library: (id) => (id === 0 ? "/usr/lib/x86_64-linux-gnu/libssl.so.3 (OpenSSL 3.0.17)" : "?"),
  exe: (pid) => (pid === 1234 ? "/usr/bin/curl" : null),
  // wall clock 2025-08-30T12:00:00Z at ktime 1 s
  clockOffsetUs: Date.UTC(2025, 7, 30, 12, 0, 0) * 1000 - 1_000_000,
  groupIndex: indexGroups(),
};

describe("observation records", () => {
  test("keys in the published order, values from the handshake, valid against the schema", () => {
    const rec = buildObservation(hs, ctx);
    expect(Object.keys(rec)).toEqual(SPEC_KEYS);
    expect(v.safeParse(ObservationSchema, rec).success).toBe(true);
    expect(rec).toMatchObject({
      source: "runtime.ebpf",
      sni: "api.example.org",
      groups_offered: ["X25519", "secp256r1"],
      ssl_ptr: "0x5599ca9c6b10",
      time: "2025-08-30T12:00:00.001830Z",
      role: "client",
      groups_source: "context",
      exe: "/usr/bin/curl",
      duration_us: 1830,
      negotiated_group: null,
      kex_class: null,
    });
  });

  test("key-exchange facts, when known, fill the negotiated group and its class", () => {
    const rec = buildObservation(hs, ctx, { negotiatedGroupId: 4588, tlsVersion: "TLSv1.3", cipher: null });
    expect(rec).toMatchObject({
      negotiated_group: "X25519MLKEM768",
      negotiated_group_id: 4588,
      kex_class: "hybrid-pq",
    });
  });

  test("a given-up handshake without groups: empty list, null source, lower confidence", () => {
    const rec = buildObservation(
      { ...hs, groups: null, groupsSource: null, success: false, error: "incomplete", startNs: null },
      ctx,
    );
    expect(rec).toMatchObject({
      groups_offered: [],
      groups_source: null,
      duration_us: null,
      error: "incomplete",
    });
    expect(rec.confidence).toBeLessThan(buildObservation(hs, ctx).confidence);
    expect(v.safeParse(ObservationSchema, rec).success).toBe(true);
  });

  test("time keeps microseconds across the millisecond boundary", () => {
    expect(formatKtime(999_999, 0)).toBe("1970-01-01T00:00:00.000999Z");
    expect(formatKtime(1_000_000, 0)).toBe("1970-01-01T00:00:00.001000Z");
  });

  test("the schema rejects an extra key and a malformed time", () => {
    const rec = buildObservation(hs, ctx);
    expect(v.safeParse(ObservationSchema, { ...rec, extra: 1 }).success).toBe(false);
    expect(v.safeParse(ObservationSchema, { ...rec, time: "2025-08-30T12:00:00Z" }).success).toBe(false);
  });
});
