/** BPF objects built by `make bpf`, imported `with { type: "file" }` so that `bun build --compile` embeds them. */
declare module "*.bpf.o" {
  const path: string;
  export default path;
}
