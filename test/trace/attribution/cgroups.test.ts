/**
 * cgroup ids resolved to paths on the real hierarchy: the kernel's id is the directory's inode number, never
 * reused, and a cgroup v2 cannot be renamed, so a resolved id stays right; a cgroup removed before its first
 * lookup is null. Without CAP_DAC_READ_SEARCH (no file handles) the hierarchy is walked, with the same answers.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CgroupResolver, cgroupV2Root } from "../../../src/trace/attribution/cgroups.ts";
import { REPO } from "../../support/tracer.ts";
import { cgroupSkipReason, TestCgroups } from "../../support/cgroups.ts";

describe("where cgroup v2 is mounted", () => {
  const mounts = [
    "proc /proc proc rw 0 0",
    "cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0",
    "cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0",
    "cgroup2 /host/sys/fs/cgroup\\040(host) cgroup2 rw 0 0",
  ].join("\n");

  test("the mount that shows the whole hierarchy, where a container also has its namespace's view", () => {
    expect(cgroupV2Root(mounts, (path) => path === "/host/sys/fs/cgroup (host)")).toBe(
      "/host/sys/fs/cgroup (host)",
    );
  });

  test("else the first cgroup2 mount; none: null", () => {
    expect(cgroupV2Root(mounts, () => false)).toBe("/sys/fs/cgroup");
    expect(cgroupV2Root("proc /proc proc rw 0 0\n", () => true)).toBeNull();
  });
});

const skip = cgroupSkipReason();
if (skip) console.warn(`skipping the cgroup resolver tests: ${skip}`);

const ID = "8c5f3e2a1b0d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b";
const ID2 = "8c5f0000000000000000000000000000000000000000000000000000000000ab";
const UID = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";

describe.skipIf(skip !== null)("cgroup ids → paths on the real hierarchy", () => {
  const cgroups = skip === null ? new TestCgroups("resolve") : (null as unknown as TestCgroups);
  const top = cgroups?.top;
  const docker = `${top}/system.slice/docker-${ID}.scope`;
  const pod = `${top}/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID.replaceAll("-", "_")}.slice`;
  const crio = `${pod}/crio-${ID2}.scope`;
  afterAll(() => cgroups?.removeAll());

  test("a container's and a pod's cgroups, and the root", () => {
    const resolver = CgroupResolver.open();
    try {
      expect(resolver.problem).toBeNull();
      expect(resolver.facts(cgroups.make(docker))).toEqual({ path: docker, containerId: ID, podUid: null });
      expect(resolver.facts(cgroups.make(crio))).toEqual({ path: crio, containerId: ID2, podUid: UID });
      expect(resolver.facts(cgroups.id(pod))).toEqual({ path: pod, containerId: null, podUid: UID });
      expect(resolver.facts(1)).toEqual({ path: "/", containerId: null, podUid: null });
    } finally {
      resolver.close();
    }
  });

  test("removed before its first lookup: null; removed after it: the path it had (its only one)", () => {
    const resolver = CgroupResolver.open();
    try {
      const early = cgroups.make(`${top}/early-gone`);
      const late = cgroups.make(`${top}/late-gone`);
      expect(resolver.facts(late).path).toBe(`${top}/late-gone`);
      cgroups.remove(`${top}/early-gone`);
      cgroups.remove(`${top}/late-gone`);
      expect(resolver.facts(early)).toEqual({ path: null, containerId: null, podUid: null });
      expect(resolver.facts(late).path).toBe(`${top}/late-gone`);
      // a new cgroup at the same path is another id: the old one stays unknown
      const again = cgroups.make(`${top}/early-gone`);
      expect(again).not.toBe(early);
      expect(resolver.facts(early).path).toBeNull();
      expect(resolver.facts(again).path).toBe(`${top}/early-gone`);
    } finally {
      resolver.close();
    }
  });

  test("what the cache relies on: a cgroup v2 cannot be renamed", () => {
    const path = `${top}/fixed-name`;
    cgroups.make(path);
    expect(() => renameSync(cgroups.mount + path, `${cgroups.mount}${top}/other-name`)).toThrow(/EPERM/);
  });

  test.skipIf(Bun.which("setpriv") === null)(
    "without CAP_DAC_READ_SEARCH the kernel refuses file handles: the hierarchy is walked, same answers",
    () => {
      const gone = cgroups.make(`${top}/gone-before`);
      cgroups.remove(`${top}/gone-before`);
      const ids = [cgroups.id(docker), cgroups.id(crio), 1, gone];
      const dir = mkdtempSync(join(tmpdir(), "carnot-cgroup-walk-"));
      try {
        const script = join(dir, "resolve.ts");
        writeFileSync(
          script,
          `import { CgroupResolver } from "${REPO}/src/trace/attribution/cgroups.ts";
           const r = CgroupResolver.open();
           const caps = (await Bun.file("/proc/self/status").text()).match(/CapEff:\\s+(\\w+)/)[1];
           console.log(JSON.stringify({ caps, facts: ${JSON.stringify(ids)}.map((id) => r.facts(id)) }));`,
        );
        const run = Bun.spawnSync(["setpriv", "--bounding-set=-dac_read_search", process.execPath, script], {
          stderr: "pipe",
        });
        expect(run.stderr.toString()).toBe("");
        const out = JSON.parse(run.stdout.toString());
        // bit 2: CAP_DAC_READ_SEARCH, dropped
        expect(BigInt(`0x${out.caps}`) & 4n).toBe(0n);
        expect(out.facts).toEqual([
          { path: docker, containerId: ID, podUid: null },
          { path: crio, containerId: ID2, podUid: UID },
          { path: "/", containerId: null, podUid: null },
          { path: null, containerId: null, podUid: null },
        ]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  test("--container: a full id, or a start that only one container has; below the container is its own", () => {
    const resolver = CgroupResolver.open();
    try {
      cgroups.make(`${docker}/init.scope`);
      expect(resolver.findContainer(ID)).toEqual({
        containerId: ID,
        path: docker,
        filter: { id: cgroups.id(docker), level: docker.split("/").length - 1 },
      });
      expect(resolver.findContainer(ID2.slice(0, 12)).path).toBe(crio);
      expect(() => resolver.findContainer("8c5f")).toThrow(
        /--container 8c5f: ambiguous: 2 containers start with it \(8c5f(3e2a1b0d|00000000), 8c5f/,
      );
      expect(() => resolver.findContainer("abcdef")).toThrow(
        /--container abcdef: no cgroup under .* names this container/,
      );
      expect(() => resolver.findContainer("8C5F3E")).toThrow(/not a container id/);
      expect(() => resolver.findContainer(`${ID}0`)).toThrow(/not a container id/);
    } finally {
      resolver.close();
    }
  });
});
