/* Which SSL* each thread is handshaking on, kept by the libssl probes (carnot.bpf.c) and read by the wire
 * source (wire.bpf.c) when that thread sends a connection's first TLS flight, so the two sources' views of one
 * connection can be joined. Both objects declare these maps; the loader hands the wire object the libssl
 * object's maps (bpf_map__reuse_fd). BPF side only: include after <bpf/bpf_helpers.h>. */
#ifndef CARNOT_HANDSHAKE_THREADS_H
#define CARNOT_HANDSHAKE_THREADS_H

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

/* The SSL* whose handshake may run implicitly (inside SSL_read/SSL_write) that this thread last prepared with
 * SSL_set_connect_state / SSL_set_accept_state, per role (a process may be client and server at once): a weaker
 * link, checked by user space against the wire's facts. */
struct implicit_key {
	__u32 tid;
	__u32 role; /* enum carnot_role */
};
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct implicit_key);
	__type(value, __u64);
} implicit_ssl SEC(".maps");

#endif
