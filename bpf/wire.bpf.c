// SPDX-License-Identifier: GPL-2.0
/* The wire source: cgroup_skb ingress + egress programs attached to the cgroup v2 root see every IP packet of
 * every socket on the host. For each TCP connection whose stream starts with a TLS ClientHello they copy the
 * first bytes of both directions into the `events` ring buffer (struct carnot_wire_event + payload), with the
 * stream offset of each segment, the socket's endpoints and its owner; user space reassembles and parses.
 * Every other connection costs one socket-storage lookup per packet once its first bytes were seen. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>
#include "carnot.h" /* enum carnot_role, struct carnot_event (the executable's announcement) */
#include "wire.h"
#define CARNOT_OUTPUT_STATS CARNOT_WSTAT_COUNT
#include "output_maps.h"
#include "handshake_threads.h"
#include "task.h"
#include "exe_announce.h"
#include "cgroup_filter.h"

char LICENSE[] SEC("license") = "GPL";

#define AF_INET 2
#define AF_INET6 10
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_RST 0x04

const volatile struct carnot_wire_config cfg = {};

enum wire_state {
	WIRE_UNDECIDED = 0, /* the first bytes are not all there yet (segments arrived out of order) */
	WIRE_FOLLOW = 1,    /* a ClientHello: copy both directions */
	WIRE_IGNORE = 2,    /* not TLS, filtered, too old, done: nothing more to do */
};

/* Per socket, freed with it. */
struct wire_sk {
	__u8 state;      /* enum wire_state */
	__u8 head_dir;   /* the direction that spoke first (1 = egress) */
	__u8 head_have;  /* bit i: head[i] is known */
	__u8 undecided;  /* segments seen while undecided */
	__u8 head[6];    /* the first six bytes of that direction: record header + handshake type */
	__u8 egress_start_known;
	__u8 reserved;
	__u32 egress_start; /* sequence number of the first byte this socket sent */
	__u32 flags;     /* CARNOT_WIRE_OWNER | CARNOT_WIRE_LINK | CARNOT_WIRE_LINK_WEAK | CARNOT_WIRE_DEFERRED */
	__u32 tgid;
	__u32 tid;
	__u32 captured[2]; /* payload bytes copied per direction: [0] ingress, [1] egress */
	__u64 link_ssl;
	__u64 cgroup_id; /* the owner's cgroup v2 when it was seen sending */
	char comm[CARNOT_WIRE_COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct wire_sk);
} wire_sks SEC(".maps");

/* Cookies of connections user space has seen enough of; the kernel stops following them at the next packet. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u8);
} released SEC(".maps");

/* A connection by its endpoints, as this host's side sees them; IPv4 as IPv4-mapped IPv6 (a dual-stack socket
 * sees its IPv4 peers that way). */
struct wire_tuple {
	__u8 local[16];
	__u8 remote[16];
	__u16 local_port;
	__u16 remote_port;
};

/* Connections whose ClientHello reached the listening socket (TCP_DEFER_ACCEPT): followed from birth. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct wire_tuple);
	__type(value, __u64);
} deferred SEC(".maps");

/* What the packet's IP and TCP headers say. */
struct segment {
	__u32 payload_off; /* from the network header */
	__u32 tcp_len;
	__u32 payload_len;
	__u32 seq;
	__u8 tcp_flags;
};

static __always_inline void count(__u32 index)
{
	__u64 *value = bpf_map_lookup_elem(&stats, &index);

	if (value)
		__sync_fetch_and_add(value, 1);
}

static __always_inline bool parse_segment(struct __sk_buff *skb, struct segment *seg)
{
	__u32 ip_len, tcp_len;
	__u8 b[20];

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		if (bpf_skb_load_bytes(skb, 0, b, 20))
			return false;
		if (b[9] != IPPROTO_TCP)
			return false;
		ip_len = (b[0] & 0x0f) * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		if (bpf_skb_load_bytes(skb, 6, b, 1))
			return false;
		if (b[0] != IPPROTO_TCP)
			return false; /* extension headers before TCP: not followed */
		ip_len = 40;
	} else {
		return false;
	}
	if (ip_len < 20 || ip_len > 60)
		return false;
	if (bpf_skb_load_bytes(skb, ip_len, b, 20))
		return false;
	tcp_len = (b[12] >> 4) * 4;
	if (tcp_len < 20)
		return false;
	seg->payload_off = ip_len + tcp_len;
	seg->tcp_len = tcp_len;
	seg->payload_len = skb->len > seg->payload_off ? skb->len - seg->payload_off : 0;
	seg->seq = ((__u32)b[4] << 24) | ((__u32)b[5] << 16) | ((__u32)b[6] << 8) | b[7];
	seg->tcp_flags = b[13];
	return true;
}

