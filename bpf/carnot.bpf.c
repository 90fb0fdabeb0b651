// SPDX-License-Identifier: GPL-2.0
/* Uprobes on OpenSSL's libssl, into the `events` ring buffer: one fixed-size carnot_event per call of interest
 * (raw mode), or, with CARNOT_CFG_AGGREGATE, one per handshake (the per-call state stays in the kernel). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "carnot.h"
#include "output_maps.h"
#include "handshake_threads.h"
#include "task.h"
#include "exe_announce.h"
#include "cgroup_filter.h"

char LICENSE[] SEC("license") = "GPL";

/* Set by the loader before load; the verifier then prunes the filter branches that cannot run. */
const volatile struct carnot_config cfg = {};

/* Verified offsets per library, written by the loader before attaching. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CARNOT_LIBS_MAX);
	__type(key, __u32);
	__type(value, struct carnot_lib_offsets);
} lib_offsets SEC(".maps");

/* Per connection (tgid, SSL*): the handshake in progress (struct carnot_conn_state, see carnot.h). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct carnot_conn_key);
	__type(value, struct carnot_conn_state);
} conns SEC(".maps");

/* SSL_new(ctx): the context, from entry to return, per thread. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u64);
} new_ctx SEC(".maps");

/* SSL_get_error(ssl, ret): both arguments, from entry to return, per thread. */
struct get_error_args {
	__u64 ssl;
	__s64 ret;
};
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct get_error_args);
} get_error_args SEC(".maps");

static __always_inline void count(__u32 index)
{
	__u64 *value = bpf_map_lookup_elem(&stats, &index);

	if (value)
		__sync_fetch_and_add(value, 1);
}

static __always_inline bool comm_matches(const char *comm)
{
	if (cfg.targ_comm[0] == '\0')
		return true;
	for (int i = 0; i < CARNOT_COMM_LEN; i++) {
		if (comm[i] != cfg.targ_comm[i])
			return false;
		if (comm[i] == '\0')
			return true;
	}
	return true;
}

/* The tgid filter alone; the comm filter needs the comm, read once in reserve_event. */
static __always_inline bool tgid_wanted(void)
{
	return cfg.targ_tgid == 0 || (bpf_get_current_pid_tgid() >> 32) == cfg.targ_tgid;
}

static __always_inline bool task_wanted(void)
{
	char comm[CARNOT_COMM_LEN];

	if (!tgid_wanted())
		return false;
	if (!cgroup_wanted(cfg.targ_cgroup, cfg.targ_cgroup_level))
		return false;
	if (cfg.targ_comm[0] == '\0')
		return true;
	bpf_get_current_comm(comm, sizeof(comm));
	return comm_matches(comm);
}

/* Reserve and fill the common fields; NULL (and one more drop counted) when the ring buffer is full. */
static __always_inline struct carnot_event *reserve_event(void *ctx, __u16 kind, __u64 ptr)
{
	struct carnot_event *e;
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	announce_exe(pid_tgid >> 32);
	count(CARNOT_STAT_ATTEMPTED);
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(CARNOT_STAT_DROPPED);
		return NULL;
	}
	e->ts_ns = bpf_ktime_get_ns();
	e->ptr = ptr;
	e->aux = 0;
	e->pid = pid_tgid >> 32;
	e->tid = (__u32)pid_tgid;
	e->ret = 0;
	e->kind = kind;
	e->data_len = 0;
	e->lib_id = (__u32)(bpf_get_attach_cookie(ctx) >> CARNOT_COOKIE_FUNC_BITS);
	e->depth = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	/* per event, not per process: a process can move to another cgroup between two handshakes */
	e->cgroup_id = bpf_get_current_cgroup_id();
	return e;
}

static __always_inline void emit_simple(void *ctx, __u16 kind, __u64 ptr, __u64 aux)
{
	struct carnot_event *e;

	if (!task_wanted())
		return;
	e = reserve_event(ctx, kind, ptr);
	if (!e)
		return;
	e->aux = aux;
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
}

static __always_inline void emit_string(void *ctx, __u16 kind, __u64 ptr, const void *str)
{
	struct carnot_event *e;
	long n;

	if (!task_wanted())
		return;
	e = reserve_event(ctx, kind, ptr);
	if (!e)
		return;
	n = bpf_probe_read_user_str(e->data, sizeof(e->data), str);
	e->data_len = n > 0 ? n - 1 : 0; /* without the NUL */
	e->ret = n < 0 ? n : 0;           /* the read error, when the string could not be read */
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
}

