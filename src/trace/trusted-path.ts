/**
 * Whether carnot, running as root, may rely on a path another program could have prepared: the file and
 * every directory above it must be owned by root or the invoking user and not writable by group or others,
 * else another user could replace what carnot reads, caches or runs. A sticky directory owned by root (/tmp)
 * may sit above, as no one else can rename or remove what it holds; not as the immediate parent when the
 * directory's other files are used too (a library's dependencies are looked up beside it).
 */
import { lstatSync } from "node:fs";
import { dirname, resolve } from "node:path";

const S_ISVTX = 0o1000;

/** The user carnot acts for: SUDO_UID when run through sudo, else the real uid. */
export function invokingUid(env: NodeJS.ProcessEnv = process.env): number {
  const sudo = env.SUDO_UID;
  if (sudo !== undefined && /^(0|[1-9][0-9]{0,9})$/.test(sudo)) return Number(sudo);
  return process.getuid?.() ?? 0;
}

export interface TrustOptions {
  /** the files beside `path` are used too: its own directory may not be a sticky shared one */
  siblingsUsed?: boolean;
  env?: NodeJS.ProcessEnv;
}

/** Why `path` cannot be relied on (one phrase naming the path at fault), or null when it can. */
export function untrustedReason(path: string, opts: TrustOptions = {}): string | null {
  const trusted = new Set([0, invokingUid(opts.env)]);
  const who = trusted.size === 1 ? "root" : `root or uid ${invokingUid(opts.env)}`;
  let current = resolve(path);
  for (let depth = 0; ; depth++) {
    let st: ReturnType<typeof lstatSync>;
    try {
      st = lstatSync(current);
    } catch (err) {
      return `${current}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`;
    }
    if (st.isSymbolicLink()) return `${current} is a symbolic link`;
    if (!trusted.has(st.uid)) return `${current} is owned by uid ${st.uid}, not ${who}`;
    const writable = st.mode & 0o022;
    if (writable !== 0) {
      const sharedAbove = depth >= (opts.siblingsUsed ? 2 : 1) && (st.mode & S_ISVTX) !== 0 && st.uid === 0;
      if (!sharedAbove) {
        const by = writable === 0o022 ? "group and others" : writable === 0o020 ? "group" : "others";
        return `${current} is writable by ${by} (mode ${(st.mode & 0o7777).toString(8).padStart(4, "0")})`;
      }
    }
    const parent = dirname(current);
    if (parent === current) return null;
    current = parent;
  }
}