/* The segment's offset in its direction's stream. Received: the kernel's count of in-order bytes gives the
 * start (rcv_nxt - bytes_received). Sent: bytes_acked counts an active open's SYN, so the start is taken from
 * the first data segment ever sent (bytes_sent, which already counts this segment, equals its length) and kept. */
static __always_inline bool stream_offset(struct bpf_sock *sk, struct wire_sk *ws, struct segment *seg,
					  bool egress, __u32 *offset, bool *fresh)
{
	if (egress) {
		struct tcp_sock *tp;

		if (ws && ws->egress_start_known) {
			*offset = seg->seq - ws->egress_start;
			*fresh = true;
			return true;
		}
		tp = bpf_skc_to_tcp_sock(sk);
		if (!tp)
			return false;
		*fresh = tp->bytes_sent - tp->bytes_retrans == seg->payload_len;
		*offset = *fresh ? 0 : CARNOT_WIRE_CAP;
		if (*fresh && ws) {
			ws->egress_start = seg->seq;
			ws->egress_start_known = 1;
		}
		return true;
	}
	struct bpf_tcp_sock *btp = bpf_tcp_sock(sk);

	if (!btp)
		return false;
	*fresh = btp->bytes_received == 0 || ws != NULL;
	*offset = seg->seq - (btp->rcv_nxt - (__u32)btp->bytes_received);
	return true;
}

static __always_inline bool comm_matches(const char *comm)
{
	for (int i = 0; i < CARNOT_WIRE_COMM_LEN; i++) {
		if (comm[i] != cfg.targ_comm[i])
			return false;
		if (comm[i] == '\0')
			return true;
	}
	return true;
}

/* Right after learn_owner, in the owner's context: the current task's cgroup is the owner's. */
static __always_inline bool owner_wanted(struct wire_sk *ws)
{
	if (cfg.targ_tgid != 0 && ws->tgid != cfg.targ_tgid)
		return false;
	if (!cgroup_wanted(cfg.targ_cgroup, cfg.targ_cgroup_level))
		return false;
	return cfg.targ_comm[0] == '\0' || comm_matches(ws->comm);
}

/* Sending with the socket locked by user space means running in the task that owns it (a transmission from
 * softirq or a timer never holds it): then the current task is the owner, and the libssl handshake its thread is
 * running, if any, is this connection's. */
static __always_inline void learn_owner(struct bpf_sock *sk, struct wire_sk *ws)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	__u64 id;
	__u32 tid;
	struct hs_stack *stack;
	__u64 *weak;

	if (!tp || !tp->inet_conn.icsk_inet.sk.sk_lock.owned)
		return;
	id = bpf_get_current_pid_tgid();
	tid = (__u32)id;
	ws->tgid = id >> 32;
	ws->tid = tid;
	bpf_get_current_comm(ws->comm, sizeof(ws->comm));
	ws->cgroup_id = bpf_get_current_cgroup_id();
	ws->flags |= CARNOT_WIRE_OWNER;
	stack = bpf_map_lookup_elem(&hs_stacks, &tid);
	if (stack && stack->depth > 0 && stack->depth <= HS_STACK_MAX) {
		ws->link_ssl = stack->ssl[(stack->depth - 1) & (HS_STACK_MAX - 1)];
		ws->flags |= CARNOT_WIRE_LINK;
		return;
	}
	/* this socket's role: it spoke first (the ClientHello) or answers */
	struct implicit_key ikey = { .tid = tid, .role = ws->head_dir ? CARNOT_ROLE_CLIENT : CARNOT_ROLE_SERVER };

	weak = bpf_map_lookup_elem(&implicit_ssl, &ikey);
	if (weak && *weak) {
		ws->link_ssl = *weak;
		ws->flags |= CARNOT_WIRE_LINK_WEAK;
	}
}