static __always_inline void emit_nids(void *ctx, __u16 kind, __u64 ptr, long count, const void *nids)
{
	struct carnot_event *e;
	__u32 len;
	long err = 0;

	if (!task_wanted())
		return;
	e = reserve_event(ctx, kind, ptr);
	if (!e)
		return;
	e->aux = count;
	len = count < 0 ? 0 : count > CARNOT_NIDS_MAX ? CARNOT_NIDS_MAX * 4 : (__u32)count * 4;
	if (len > 0 && len <= sizeof(e->data))
		err = bpf_probe_read_user(e->data, len, nids);
	e->data_len = err ? 0 : len;
	e->ret = err;
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
}

static __always_inline bool aggregated(void)
{
	return cfg.flags & CARNOT_CFG_AGGREGATE;
}

static __always_inline struct carnot_lib_offsets *offsets_of(void *ctx)
{
	__u32 lib_id = (__u32)(bpf_get_attach_cookie(ctx) >> CARNOT_COOKIE_FUNC_BITS);
	struct carnot_lib_offsets *off = bpf_map_lookup_elem(&lib_offsets, &lib_id);

	return off && off->calibrated ? off : NULL;
}

/* Reads the key-exchange facts of a finished handshake into `kex`; returns its size for data_len. */
static __always_inline __u16 read_kex(struct carnot_lib_offsets *off, __u64 ssl, struct carnot_kex *kex)
{
	__u64 cipher = 0, session = 0;

	kex->valid = 0;
	if (off->version >= 0 && !bpf_probe_read_user(&kex->version, 4, (void *)(ssl + off->version)))
		kex->valid |= CARNOT_KEX_VERSION;
	if (off->cipher >= 0 && off->cipher_id >= 0 &&
	    !bpf_probe_read_user(&cipher, 8, (void *)(ssl + off->cipher)) && cipher &&
	    !bpf_probe_read_user(&kex->cipher_id, 4, (void *)(cipher + off->cipher_id)))
		kex->valid |= CARNOT_KEX_CIPHER;
	if (off->session >= 0 && off->kex_group >= 0 &&
	    !bpf_probe_read_user(&session, 8, (void *)(ssl + off->session)) && session &&
	    !bpf_probe_read_user(&kex->group, 2, (void *)(session + off->kex_group)))
		kex->valid |= CARNOT_KEX_GROUP;
	if (off->group13 >= 0 && !bpf_probe_read_user(&kex->group13, 2, (void *)(ssl + off->group13)))
		kex->valid |= CARNOT_KEX_GROUP13;
	return sizeof(*kex);
}

static __always_inline struct carnot_conn_key conn_key_of(__u64 ssl)
{
	struct carnot_conn_key key = { .tgid = bpf_get_current_pid_tgid() >> 32, .ssl = ssl };

	return key;
}

/* The state of `ssl`, created empty when absent (NULL only when the map refuses). */
static __always_inline struct carnot_conn_state *conn_upsert(void *ctx, struct carnot_conn_key *key)
{
	struct carnot_conn_state fresh = { .lib_id = (__u32)(bpf_get_attach_cookie(ctx) >> CARNOT_COOKIE_FUNC_BITS) };
	struct carnot_conn_state *st = bpf_map_lookup_elem(&conns, key);

	if (st)
		return st;
	if (bpf_map_update_elem(&conns, key, &fresh, BPF_NOEXIST) == 0)
		count(CARNOT_STAT_CONN_CREATED);
	return bpf_map_lookup_elem(&conns, key);
}

/* Forget the state of a connection; counted, so user space can tell the deletions from the table's evictions. */
static __always_inline void conn_delete(struct carnot_conn_key *key)
{
	if (bpf_map_delete_elem(&conns, key) == 0)
		count(CARNOT_STAT_CONN_DELETED);
}

