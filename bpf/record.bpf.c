// SPDX-License-Identifier: GPL-2.0
/* `carnot record`: the system calls of one process tree, into the `events` ring buffer. The tree is kept in the
 * kernel (`followed`, by tgid: a fork of a followed process is followed, a process leaves when its last thread
 * exits), so every other process costs one hash lookup per call. Each call gives an entry and an exit event;
 * what its arguments point to is read where it is valid: strings and sockaddrs at entry, what the kernel wrote
 * back at exit. Which argument holds what comes from the descriptor table the loader sets (record.h). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "record.h"
#define CARNOT_OUTPUT_STATS RECORD_STAT_COUNT
#include "output_maps.h"

char LICENSE[] SEC("license") = "GPL";

const volatile struct record_config cfg = {};

#define NR_EXECVE 59
#define NR_EXECVEAT 322

/* Followed processes: tgid → RECORD_FOLLOW_*. */
#define RECORD_FOLLOW_ON 1
#define RECORD_FOLLOW_AT_EXEC 2 /* the command carnot started: followed from its execve on */
#define RECORD_FOLLOW_SPAWNING 3 /* carnot itself while it starts the command: not followed, its child is (AT_EXEC) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u32);
} followed SEC(".maps");

/* Threads whose entry could not read a string (a page the process had not touched yet: only a sleepable program
 * can fault it in, and syscall tracepoints are not sleepable here): the exit reads it again, once the call itself
 * has brought the page in. tid → 1. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u32);
} reread SEC(".maps");

static __always_inline void count(__u32 index)
{
	__u64 *value = bpf_map_lookup_elem(&stats, &index);

	if (value)
		__sync_fetch_and_add(value, 1);
}

/* Reserves an event without data (fork, exec, exit); counts the attempt, and the loss when the ring is full. */
static __always_inline struct record_event *reserve(void)
{
	struct record_event *e;

	count(RECORD_STAT_ATTEMPTED);
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		count(RECORD_STAT_DROPPED);
	return e;
}

/* Where a system call's event is put together before it is sent in the room it needs: one slot per program
 * and CPU (a program does not run twice at once on one CPU: the kernel skips a nested run). */
#define SLOT_ENTER 0
#define SLOT_EXIT 1
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct record_full);
} scratch SEC(".maps");

/* Sends the header and the first `data` bytes of the data part; counts as reserve() does. */
static __always_inline void send(struct record_full *f, __u32 data)
{
	__u64 size = sizeof(struct record_event) + data;

	/* the bound where the verifier sees it (the compiler may keep the unbounded value otherwise) */
	asm volatile("" : "+r"(size));
	if (size > sizeof(*f))
		size = sizeof(*f);
	asm volatile("" : "+r"(size));
	f->e.data_len = size - sizeof(struct record_event);
	count(RECORD_STAT_ATTEMPTED);
	if (bpf_ringbuf_output(&events, f, size, 0))
		count(RECORD_STAT_DROPPED);
}

/* End of a string field of `len` bytes (its NUL included) at `at` in the data part: where the data sent must reach. */
static __always_inline __u32 end_of(__u32 at, __u16 len, __u32 end)
{
	return len && at + len > end ? at + len : end;
}

static __always_inline void header(struct record_event *e, __u16 kind, __u64 pid_tgid)
{
	e->ts_ns = bpf_ktime_get_ns();
	e->pid = pid_tgid >> 32;
	e->tid = (__u32)pid_tgid;
	e->kind = kind;
	e->nr = 0;
	e->flags = 0;
	e->data_len = 0;
	e->ret = 0;
}

static __always_inline __u64 arg_of(struct pt_regs *regs, __u32 i)
{
	switch (i) {
	case 0:
		return regs->di;
	case 1:
		return regs->si;
	case 2:
		return regs->dx;
	case 3:
		return regs->r10;
	case 4:
		return regs->r8;
	default:
		return regs->r9;
	}
}

static __always_inline void copy_args(struct record_event *e, struct pt_regs *regs)
{
	e->args[0] = regs->di;
	e->args[1] = regs->si;
	e->args[2] = regs->dx;
	e->args[3] = regs->r10;
	e->args[4] = regs->r8;
	e->args[5] = regs->r9;
}