/* Fill the event header from the socket and its storage. */
/* A socket's IPv6 endpoints, one field at a time: the verifier allows no pointer arithmetic on a socket. */
static __always_inline void copy_ip6(struct bpf_sock *sk, __u32 *local, __u32 *remote)
{
	local[0] = sk->src_ip6[0];
	local[1] = sk->src_ip6[1];
	local[2] = sk->src_ip6[2];
	local[3] = sk->src_ip6[3];
	remote[0] = sk->dst_ip6[0];
	remote[1] = sk->dst_ip6[1];
	remote[2] = sk->dst_ip6[2];
	remote[3] = sk->dst_ip6[3];
}

static __always_inline void fill_header(struct carnot_wire_event *ev, struct __sk_buff *skb, struct bpf_sock *sk,
					struct wire_sk *ws, __u16 kind, __u32 flags)
{
	ev->ts_ns = bpf_ktime_get_ns();
	ev->cookie = bpf_get_socket_cookie(skb);
	ev->link_ssl = ws->link_ssl;
	ev->pid = ws->tgid;
	ev->tid = ws->tid;
	ev->stream_offset = 0;
	ev->kind = kind;
	ev->data_len = 0;
	ev->flags = flags | (ws->flags & (CARNOT_WIRE_OWNER | CARNOT_WIRE_LINK | CARNOT_WIRE_LINK_WEAK |
					   CARNOT_WIRE_DEFERRED));
	ev->local_port = sk->src_port;
	ev->remote_port = bpf_ntohs(sk->dst_port);
	__builtin_memcpy(ev->comm, ws->comm, CARNOT_WIRE_COMM_LEN);
	__u32 *local = (__u32 *)ev->local_addr, *remote = (__u32 *)ev->remote_addr;
	if (sk->family == AF_INET6) {
		ev->flags |= CARNOT_WIRE_IPV6;
		copy_ip6(sk, local, remote);
	} else {
		local[0] = sk->src_ip4;
		remote[0] = sk->dst_ip4;
		local[1] = local[2] = local[3] = 0;
		remote[1] = remote[2] = remote[3] = 0;
	}
	ev->segment_len = 0;
	ev->reserved = 0;
	ev->cgroup_id = ws->cgroup_id;
}

static __always_inline void emit_end(struct __sk_buff *skb, struct bpf_sock *sk, struct wire_sk *ws, __u32 flags,
				    __u32 offset)
{
	struct carnot_wire_event *e;

	count(CARNOT_WSTAT_ATTEMPTED);
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(CARNOT_WSTAT_DROPPED);
		return;
	}
	fill_header(e, skb, sk, ws, CARNOT_EV_WIRE_END, flags);
	e->stream_offset = offset;
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
}

enum chunk_status {
	CHUNK_OK = 0,
	CHUNK_RING_FULL = 1,  /* counted as a drop */
	CHUNK_UNREADABLE = 2, /* the packet is shorter than it said: nothing to copy */
};

/* A chunk's record in the ring buffer, reserved with room for `room` payload bytes (a power of two, constant where
 * inlined: the ring wants a size the verifier knows) and the chunk's `n` bytes (1 ≤ n ≤ room) copied into it. */
static __always_inline enum chunk_status reserve_chunk_in(struct __sk_buff *skb, __u32 from, __u64 n, __u32 room,
							   struct carnot_wire_event **out)
{
	struct carnot_wire_event *e = bpf_ringbuf_reserve(&events, sizeof(*e) + room, 0);

	if (!e)
		return CHUNK_RING_FULL;
	/* n is within [1, room] already; said again on the very register the helper gets, where the verifier sees it */
	barrier_var(n);
	n = ((n - 1) & (room - 1)) + 1;
	if (bpf_skb_load_bytes(skb, from, (void *)(e + 1), n)) {
		bpf_ringbuf_discard(e, BPF_RB_NO_WAKEUP);
		return CHUNK_UNREADABLE;
	}
	*out = e;
	return CHUNK_OK;
}

/* The smallest of a few record sizes that holds `n` (≤ CARNOT_WIRE_CHUNK) payload bytes: a 24-byte record does not
 * take a 4 KiB slot of the ring. Reserving in the ring itself, not in a per-CPU buffer: an egress program runs in
 * the sending task, which may be interrupted (a softirq receiving on loopback or veth runs the ingress program) or
 * preempted in the middle of it; a buffer shared per CPU would then hand one connection's bytes to another. */
