/* The one definition of what the kernel side of `carnot trace` hands to user space.
 * src/trace/libssl/events.ts mirrors it; test/trace/layout.test.ts compiles this header and fails when they differ. */
#ifndef CARNOT_H
#define CARNOT_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define CARNOT_DATA_MAX 256
#define CARNOT_COMM_LEN 16
/* Index of each counter in the `stats` array map; received + dropped == attempted, exactly.
 * CONN_CREATED / CONN_DELETED: entries the probes put into and took out of the per-connection table; what is
 * neither deleted nor still there was evicted by the table itself (an LRU hash bounded by --max-pending). */
#define CARNOT_STAT_ATTEMPTED 0
#define CARNOT_STAT_DROPPED 1
#define CARNOT_STAT_CONN_CREATED 2
#define CARNOT_STAT_CONN_DELETED 3
#define CARNOT_STAT_COUNT 4

/* SSL_ctrl / SSL_CTX_ctrl commands worth an event (OpenSSL's SSL_CTRL_* values; the setters are macros). */
#define CARNOT_CTRL_SET_TLSEXT_HOSTNAME 55
#define CARNOT_CTRL_SET_GROUPS 91
#define CARNOT_CTRL_SET_GROUPS_LIST 92
/* At most this many NIDs are copied from an SSL_CTRL_SET_GROUPS array (4 bytes each, fits in data). */
#define CARNOT_NIDS_MAX (CARNOT_DATA_MAX / 4)

enum carnot_event_kind {
	CARNOT_EV_SSL_NEW = 1,         /* uretprobe SSL_new: ptr = SSL*, aux = SSL_CTX* (saved at entry per tid) */
	CARNOT_EV_SSL_FREE = 2,        /* uprobe SSL_free: ptr = SSL* */
	CARNOT_EV_SET_HOSTNAME = 3,    /* uprobe SSL_ctrl cmd 55: data = host name (data_len bytes, no NUL) */
	CARNOT_EV_SET_GROUPS_LIST = 4, /* SSL_ctrl cmd 92: data = "X25519:P-256" (no NUL) */
	CARNOT_EV_SET_GROUPS_NIDS = 5, /* SSL_ctrl cmd 91: data = int NIDs (at most CARNOT_NIDS_MAX), aux = count asked */
	CARNOT_EV_CTX_GROUPS_LIST = 6, /* SSL_CTX_ctrl cmd 92: ptr = SSL_CTX* */
	CARNOT_EV_CTX_GROUPS_NIDS = 7, /* SSL_CTX_ctrl cmd 91: ptr = SSL_CTX*, aux = count asked */
	CARNOT_EV_HS_ENTER = 8,        /* uprobe SSL_do_handshake / SSL_connect / SSL_accept: aux = carnot_hs_func */
	CARNOT_EV_HS_RETURN = 9,       /* uretprobe of the same: ptr = SSL* of the call, ret = return value */
	CARNOT_EV_SET_STATE = 10,      /* uprobe SSL_set_connect_state (aux=1 client) / SSL_set_accept_state (aux=2 server) */
	CARNOT_EV_GET_ERROR = 11,      /* uretprobe SSL_get_error(ssl, ret): ret = SSL_ERROR_* code, aux = the ret arg (signed) */
	CARNOT_EV_HS_IMPLICIT = 12,    /* a handshake run inside SSL_read/SSL_write, seen done (ret=1, data = carnot_kex) at a
	                                * checkpoint (SSL_get_error, SSL_free, optionally SSL_read/SSL_write entry), or freed
	                                * unfinished (ret=0); aux = ktime of SSL_set_connect/accept_state */
	CARNOT_EV_HS_DONE = 13,        /* aggregated mode: one event per handshake, at completion, fatal failure or SSL_free;
	                                * ptr = SSL*, aux = ktime of its start (0 = unseen), ret = 1 success / 0 failure,
	                                * data = struct carnot_done */
	CARNOT_EV_EXE = 14,            /* once per process, before its first other event: data = its executable's path
	                                * (no NUL), or ret = -errno when it cannot be known (deleted, too deep: bpf/task.h);
	                                * aux = the process's start time (task start_time, ns since boot) */
	CARNOT_EV_SYNTHETIC = 100,     /* only from bpf/flood.bpf.c (tests and benchmark): aux = sequence number */
};