/* Aggregated mode: user space now holds state for this SSL*, so it must hear of its SSL_free. */
static __always_inline void mark_visible(void *ctx, __u64 ssl)
{
	struct carnot_conn_key key = conn_key_of(ssl);
	struct carnot_conn_state *st;

	if (!aggregated())
		return;
	st = conn_upsert(ctx, &key);
	if (st)
		st->flags |= CARNOT_CONN_VISIBLE;
}

/* Aggregated mode: the one event of a handshake. Clears the handshake from the connection's state. */
static __always_inline void emit_done(void *ctx, __u64 ssl, struct carnot_conn_state *st, __u32 outcome, bool implicit)
{
	struct carnot_lib_offsets *off = offsets_of(ctx);
	struct carnot_event *e;
	struct carnot_done *done;
	__u64 start = st->start_ns;
	__u32 role = st->role;

	st->start_ns = 0;
	st->flags = (st->flags & CARNOT_CONN_VISIBLE) | CARNOT_CONN_FINISHED;
	e = reserve_event(ctx, CARNOT_EV_HS_DONE, ssl);
	if (!e)
		return;
	done = (struct carnot_done *)e->data;
	__builtin_memset(done, 0, sizeof(*done));
	if (off && outcome == CARNOT_DONE_OK)
		read_kex(off, ssl, &done->kex);
	if (off && off->ssl_ctx >= 0)
		bpf_probe_read_user(&done->ctx, 8, (void *)(ssl + off->ssl_ctx));
	done->role = role;
	done->outcome = outcome;
	done->implicit = implicit;
	e->aux = start;
	e->ret = outcome == CARNOT_DONE_OK;
	e->data_len = sizeof(*done);
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
}

/* SSL_set_connect_state / SSL_set_accept_state. */
static __always_inline void set_state(void *ctx, void *ssl, __u32 role)
{
	struct carnot_conn_key key = conn_key_of((__u64)ssl);
	struct carnot_lib_offsets *off;
	struct carnot_conn_state *st;

	if (!task_wanted())
		return;
	if (!aggregated())
		emit_simple(ctx, CARNOT_EV_SET_STATE, (__u64)ssl, role);
	off = offsets_of(ctx);
	if (!aggregated() && !(off && off->hand_state >= 0))
		return;
	st = conn_upsert(ctx, &key);
	if (!st)
		return;
	st->role = role;
	if (off && off->hand_state >= 0 && !(st->flags & CARNOT_CONN_FINISHED)) {
		struct implicit_key ikey = { .tid = (__u32)bpf_get_current_pid_tgid(), .role = role };
		__u64 ssl_ptr = (__u64)ssl;

		if (!(st->flags & (CARNOT_CONN_LIVE | CARNOT_CONN_IMPLICIT)))
			st->start_ns = bpf_ktime_get_ns();
		st->flags |= CARNOT_CONN_IMPLICIT;
		bpf_map_update_elem(&implicit_ssl, &ikey, &ssl_ptr, BPF_ANY);
	}
}

/* A checkpoint (SSL_get_error, SSL_free, optionally SSL_read/SSL_write entries): has a handshake of this SSL*
 * that runs implicitly finished? At SSL_free, whatever is unfinished ends too. */
static __always_inline void checkpoint(void *ctx, void *ssl, bool freeing)
{
	struct carnot_conn_key key = conn_key_of((__u64)ssl);
	struct carnot_conn_state *st = bpf_map_lookup_elem(&conns, &key);
	struct carnot_lib_offsets *off;
	struct carnot_event *e;
	__s32 state = -1;
	bool done = false;

	if (!st)
		return;
	off = offsets_of(ctx);
	if ((st->flags & (CARNOT_CONN_LIVE | CARNOT_CONN_IMPLICIT)) && off && off->hand_state >= 0)
		done = !bpf_probe_read_user(&state, 4, (void *)((__u64)ssl + off->hand_state)) &&
		       state == off->hand_state_ok;
	if (aggregated()) {
		if (done)
			emit_done(ctx, (__u64)ssl, st, CARNOT_DONE_OK, !(st->flags & CARNOT_CONN_LIVE));
		else if (freeing && (st->flags & (CARNOT_CONN_LIVE | CARNOT_CONN_IMPLICIT)))
			emit_done(ctx, (__u64)ssl, st, CARNOT_DONE_FREED, !(st->flags & CARNOT_CONN_LIVE));
		if (freeing) {
			if (st->flags & CARNOT_CONN_VISIBLE)
				emit_simple(ctx, CARNOT_EV_SSL_FREE, (__u64)ssl, 0);
			conn_delete(&key);
		}
		return;
	}
	if (!(st->flags & CARNOT_CONN_IMPLICIT) || (!done && !freeing))
		return;
	e = reserve_event(ctx, CARNOT_EV_HS_IMPLICIT, (__u64)ssl);
	if (e) {
		e->aux = st->start_ns;
		e->ret = done ? 1 : 0;
		if (done && off)
			e->data_len = read_kex(off, (__u64)ssl, (struct carnot_kex *)e->data);
		bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
	}
	conn_delete(&key);
}