static __always_inline enum chunk_status reserve_chunk(struct __sk_buff *skb, __u32 from, __u32 n,
							struct carnot_wire_event **out)
{
	if (n == 0)
		return CHUNK_UNREADABLE;
	if (n <= 64)
		return reserve_chunk_in(skb, from, n, 64, out);
	if (n <= 128)
		return reserve_chunk_in(skb, from, n, 128, out);
	if (n <= 256)
		return reserve_chunk_in(skb, from, n, 256, out);
	if (n <= 512)
		return reserve_chunk_in(skb, from, n, 512, out);
	if (n <= 1024)
		return reserve_chunk_in(skb, from, n, 1024, out);
	if (n <= 2048)
		return reserve_chunk_in(skb, from, n, 2048, out);
	return reserve_chunk_in(skb, from, n, CARNOT_WIRE_CHUNK, out);
}

/* Copy the segment's payload, in chunks, up to the direction's cap. */
static __always_inline void emit_payload(struct __sk_buff *skb, struct bpf_sock *sk, struct wire_sk *ws,
					 struct segment *seg, __u32 offset, bool egress)
{
	__u32 dir = egress ? 1 : 0, done = 0;

	for (int i = 0; i < CARNOT_WIRE_CAP / CARNOT_WIRE_CHUNK; i++) {
		__u32 room = CARNOT_WIRE_CAP - ws->captured[dir & 1];
		__u32 n = seg->payload_len - done;
		struct carnot_wire_event *e = NULL;
		enum chunk_status status;

		if (done >= seg->payload_len)
			break;
		if (ws->captured[dir & 1] >= CARNOT_WIRE_CAP) {
			count(CARNOT_WSTAT_CAPPED);
			break;
		}
		if (n > room)
			n = room;
		if (n > CARNOT_WIRE_CHUNK)
			n = CARNOT_WIRE_CHUNK;
		status = reserve_chunk(skb, seg->payload_off + done, n, &e);
		if (status == CHUNK_UNREADABLE)
			break;
		count(CARNOT_WSTAT_ATTEMPTED);
		if (status == CHUNK_OK && e) {
			fill_header(e, skb, sk, ws, CARNOT_EV_WIRE_SEGMENT, egress ? CARNOT_WIRE_EGRESS : 0);
			e->stream_offset = offset + done;
			e->data_len = n;
			e->segment_len = seg->payload_len;
			bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
		} else {
			count(CARNOT_WSTAT_DROPPED);
		}
		ws->captured[dir & 1] += n;
		done += n;
	}
}

/* Learn the first six bytes of the direction that spoke first from a segment at `offset` (byte by byte: this
 * runs once or twice per connection). */
static __always_inline void learn_head(struct __sk_buff *skb, struct wire_sk *ws, struct segment *seg, __u32 offset)
{
	for (__u32 i = 0; i < 6; i++) {
		__u32 at = offset + i;
		__u8 b;

		if (at > 5 || i >= seg->payload_len)
			break;
		if (bpf_skb_load_bytes(skb, seg->payload_off + i, &b, 1))
			break;
		ws->head[at] = b;
		ws->head_have |= 1 << at;
	}
}

/* A ClientHello record: content type handshake, version 3.x (x ≤ 4), handshake type client_hello. */
static __always_inline bool head_is_client_hello(struct wire_sk *ws)
{
	return ws->head[0] == 0x16 && ws->head[1] == 0x03 && ws->head[2] <= 0x04 && ws->head[5] == 0x01;
}

/* IPv4 address bytes as IPv4-mapped IPv6. */
static __always_inline void map_v4(__u8 *out, __u32 v4)
{
	__builtin_memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	__builtin_memcpy(out + 12, &v4, 4);
}

/* The endpoints of a connection's own socket. */
static __always_inline void tuple_of_socket(struct bpf_sock *sk, struct wire_tuple *t)
{
	__u32 *local = (__u32 *)t->local, *remote = (__u32 *)t->remote;

	if (sk->family == AF_INET6) {
		copy_ip6(sk, local, remote);
	} else {
		map_v4(t->local, sk->src_ip4);
		map_v4(t->remote, sk->dst_ip4);
	}
	t->local_port = sk->src_port;
	t->remote_port = bpf_ntohs(sk->dst_port);
}