/* Which function a probe sits on: the low 8 bits of the attach cookie (the rest is the library id), so one
 * entry program and one return program serve every function and library (two links per library to detach). */
enum carnot_probe_func {
	CARNOT_FN_SSL_NEW = 1,
	CARNOT_FN_SSL_FREE = 2,
	CARNOT_FN_SSL_CTRL = 3,
	CARNOT_FN_SSL_CTX_CTRL = 4,
	CARNOT_FN_SSL_SET_CONNECT_STATE = 5,
	CARNOT_FN_SSL_SET_ACCEPT_STATE = 6,
	CARNOT_FN_SSL_DO_HANDSHAKE = 7,
	CARNOT_FN_SSL_CONNECT = 8,
	CARNOT_FN_SSL_ACCEPT = 9,
	CARNOT_FN_SSL_GET_ERROR = 10,
	CARNOT_FN_SSL_READ = 11,      /* entry only, optional (--implicit-probes): checkpoints of implicit handshakes */
	CARNOT_FN_SSL_WRITE = 12,
	CARNOT_FN_SSL_READ_EX = 13,
	CARNOT_FN_SSL_WRITE_EX = 14,
};
#define CARNOT_COOKIE_FUNC_BITS 8
#define CARNOT_COOKIE_FUNC_MASK 0xff

enum carnot_hs_func {
	CARNOT_HS_DO_HANDSHAKE = 1,
	CARNOT_HS_CONNECT = 2,
	CARNOT_HS_ACCEPT = 3,
};

enum carnot_role {
	CARNOT_ROLE_CLIENT = 1,
	CARNOT_ROLE_SERVER = 2,
};

/* Key-exchange facts read from the SSL object at handshake completion (HS_RETURN with ret 1, HS_IMPLICIT with
 * ret 1), through the offsets verified for that library; `valid` says which reads succeeded. */
#define CARNOT_KEX_VERSION 1
#define CARNOT_KEX_CIPHER 2
#define CARNOT_KEX_GROUP 4
#define CARNOT_KEX_GROUP13 8
struct carnot_kex {
	__s32 version;   /* 0 SSL version (0x0304 = TLS 1.3) */
	__u32 cipher_id; /* 4 SSL_CIPHER id (0x0300xxxx: low 16 bits = IANA code) */
	__u16 group;     /* 8 SSL_SESSION kex group (IANA code) */
	__u16 group13;   /* 10 TLS 1.3 key-exchange group in the SSL object (cross-check) */
	__u32 valid;     /* 12 CARNOT_KEX_* bits */
};
_Static_assert(sizeof(struct carnot_kex) == 16, "carnot_kex layout");

/* Verified offsets of one probed library (array map `lib_offsets`, index = lib_id); -1 = not verified. */
#define CARNOT_LIBS_MAX 64
struct carnot_lib_offsets {
	__u32 calibrated;  /* 0 = nothing verified: no facts, no implicit handshakes */
	__s32 version;     /* int in SSL */
	__s32 cipher;      /* const SSL_CIPHER * in SSL */
	__s32 cipher_id;   /* uint32 in SSL_CIPHER */
	__s32 session;     /* SSL_SESSION * in SSL */
	__s32 kex_group;   /* uint16 in SSL_SESSION */
	__s32 group13;     /* uint16 in SSL */
	__s32 hand_state;  /* int in SSL */
	__s32 hand_state_ok; /* the value of TLS_ST_OK */
	__s32 ssl_ctx;     /* SSL_CTX * in SSL */
};
_Static_assert(sizeof(struct carnot_lib_offsets) == 40, "carnot_lib_offsets layout");

/* Why an aggregated handshake ended (carnot_done.outcome). */
enum carnot_outcome {
	CARNOT_DONE_OK = 0,
	CARNOT_DONE_FATAL = 1,   /* handshake call returned 0, or SSL_get_error said SSL_ERROR_SSL */
	CARNOT_DONE_SYSCALL = 2, /* SSL_ERROR_SYSCALL */
	CARNOT_DONE_CLOSED = 3,  /* SSL_ERROR_ZERO_RETURN */
	CARNOT_DONE_FREED = 4,   /* SSL_free before it finished */
};

