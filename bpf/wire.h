/* The one definition of what the wire source of `carnot trace` (wire.bpf.c) hands to user space: the first bytes
 * of both directions of every TCP connection whose stream starts with a TLS ClientHello, segment by segment.
 * src/trace/wire/events.ts mirrors it; test/trace/layout.test.ts compiles this header and fails when they differ.
 * The events share the libssl source's ring buffer: `kind` sits at the same offset as in struct carnot_event. */
#ifndef CARNOT_WIRE_H
#define CARNOT_WIRE_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define CARNOT_WIRE_COMM_LEN 16
/* Payload bytes carried by one event at most; a larger segment (GSO on egress) is split over several. */
#define CARNOT_WIRE_CHUNK 4096
/* Bytes followed per direction at most; then the kernel stops copying that direction. */
#define CARNOT_WIRE_CAP (64 * 1024)
/* Segments of a connection whose first bytes have not all arrived yet (reordering) before it is given up. */
#define CARNOT_WIRE_UNDECIDED_MAX 16

/* Index of each counter in the wire object's `stats` array map; ATTEMPTED / DROPPED as in carnot.h. */
#define CARNOT_WSTAT_ATTEMPTED 0
#define CARNOT_WSTAT_DROPPED 1
#define CARNOT_WSTAT_FOLLOWED 2   /* connections whose stream starts with a ClientHello */
#define CARNOT_WSTAT_NOT_TLS 3    /* connections whose first bytes are something else */
#define CARNOT_WSTAT_LATE 4       /* connections first seen mid-stream (older than the trace) */
#define CARNOT_WSTAT_FILTERED 5   /* connections of processes the filters leave out */
#define CARNOT_WSTAT_CAPPED 6     /* directions that reached CARNOT_WIRE_CAP */
#define CARNOT_WSTAT_RELEASED 7   /* connections user space said it had seen enough of */
#define CARNOT_WSTAT_UNDECIDED 8  /* connections given up before their first bytes were all there */
#define CARNOT_WSTAT_DEFERRED 9   /* ClientHellos that reached a listening socket (TCP_DEFER_ACCEPT) */
#define CARNOT_WSTAT_COUNT 10

enum carnot_wire_kind {
	CARNOT_EV_WIRE_SEGMENT = 20, /* data_len payload bytes at stream_offset of direction `dir` */
	CARNOT_EV_WIRE_END = 21,     /* FIN or RST in direction `dir` (flags), or the connection filtered out */
};

/* carnot_wire_event.flags */
#define CARNOT_WIRE_EGRESS 1      /* sent by this socket (else received) */
#define CARNOT_WIRE_FIN 2
#define CARNOT_WIRE_RST 4
#define CARNOT_WIRE_OWNER 8       /* pid/tid/comm are the socket's owner (seen sending with the socket locked) */
#define CARNOT_WIRE_LINK 16       /* link_ssl: the libssl handshake call running on the sending thread */
#define CARNOT_WIRE_LINK_WEAK 32  /* link_ssl: the SSL* the sending thread last prepared for an implicit handshake */
#define CARNOT_WIRE_FILTERED 64   /* END: the owner is left out by --pid/--comm: forget the connection */
#define CARNOT_WIRE_IPV6 128      /* addresses are IPv6 (else IPv4 in the first 4 bytes) */
/* A ClientHello that completed the TCP handshake (the server set TCP_DEFER_ACCEPT, as nginx's `deferred`):
 * the kernel runs the program with the listening socket, before the connection's own socket exists, so the
 * segment comes with cookie 0 (LISTENER); the connection's own events, once it exists, say DEFERRED and user
 * space puts the segment in front of them (same endpoints). */
#define CARNOT_WIRE_LISTENER 256
#define CARNOT_WIRE_DEFERRED 512

struct carnot_wire_event {            /* a 112-byte header, then data_len payload bytes */
	__u64 ts_ns;                  /*   0 bpf_ktime_get_ns */
	__u64 cookie;                 /*   8 socket cookie: one connection, as this socket sees it */
	__u64 link_ssl;               /*  16 SSL* (CARNOT_WIRE_LINK / _LINK_WEAK), else 0 */
	__u32 pid;                    /*  24 owner tgid, 0 = not known yet */
	__u32 tid;                    /*  28 the owner's thread that sent the first flight */
	__u32 stream_offset;          /*  32 offset of the payload in this direction's stream (END with FIN: where it ends) */
	__u16 kind;                   /*  36 enum carnot_wire_kind (same offset as carnot_event.kind) */
	__u16 data_len;               /*  38 payload bytes after the header */
	__u32 flags;                  /*  40 CARNOT_WIRE_* */
	__u16 local_port;             /*  44 host order */
	__u16 remote_port;            /*  46 host order */
	char comm[CARNOT_WIRE_COMM_LEN]; /* 48 the owner's comm, NUL-padded */
	__u8 local_addr[16];          /*  64 network order */
	__u8 remote_addr[16];         /*  80 */
	__u32 segment_len;            /*  96 the whole segment's payload length (data_len may be a chunk of it) */
	__u32 reserved;               /* 100 */
	__u64 cgroup_id;              /* 104 the owner's cgroup v2 id when it was seen sending, 0 = not known yet */
};
_Static_assert(sizeof(struct carnot_wire_event) == 112, "carnot_wire_event layout");

/* The only read-only global of wire.bpf.c, set before load. */
struct carnot_wire_config {
	__u32 targ_tgid;                      /* 0 = every process */
	__u32 reserved;
	char targ_comm[CARNOT_WIRE_COMM_LEN]; /* empty = every process */
	__u64 targ_cgroup;                    /* 0 = every cgroup; else only owners in this cgroup v2 or below it */
	__u32 targ_cgroup_level;              /* the level of targ_cgroup in the hierarchy (the root is 0) */
	__u32 reserved2;
};
_Static_assert(sizeof(struct carnot_wire_config) == 40, "carnot_wire_config layout");

#endif /* CARNOT_WIRE_H */