static __always_inline void ssl_free(void *ctx, void *ssl)
{
	if (!task_wanted())
		return;
	checkpoint(ctx, ssl, true);
	if (!aggregated())
		emit_simple(ctx, CARNOT_EV_SSL_FREE, (__u64)ssl, 0);
}

static __always_inline void handshake_enter(void *ctx, void *ssl, __u32 func)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct hs_stack fresh = {}, *stack;
	struct carnot_event *e;
	__u32 depth;

	if (!task_wanted())
		return;
	stack = bpf_map_lookup_elem(&hs_stacks, &tid);
	if (!stack) {
		bpf_map_update_elem(&hs_stacks, &tid, &fresh, BPF_NOEXIST);
		stack = bpf_map_lookup_elem(&hs_stacks, &tid);
		if (!stack)
			return;
	}
	depth = stack->depth + 1;
	stack->depth = depth;
	if (depth <= HS_STACK_MAX)
		stack->ssl[(depth - 1) & (HS_STACK_MAX - 1)] = (__u64)ssl;
	if (aggregated()) {
		struct carnot_conn_key key = conn_key_of((__u64)ssl);
		struct carnot_conn_state *st = conn_upsert(ctx, &key);

		if (!st)
			return;
		st->last_ns = bpf_ktime_get_ns();
		if (!(st->flags & CARNOT_CONN_LIVE)) {
			st->start_ns = st->last_ns;
			st->flags |= CARNOT_CONN_LIVE;
		}
		st->flags &= ~CARNOT_CONN_AWAIT_ERROR; /* called again: the last -1 was want-read/want-write */
		if (func == CARNOT_HS_CONNECT)
			st->role = CARNOT_ROLE_CLIENT;
		else if (func == CARNOT_HS_ACCEPT)
			st->role = CARNOT_ROLE_SERVER;
		return;
	}
	e = reserve_event(ctx, CARNOT_EV_HS_ENTER, (__u64)ssl);
	if (!e)
		return;
	e->aux = func;
	e->depth = depth;
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
}

static __always_inline void handshake_return(void *ctx, int ret, __u32 func)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct hs_stack *stack = bpf_map_lookup_elem(&hs_stacks, &tid);
	struct carnot_event *e;
	__u32 depth;
	__u64 ssl = 0;

	if (!stack || stack->depth == 0)
		return; /* entry filtered out, or the probe was attached mid-call */
	depth = stack->depth;
	if (depth <= HS_STACK_MAX)
		ssl = stack->ssl[(depth - 1) & (HS_STACK_MAX - 1)];
	/* the emptied stack stays for the thread's next call: a delete and a re-insert per call cost more */
	stack->depth = depth - 1;
	if (aggregated()) {
		struct carnot_conn_key key = conn_key_of(ssl);
		struct carnot_conn_state *st;

		if (depth != 1 || !ssl)
			return; /* an inner call (SSL_do_handshake inside SSL_connect): the outer one decides */
		st = bpf_map_lookup_elem(&conns, &key);
		if (!st)
			return;
		if (ret == 1)
			emit_done(ctx, ssl, st, CARNOT_DONE_OK, false);
		else if (ret == 0)
			emit_done(ctx, ssl, st, CARNOT_DONE_FATAL, false);
		else
			st->flags |= CARNOT_CONN_AWAIT_ERROR;
		return;
	}
	if (ret == 1 || ret == 0) {
		/* finished explicitly: no checkpoint needs to look at it */
		struct carnot_conn_key key = conn_key_of(ssl);

		conn_delete(&key);
	}
	e = reserve_event(ctx, CARNOT_EV_HS_RETURN, ssl);
	if (!e)
		return;
	e->aux = func;
	e->ret = ret;
	e->depth = depth;
	if (ret == 1 && ssl) {
		struct carnot_lib_offsets *off = offsets_of(ctx);

		if (off)
			e->data_len = read_kex(off, ssl, (struct carnot_kex *)e->data);
	}
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
}

