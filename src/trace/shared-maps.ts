/**
 * The BPF maps the two kernel sources share, by fd: the libssl probes' object creates them, and the wire
 * object is loaded with them (bpf_map__reuse_fd). Their definitions are in bpf/output_maps.h,
 * bpf/handshake_threads.h and bpf/exe_announce.h, included by both objects.
 */
export interface SharedMaps {
  /** the one ring buffer */
  events: number;
  /** per thread: the SSL* of the libssl handshake calls running on it */
  hsStacks: number;
  /** per thread and role: the SSL* it last prepared for a handshake run inside SSL_read/SSL_write */
  implicitSsl: number;
  /** processes whose executable was announced already (by either source) */
  exeAnnounced: number;
}