/* The data of CARNOT_EV_HS_DONE. */
struct carnot_done {
	struct carnot_kex kex; /*  0 valid only on success, through verified offsets */
	__u64 ctx;             /* 16 SSL_CTX * (through a verified offset), 0 = unknown */
	__u32 role;            /* 24 enum carnot_role, 0 = unknown */
	__u32 outcome;         /* 28 enum carnot_outcome */
	__u32 implicit;        /* 32 1 = ran inside SSL_read/SSL_write (no handshake call of its own) */
	__u32 reserved;        /* 36 */
};
_Static_assert(sizeof(struct carnot_done) == 40, "carnot_done layout");

/* Per connection (tgid, SSL*): the handshake in progress. In aggregated mode this is the whole correlation of
 * a handshake, so that user space gets one event per handshake; in both modes it marks connections whose
 * handshake may run implicitly (SSL_set_connect/accept_state seen, library calibrated). */
struct carnot_conn_key {
	__u32 tgid;
	__u32 reserved;
	__u64 ssl;
};
#define CARNOT_CONN_LIVE 1        /* a handshake call was seen and the handshake has not finished */
#define CARNOT_CONN_AWAIT_ERROR 2 /* the outermost handshake call returned < 0: SSL_get_error decides */
#define CARNOT_CONN_IMPLICIT 4    /* set_*_state seen on a calibrated library: a checkpoint may see it finish */
#define CARNOT_CONN_VISIBLE 8     /* user space holds state for this SSL* (its SNI or groups): tell it about SSL_free */
#define CARNOT_CONN_FINISHED 16   /* a handshake was reported: a later SSL_set_*_state (curl calls one) starts none */
struct carnot_conn_state {
	__u64 start_ns; /*  0 first handshake call, or set_*_state for a handshake that may run implicitly */
	__u64 last_ns;  /*  8 last handshake call: user space gives up a live handshake untouched for its window */
	__u32 role;     /* 16 enum carnot_role, 0 = unknown */
	__u32 flags;    /* 20 CARNOT_CONN_* */
	__u32 lib_id;   /* 24 which probed library */
	__u32 reserved; /* 28 */
};
_Static_assert(sizeof(struct carnot_conn_key) == 16, "carnot_conn_key layout");
_Static_assert(sizeof(struct carnot_conn_state) == 32, "carnot_conn_state layout");

/* carnot_config.flags */
#define CARNOT_CFG_AGGREGATE 1 /* one HS_DONE per handshake instead of an event per call */

struct carnot_event {            /* fixed 328 bytes, 8-byte aligned, no implicit padding */
	__u64 ts_ns;               /*  0 bpf_ktime_get_ns (CLOCK_MONOTONIC) */
	__u64 ptr;                 /*  8 SSL* (SSL_CTX* for CTX events) */
	__u64 aux;                 /* 16 kind-specific, see carnot_event_kind */
	__u32 pid;                 /* 24 tgid */
	__u32 tid;                 /* 28 */
	__s32 ret;                 /* 32 */
	__u16 kind;                /* 36 enum carnot_event_kind */
	__u16 data_len;            /* 38 bytes valid in data */
	__u32 lib_id;              /* 40 which probed library: attach cookie >> CARNOT_COOKIE_FUNC_BITS */
	__u32 depth;               /* 44 handshake-call nesting on this thread, 1 = outermost (HS events only) */
	char comm[CARNOT_COMM_LEN]; /* 48 NUL-padded */
	__u64 cgroup_id;           /* 64 the task's cgroup v2 id at this event (bpf_get_current_cgroup_id), 0 = none */
	__u8 data[CARNOT_DATA_MAX]; /* 72 */
};
_Static_assert(sizeof(struct carnot_event) == 328, "carnot_event layout");

/* The only read-only global of carnot.bpf.c (so `.rodata` is exactly this struct), set before load. */
struct carnot_config {
	__u32 targ_tgid;                 /* 0 = every process */
	__u32 flags;                     /* CARNOT_CFG_* */
	char targ_comm[CARNOT_COMM_LEN]; /* empty = every process; else exact match on the task comm */
	__u64 targ_cgroup;               /* 0 = every cgroup; else only tasks in this cgroup v2 or below it */
	__u32 targ_cgroup_level;         /* the level of targ_cgroup in the hierarchy (the root is 0) */
	__u32 reserved;
};
_Static_assert(sizeof(struct carnot_config) == 40, "carnot_config layout");

#endif /* CARNOT_H */
