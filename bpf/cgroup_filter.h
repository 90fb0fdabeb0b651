/* The --container filter of every carnot BPF object: the current task's cgroup v2 is the container's cgroup or
 * one below it. The ancestor at the container cgroup's level (the root is level 0) is compared, so a cgroup the
 * container creates after the trace started is in too. BPF side only: include after <bpf/bpf_helpers.h>. */
#ifndef CARNOT_CGROUP_FILTER_H
#define CARNOT_CGROUP_FILTER_H

/* targ_cgroup 0: no filter (a read-only global: the verifier drops the check). */
static __always_inline bool cgroup_wanted(__u64 targ_cgroup, __u32 level)
{
	return targ_cgroup == 0 || bpf_get_current_ancestor_cgroup_id(level) == targ_cgroup;
}

#endif
