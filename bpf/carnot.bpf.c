// SPDX-License-Identifier: GPL-2.0
/* Uprobes on OpenSSL's libssl: one fixed-size carnot_event per call of interest, into the `events` ring buffer. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "carnot.h"

char LICENSE[] SEC("license") = "GPL";

/* Set by the loader before load; the verifier then prunes the filter branches that cannot run. */
const volatile struct carnot_config cfg = {};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22); /* replaced at run time (--ringbuf-size) */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CARNOT_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/* Verified offsets per library, written by the loader before attaching. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CARNOT_LIBS_MAX);
	__type(key, __u32);
	__type(value, struct carnot_lib_offsets);
} lib_offsets SEC(".maps");

/* Handshakes that may run implicitly (SSL_set_connect/accept_state seen, no explicit handshake call finished
 * yet): (tgid, SSL*) → ktime of set_*_state. Checkpoints look them up; a miss costs one hash lookup. */
struct implicit_key {
	__u32 tgid;
	__u32 reserved;
	__u64 ssl;
};
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct implicit_key);
	__type(value, __u64);
} implicit_hs SEC(".maps");

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

/* Handshake calls nest on one thread (SSL_connect calls SSL_do_handshake): a small stack of SSL* per thread. */
#define HS_STACK_MAX 4
struct hs_stack {
	__u32 depth;
	__u32 reserved;
	__u64 ssl[HS_STACK_MAX];
};
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct hs_stack);
} hs_stacks SEC(".maps");

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

static __always_inline void implicit_start(void *ctx, void *ssl)
{
	struct implicit_key key = { .tgid = bpf_get_current_pid_tgid() >> 32, .ssl = (__u64)ssl };
	__u64 now;

	if (!offsets_of(ctx) || !task_wanted())
		return;
	now = bpf_ktime_get_ns();
	bpf_map_update_elem(&implicit_hs, &key, &now, BPF_ANY);
}

static __always_inline void implicit_forget(void *ssl)
{
	struct implicit_key key = { .tgid = bpf_get_current_pid_tgid() >> 32, .ssl = (__u64)ssl };

	bpf_map_delete_elem(&implicit_hs, &key);
}

/* A checkpoint: is an implicit handshake of this SSL* done? Then one event with its facts. At SSL_free an
 * unfinished one ends too (ret 0). */
static __always_inline void implicit_check(void *ctx, void *ssl, bool freeing)
{
	struct implicit_key key = { .tgid = bpf_get_current_pid_tgid() >> 32, .ssl = (__u64)ssl };
	struct carnot_lib_offsets *off;
	struct carnot_event *e;
	__u64 *started, start;
	__s32 state = -1;
	bool done;

	started = bpf_map_lookup_elem(&implicit_hs, &key);
	if (!started)
		return;
	start = *started;
	off = offsets_of(ctx);
	if (!off)
		return;
	done = off->hand_state >= 0 && !bpf_probe_read_user(&state, 4, (void *)((__u64)ssl + off->hand_state)) &&
	       state == off->hand_state_ok;
	if (!done && !freeing)
		return;
	bpf_map_delete_elem(&implicit_hs, &key);
	e = reserve_event(ctx, CARNOT_EV_HS_IMPLICIT, (__u64)ssl);
	if (!e)
		return;
	e->aux = start;
	e->ret = done ? 1 : 0;
	if (done)
		e->data_len = read_kex(off, (__u64)ssl, (struct carnot_kex *)e->data);
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
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
	if (depth == 1)
		bpf_map_delete_elem(&hs_stacks, &tid);
	else
		stack->depth = depth - 1;
	if (ret == 1 || ret == 0)
		implicit_forget((void *)ssl); /* finished explicitly: no checkpoint needs to look at it */
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
	}
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

static __always_inline void get_error_enter(void *ssl, int ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct get_error_args args = { .ssl = (__u64)ssl, .ret = ret };

	if (task_wanted())
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
		implicit_check(ctx, arg1, true);
		emit_simple(ctx, CARNOT_EV_SSL_FREE, (__u64)arg1, 0);
		break;
	case CARNOT_FN_SSL_CTRL:
		ssl_ctrl(ctx, arg1, (int)PT_REGS_PARM2(ctx), (long)PT_REGS_PARM3(ctx), (void *)PT_REGS_PARM4(ctx));
		break;
	case CARNOT_FN_SSL_CTX_CTRL:
		ssl_ctx_ctrl(ctx, arg1, (int)PT_REGS_PARM2(ctx), (long)PT_REGS_PARM3(ctx), (void *)PT_REGS_PARM4(ctx));
		break;
	case CARNOT_FN_SSL_SET_CONNECT_STATE:
		implicit_start(ctx, arg1);
		emit_simple(ctx, CARNOT_EV_SET_STATE, (__u64)arg1, CARNOT_ROLE_CLIENT);
		break;
	case CARNOT_FN_SSL_SET_ACCEPT_STATE:
		implicit_start(ctx, arg1);
		emit_simple(ctx, CARNOT_EV_SET_STATE, (__u64)arg1, CARNOT_ROLE_SERVER);
		break;
	case CARNOT_FN_SSL_READ:
	case CARNOT_FN_SSL_WRITE:
	case CARNOT_FN_SSL_READ_EX:
	case CARNOT_FN_SSL_WRITE_EX:
		implicit_check(ctx, arg1, false);
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
		implicit_check(ctx, arg1, false);
		get_error_enter(arg1, (int)PT_REGS_PARM2(ctx));
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
