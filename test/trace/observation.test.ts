import { describe, expect, test } from "bun:test";
import * as v from "valibot";
import type { CorrelatedHandshake } from "../../src/trace/libssl/correlate.ts";
import { indexGroups } from "../../src/trace/groups.ts";
import { canonicalJson } from "../../src/chain/canonical.ts";
import {
  canonicalObservation,
  formatKtime,
  type ObservationContext,
  ObservationSchema,
} from "../../src/trace/observation.ts";
import { buildObservation as build, resolveKex } from "../../src/trace/record.ts";
import { cgroupFacts } from "../../src/trace/attribution/cgroups.ts";
import type { WireObservation } from "../../src/trace/wire/source.ts";

/** The record of a handshake libssl alone saw. */
const buildObservation = (h: CorrelatedHandshake, c: ObservationContext) =>
  build({ libssl: h, wire: null }, c);

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
  "observed_by",
  "local_addr",
  "local_port",
  "remote_addr",
  "remote_port",
  "server_name",
  "server_groups",
  "key_shares_offered",
  "hello_retry",
  "alpn",
  "ja4",
  "resumed",
  "host",
  "machine_id",
  "cgroup",
  "container_id",
  "pod_uid",
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
  kex: null,
  implicit: false,
  cgroupId: null,
};

const CIPHERS = { "4866": "TLS_AES_256_GCM_SHA384", "4865": "TLS_AES_128_GCM_SHA256" };

const CONTAINER = "4f1d8c0a9b7e6d5c4b3a29181716151413121110f0e0d0c0b0a0908070605040";
const POD_SLICE = "kubepods-burstable-pod1d2c3b4a_5e6f_4a7b_8c9d_0e1f2a3b4c5d.slice";
/** cgroup ids the context resolves: a container in a pod, a plain service; others resolve to nothing */
const CGROUPS = new Map([
  [
    4711,
    cgroupFacts(`/kubepods.slice/kubepods-burstable.slice/${POD_SLICE}/cri-containerd-${CONTAINER}.scope`),
  ],
  [4712, cgroupFacts("/system.slice/nginx.service")],
]);
const NO_CGROUP = { path: null, containerId: null, podUid: null };