static __always_inline void ssl_new_enter(void *ssl_ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 ctx_value = (__u64)ssl_ctx;

	if (task_wanted())
		bpf_map_update_elem(&new_ctx, &tid, &ctx_value, BPF_ANY);
}

static __always_inline void ssl_new_return(void *ctx, void *ssl)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct carnot_event *e;
	__u64 *ctx_value = bpf_map_lookup_elem(&new_ctx, &tid);
	__u64 ctx_ptr;

	if (!ctx_value)
		return; /* entry filtered out, or not seen */
	ctx_ptr = *ctx_value;
	bpf_map_delete_elem(&new_ctx, &tid);
	if (aggregated()) {
		/* the address is new: nothing of an earlier SSL* at it may carry over; user space now knows it */
		struct carnot_conn_key key = conn_key_of((__u64)ssl);

		conn_delete(&key);
		mark_visible(ctx, (__u64)ssl);
	}
	e = reserve_event(ctx, CARNOT_EV_SSL_NEW, (__u64)ssl);
	if (!e)
		return;
	e->aux = ctx_ptr;
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
}

static __always_inline void ssl_ctrl(void *ctx, void *ssl, int cmd, long larg, void *parg)
{
	switch (cmd) {
	case CARNOT_CTRL_SET_TLSEXT_HOSTNAME:
		emit_string(ctx, CARNOT_EV_SET_HOSTNAME, (__u64)ssl, parg);
		break;
	case CARNOT_CTRL_SET_GROUPS_LIST:
		emit_string(ctx, CARNOT_EV_SET_GROUPS_LIST, (__u64)ssl, parg);
		break;
	case CARNOT_CTRL_SET_GROUPS:
		emit_nids(ctx, CARNOT_EV_SET_GROUPS_NIDS, (__u64)ssl, larg, parg);
		break;
	default:
		return;
	}
	if (task_wanted())
		mark_visible(ctx, (__u64)ssl);
}

static __always_inline void ssl_ctx_ctrl(void *ctx, void *ssl_ctx, int cmd, long larg, void *parg)
{
	switch (cmd) {
	case CARNOT_CTRL_SET_GROUPS_LIST:
		emit_string(ctx, CARNOT_EV_CTX_GROUPS_LIST, (__u64)ssl_ctx, parg);
		break;
	case CARNOT_CTRL_SET_GROUPS:
		emit_nids(ctx, CARNOT_EV_CTX_GROUPS_NIDS, (__u64)ssl_ctx, larg, parg);
		break;
	}
}

static __always_inline void get_error_enter(void *ctx, void *ssl, int ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct get_error_args args = { .ssl = (__u64)ssl, .ret = ret };

	if (!task_wanted())
		return;
	checkpoint(ctx, ssl, false);
	if (aggregated()) {
		/* only a handshake call's -1 waits for this answer; most calls follow SSL_read/SSL_write */
		struct carnot_conn_key key = conn_key_of((__u64)ssl);
		struct carnot_conn_state *st;

		if (ret > 0)
			return;
		st = bpf_map_lookup_elem(&conns, &key);
		if (!st || !(st->flags & CARNOT_CONN_AWAIT_ERROR))
			return;
	}
	bpf_map_update_elem(&get_error_args, &tid, &args, BPF_ANY);
}

