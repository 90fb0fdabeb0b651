/**
 * Cipher suite names as the IANA registry spells them, from the system OpenSSL's own table
 * (`openssl ciphers -V -stdname`): by code point (what the wire carries) and by OpenSSL's name.
 */
export interface CipherSuiteNames {
  /** IANA code point → IANA name */
  byCode: ReadonlyMap<number, string>;
  /** OpenSSL name (ECDHE-RSA-AES128-GCM-SHA256) → IANA name */
  byOpenSslName: ReadonlyMap<string, string>;
}

export function cipherSuiteNames(): CipherSuiteNames {
  const out = Bun.spawnSync(["openssl", "ciphers", "-V", "-stdname", "ALL:COMPLEMENTOFALL:@SECLEVEL=0"], {
    stdout: "pipe",
    stderr: "pipe",
  }).stdout.toString();
  const byCode = new Map<number, string>();
  const byOpenSslName = new Map<string, string>();
  for (const line of out.split("\n")) {
    const m = /^0x([0-9A-F]{2}),0x([0-9A-F]{2}) - (\S+)\s+- (\S+)/i.exec(line.trim());
    if (!m) continue;
    byCode.set(Number.parseInt(m[1]! + m[2]!, 16), m[3]!);
    byOpenSslName.set(m[4]!, m[3]!);
  }
  if (byCode.size === 0) throw new Error("openssl ciphers -V -stdname listed no cipher suite");
  return { byCode, byOpenSslName };
}

/** The IANA name of a cipher suite code point, or its code as 0x1302 when the table does not know it. */
export function cipherSuiteName(names: CipherSuiteNames, code: number): string {
  return names.byCode.get(code) ?? `0x${code.toString(16).padStart(4, "0")}`;
}
