/**
 * "Harvest now, decrypt later" exposure — the one definition carnot uses (Mosca's inequality):
 *
 *   a handshake's traffic is HNDL-exposed when its key exchange is classical and
 *     secrecy_lifetime_years (x) + migration_years (y) > crqc_year − year of the handshake (z).
 *
 * x comes from the observation's context, y and the CRQC year are parameters. A handshake whose data
 * must stay secret past the CRQC year is "long secrecy" whatever its key exchange; hybrid and PQ key
 * exchanges protect it. Only successful handshakes carry data, so only they are counted.
 */
import type { CryptoBomObservation } from "../bom/cryptobom.ts";
import { type BomUnit, observationUnit } from "../bom/units.ts";

export const DEFAULT_CRQC_YEAR = 2035;
export const DEFAULT_CRQC_SOURCE =
  "NIST IR 8547 (initial public draft, Nov 2024), Transition to Post-Quantum Cryptography Standards: " +
  "quantum-vulnerable public-key algorithms are deprecated after 2030 and disallowed after 2035; " +
  "carnot takes 2035 as the year by which a cryptographically relevant quantum computer must be assumed";
export const DEFAULT_MIGRATION_YEARS = 5;
export const HNDL_DEFINITION =
  "Mosca: HNDL-exposed when the key exchange is classical and secrecy_lifetime_years + migration_years > " +
  "crqc_year - year of the handshake; long secrecy when that inequality holds, whatever the key exchange";

export interface HndlParameters {
  readonly crqcYear: number;
  readonly crqcSource: string;
  readonly migrationYears: number;
  /** Year used for observations without a time (static and cloud records). */
  readonly asOfYear: number;
}

export type HndlClass = "hndl_exposed" | "protected" | "classical_short" | "unknown_kex";

export interface HndlVerdict {
  readonly longSecrecy: boolean;
  readonly secrecyKnown: boolean;
  readonly yearsToCrqc: number;
  readonly outcome: HndlClass;
}

const yearOf = (time: string | null, fallback: number): number =>
  time === null ? fallback : Number.parseInt(time.slice(0, 4), 10) || fallback;

/** What the inequality reads of an observation, or of a component (all its handshakes fall in one year). */
export type HndlSubject = Pick<BomUnit, "observation_time" | "secrecy_lifetime_years" | "kex_class">;

/** Mosca's inequality for one observation (or component). */
export function assessHndl(o: HndlSubject, p: HndlParameters): HndlVerdict {
  const yearsToCrqc = p.crqcYear - yearOf(o.observation_time, p.asOfYear);
  const x = o.secrecy_lifetime_years;
  const longSecrecy = x !== null && x + p.migrationYears > yearsToCrqc;
  const outcome: HndlClass =
    o.kex_class === "hybrid-pq" || o.kex_class === "pq"
      ? "protected"
      : o.kex_class === "classical"
        ? longSecrecy
          ? "hndl_exposed"
          : "classical_short"
        : "unknown_kex";
  return { longSecrecy, secrecyKnown: x !== null, yearsToCrqc, outcome };
}

export interface SankeyNode {
  id: string;
  label: string;
  column: number;
  value: number;
}
export interface SankeyLink {
  source: string;
  target: string;
  value: number;
}
export interface Sankey {
  nodes: SankeyNode[];
  links: SankeyLink[];
}

export interface HndlSummary {
  handshakes: number;
  long_secrecy: number;
  other_secrecy: number;
  unknown_secrecy: number;
  hndl_exposed: number;
  protected: number;
  classical_short: number;
  unknown_kex: number;
  exposed_records: string[];
}

/**
 * Counts over successful handshakes and the Sankey drawn from exactly those counts. A component (a fleet
 * document's unit) adds its successful handshakes at once; `exposed_records` names it.
 */
export function summariseHndl(
  items: readonly (CryptoBomObservation | BomUnit)[],
  p: HndlParameters,
): { summary: HndlSummary; sankey: Sankey } {
  const s: HndlSummary = {
    handshakes: 0,
    long_secrecy: 0,
    other_secrecy: 0,
    unknown_secrecy: 0,
    hndl_exposed: 0,
    protected: 0,
    classical_short: 0,
    unknown_kex: 0,
    exposed_records: [],
  };
  const flows = new Map<string, number>();
  for (const item of items) {
    const o = "count" in item ? item : observationUnit(item);
    const n = o.success_count;
    if (n === 0) continue;
    const verdict = assessHndl(o, p);
    s.handshakes += n;
    if (verdict.longSecrecy) s.long_secrecy += n;
    else s.other_secrecy += n;
    if (!verdict.secrecyKnown) s.unknown_secrecy += n;
    s[verdict.outcome] += n;
    if (verdict.outcome === "hndl_exposed") s.exposed_records.push(o.bom_ref);
    const middle = verdict.longSecrecy ? "long_secrecy" : "other_secrecy";
    const key = `${middle}>${verdict.outcome}`;
    flows.set(key, (flows.get(key) ?? 0) + n);
  }
  const nodes: SankeyNode[] = [
    { id: "handshakes", label: "Successful handshakes", column: 0, value: s.handshakes },
    { id: "long_secrecy", label: "Long secrecy (outlives the CRQC year)", column: 1, value: s.long_secrecy },
    { id: "other_secrecy", label: "Other (short or unknown secrecy)", column: 1, value: s.other_secrecy },
    { id: "hndl_exposed", label: "HNDL-exposed (classical)", column: 2, value: s.hndl_exposed },
    { id: "protected", label: "Hybrid / PQ key exchange", column: 2, value: s.protected },
    { id: "classical_short", label: "Classical, not exposed", column: 2, value: s.classical_short },
    { id: "unknown_kex", label: "Unknown key exchange", column: 2, value: s.unknown_kex },
  ].filter((n) => n.value > 0);
  const links: SankeyLink[] = [];
  if (s.long_secrecy) links.push({ source: "handshakes", target: "long_secrecy", value: s.long_secrecy });
  if (s.other_secrecy) links.push({ source: "handshakes", target: "other_secrecy", value: s.other_secrecy });
  for (const middle of ["long_secrecy", "other_secrecy"]) {
    for (const outcome of ["hndl_exposed", "protected", "classical_short", "unknown_kex"]) {
      const value = flows.get(`${middle}>${outcome}`) ?? 0;
      if (value) links.push({ source: middle, target: outcome, value });
    }
  }
  return { summary: s, sankey: { nodes, links } };
}