static __always_inline void get_error_return(void *ctx, int code)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct get_error_args *saved = bpf_map_lookup_elem(&get_error_args, &tid);
	struct carnot_event *e;
	struct get_error_args args;

	if (!saved)
		return;
	args = *saved;
	bpf_map_delete_elem(&get_error_args, &tid);
	if (aggregated()) {
		struct carnot_conn_key key = conn_key_of(args.ssl);
		struct carnot_conn_state *st = bpf_map_lookup_elem(&conns, &key);

		/* about SSL_read/SSL_write, or a successful call: says nothing about a handshake */
		if (!st || !(st->flags & CARNOT_CONN_AWAIT_ERROR) || args.ret > 0)
			return;
		if (code == 1) /* SSL_ERROR_SSL */
			emit_done(ctx, args.ssl, st, CARNOT_DONE_FATAL, false);
		else if (code == 5) /* SSL_ERROR_SYSCALL */
			emit_done(ctx, args.ssl, st, CARNOT_DONE_SYSCALL, false);
		else if (code == 6) /* SSL_ERROR_ZERO_RETURN */
			emit_done(ctx, args.ssl, st, CARNOT_DONE_CLOSED, false);
		else
			st->flags &= ~CARNOT_CONN_AWAIT_ERROR;
		return;
	}
	e = reserve_event(ctx, CARNOT_EV_GET_ERROR, args.ssl);
	if (!e)
		return;
	e->aux = (__u64)args.ret;
	e->ret = code;
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
}

/* Entry of every probed function; the attach cookie says which one (and which library). */
SEC("uprobe")
int BPF_KPROBE(uprobe__libssl)
{
	void *arg1 = (void *)PT_REGS_PARM1(ctx);

	switch (bpf_get_attach_cookie(ctx) & CARNOT_COOKIE_FUNC_MASK) {
	case CARNOT_FN_SSL_NEW:
		ssl_new_enter(arg1);
		break;
	case CARNOT_FN_SSL_FREE:
		ssl_free(ctx, arg1);
		break;
	case CARNOT_FN_SSL_CTRL:
		ssl_ctrl(ctx, arg1, (int)PT_REGS_PARM2(ctx), (long)PT_REGS_PARM3(ctx), (void *)PT_REGS_PARM4(ctx));
		break;
	case CARNOT_FN_SSL_CTX_CTRL:
		ssl_ctx_ctrl(ctx, arg1, (int)PT_REGS_PARM2(ctx), (long)PT_REGS_PARM3(ctx), (void *)PT_REGS_PARM4(ctx));
		break;
	case CARNOT_FN_SSL_SET_CONNECT_STATE:
		set_state(ctx, arg1, CARNOT_ROLE_CLIENT);
		break;
	case CARNOT_FN_SSL_SET_ACCEPT_STATE:
		set_state(ctx, arg1, CARNOT_ROLE_SERVER);
		break;
	case CARNOT_FN_SSL_DO_HANDSHAKE:
		handshake_enter(ctx, arg1, CARNOT_HS_DO_HANDSHAKE);
		break;
	case CARNOT_FN_SSL_CONNECT:
		handshake_enter(ctx, arg1, CARNOT_HS_CONNECT);
		break;
	case CARNOT_FN_SSL_ACCEPT:
		handshake_enter(ctx, arg1, CARNOT_HS_ACCEPT);
		break;
	case CARNOT_FN_SSL_GET_ERROR:
		get_error_enter(ctx, arg1, (int)PT_REGS_PARM2(ctx));
		break;
	case CARNOT_FN_SSL_READ:
	case CARNOT_FN_SSL_WRITE:
	case CARNOT_FN_SSL_READ_EX:
	case CARNOT_FN_SSL_WRITE_EX:
		if (task_wanted())
			checkpoint(ctx, arg1, false);
		break;
	}
	return 0;
}

/* Return of the functions whose result matters (SSL_new, the handshake calls, SSL_get_error). */
SEC("uretprobe")
int BPF_KRETPROBE(uretprobe__libssl)
{
	long rc = PT_REGS_RC(ctx);

	switch (bpf_get_attach_cookie(ctx) & CARNOT_COOKIE_FUNC_MASK) {
	case CARNOT_FN_SSL_NEW:
		ssl_new_return(ctx, (void *)rc);
		break;
	case CARNOT_FN_SSL_DO_HANDSHAKE:
		handshake_return(ctx, (int)rc, CARNOT_HS_DO_HANDSHAKE);
		break;
	case CARNOT_FN_SSL_CONNECT:
		handshake_return(ctx, (int)rc, CARNOT_HS_CONNECT);
		break;
	case CARNOT_FN_SSL_ACCEPT:
		handshake_return(ctx, (int)rc, CARNOT_HS_ACCEPT);
		break;
	case CARNOT_FN_SSL_GET_ERROR:
		get_error_return(ctx, (int)rc);
		break;
	}
	return 0;
}
