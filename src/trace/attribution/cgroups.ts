/**
 * The cgroup v2 of a handshake's process, from the id the kernel took with its event (bpf_get_current_cgroup_id)
 * to the cgroup's path and what the path names (./container-names.ts).
 *
 * What the kernel guarantees, and why a cache needs no invalidation: the id is the kernfs node id of the
 * cgroup's directory (its inode number on 64-bit), allocated cyclically with a wrap count in the high 32 bits
 * (fs/kernfs/dir.c), so an id is never given to another cgroup while the system runs; and a cgroup v2 cannot be
 * renamed (rename(2) there fails with EPERM). So an id names one path for the cgroup's whole life, and an id
 * that no longer resolves belonged to a cgroup removed since: null, for good. Ids come from events already
 * received, so a cgroup not found now existed once and is gone.
 *
 * How an id is resolved (once, then cached): open_by_handle_at(2) with the id as a kernfs file handle, and the
 * path read back from /proc/self/fd — ≈ 25–95 µs whatever the number of cgroups (bench/cgroup-resolve.ts),
 * where a walk of the hierarchy costs ≈ 0.1–0.4 ms per cgroup (60 ms for 500, 0.7 s for 2,000). Without
 * CAP_DAC_READ_SEARCH the kernel refuses the handle: then the hierarchy is walked, once per id not seen before.
 */
import {
  closeSync,
  constants,
  type Dirent,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
} from "node:fs";
import { Libc } from "../../../ffi/libc.ts";
import { CarnotError } from "../../errors.ts";
import type { CgroupFilter } from "../libssl/events.ts";
import type { CgroupFacts } from "../observation.ts";
import { containerNames } from "./container-names.ts";

/** The hierarchy's root cgroup is its first kernfs node. */
const ROOT_ID = 1n;

/** The directory at `path` is the cgroup v2 hierarchy's root (not a cgroup namespace's part of it). */
function isHierarchyRoot(path: string): boolean {
  try {
    return statSync(path, { bigint: true }).ino === ROOT_ID;
  } catch {
    return false;
  }
}

/**
 * The cgroup v2 hierarchy's mount point, from /proc/mounts (hybrid layouts mount it at …/unified): the first
 * that shows the whole hierarchy (in a container, the host's mounted in beside its own namespace's view), else
 * the first there is.
 */
export function cgroupV2Root(
  mounts = readFileSync("/proc/mounts", "utf8"),
  isRoot: (path: string) => boolean = isHierarchyRoot,
): string | null {
  const found: string[] = [];
  for (const line of mounts.split("\n")) {
    const [, mountPoint, type] = line.split(" ");
    // mount points with spaces are octal-escaped in /proc/mounts
    if (type === "cgroup2" && mountPoint)
      found.push(mountPoint.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(Number.parseInt(o, 8))));
  }
  return found.find(isRoot) ?? found[0] ?? null;
}

/** A kernfs file handle (FILEID_KERNFS) is the node id, 8 bytes. */
const FILEID_KERNFS = 0xfe;
const O_PATH = 0o10000000;
const O_DIRECTORY = 0o200000;
const O_CLOEXEC = 0o2000000;
/** open_by_handle_at refused as such (no CAP_DAC_READ_SEARCH, no handles here), not for this id */
const HANDLES_REFUSED = new Set([1 /* EPERM */, 38 /* ENOSYS */, 95 /* EOPNOTSUPP */]);
/** Ids kept resolved (removed cgroups' too, as unknown); beyond, the oldest go (and are resolved again). */
const CACHE_MAX = 65_536;
/** Cgroups a walk visits at most: a subtree delegated to a user could hold very many. */
const WALK_MAX = 65_536;
/** A container id as --container takes it: all of it, or its start. */
const CONTAINER_PREFIX = /^[0-9a-f]{1,64}$/;

const UNKNOWN: CgroupFacts = Object.freeze({ path: null, containerId: null, podUid: null });
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** A cgroup's facts from its path. */
export function cgroupFacts(path: string): CgroupFacts {
  return Object.freeze({ path, ...containerNames(path) });
}

/** The id (inode number) of the directory at `abs`, or null when it is not there or not exact as a number. */
function directoryId(abs: string): number | null {
  const st = statSync(abs, { bigint: true, throwIfNoEntry: false });
  if (st === undefined || !st.isDirectory() || st.ino > BigInt(Number.MAX_SAFE_INTEGER)) return null;
  return Number(st.ino);
}

/**
 * Visits the cgroups below `mountPoint` (the root first, as "/"), top-down; `visit` returns false to skip what
 * is below one. Returns false when it stopped at WALK_MAX.
 */
