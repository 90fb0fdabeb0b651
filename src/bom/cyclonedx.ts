/**
 * CryptoBOM → CycloneDX 1.6 CBOM: `cryptographic-asset` components (a TLS protocol asset per version,
 * algorithm assets for key exchange, ciphers and hashes), the observing processes as `application`
 * components that depend on them, and the runtime facts as `carnot:` properties. Pure and deterministic.
 */
import { createHash } from "node:crypto";
import { VERSION } from "../version.ts";
import {
  type AlgorithmFacts,
  cipherSuiteFacts,
  type GroupIndex,
  groupFacts,
  indexGroups,
} from "./algorithms.ts";
import type { CryptoBom } from "./cryptobom.ts";
import { type BomUnit, bomUnits } from "./units.ts";

interface Property {
  name: string;
  value: string;
}

interface CdxComponent {
  type: "application" | "cryptographic-asset";
  "bom-ref": string;
  name: string;
  version?: string;
  description?: string;
  cryptoProperties?: Record<string, unknown>;
  properties?: Property[];
}

export interface CycloneDxBom {
  $schema: string;
  bomFormat: "CycloneDX";
  specVersion: "1.6";
  serialNumber: string;
  version: number;
  metadata: Record<string, unknown>;
  components: CdxComponent[];
  dependencies: { ref: string; dependsOn: string[] }[];
}

const algorithmRef = (name: string): string => `crypto/algorithm/${name}`;
const protocolRef = (version: string): string => `crypto/protocol/tls@${version}`;
const processRef = (name: string): string => `process/${name}`;
const UNKNOWN_PROCESS = "(unknown process)";

/** `TLSv1.3` → `1.3`; other spellings are kept as they are. */
const protocolVersion = (tls: string): string => tls.replace(/^TLSv/i, "");

function algorithmComponent(
  a: AlgorithmFacts | { name: string; unknown: true },
  props: Property[],
): CdxComponent {
  if ("unknown" in a) {
    return {
      type: "cryptographic-asset",
      "bom-ref": algorithmRef(a.name),
      name: a.name,
      cryptoProperties: { assetType: "algorithm", algorithmProperties: { primitive: "unknown" } },
      properties: props,
    };
  }
  const algorithmProperties: Record<string, unknown> = { primitive: a.primitive };
  if (a.parameterSetIdentifier !== null)
    algorithmProperties.parameterSetIdentifier = a.parameterSetIdentifier;
  if (a.curve !== null) algorithmProperties.curve = a.curve;
  if (a.mode !== null) algorithmProperties.mode = a.mode;
  algorithmProperties.cryptoFunctions = [...a.cryptoFunctions];
  if (a.classicalSecurityLevel !== null)
    algorithmProperties.classicalSecurityLevel = a.classicalSecurityLevel;
  algorithmProperties.nistQuantumSecurityLevel = a.nistQuantumSecurityLevel;
  const cryptoProperties: Record<string, unknown> = { assetType: "algorithm", algorithmProperties };
  if (a.oid !== null) cryptoProperties.oid = a.oid;
  return {
    type: "cryptographic-asset",
    "bom-ref": algorithmRef(a.name),
    name: a.name,
    cryptoProperties,
    properties: props,
  };
}

/** A name=count list in a stable order, for properties. */
function countedValues(counts: Map<string, number>): string[] {
  return [...counts.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, n]) => `${k}=${n}`);
}

const bump = (m: Map<string, number>, key: string, n: number): void => {
  m.set(key, (m.get(key) ?? 0) + n);
};

