/**
 * The CycloneDX 1.6 SBOM of what the carnot executable carries: the Bun runtime it is built on and every npm
 * package its code pulls in (package.json `dependencies` and their closure, resolved through bun.lock, with
 * the lock's SHA-512 integrity and each package's declared license). Deterministic: the same lock and
 * SOURCE_DATE_EPOCH give the same bytes.
 *   bun release/sbom.ts [--root DIR] > carnot-VERSION.cdx.json
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

type LockEntry = [
  string,
  string,
  { dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> },
  string?,
];

interface Lock {
  workspaces: Record<string, { name?: string; dependencies?: Record<string, string> }>;
  packages: Record<string, LockEntry>;
}

interface Package {
  key: string;
  name: string;
  version: string;
  integrity: string | null;
  dependsOn: string[];
}

/** `@scope/name@1.2.3` → [@scope/name, 1.2.3] */
function splitSpec(spec: string): [string, string] {
  const at = spec.lastIndexOf("@");
  return [spec.slice(0, at), spec.slice(at + 1)];
}

/** The lock key a dependency of `from` resolves to: nested under it (or a parent) first, as node does. */
function resolve(lock: Lock, from: string, dep: string): string | null {
  const parts = from.split("/");
  for (let n = parts.length; n > 0; n--) {
    const key = `${parts.slice(0, n).join("/")}/${dep}`;
    if (lock.packages[key]) return key;
  }
  return lock.packages[dep] ? dep : null;
}

/** Every package reachable from the workspace's runtime dependencies, by lock key. */
export function runtimeClosure(lock: Lock): Map<string, Package> {
  const root = lock.workspaces[""]?.dependencies ?? {};
  const out = new Map<string, Package>();
  const queue = Object.keys(root).map((d) => resolve(lock, "", d));
  while (queue.length) {
    const key = queue.shift();
    if (!key || out.has(key)) continue;
    const entry = lock.packages[key];
    if (!entry) continue;
    const [name, version] = splitSpec(entry[0]);
    const deps = { ...(entry[2]?.dependencies ?? {}), ...(entry[2]?.optionalDependencies ?? {}) };
    const resolved = Object.keys(deps)
      .map((d) => resolve(lock, key, d))
      .filter((k): k is string => k !== null);
    out.set(key, { key, name, version, integrity: entry[3] ?? null, dependsOn: resolved });
    queue.push(...resolved);
  }
  return out;
}

const purl = (name: string, version: string) =>
  `pkg:npm/${name.startsWith("@") ? `%40${name.slice(1)}` : name}@${version}`;

/** `sha512-<base64>` → the hex digest CycloneDX wants. */
function sha512Hex(integrity: string | null): string | null {
  const m = /^sha512-(.+)$/.exec(integrity ?? "");
  return m ? Buffer.from(m[1]!, "base64").toString("hex") : null;
}

/** `a/@s/b` (b nested under a) → the package names along the path: [a, @s/b]. */
function lockPath(key: string): string[] {
  const segs = key.split("/");
  const names: string[] = [];
  for (let i = 0; i < segs.length; i++)
    names.push(segs[i]!.startsWith("@") ? `${segs[i]}/${segs[++i]}` : segs[i]!);
  return names;
}

function declaredLicense(root: string, key: string): string | null {
  const path = join(root, ...lockPath(key).flatMap((n) => ["node_modules", n]), "package.json");
  if (!existsSync(path)) return null;
  const license = (JSON.parse(readFileSync(path, "utf8")) as { license?: unknown }).license;
  return typeof license === "string" ? license : null;
}

export function buildSbom(root: string, epochSeconds: number): Record<string, unknown> {
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
    name: string;
    version: string;
    license?: string;
    description?: string;
  };
  const lock = Bun.JSONC.parse(readFileSync(join(root, "bun.lock"), "utf8")) as Lock;
  const bunVersion =
    /^BUN_VERSION := (\S+)$/m.exec(readFileSync(join(root, "Makefile"), "utf8"))?.[1] ?? null;
  const closure = [...runtimeClosure(lock).values()].sort((a, b) => (a.key < b.key ? -1 : 1));
  const ref = (p: Package) => purl(p.name, p.version);
  const self = purl(pkg.name, pkg.version);
  const bunRef = bunVersion ? `pkg:generic/bun@${bunVersion}` : null;
  const components: Record<string, unknown>[] = [];
  if (bunRef)
    components.push({
      type: "platform",
      "bom-ref": bunRef,
      name: "bun",
      version: bunVersion,
      description: "JavaScript runtime embedded in the executable by bun build --compile",
      licenses: [{ license: { id: "MIT" } }],
      purl: bunRef,
    });
  for (const p of closure) {
    const c: Record<string, unknown> = {
      type: "library",
      "bom-ref": ref(p),
      name: p.name,
      version: p.version,
      purl: ref(p),
    };
    const hex = sha512Hex(p.integrity);
    if (hex) c.hashes = [{ alg: "SHA-512", content: hex }];
    const license = declaredLicense(root, p.key);
    if (license) c.licenses = [{ expression: license }];
    components.push(c);
  }
  const dependencies = [
    {
      ref: self,
      dependsOn: [
        ...(bunRef ? [bunRef] : []),
        ...Object.keys(lock.workspaces[""]?.dependencies ?? {})
          .map((d) => resolve(lock, "", d))
          .filter((k): k is string => k !== null)
          .map((k) => ref(runtimeClosure(lock).get(k)!)),
      ].sort(),
    },
    ...(bunRef ? [{ ref: bunRef, dependsOn: [] }] : []),
    ...closure.map((p) => ({
      ref: ref(p),
      dependsOn: [...new Set(p.dependsOn.map((k) => ref(closure.find((c) => c.key === k)!)))].sort(),
    })),
  ];
  const body = { components, dependencies };
  const h = createHash("sha256").update(JSON.stringify(body)).digest("hex");
  const serial = `urn:uuid:${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
  return {
    $schema: "http://cyclonedx.org/schema/bom-1.6.schema.json",
    bomFormat: "CycloneDX",
    specVersion: "1.6",
    serialNumber: serial,
    version: 1,
    metadata: {
      timestamp: new Date(epochSeconds * 1000).toISOString().replace(".000Z", "Z"),
      lifecycles: [{ phase: "build" }],
      tools: { components: [{ type: "application", name: "carnot release/sbom.ts", version: pkg.version }] },
      component: {
        type: "application",
        "bom-ref": self,
        name: pkg.name,
        version: pkg.version,
        description: pkg.description,
        ...(pkg.license ? { licenses: [{ license: { id: pkg.license } }] } : {}),
        purl: self,
      },
    },
    components,
    dependencies,
  };
}

if (import.meta.main) {
  const i = process.argv.indexOf("--root");
  const root = i === -1 ? join(import.meta.dir, "..") : process.argv[i + 1]!;
  const epoch = Number(process.env.SOURCE_DATE_EPOCH ?? Math.floor(Date.now() / 1000));
  process.stdout.write(`${JSON.stringify(buildSbom(root, epoch), null, 2)}\n`);
}