export function walkCgroups(
  mountPoint: string,
  visit: (id: number, path: string, level: number) => boolean,
): boolean {
  const stack: [string, number][] = [["", 0]];
  let visited = 0;
  while (stack.length > 0) {
    const [rel, level] = stack.pop()!;
    const abs = mountPoint + rel;
    const id = directoryId(abs);
    if (id === null) continue; // removed meanwhile
    if (++visited > WALK_MAX) return false;
    if (!visit(id, rel === "" ? "/" : rel, level)) continue;
    let entries: Dirent[];
    try {
      entries = readdirSync(abs, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) if (e.isDirectory()) stack.push([`${rel}/${e.name}`, level + 1]);
  }
  return true;
}

export class CgroupResolver {
  /** why no cgroup can be resolved here (null when they can) */
  readonly problem: string | null;
  readonly #mountPoint: string;
  readonly #mountFd: number;
  readonly #libc: Libc | null;
  readonly #cache = new Map<number, CgroupFacts>();
  /** false once the kernel refused a file handle: walks instead */
  #byHandle = true;

  private constructor(mountPoint: string, mountFd: number, libc: Libc | null, problem: string | null) {
    this.#mountPoint = mountPoint;
    this.#mountFd = mountFd;
    this.#libc = libc;
    this.problem = problem;
  }

  /** The resolver for the cgroup v2 mounted at `mountPoint` (default: found in /proc/mounts). */
  static open(mountPoint: string | null = cgroupV2Root()): CgroupResolver {
    if (mountPoint === null) return new CgroupResolver("", -1, null, "no cgroup v2 hierarchy mounted");
    const root = mountPoint.endsWith("/") ? mountPoint.slice(0, -1) : mountPoint;
    if (!isHierarchyRoot(mountPoint)) {
      return new CgroupResolver(
        root,
        -1,
        null,
        `the cgroup v2 mount at ${mountPoint} is not the hierarchy's root (a cgroup namespace's view): ` +
          "run carnot in the host's cgroup namespace",
      );
    }
    let fd: number;
    try {
      fd = openSync(mountPoint, constants.O_RDONLY | constants.O_DIRECTORY);
    } catch (err) {
      return new CgroupResolver(root, -1, null, `cannot open ${mountPoint}: ${(err as Error).message}`);
    }
    return new CgroupResolver(root, fd, new Libc(), null);
  }

  /** Where the cgroup `id` is and what its path names; all null when that cannot be known. */
  facts(id: number): CgroupFacts {
    return this.#cache.get(id) ?? this.#resolve(id);
  }

  /**
   * The cgroup of the container whose id is `prefix` or starts with it, for the kernel's --container filter:
   * the outermost cgroup whose path names that container (what is below it is the container's too).
   */
  findContainer(prefix: string): { containerId: string; path: string; filter: CgroupFilter } {
    const refuse = (why: string) => new CarnotError(`--container ${prefix}: ${why}`, { exitCode: 2 });
    if (!CONTAINER_PREFIX.test(prefix))
      throw refuse("not a container id (lowercase hexadecimal digits: all 64, or the start of them)");
    if (this.problem !== null) throw refuse(this.problem);
    const found: { containerId: string; path: string; filter: CgroupFilter }[] = [];
    const complete = walkCgroups(this.#mountPoint, (id, path, level) => {
      const { containerId } = containerNames(path);
      if (containerId === null) return true;
      if (containerId.startsWith(prefix)) found.push({ containerId, path, filter: { id, level } });
      return false;
    });
    const ids = [...new Set(found.map((f) => f.containerId))];
    if (ids.length > 1) {
      const some = ids.slice(0, 3).map((id) => id.slice(0, 12));
      throw refuse(
        `ambiguous: ${ids.length} containers start with it (${some.join(", ")}${ids.length > 3 ? ", …" : ""})`,
      );
    }
    if (found.length > 1)
      throw refuse(`its id is named by ${found.length} cgroups (${found.map((f) => f.path).join(", ")})`);
    const [only] = found;
    if (only === undefined) {
      const partly = complete ? "" : ` (the walk stopped after ${WALK_MAX} cgroups)`;
      throw refuse(
        `no cgroup under ${this.#mountPoint} names this container${partly}; its cgroup is looked up at start, ` +
          "so a container started later is not traced: start the trace after it",
      );
    }
    return only;
  }

  close(): void {
    if (this.#mountFd >= 0) closeSync(this.#mountFd);
  }

  #resolve(id: number): CgroupFacts {
    if (this.problem !== null || id <= 0) return UNKNOWN;
    if (this.#byHandle) {
      const path = this.#pathByHandle(id);
      if (path !== undefined) return this.#remember(id, path === null ? UNKNOWN : cgroupFacts(path));
      this.#byHandle = false;
    }
    walkCgroups(this.#mountPoint, (found, path) => {
      if (!this.#cache.has(found)) this.#remember(found, cgroupFacts(path));
      return true;
    });
    return this.#cache.get(id) ?? this.#remember(id, UNKNOWN);
  }

  #remember(id: number, facts: CgroupFacts): CgroupFacts {
    if (this.#cache.size >= CACHE_MAX) {
      const oldest = this.#cache.keys().next().value;
      if (oldest !== undefined) this.#cache.delete(oldest);
    }
    this.#cache.set(id, facts);
    return facts;
  }

  /** The path of cgroup `id`; null when it is gone (or cannot be named); undefined when handles are refused. */
  #pathByHandle(id: number): string | null | undefined {
    const libc = this.#libc!;
    const handle = new Uint8Array(8);
    new DataView(handle.buffer).setBigUint64(0, BigInt(id), true);
    const fd = libc.openByHandle(this.#mountFd, FILEID_KERNFS, handle, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return HANDLES_REFUSED.has(-fd) ? undefined : null;
    try {
      const abs = utf8.decode(readlinkSync(`/proc/self/fd/${fd}`, { encoding: "buffer" }));
      let path: string;
      if (abs === this.#mountPoint) path = "/";
      else if (abs.startsWith(`${this.#mountPoint}/`)) path = abs.slice(this.#mountPoint.length);
      else return null; // outside this mount (another namespace's root): not a path here
      // removed meanwhile (d_path adds " (deleted)"), or anything else odd: the path must name this very cgroup
      return directoryId(this.#mountPoint + (path === "/" ? "" : path)) === id ? path : null;
    } catch {
      return null; // not UTF-8 (no faithful JSON string), or gone
    } finally {
      libc.close(fd);
    }
  }
}
