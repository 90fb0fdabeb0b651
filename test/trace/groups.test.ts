import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { canonicalGroupList, canonicalGroupNids, GROUPS, indexGroups } from "../../src/trace/groups.ts";

const index = indexGroups();

describe("groups table", () => {
  test("OpenSSL spellings become canonical IANA names, in order, without duplicates", () => {
    expect(canonicalGroupList("x25519:P-256:prime256v1:secp384r1", index)).toEqual([
      "X25519",
      "secp256r1",
      "secp384r1",
    ]);
    expect(canonicalGroupList("?X25519MLKEM768:*x25519/P-521:-X448:DEFAULT", index)).toEqual([
      "X25519MLKEM768",
      "X25519",
      "secp521r1",
    ]);
    expect(canonicalGroupList("NoSuchGroup", index)).toEqual(["NoSuchGroup"]);
  });

  test("NIDs become canonical names; an unknown NID stays visible", () => {
    expect(canonicalGroupNids([1034, 415, 716, 1126, 99999], index)).toEqual([
      "X25519",
      "secp256r1",
      "secp521r1",
      "ffdhe2048",
      "NID_99999",
    ]);
  });

  test("names, code points and NIDs are unique", () => {
    const unique = (xs: unknown[]) => new Set(xs).size === xs.length;
    expect(unique(GROUPS.map((g) => g.codePoint))).toBe(true);
    expect(unique(GROUPS.flatMap((g) => [g.name, ...g.aliases].map((n) => n.toLowerCase())))).toBe(true);
    expect(unique(GROUPS.filter((g) => g.nid !== null).map((g) => g.nid))).toBe(true);
    expect(index.byCodePoint.get(4588)?.kexClass).toBe("hybrid-pq");
  });

  // The NIDs are copied from obj_mac.h; compile against the installed header so a wrong one fails here.
  test("every NID matches the installed OpenSSL headers", () => {
    const withNid = GROUPS.filter((g) => g.nid !== null);
    const headerName = (g: (typeof GROUPS)[number]) =>
      g.name === "secp256r1"
        ? "NID_X9_62_prime256v1"
        : g.name === "secp192r1"
          ? "NID_X9_62_prime192v1"
          : `NID_${g.name}`;
    const dir = mkdtempSync(join(tmpdir(), "carnot-nid-"));
    try {
      const src = join(dir, "nids.c");
      const lines = withNid.map((g) => `  printf("%s %d\\n", "${g.name}", ${headerName(g)});`);
      writeFileSync(
        src,
        `#include <stdio.h>\n#include <openssl/obj_mac.h>\nint main(void) {\n${lines.join("\n")}\n  return 0;\n}\n`,
      );
      const cc = Bun.spawnSync(["cc", "-o", join(dir, "nids"), src], { stderr: "pipe" });
      if (cc.exitCode !== 0) throw new Error(`cc failed: ${cc.stderr.toString()}`);
      const out = Bun.spawnSync([join(dir, "nids")])
        .stdout.toString()
        .trim()
        .split("\n");
      expect(out).toEqual(withNid.map((g) => `${g.name} ${g.nid}`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("kex_class of the post-quantum groups", () => {
  test("ML-KEM alone is pq; the ECDHE-MLKEM hybrids and the Kyber drafts are hybrid-pq; the rest classical", () => {
    const index = indexGroups();
    const cls = (code: number) => [index.byCodePoint.get(code)?.name, index.byCodePoint.get(code)?.kexClass];
    expect([0x0200, 0x0201, 0x0202].map(cls)).toEqual([
      ["MLKEM512", "pq"],
      ["MLKEM768", "pq"],
      ["MLKEM1024", "pq"],
    ]);
    expect([0x11eb, 0x11ec, 0x11ed, 0x6399, 0x639a].map(cls)).toEqual([
      ["SecP256r1MLKEM768", "hybrid-pq"],
      ["X25519MLKEM768", "hybrid-pq"],
      ["SecP384r1MLKEM1024", "hybrid-pq"],
      ["X25519Kyber768Draft00", "hybrid-pq"],
      ["SecP256r1Kyber768Draft00", "hybrid-pq"],
    ]);
    const pq = new Set([0x0200, 0x0201, 0x0202, 0x11eb, 0x11ec, 0x11ed, 0x6399, 0x639a]);
    for (const g of GROUPS)
      if (!pq.has(g.codePoint)) expect([g.name, g.kexClass]).toEqual([g.name, "classical"]);
  });
});
