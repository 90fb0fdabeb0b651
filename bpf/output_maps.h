/* The two maps every carnot BPF object hands to user space, by these names (src/trace/libssl/probes.ts reads them):
 * the `events` ring buffer (struct carnot_event, struct carnot_wire_event) and the exact `stats` counters.
 * BPF side only: include after <bpf/bpf_helpers.h> and the object's header ("carnot.h", "wire.h"). */
#ifndef CARNOT_OUTPUT_MAPS_H
#define CARNOT_OUTPUT_MAPS_H

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22); /* replaced at run time (--ringbuf-size) */
} events SEC(".maps");

/* An object with counters of its own defines CARNOT_OUTPUT_STATS (their number) before including this. */
#ifndef CARNOT_OUTPUT_STATS
#define CARNOT_OUTPUT_STATS CARNOT_STAT_COUNT
#endif
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CARNOT_OUTPUT_STATS);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

#endif
