/** The container and pod a cgroup v2 path names, by the runtimes' and the kubelet's own naming schemes. */
import { describe, expect, test } from "bun:test";
import { containerNames } from "../../../src/trace/attribution/container-names.ts";

const ID = "8c5f3e2a1b0d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b";
const OTHER = "1111111111111111111111111111111111111111111111111111111111111111";
const UID = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";
const SLICE_UID = UID.replaceAll("-", "_");
const STATIC_UID = "6a8c4f2e1b7c8d9e0f1a2b3c4d5e6f7a";

describe("container and pod from a cgroup v2 path", () => {
  test.each([
    ["Docker, systemd driver", `/system.slice/docker-${ID}.scope`, ID, null],
    ["Docker, cgroupfs driver", `/docker/${ID}`, ID, null],
    ["containerd (CRI)", `/system.slice/cri-containerd-${ID}.scope`, ID, null],
    ["CRI-O", `/machine.slice/crio-${ID}.scope`, ID, null],
    ["Podman", `/machine.slice/libpod-${ID}.scope`, ID, null],
    [
      "rootless Podman, below the user's manager",
      `/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-${ID}.scope`,
      ID,
      null,
    ],
    [
      "kubelet (systemd driver), burstable pod, containerd",
      `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${SLICE_UID}.slice/cri-containerd-${ID}.scope`,
      ID,
      UID,
    ],
    [
      "kubelet (systemd driver), best-effort pod, CRI-O",
      `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${SLICE_UID}.slice/crio-${ID}.scope`,
      ID,
      UID,
    ],
    [
      "kubelet (systemd driver), guaranteed pod (no QoS level)",
      `/kubepods.slice/kubepods-pod${SLICE_UID}.slice/cri-containerd-${ID}.scope`,
      ID,
      UID,
    ],
    [
      "kubelet, a static pod (its UID a hash)",
      `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${STATIC_UID}.slice/cri-containerd-${ID}.scope`,
      ID,
      STATIC_UID,
    ],
    ["kubelet, the pod's own slice", `/kubepods.slice/kubepods-pod${SLICE_UID}.slice`, null, UID],
    ["kubelet (cgroupfs driver)", `/kubepods/burstable/pod${UID}/${ID}`, ID, UID],
    ["kubelet (cgroupfs driver), guaranteed", `/kubepods/pod${UID}/${ID}`, ID, UID],
    [
      "a sub-cgroup of a container is the container's",
      `/system.slice/docker-${ID}.scope/init.scope`,
      ID,
      null,
    ],
    [
      "the outermost scheme decides: a container's own cgroups cannot name another",
      `/system.slice/docker-${ID}.scope/docker/${OTHER}`,
      ID,
      null,
    ],
    ["the root", "/", null, null],
    ["a service", "/system.slice/nginx.service", null, null],
    ["the runtime's conmon is not the container", `/machine.slice/libpod-conmon-${ID}.scope`, null, null],
    ["an id too short", `/system.slice/docker-${ID.slice(0, 63)}.scope`, null, null],
    ["upper-case hex is no runtime's", `/system.slice/docker-${ID.toUpperCase()}.scope`, null, null],
    ["a bare id anywhere else", `/system.slice/${ID}`, null, null],
    ["a pod directory outside kubepods", `/system.slice/pod${UID}/${ID}`, null, null],
    ["a pod slice whose uid keeps its dashes", `/kubepods.slice/kubepods-pod${UID}.slice`, null, null],
  ])("%s", (_, path, containerId, podUid) => {
    expect(containerNames(path)).toEqual({ containerId, podUid });
  });
});