/* The endpoints of a received packet: it came from the remote side to the local one. */
static __always_inline bool tuple_of_packet(struct __sk_buff *skb, struct segment *seg, struct wire_tuple *t)
{
	__u8 ports[4];

	__builtin_memset(t, 0, sizeof(*t));
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		__u32 saddr, daddr;

		if (bpf_skb_load_bytes(skb, 12, &saddr, 4) || bpf_skb_load_bytes(skb, 16, &daddr, 4))
			return false;
		map_v4(t->remote, saddr);
		map_v4(t->local, daddr);
	} else {
		if (bpf_skb_load_bytes(skb, 8, t->remote, 16) || bpf_skb_load_bytes(skb, 24, t->local, 16))
			return false;
	}
	if (bpf_skb_load_bytes(skb, seg->payload_off - seg->tcp_len, ports, 4))
		return false;
	t->remote_port = ((__u16)ports[0] << 8) | ports[1];
	t->local_port = ((__u16)ports[2] << 8) | ports[3];
	return true;
}

/* A ClientHello that reached a listening socket (TCP_DEFER_ACCEPT): copied with cookie 0 and its endpoints, and
 * the connection remembered, so that its own socket, once it exists, is followed from its first packet. */
static __always_inline void handle_listener(struct __sk_buff *skb, struct bpf_sock *sk)
{
	__u32 done = 0;
	struct wire_tuple t;
	struct segment seg;
	__u64 now;
	__u8 b[6];

	if (!parse_segment(skb, &seg) || seg.payload_len < 6)
		return;
	if (bpf_skb_load_bytes(skb, seg.payload_off, b, 6))
		return;
	if (b[0] != 0x16 || b[1] != 0x03 || b[2] > 0x04 || b[5] != 0x01)
		return;
	if (!tuple_of_packet(skb, &seg, &t))
		return;
	now = bpf_ktime_get_ns();
	bpf_map_update_elem(&deferred, &t, &now, BPF_ANY);
	count(CARNOT_WSTAT_DEFERRED);
	for (int i = 0; i < 4; i++) {
		__u32 n = seg.payload_len - done;
		struct carnot_wire_event *e = NULL;
		enum chunk_status status;

		if (done >= seg.payload_len)
			break;
		if (n > CARNOT_WIRE_CHUNK)
			n = CARNOT_WIRE_CHUNK;
		status = reserve_chunk(skb, seg.payload_off + done, n, &e);
		if (status == CHUNK_UNREADABLE)
			break;
		count(CARNOT_WSTAT_ATTEMPTED);
		if (status != CHUNK_OK || !e) {
			count(CARNOT_WSTAT_DROPPED);
			break;
		}
		__builtin_memset(e, 0, sizeof(*e));
		e->ts_ns = now;
		e->stream_offset = done;
		e->kind = CARNOT_EV_WIRE_SEGMENT;
		e->data_len = n;
		e->flags = CARNOT_WIRE_LISTENER | CARNOT_WIRE_IPV6;
		e->local_port = t.local_port;
		e->remote_port = t.remote_port;
		__builtin_memcpy(e->local_addr, t.local, 16);
		__builtin_memcpy(e->remote_addr, t.remote, 16);
		e->segment_len = seg.payload_len;
		bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
		done += n;
	}
}

/* A new connection's socket whose ClientHello reached the listener: followed from birth, as a server's. */
static __always_inline struct wire_sk *adopt_deferred(struct bpf_sock *sk)
{
	struct wire_tuple t = {};
	struct wire_sk *ws;

	tuple_of_socket(sk, &t);
	if (!bpf_map_lookup_elem(&deferred, &t))
		return NULL;
	bpf_map_delete_elem(&deferred, &t);
	ws = bpf_sk_storage_get(&wire_sks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!ws)
		return NULL;
	ws->state = WIRE_FOLLOW;
	ws->head_dir = 0;
	ws->head_have = 0x3f;
	ws->flags |= CARNOT_WIRE_DEFERRED;
	count(CARNOT_WSTAT_FOLLOWED);
	return ws;
}

