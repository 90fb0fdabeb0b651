/* The two maps every carnot BPF object hands to user space, by these names (src/trace/libssl/probes.ts reads them):
 * the `events` ring buffer of struct carnot_event and the exact `stats` counters (CARNOT_STAT_*).
 * BPF side only: include after <bpf/bpf_helpers.h> and "carnot.h". */
#ifndef CARNOT_OUTPUT_MAPS_H
#define CARNOT_OUTPUT_MAPS_H

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

#endif