/* Whether an entry (exit) reads anything beyond the registers. */
static __always_inline bool entry_data(__u32 d)
{
	return RECORD_D_FIELD(d, RECORD_D_STR0) || RECORD_D_FIELD(d, RECORD_D_STR1) ||
	       RECORD_D_FIELD(d, RECORD_D_ADDR_IN) || RECORD_D_FIELD(d, RECORD_D_STRUCT_IN) ||
	       RECORD_D_FIELD(d, RECORD_D_ARGV);
}

static __always_inline bool exit_data(__u32 d)
{
	return RECORD_D_FIELD(d, RECORD_D_ADDR_OUT) || RECORD_D_FIELD(d, RECORD_D_FDS_OUT) ||
	       RECORD_D_FIELD(d, RECORD_D_STR_OUT) || RECORD_D_FIELD(d, RECORD_D_STAT_OUT);
}

/* A NUL-terminated user string into `dst` (RECORD_STR_MAX bytes); returns its length with the NUL, 0 on a fault. */
static __always_inline __u16 read_str(char *dst, __u64 ptr, struct record_event *e, __u16 cut, __u16 fault)
{
	long n;

	if (!ptr) {
		e->flags |= fault;
		return 0;
	}
	n = bpf_probe_read_user_str(dst, RECORD_STR_MAX, (const void *)ptr);
	if (n <= 0) {
		e->flags |= fault;
		return 0;
	}
	/* a string of exactly RECORD_STR_MAX - 1 bytes is marked cut too: the kernel does not say which it was */
	if (n >= RECORD_STR_MAX)
		e->flags |= cut;
	return (__u16)n;
}

/* `len` bytes (at most RECORD_BLOB_MAX) of a user struct into the blob. */
static __always_inline void read_blob(struct record_data *data, __u64 ptr, __u64 len, struct record_event *e)
{
	__u32 n = len > RECORD_BLOB_MAX ? RECORD_BLOB_MAX : (__u32)len;

	if (!ptr || n == 0) {
		e->flags |= RECORD_F_BLOB_FAULT;
		return;
	}
	n &= 2 * RECORD_BLOB_MAX - 1;
	if (n > RECORD_BLOB_MAX)
		n = RECORD_BLOB_MAX;
	if (bpf_probe_read_user(data->blob, n, (const void *)ptr)) {
		e->flags |= RECORD_F_BLOB_FAULT;
		return;
	}
	data->blob_len = n;
}

struct argv_walk {
	__u64 argv;
	struct record_data *data;
	struct record_event *e;
};

static long argv_step(__u32 i, struct argv_walk *w)
{
	__u64 p = 0;
	struct record_data *data = w->data;
	__u32 slot = i;

	if (bpf_probe_read_user(&p, sizeof(p), (const void *)(w->argv + 8 * (__u64)i)) || !p)
		return 1;
	if (i >= RECORD_ARGV_MAX) {
		w->e->flags |= RECORD_F_ARGV_MORE;
		return 1;
	}
	/* the bound where the verifier sees it (the compiler may move a plain mask away) */
	asm volatile("%[v] &= %[mask]" : [v] "+r"(slot) : [mask] "i"(RECORD_ARGV_MAX - 1));
	if (bpf_probe_read_user_str(data->argv[slot], RECORD_ARGV_LEN, (const void *)p) <= 0)
		data->argv[slot][0] = 0;
	data->argc = i + 1;
	return 0;
}

static __always_inline void clear_data(struct record_data *data)
{
	data->len0 = 0;
	data->len1 = 0;
	data->blob_len = 0;
	data->argc = 0;
}

static __always_inline __u32 *follow_state(__u32 tgid)
{
	return bpf_map_lookup_elem(&followed, &tgid);
}

/* The slot's header for a system call event, its data part's lengths cleared. */
static __always_inline struct record_full *begin(__u32 index, __u16 kind, __u64 pid_tgid, __u16 nr,
						 struct pt_regs *regs)
{
	struct record_full *f = bpf_map_lookup_elem(&scratch, &index);

	if (!f)
		return NULL;
	header(&f->e, kind, pid_tgid);
	f->e.nr = nr;
	copy_args(&f->e, regs);
	clear_data(&f->d);
	return f;
}

#define DATA_STR0 offsetof(struct record_data, str0)
#define DATA_BLOB offsetof(struct record_data, blob)
#define DATA_STR1 offsetof(struct record_data, str1)
#define DATA_ARGV offsetof(struct record_data, argv)