/** RFC 4122-shaped serial number derived from the run id, so the same BOM keeps the same serial. */
function serialNumber(runId: string): string {
  const h = createHash("sha256").update(`carnot-cbom:${runId}`).digest("hex");
  const variant = ((Number.parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  return `urn:uuid:${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

interface AlgorithmUse {
  facts: AlgorithmFacts | null;
  negotiated: number;
  offered: number;
  usedInSuites: number;
}

export function toCycloneDx(bom: CryptoBom, index: GroupIndex = indexGroups()): CycloneDxBom {
  const algorithms = new Map<string, AlgorithmUse>();
  const dependsOn = new Map<string, Set<string>>();
  const depend = (from: string, to: string): void => {
    const set = dependsOn.get(from) ?? new Set<string>();
    dependsOn.set(from, set);
    set.add(to);
  };
  const useAlgorithm = (name: string, facts: AlgorithmFacts | null): AlgorithmUse => {
    const use = algorithms.get(name) ?? { facts, negotiated: 0, offered: 0, usedInSuites: 0 };
    algorithms.set(name, use);
    return use;
  };
  /** Registers a group (and a hybrid's parts); returns the ref a dependant should point at. */
  const useGroup = (groupName: string): [string, AlgorithmUse] => {
    const g = groupFacts(groupName, index);
    if (g.combiner) {
      const use = useAlgorithm(g.combiner.name, g.combiner);
      for (const part of g.algorithms) {
        useAlgorithm(part.name, part);
        depend(algorithmRef(g.combiner.name), algorithmRef(part.name));
      }
      return [algorithmRef(g.combiner.name), use];
    }
    const only = g.algorithms[0];
    if (only) return [algorithmRef(only.name), useAlgorithm(only.name, only)];
    return [algorithmRef(g.name), useAlgorithm(g.name, null)];
  };

  interface ProcessUse {
    handshakes: number;
    failed: number;
    noSni: number;
    snis: Map<string, number>;
    offered: Map<string, number>;
    hosts: Map<string, number>;
    containers: Map<string, number>;
  }
  const processes = new Map<string, ProcessUse>();
  interface ProtocolUse {
    handshakes: number;
    suites: Map<string, Set<string>>;
    groups: Set<string>;
  }
  const protocols = new Map<string, ProtocolUse>();

  /** An observation, or a fleet document's component counted as the handshakes it stands for. */
  const observe = (o: BomUnit): void => {
    const n = o.count;
    const pname = o.process ?? UNKNOWN_PROCESS;
    const pref = processRef(pname);
    let p = processes.get(pname);
    if (!p) {
      p = {
        handshakes: 0,
        failed: 0,
        noSni: 0,
        snis: new Map(),
        offered: new Map(),
        hosts: new Map(),
        containers: new Map(),
      };
      processes.set(pname, p);
    }
    p.handshakes += n;
    p.failed += o.failed_count;
    if (o.sni === null) p.noSni += n;
    else bump(p.snis, o.sni, n);
    if (o.groups_offered.length) bump(p.offered, o.groups_offered.join(","), n);
    if (o.host) bump(p.hosts, o.host, n);
    if (o.container_id) bump(p.containers, o.container_id, n);

    for (const g of o.groups_offered) {
      const [ref, use] = useGroup(g);
      use.offered += n;
      depend(pref, ref);
    }
    let groupRef: string | null = null;
    if (o.group_selected !== null) {
      const [ref, use] = useGroup(o.group_selected);
      use.negotiated += n;
      depend(pref, ref);
      groupRef = ref;
    }
    const suiteRefs: string[] = [];
    if (o.cipher !== null) {
      const suite = cipherSuiteFacts(o.cipher);
      for (const part of [suite.bulk, suite.hash]) {
        if (!part) continue;
        const use = useAlgorithm(part.name, part);
        use.usedInSuites += n;
        suiteRefs.push(algorithmRef(part.name));
        depend(pref, algorithmRef(part.name));
      }
    }
    if (o.tls_version !== null) {
      const version = protocolVersion(o.tls_version);
      const proto = protocols.get(version) ?? { handshakes: 0, suites: new Map(), groups: new Set() };
      protocols.set(version, proto);
      proto.handshakes += n;
      if (groupRef) proto.groups.add(groupRef);
      if (o.cipher !== null) {
        const refs = proto.suites.get(o.cipher) ?? new Set<string>();
        for (const r of suiteRefs) refs.add(r);
        proto.suites.set(o.cipher, refs);
      }
      depend(pref, protocolRef(version));
    }
  };
  const units = bomUnits(bom);
  for (const o of units) observe(o);

  const components: CdxComponent[] = [];
  for (const [name, p] of processes) {
    const props: Property[] = [
      { name: "carnot:handshakes", value: String(p.handshakes) },
      { name: "carnot:handshakes_failed", value: String(p.failed) },
      { name: "carnot:handshakes_without_sni", value: String(p.noSni) },
      ...countedValues(p.snis).map((value) => ({ name: "carnot:sni", value })),
      ...countedValues(p.offered).map((value) => ({ name: "carnot:groups_offered", value })),
      // where the records name them: on which hosts and in which containers the process ran
      ...countedValues(p.hosts).map((value) => ({ name: "carnot:host", value })),
      ...countedValues(p.containers).map((value) => ({ name: "carnot:container_id", value })),
    ];
    components.push({ type: "application", "bom-ref": processRef(name), name, properties: props });
  }
  for (const [name, use] of algorithms) {
    const props: Property[] = [];
    if (use.negotiated) props.push({ name: "carnot:negotiated_count", value: String(use.negotiated) });
    if (use.offered) props.push({ name: "carnot:offered_count", value: String(use.offered) });
    if (use.usedInSuites) props.push({ name: "carnot:cipher_suite_count", value: String(use.usedInSuites) });
    components.push(algorithmComponent(use.facts ?? { name, unknown: true }, props));
  }
  for (const [version, proto] of protocols) {
    const suites = [...proto.suites.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([name, refs]) => ({ name, algorithms: [...refs].sort() }));
    const ref = protocolRef(version);
    for (const s of suites) for (const a of s.algorithms) depend(ref, a);
    for (const g of proto.groups) depend(ref, g);
    const protocolProperties: Record<string, unknown> = { type: "tls", version, cipherSuites: suites };
    if (proto.groups.size) protocolProperties.cryptoRefArray = [...proto.groups].sort();
    components.push({
      type: "cryptographic-asset",
      "bom-ref": ref,
      name: `TLS ${version}`,
      version,
      cryptoProperties: { assetType: "protocol", protocolProperties },
      properties: [{ name: "carnot:handshakes", value: String(proto.handshakes) }],
    });
  }
  components.sort((a, b) => (a["bom-ref"] < b["bom-ref"] ? -1 : a["bom-ref"] > b["bom-ref"] ? 1 : 0));

  const dependencies = components.map((c) => {
    const deps = [...(dependsOn.get(c["bom-ref"]) ?? [])].sort();
    return { ref: c["bom-ref"], dependsOn: deps };
  });

  let newest: string | null = null;
  for (const o of units)
    if (o.last_seen !== null && (newest === null || o.last_seen > newest)) newest = o.last_seen;
  const metadata: Record<string, unknown> = {};
  // The time of the last observation, not of this run: the same input gives the same document.
  if (newest !== null) metadata.timestamp = newest;
  metadata.lifecycles = [{ phase: "operations" }];
  metadata.tools = { components: [{ type: "application", name: "carnot", version: VERSION }] };
  const properties: Property[] = [
    { name: "carnot:run_id", value: bom.run_id },
    { name: "carnot:cryptobom_schema", value: bom.schema },
    { name: "carnot:observations", value: String(bom.summary.observations) },
    { name: "carnot:unique_snis", value: String(bom.summary.unique_snis) },
    ...Object.entries(bom.metrics.sni_counts).map(([sni, n]) => ({
      name: "carnot:sni",
      value: `${sni}=${n}`,
    })),
  ];
  if (bom.fleet) {
    properties.push(
      { name: "carnot:hosts", value: String(bom.fleet.hosts) },
      { name: "carnot:containers", value: String(bom.fleet.containers) },
      { name: "carnot:observations_listed", value: String(bom.fleet.observations_listed) },
      ...bom.fleet.inputs.map((i) => ({ name: "carnot:input", value: `${i.file}=${i.records}` })),
    );
  }
  metadata.properties = properties;

  return {
    $schema: "http://cyclonedx.org/schema/bom-1.6.schema.json",
    bomFormat: "CycloneDX",
    specVersion: "1.6",
    serialNumber: serialNumber(bom.run_id),
    version: 1,
    metadata,
    components,
    dependencies,
  };
}