const ctx: ObservationContext = {
  library: (id) => ({
    label: id === 0 ? "/usr/lib/x86_64-linux-gnu/libssl.so.3 (OpenSSL 3.0.17)" : "?",
    ciphers: CIPHERS,
    defaultGroups: ["X25519", "secp256r1"],
  }),
  exe: (pid) => (pid === 1234 ? "/usr/bin/curl" : null),
  cgroup: (id) => CGROUPS.get(id) ?? NO_CGROUP,
  host: "node-7",
  machineId: "3d1219c7c4c5404aaa1f6d2a48adfda4",
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

  test("key-exchange facts, when known, fill the negotiated group, its class, version and cipher", () => {
    const kex = { version: 0x304, cipherId: 0x03001302, group: 4588, group13: 4588 };
    const rec = buildObservation({ ...hs, kex }, ctx);
    expect(rec).toMatchObject({
      negotiated_group: "X25519MLKEM768",
      negotiated_group_id: 4588,
      kex_class: "hybrid-pq",
      tls_version: "TLSv1.3",
      cipher: "TLS_AES_256_GCM_SHA384",
    });
  });

  test("facts that do not check out stay null, each with a problem said", () => {
    const lib = ctx.library(0);
    const groups = ctx.groupIndex;
    // TLS 1.3 where the SSL object's group disagrees with the session's (a resumed session): no group
    const disagree = resolveKex(
      { version: 0x304, cipherId: 0x03001302, group: 29, group13: 24 },
      lib,
      groups,
    );
    expect(disagree).toMatchObject({ negotiatedGroup: null, negotiatedGroupId: null, tlsVersion: "TLSv1.3" });
    expect(disagree.problems).toHaveLength(1);
    // a cipher id the library did not name, an unknown version, an unknown group code point
    const odd = resolveKex(
      { version: 0x7f1c, cipherId: 0x0300abcd, group: 0x7777, group13: null },
      lib,
      groups,
    );
    expect(odd).toMatchObject({ tlsVersion: null, cipher: null, negotiatedGroup: null, kexClass: null });
    expect(odd.problems).toHaveLength(3);
    // TLS 1.2 keeps the group in the session only: no cross-check, no problem
    const tls12 = resolveKex({ version: 0x303, cipherId: 0x0300c02b, group: 23, group13: 0 }, lib, groups);
    expect(tls12).toMatchObject({ negotiatedGroup: "secp256r1", tlsVersion: "TLSv1.2", cipher: null });
    // no facts at all (an unverified library): everything null, nothing to warn about
    expect(resolveKex(null, lib, groups)).toMatchObject({ negotiatedGroup: null, problems: [] });
  });

  test("no groups set by the application: the library's default list, marked library-default", () => {
    const rec = buildObservation({ ...hs, groups: null, groupsSource: null }, ctx);
    expect(rec).toMatchObject({ groups_offered: ["X25519", "secp256r1"], groups_source: "library-default" });
    const seen = buildObservation({ ...hs, groupsSource: "connection" }, ctx);
    expect(rec.confidence).toBeLessThan(seen.confidence);
  });

  test("a given-up handshake without groups: empty list, null source, lower confidence", () => {
    const rec = buildObservation(
      { ...hs, groups: null, groupsSource: null, success: false, error: "incomplete", startNs: null },
      { ...ctx, library: (id: number) => ({ ...ctx.library(id), defaultGroups: null }) },
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
    // across a second, back and forth (one second's text is reused)
    expect(formatKtime(1_999_999_000, 0)).toBe("1970-01-01T00:00:01.999999Z");
    expect(formatKtime(2_000_000_000, 0)).toBe("1970-01-01T00:00:02.000000Z");
    expect(formatKtime(1_000_001_000, 0)).toBe("1970-01-01T00:00:01.000001Z");
    expect(formatKtime(0, Date.UTC(2026, 10, 21, 23, 59, 59) * 1000 + 999_999)).toBe(
      "2026-11-21T23:59:59.999999Z",
    );
  });

  test("the schema rejects an extra key and a malformed time", () => {
    const rec = buildObservation(hs, ctx);
    expect(v.safeParse(ObservationSchema, { ...rec, extra: 1 }).success).toBe(false);
    expect(v.safeParse(ObservationSchema, { ...rec, time: "2025-08-30T12:00:00Z" }).success).toBe(false);
  });

  test("every record says the host, and the process's cgroup with the container and pod its path names", () => {
    expect(buildObservation({ ...hs, cgroupId: 4711 }, ctx)).toMatchObject({
      host: "node-7",
      machine_id: "3d1219c7c4c5404aaa1f6d2a48adfda4",
      cgroup: `/kubepods.slice/kubepods-burstable.slice/${POD_SLICE}/cri-containerd-${CONTAINER}.scope`,
      container_id: CONTAINER,
      pod_uid: "1d2c3b4a-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
    });
    expect(buildObservation({ ...hs, cgroupId: 4712 }, ctx)).toMatchObject({
      cgroup: "/system.slice/nginx.service",
      container_id: null,
      pod_uid: null,
    });
    // the cgroup is gone (or never known): all three null, the host still said
    for (const cgroupId of [4713, null]) {
      expect(buildObservation({ ...hs, cgroupId }, { ...ctx, host: null, machineId: null })).toMatchObject({
        host: null,
        machine_id: null,
        cgroup: null,
        container_id: null,
        pod_uid: null,
      });
    }
  });

  test("both sources saw it: the cgroup one of them knows; null when the process moved between them", () => {
    const seen = (libsslCgroup: number | null, wireCgroup: number) =>
      build({ libssl: { ...hs, cgroupId: libsslCgroup }, wire: wireSeen(wireCgroup) }, ctx).cgroup;
    expect(seen(4711, 4711)).toContain(CONTAINER);
    expect(seen(null, 4712)).toBe("/system.slice/nginx.service");
    expect(seen(4711, 0)).toContain(CONTAINER);
    expect(seen(4711, 4712)).toBeNull();
    // the wire alone: its owner's cgroup
    expect(build({ libssl: null, wire: wireSeen(4712) }, ctx).cgroup).toBe("/system.slice/nginx.service");
    expect(build({ libssl: null, wire: { ...wireSeen(4712), owner: null } }, ctx).cgroup).toBeNull();
  });

  test("the fast canonical text is canonicalJson's, for every key of the schema and any values", () => {
    const kex = { version: 0x304, cipherId: 0x03001302, group: 4588, group13: 4588 };
    const records = [
      buildObservation(hs, ctx),
      buildObservation({ ...hs, kex, sni: 'quote " back\\ slash ü \u2028 \u0001', comm: "ngïnx" }, ctx),
      buildObservation(
        { ...hs, sni: null, groups: null, startNs: null, success: false, error: "timeout" },
        ctx,
      ),
      buildObservation({ ...hs, pid: 99, role: null, groups: [] }, ctx),
      buildObservation({ ...hs, cgroupId: 4711 }, ctx),
    ];
    for (const rec of records) {
      const fast = canonicalObservation(rec);
      expect(fast).toBe(canonicalJson(rec, ["raw_hash", "chain"]));
      // every published key is in it (a key added to the schema but not to the fast path fails here)
      expect(Object.keys(JSON.parse(fast))).toEqual(Object.keys(ObservationSchema.entries).sort());
      // what the chained writer adds is not covered
      expect(canonicalObservation({ ...rec, raw_hash: "x", chain: "y" } as typeof rec)).toBe(fast);
    }
  });
});

/** What the wire saw of `hs`'s connection, its owner in cgroup `cgroupId` (0: not known). */
function wireSeen(cgroupId: number): WireObservation {
  const client = {
    serverName: "api.example.org",
    groupsOffered: ["X25519"],
    keySharesOffered: ["X25519"],
    versionsOffered: ["TLSv1.3"],
    ciphersOffered: ["TLS_AES_256_GCM_SHA384"],
    alpnOffered: [],
    ja4: "t13d0101h2_000000000000_000000000000",
    earlyData: false,
    pskOffered: false,
    grease: false,
  };
  return {
    cookie: 1,
    link: { pid: hs.pid, ssl: hs.ssl, strong: true },
    role: "client",
    serverName: client.serverName,
    version: null,
    cipher: null,
    group: null,
    endNs: hs.endNs,
    handshake: {
      role: "client",
      client,
      server: null,
      success: null,
      error: "unconfirmed",
      problem: null,
      protectedRecords: [0, 0],
    },
    owner: { pid: hs.pid, tid: hs.tid, comm: "curl", cgroupId },
    localAddr: "127.0.0.1",
    localPort: 40000,
    remoteAddr: "127.0.0.1",
    remotePort: 443,
    startNs: hs.startNs ?? 0,
  };
}