/* The string argument `at` (1-based, from the call's descriptor) into str0 / str1; returns where the data sent
 * must now reach. */
static __always_inline __u32 take_str0(struct record_full *f, struct pt_regs *regs, __u32 at, __u32 end)
{
	f->d.len0 = read_str(f->d.str0, arg_of(regs, at - 1), &f->e, RECORD_F_STR0_CUT, RECORD_F_STR0_FAULT);
	return end_of(DATA_STR0, f->d.len0, end);
}

static __always_inline __u32 take_str1(struct record_full *f, struct pt_regs *regs, __u32 at, __u32 end)
{
	f->d.len1 = read_str(f->d.str1, arg_of(regs, at - 1), &f->e, RECORD_F_STR1_CUT, RECORD_F_STR1_FAULT);
	return end_of(DATA_STR1, f->d.len1, end);
}

SEC("tp_btf/sys_enter")
int BPF_PROG(sys_enter, struct pt_regs *regs, long id)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 *state = follow_state(pid_tgid >> 32);
	struct record_full *f;
	struct record_data *data;
	__u32 d, at, end = 0;

	if (!state || *state == RECORD_FOLLOW_SPAWNING)
		return 0;
	if (*state == RECORD_FOLLOW_AT_EXEC) {
		if (id != NR_EXECVE && id != NR_EXECVEAT)
			return 0;
		*state = RECORD_FOLLOW_ON;
	}
	if (id < 0 || id >= RECORD_NR_MAX)
		return 0;
	f = begin(SLOT_ENTER, RECORD_EV_ENTER, pid_tgid, id, regs);
	if (!f)
		return 0;
	data = &f->d;
	d = cfg.desc[id & (RECORD_NR_MAX - 1)];
	if (entry_data(d)) {
		end = DATA_STR0;
		at = RECORD_D_FIELD(d, RECORD_D_STR0);
		if (at)
			end = take_str0(f, regs, at, end);
		at = RECORD_D_FIELD(d, RECORD_D_ADDR_IN);
		if (at)
			read_blob(data, arg_of(regs, at - 1), arg_of(regs, at), &f->e);
		at = RECORD_D_FIELD(d, RECORD_D_STRUCT_IN);
		if (at)
			read_blob(data, arg_of(regs, at - 1), RECORD_BLOB_MAX, &f->e);
		end = end_of(DATA_BLOB, data->blob_len, end);
		at = RECORD_D_FIELD(d, RECORD_D_STR1);
		if (at)
			end = take_str1(f, regs, at, end);
		at = RECORD_D_FIELD(d, RECORD_D_ARGV);
		if (at) {
			struct argv_walk w = { .argv = arg_of(regs, at - 1), .data = data, .e = &f->e };

			if (w.argv)
				bpf_loop(RECORD_ARGV_MAX + 1, argv_step, &w, 0);
			if (data->argc)
				end = sizeof(struct record_data);
		}
	}
	if (f->e.flags & (RECORD_F_STR0_FAULT | RECORD_F_STR1_FAULT)) {
		__u32 tid = (__u32)pid_tgid, one = 1;

		bpf_map_update_elem(&reread, &tid, &one, BPF_ANY);
	}
	send(f, end);
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(sys_exit, struct pt_regs *regs, long ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 *state = follow_state(pid_tgid >> 32);
	struct record_full *f;
	struct record_data *data;
	__s64 nr;
	__u32 d, at, end = 0;
	__u64 len_ptr;
	__u32 len = 0;

	if (!state || *state != RECORD_FOLLOW_ON)
		return 0;
	nr = regs->orig_ax;
	if (nr < 0 || nr >= RECORD_NR_MAX)
		return 0;
	f = begin(SLOT_EXIT, RECORD_EV_EXIT, pid_tgid, nr, regs);
	if (!f)
		return 0;
	f->e.ret = ret;
	data = &f->d;
	d = cfg.desc[nr & (RECORD_NR_MAX - 1)];
	if (RECORD_D_FIELD(d, RECORD_D_STR0) || RECORD_D_FIELD(d, RECORD_D_STR1)) {
		__u32 tid = (__u32)pid_tgid;

		if (bpf_map_lookup_elem(&reread, &tid)) {
			bpf_map_delete_elem(&reread, &tid);
			f->e.flags |= RECORD_F_REREAD;
			/* the strings the entry could not read, read where the entry would have put them */
			end = DATA_STR0;
			at = RECORD_D_FIELD(d, RECORD_D_STR0);
			if (at)
				end = take_str0(f, regs, at, end);
			at = RECORD_D_FIELD(d, RECORD_D_STR1);
			if (at)
				end = take_str1(f, regs, at, end);
			send(f, end);
			return 0;
		}
	}
	if (ret >= 0 && exit_data(d)) {
		end = DATA_STR0;
		at = RECORD_D_FIELD(d, RECORD_D_ADDR_OUT);
		if (at) {
			len_ptr = arg_of(regs, at);
			if (len_ptr && !bpf_probe_read_user(&len, sizeof(len), (const void *)len_ptr))
				read_blob(data, arg_of(regs, at - 1), len, &f->e);
		}
		at = RECORD_D_FIELD(d, RECORD_D_FDS_OUT);
		if (at)
			read_blob(data, arg_of(regs, at - 1), 8, &f->e);
		at = RECORD_D_FIELD(d, RECORD_D_STAT_OUT);
		if (at)
			read_blob(data, arg_of(regs, at - 1), 32, &f->e);
		end = end_of(DATA_BLOB, data->blob_len, end);
		at = RECORD_D_FIELD(d, RECORD_D_STR_OUT);
		if (at)
			end = take_str0(f, regs, at, end);
	}
	send(f, end);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(sched_process_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = parent->tgid, ctgid = child->tgid, on = RECORD_FOLLOW_ON;
	__u32 *state = follow_state(ptgid);
	struct record_event *e;
	__u64 share = 0;

	if (state && *state == RECORD_FOLLOW_SPAWNING && ctgid != ptgid) {
		on = RECORD_FOLLOW_AT_EXEC;
		bpf_map_update_elem(&followed, &ctgid, &on, BPF_ANY);
		return 0;
	}
	if (!state || *state != RECORD_FOLLOW_ON)
		return 0;
	if (ctgid != ptgid)
		bpf_map_update_elem(&followed, &ctgid, &on, BPF_ANY);
	e = reserve();
	if (!e)
		return 0;
	header(e, RECORD_EV_FORK, ((__u64)ptgid << 32) | (__u32)parent->pid);
	e->ret = child->pid;
	if (ctgid == ptgid)
		share |= RECORD_SHARE_THREAD;
	if (child->files == parent->files)
		share |= RECORD_SHARE_FILES;
	if (child->fs == parent->fs)
		share |= RECORD_SHARE_FS;
	if (child->mm == parent->mm)
		share |= RECORD_SHARE_VM;
	e->args[0] = ctgid;
	e->args[1] = share;
	e->args[2] = BPF_CORE_READ(child, real_parent, tgid);
	e->args[3] = 0;
	e->args[4] = 0;
	e->args[5] = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(sched_process_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 *state = follow_state(pid_tgid >> 32);
	struct record_event *e;
	const struct cred *cred;

	if (!state || *state != RECORD_FOLLOW_ON)
		return 0;
	e = reserve();
	if (!e)
		return 0;
	header(e, RECORD_EV_EXEC, pid_tgid);
	e->ret = old_pid;
	cred = BPF_CORE_READ(p, cred);
	e->args[0] = BPF_CORE_READ(cred, uid.val);
	e->args[1] = BPF_CORE_READ(cred, gid.val);
	e->args[2] = BPF_CORE_READ(cred, euid.val);
	e->args[3] = BPF_CORE_READ(cred, egid.val);
	e->args[4] = BPF_CORE_READ(cred, cap_effective.val);
	e->args[5] = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(sched_process_exit, struct task_struct *task, bool group_dead)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	__u32 *state = follow_state(tgid);
	struct record_event *e;

	if (!state || *state == RECORD_FOLLOW_SPAWNING)
		return 0;
	if (group_dead)
		bpf_map_delete_elem(&followed, &tgid);
	e = reserve();
	if (!e)
		return 0;
	header(e, RECORD_EV_GONE, pid_tgid);
	e->ret = task->exit_code;
	e->args[0] = group_dead ? 1 : 0;
	e->args[1] = 0;
	e->args[2] = 0;
	e->args[3] = 0;
	e->args[4] = 0;
	e->args[5] = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}