static __always_inline int handle(struct __sk_buff *skb, bool egress)
{
	struct bpf_sock *sk = skb->sk;
	struct wire_sk *ws;
	struct segment seg;
	__u32 offset;
	bool fresh;

	if (!sk)
		return 1;
	sk = bpf_sk_fullsock(sk);
	if (!sk || sk->protocol != IPPROTO_TCP)
		return 1;
	if (sk->state == BPF_TCP_LISTEN) {
		if (!egress)
			handle_listener(skb, sk);
		return 1;
	}
	ws = bpf_sk_storage_get(&wire_sks, sk, 0, 0);
	if (!ws)
		ws = adopt_deferred(sk);
	if (ws && ws->state == WIRE_IGNORE)
		return 1;
	if (ws) {
		__u64 cookie = bpf_get_socket_cookie(skb);

		if (bpf_map_lookup_elem(&released, &cookie)) {
			ws->state = WIRE_IGNORE;
			bpf_map_delete_elem(&released, &cookie);
			count(CARNOT_WSTAT_RELEASED);
			return 1;
		}
	}
	if (!parse_segment(skb, &seg))
		return 1;
	if (!ws) {
		/* a connection's first bytes: decide whether it is followed at all */
		if (seg.payload_len == 0 || !stream_offset(sk, NULL, &seg, egress, &offset, &fresh))
			return 1;
		ws = bpf_sk_storage_get(&wire_sks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (!ws)
			return 1;
		if (!fresh || offset >= CARNOT_WIRE_CAP) {
			ws->state = WIRE_IGNORE; /* older than the trace */
			count(CARNOT_WSTAT_LATE);
			return 1;
		}
		if (egress) {
			ws->egress_start = seg.seq;
			ws->egress_start_known = 1;
		}
		ws->head_dir = egress;
		ws->state = WIRE_UNDECIDED;
	} else if (!stream_offset(sk, ws, &seg, egress, &offset, &fresh)) {
		return 1;
	}
	if (egress && !(ws->flags & CARNOT_WIRE_OWNER) && seg.payload_len > 0) {
		learn_owner(sk, ws);
		if ((ws->flags & CARNOT_WIRE_OWNER) && !owner_wanted(ws)) {
			if (ws->state == WIRE_FOLLOW || ws->undecided > 0)
				emit_end(skb, sk, ws, CARNOT_WIRE_FILTERED, 0);
			ws->state = WIRE_IGNORE;
			count(CARNOT_WSTAT_FILTERED);
			return 1;
		}
		/* before the first event naming the owner (and only for an owner the filters keep): its executable,
		 * while it is surely still running */
		if (ws->flags & CARNOT_WIRE_OWNER)
			announce_exe(ws->tgid);
	}
	if (ws->state == WIRE_UNDECIDED && seg.payload_len > 0) {
		if ((__u8)egress == ws->head_dir)
			learn_head(skb, ws, &seg, offset);
		if (ws->head_have == 0x3f) {
			if (!head_is_client_hello(ws)) {
				if (ws->undecided > 0)
					emit_end(skb, sk, ws, CARNOT_WIRE_FILTERED, 0);
				ws->state = WIRE_IGNORE;
				count(CARNOT_WSTAT_NOT_TLS);
				return 1;
			}
			ws->state = WIRE_FOLLOW;
			count(CARNOT_WSTAT_FOLLOWED);
		} else if (++ws->undecided > CARNOT_WIRE_UNDECIDED_MAX) {
			emit_end(skb, sk, ws, CARNOT_WIRE_FILTERED, 0);
			ws->state = WIRE_IGNORE;
			count(CARNOT_WSTAT_UNDECIDED);
			return 1;
		}
	}
	if (seg.payload_len > 0 && offset < CARNOT_WIRE_CAP)
		emit_payload(skb, sk, ws, &seg, offset, egress);
	if (seg.tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST)) {
		/* a FIN's offset is where its direction's stream ends: every byte before it has been sent */
		if (ws->state == WIRE_FOLLOW || ws->undecided > 0)
			emit_end(skb, sk, ws,
				 (egress ? CARNOT_WIRE_EGRESS : 0) |
					 (seg.tcp_flags & TCP_FLAG_RST ? CARNOT_WIRE_RST : CARNOT_WIRE_FIN),
				 offset + seg.payload_len);
		if (seg.tcp_flags & TCP_FLAG_RST)
			ws->state = WIRE_IGNORE;
	}
	return 1;
}

SEC("cgroup_skb/egress")
int cgroup_skb__egress(struct __sk_buff *skb)
{
	return handle(skb, true);
}

SEC("cgroup_skb/ingress")
int cgroup_skb__ingress(struct __sk_buff *skb)
{
	return handle(skb, false);
}
