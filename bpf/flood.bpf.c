// SPDX-License-Identifier: GPL-2.0
/* Test-only: emits an exact number of synthetic carnot_events on demand (BPF_PROG_TEST_RUN), so the ring
 * buffer reader and the drop counter can be measured without depending on how fast uprobes fire. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "carnot.h"
#include "output_maps.h"

char LICENSE[] SEC("license") = "GPL";

/* The context passed to BPF_PROG_TEST_RUN: how many events, and the sequence number of the first. */
struct flood_args {
	__u32 count;
	__u32 reserved;
	__u64 first_seq;
};

struct flood_state {
	__u64 first_seq;
	__u64 pid_tgid;
	__u64 attempted;
	__u64 dropped;
};

static long emit_one(__u32 index, struct flood_state *state)
{
	struct carnot_event *e;

	state->attempted++;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		state->dropped++;
		return 0;
	}
	e->ts_ns = bpf_ktime_get_ns();
	e->ptr = 0x5500000000ULL + index;
	e->aux = state->first_seq + index;
	e->pid = state->pid_tgid >> 32;
	e->tid = (__u32)state->pid_tgid;
	e->ret = 1;
	e->kind = CARNOT_EV_SYNTHETIC;
	e->data_len = 8;
	e->lib_id = 0;
	e->depth = 0;
	__builtin_memcpy(e->comm, "carnot-flood\0\0\0", CARNOT_COMM_LEN);
	e->cgroup_id = 0;
	__builtin_memcpy(e->data, "flood:ok", 8);
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
	return 0;
}

/* Counters are added once per run rather than per event: exact, and cheaper for the producer. */
static __always_inline void add_stat(__u32 index, __u64 value)
{
	__u64 *slot = bpf_map_lookup_elem(&stats, &index);

	if (slot)
		__sync_fetch_and_add(slot, value);
}

SEC("syscall")
int flood(struct flood_args *args)
{
	struct flood_state state = {
		.first_seq = args->first_seq,
		.pid_tgid = bpf_get_current_pid_tgid(),
	};

	bpf_loop(args->count, emit_one, &state, 0);
	add_stat(CARNOT_STAT_ATTEMPTED, state.attempted);
	add_stat(CARNOT_STAT_DROPPED, state.dropped);
	return 0;
}
