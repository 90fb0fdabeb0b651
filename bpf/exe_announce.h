/* Each process's executable, announced once before its first event (CARNOT_EV_EXE, a struct carnot_event on
 * the `events` ring buffer), by whichever carnot source sees the process first: the libssl probes at a call,
 * the wire source when the process sends on a followed connection. Both objects share `exe_announced` (the
 * loader hands the wire object the probes' map), so a process is announced once. BPF side only: include after
 * "carnot.h", "output_maps.h" and "task.h". */
#ifndef CARNOT_EXE_ANNOUNCE_H
#define CARNOT_EXE_ANNOUNCE_H

/* Counts in the object's `stats`: index 0 attempted, 1 dropped, in every carnot object (carnot.h, wire.h). */
static __always_inline void exe_announce_count(__u32 index)
{
	__u64 *value = bpf_map_lookup_elem(&stats, &index);

	if (value)
		__sync_fetch_and_add(value, 1);
}

/* Processes whose executable was announced (CARNOT_EV_EXE): tgid → start time, so a reused pid is a new one. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u64);
} exe_announced SEC(".maps");

/* The first event of a process is preceded by one with its executable's path, taken now: a short-lived process
 * is gone when user space reads its events. Reserved before the map says it is done, so that no event of the
 * process (from another thread) can come before it; not marked when the ring buffer was full (tried again).
 * A global function: the verifier checks its bounded walk once, not at every place an event is reserved. */
__noinline int announce_exe(__u32 tgid)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 start = BPF_CORE_READ(task, group_leader, start_time);
	__u64 *seen = bpf_map_lookup_elem(&exe_announced, &tgid);
	struct task_exe_buf *buf;
	struct carnot_event *e;
	__u32 zero = 0, n, at;
	long len;

	if (seen && *seen == start)
		return 0;
	exe_announce_count(0);
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		exe_announce_count(1);
		return 0;
	}
	__builtin_memset(e, 0, 64);
	e->ts_ns = bpf_ktime_get_ns();
	e->aux = start;
	e->pid = tgid;
	e->tid = (__u32)bpf_get_current_pid_tgid();
	e->kind = CARNOT_EV_EXE;
	e->lib_id = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->cgroup_id = bpf_get_current_cgroup_id();
	len = task_exe_path();
	buf = bpf_map_lookup_elem(&task_exe_scratch, &zero);
	if (buf && len > 0 && len <= CARNOT_DATA_MAX) {
		n = (__u32)len;
		at = (TASK_EXE_PATH_MAX - n) & (TASK_EXE_PATH_MAX - 1);
		if (n <= CARNOT_DATA_MAX && !bpf_probe_read_kernel(e->data, n, &buf->bytes[at]))
			e->data_len = n;
		else
			e->ret = -EFAULT;
	} else {
		e->ret = len < 0 ? len : -ENOENT; /* 0: an empty path is no path either */
	}
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
	bpf_map_update_elem(&exe_announced, &tgid, &start, BPF_ANY);
	return 0;
}

#endif
