/** A socket's `net` fields: made empty, and completed as the trace tells more. */
import type { Net } from "../schema.ts";

export function emptyNet(family: string | null, protocol: string | null): Net {
  return { family, protocol, local_addr: null, local_port: null, remote_addr: null, remote_port: null };
}

/** Later facts win field by field; nothing known is thrown away. */
export function mergeNet(old: Net | null, add: Net): Net {
  if (old === null) return add;
  return {
    family: add.family ?? old.family,
    protocol: add.protocol ?? old.protocol,
    local_addr: add.local_addr ?? old.local_addr,
    local_port: add.local_port ?? old.local_port,
    remote_addr: add.remote_addr ?? old.remote_addr,
    remote_port: add.remote_port ?? old.remote_port,
  };
}
