/**
 * packaging/kubernetes/daemonset.yaml: parsed as YAML, each document validated against the Kubernetes API
 * schema of its kind (kubernetes-models: apps/v1 DaemonSet, v1 Namespace; no cluster needed), then what tracing
 * needs checked field by field, and the trace command line it runs checked against carnot's own flags. Then
 * carnot run as the container would be (root with only the capabilities the manifest adds, no_new_privs): the
 * system libssl is calibrated, confined.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { DaemonSet } from "kubernetes-models/apps/v1/DaemonSet";
import { argsSpec, checkArguments } from "../../src/command-line.ts";
import trace from "../../src/commands/trace.ts";
import { findSystemLibssl } from "../../src/trace/libssl/library.ts";
import { COMPILED, REPO, traceSkipReason } from "../support/tracer.ts";

const MANIFEST = join(REPO, "packaging", "kubernetes", "daemonset.yaml");
const docs = Bun.YAML.parse(readFileSync(MANIFEST, "utf8")) as Record<string, unknown>[];
// biome-ignore lint/suspicious/noExplicitAny: the manifest is checked by the schema first, then read freely
const daemonSet = docs.find((d) => d.kind === "DaemonSet") as any;
const container = daemonSet?.spec?.template?.spec?.containers?.[0];

describe("the DaemonSet manifest", () => {
  test("every document is valid against its Kubernetes schema; a broken one is not", () => {
    expect(docs.map((d) => `${d.apiVersion} ${d.kind}`)).toEqual(["v1 Namespace", "apps/v1 DaemonSet"]);
    new Namespace(docs[0] as never).validate();
    new DaemonSet(daemonSet).validate();
    const broken = structuredClone(daemonSet);
    broken.spec.template.spec.containers[0].securityContext.capabilities.add = "BPF";
    delete broken.spec.selector;
    expect(() => new DaemonSet(broken).validate()).toThrow(/must have required property selector/);
    // the selector picks the pods the template makes
    for (const [k, v] of Object.entries(daemonSet.spec.selector.matchLabels))
      expect(daemonSet.spec.template.metadata.labels[k]).toBe(v);
  });

  test("the node's processes and the capabilities tracing needs, nothing privileged", () => {
    expect(daemonSet.spec.template.spec.hostPID).toBe(true);
    expect(container.securityContext).toMatchObject({
      privileged: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsUser: 0,
      capabilities: { drop: ["ALL"] },
    });
    // no SYS_PTRACE (a record's exe comes from the kernel), no SYS_ADMIN (the calibration's namespaces are
    // made in a user namespace, after SETUID and SETGID left root)
    expect([...container.securityContext.capabilities.add].sort()).toEqual([
      "BPF",
      "KILL",
      "NET_ADMIN",
      "PERFMON",
      "SETGID",
      "SETUID",
      "SYS_RESOURCE",
    ]);
    expect(container.resources.requests).toMatchObject({
      cpu: expect.any(String),
      memory: expect.any(String),
    });
    expect(container.resources.limits).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
  });

  test("the node's cgroup hierarchy and BTF read-only; the output on the node", () => {
    const volumes = new Map(
      daemonSet.spec.template.spec.volumes.map((v: { name: string; hostPath?: { path: string } }) => [
        v.name,
        v.hostPath?.path ?? null,
      ]),
    );
    const mounts = container.volumeMounts.map(
      (m: { name: string; mountPath: string; readOnly?: boolean }) => [
        volumes.get(m.name) ?? "(pod)",
        m.mountPath,
        m.readOnly === true,
      ],
    );
    expect(mounts).toContainEqual(["/sys/fs/cgroup", "/sys/fs/cgroup", true]);
    expect(mounts).toContainEqual(["/sys/kernel/btf", "/sys/kernel/btf", true]);
    expect(mounts).toContainEqual(["/var/lib/carnot", "/var/lib/carnot", false]);
    // a read-only root: every place carnot writes is a volume
    expect(mounts).toContainEqual(["(pod)", "/var/cache/carnot", false]);
    expect(container.env).toContainEqual({ name: "CARNOT_CACHE_DIR", value: "/var/cache/carnot" });
  });

  test("it runs carnot trace with flags carnot trace takes", () => {
    const script: string = container.command.at(-1);
    const words = [...script.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]!);
    expect(words.slice(0, 3)).toEqual(["exec", "carnot", "trace"]);
    const spec = argsSpec(trace.args as never);
    expect(() => checkArguments(spec, words.slice(3), { name: "trace" })).not.toThrow();
    expect(words[words.indexOf("--out") + 1]).toMatch(/^\/var\/lib\/carnot\/runtime-\$\{NODE_NAME\}-/);
    // and the check can fail
    expect(() => checkArguments(spec, ["--outt", "x"], { name: "trace" })).toThrow(/unknown flag --outt/);
  });

  const runSkip =
    traceSkipReason() ??
    (Bun.file(COMPILED).size ? null : "./carnot not built (make carnot)") ??
    (Bun.which("setpriv") ? null : "setpriv missing (util-linux)") ??
    (findSystemLibssl() ? null : "no system libssl");
  if (runSkip) console.warn(`skipping the container's capabilities run: ${runSkip}`);

  test.skipIf(runSkip !== null)(
    "with the container's capabilities, the libssl calibration runs confined",
    () => {
      const caps = container.securityContext.capabilities.add.map((c: string) => `+${c.toLowerCase()}`);
      const cache = mkdtempSync(join(tmpdir(), "carnot-daemonset-"));
      try {
        const res = Bun.spawnSync(
          ["setpriv", "--no-new-privs", "--inh-caps=-all", `--bounding-set=-all,${caps.join(",")}`, COMPILED]
            .concat([
              "trace",
              "--libssl",
              findSystemLibssl()!,
              "--duration",
              "0.3",
              "--metrics-interval",
              "0",
            ])
            .concat(["--verbose"]),
          {
            stdout: "pipe",
            stderr: "pipe",
            env: { ...process.env, CARNOT_CACHE_DIR: cache },
            timeout: 60_000,
          },
        );
        const stderr = res.stderr.toString();
        expect(res.exitCode).toBe(0);
        expect(stderr).toMatch(/libssl.*: offsets verified \(\d+ calibration handshakes\)/);
        expect(stderr).not.toContain("not verified");
      } finally {
        rmSync(cache, { recursive: true, force: true });
      }
    },
    60_000,
  );
});
