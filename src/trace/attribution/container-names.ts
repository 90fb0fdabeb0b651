/**
 * The container and the Kubernetes pod a cgroup v2 path names, by the naming schemes of the runtimes and the
 * kubelet (their own, not a registry: a path that follows none names nothing, and both stay null):
 *   Docker          /system.slice/docker-<id>.scope (systemd driver), /docker/<id> (cgroupfs driver)
 *   containerd/CRI  …/cri-containerd-<id>.scope
 *   CRI-O           …/crio-<id>.scope
 *   Podman          …/libpod-<id>.scope (also below user@UID.service when rootless)
 *   kubelet         /kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid>.slice/… (systemd driver: the
 *                   uid's dashes are underscores, a dash separating slice levels), /kubepods/<qos>/pod<uid>/<id>
 *                   (cgroupfs driver); guaranteed pods have no <qos> level
 * <id> is 64 lowercase hexadecimal digits. The outermost component that follows a scheme decides: a container
 * with its cgroup delegated can create cgroups below its own (named as it likes), never above.
 */

export interface ContainerNames {
  containerId: string | null;
  podUid: string | null;
}

/** systemd scopes a runtime creates for each container */
const CONTAINER_SCOPE = /^(?:docker|cri-containerd|crio|libpod)-([0-9a-f]{64})\.scope$/;
/** a bare container id: the cgroupfs drivers' directory, below `docker` or a pod's directory */
const BARE_ID = /^[0-9a-f]{64}$/;
/** a pod's UID: a UUID (its groups joined by `separator`), or for a static pod the 32 hex digits of a hash */
const podUid = (separator: string) =>
  `((?:[0-9a-f]{8}${separator}[0-9a-f]{4}${separator}[0-9a-f]{4}${separator}[0-9a-f]{4}${separator}[0-9a-f]{12})|[0-9a-f]{32})`;
const POD_SLICE = new RegExp(`^kubepods(?:-[a-z]+)?-pod${podUid("_")}\\.slice$`);
const POD_DIR = new RegExp(`^pod${podUid("-")}$`);
/** the kubelet's quality-of-service levels (cgroupfs driver) */
const QOS_DIRS = new Set(["besteffort", "burstable"]);

const NOTHING: ContainerNames = Object.freeze({ containerId: null, podUid: null });

/** The pod a cgroupfs-driver directory names: pod<uid> right below /kubepods or /kubepods/<qos>. */
function podDir(parts: readonly string[], i: number): string | null {
  const m = POD_DIR.exec(parts[i]!);
  if (m === null) return null;
  const qos = i === 2 && QOS_DIRS.has(parts[1]!);
  return parts[0] === "kubepods" && (i === 1 || qos) ? m[1]! : null;
}

/** What `path` (a cgroup v2 path, "/" the root) names; both null when it follows no scheme. */
export function containerNames(path: string): ContainerNames {
  const parts = path.split("/").filter((p) => p !== "");
  let podUid: string | null = null;
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    const scope = CONTAINER_SCOPE.exec(part);
    if (scope !== null) return { containerId: scope[1]!, podUid };
    if (BARE_ID.test(part) && i > 0 && (parts[i - 1] === "docker" || podDir(parts, i - 1) !== null))
      return { containerId: part, podUid };
    if (podUid === null) {
      const slice = POD_SLICE.exec(part);
      podUid = slice !== null ? slice[1]!.replaceAll("_", "-") : podDir(parts, i);
    }
  }
  return podUid === null ? NOTHING : { containerId: null, podUid };
}
