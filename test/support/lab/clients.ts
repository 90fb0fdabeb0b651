/**
 * Ten everyday TLS clients, each making its handshake(s) to a lab server with its own SNI
 * (`<client>.lab.example`, resolved to the server's address without touching /etc/hosts), certificate
 * verification off. Each run returns what the client itself reports about every handshake it made (one truth;
 * tshark is the other), the pid of the process that made them and, where it can be known, the local port.
 * The Go and Java clients are built once per run into a temporary directory; nothing is downloaded.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runClient, SYSTEM_PYTHON } from "../../../src/lab/loopback.ts";
import { indexGroups } from "../../../src/trace/groups.ts";
import { nodeBinary, WITNESS } from "../kex-matrix.ts";
import { CHROMIUM } from "../chromium.ts";
import { type CipherSuiteNames, cipherSuiteName, cipherSuiteNames } from "./cipher-suites.ts";

/** A lab server's address (127.0.0.1 or ::1) and port. */
export interface Target {
  address: string;
  port: number;
}

/** What a client said about one handshake; null where it does not say. */
export interface SelfReport {
  localPort: number | null;
  /** TLSv1.3, TLSv1.2 */
  version: string | null;
  /** IANA cipher suite name */
  cipher: string | null;
  /** canonical group name (src/trace/groups.ts) */
  group: string | null;
}

export interface ClientRun {
  client: string;
  sni: string;
  /** the process that made the handshakes (Chromium: its network service; git: git-remote-https) */
  pid: number | null;
  exitCode: number;
  /** one per handshake the client made */
  handshakes: SelfReport[];
  /** stdout and stderr, for failure messages */
  output: string;
}

export interface LabClient {
  readonly name: string;
  readonly sni: string;
  run(target: Target): Promise<ClientRun>;
}

const HERE = import.meta.dir;
const groups = indexGroups();

/** "X25519", "x25519", "SECP256R1", "X25519MLKEM768" → canonical name; unknown spellings stay as they are. */
const canonicalGroup = (name: string | null | undefined): string | null =>
  name ? (groups.byLowerName.get(name.toLowerCase())?.name ?? name) : null;

/** "TLS1.3", "TLS 1.3", "TLSv1.3" → "TLSv1.3" */
function canonicalVersion(text: string | null | undefined): string | null {
  const m = /TLS\s?v?1\.([0-3])/i.exec(text ?? "");
  if (!m) return null;
  return m[1] === "0" ? "TLSv1" : `TLSv1.${m[1]}`;
}

/** A TLS 1.3 suite named only by its bulk cipher (GnuTLS: AES-256-GCM) → IANA name; null for TLS 1.2. */
function tls13Suite(version: string | null, text: string): string | null {
  if (version !== "TLSv1.3") return null;
  if (/AES[-_]256[-_]GCM/i.test(text)) return "TLS_AES_256_GCM_SHA384";
  if (/AES[-_]128[-_]GCM/i.test(text)) return "TLS_AES_128_GCM_SHA256";
  if (/CHACHA20/i.test(text)) return "TLS_CHACHA20_POLY1305_SHA256";
  return null;
}

const urlHost = (address: string) => (address.includes(":") ? `[${address}]` : address);

/** A client that prints one JSON line (pid, local_port, version, cipher, group) for its one handshake. */
function jsonLineRun(
  name: string,
  sni: string,
  r: { pid: number; exitCode: number; stdout: string; stderr: string },
) {
  const line = r.stdout.split("\n").find((l) => l.startsWith("{"));
  const report = line ? (JSON.parse(line) as Record<string, unknown>) : null;
  return {
    client: name,
    sni,
    pid: typeof report?.pid === "number" ? report.pid : r.pid,
    exitCode: r.exitCode,
    handshakes: report
      ? [
          {
            localPort: typeof report.local_port === "number" ? report.local_port : null,
            version: canonicalVersion(String(report.version)),
            cipher: typeof report.cipher === "string" ? report.cipher : null,
            group: canonicalGroup(typeof report.group === "string" ? report.group : null),
          },
        ]
      : [],
    output: r.stdout + r.stderr,
  };
}

function curlClient(ciphers: CipherSuiteNames): LabClient {
  const sni = "curl.lab.example";
  return {
    name: "curl",
    sni,
    async run(t) {
      const r = await runClient([
        "curl",
        "-skv",
        "-o",
        "/dev/null",
        "--max-time",
        "10",
        "-w",
        "local_port=%{local_port}\\n",
        "--resolve",
        `${sni}:${t.port}:${urlHost(t.address)}`,
        `https://${sni}:${t.port}/`,
      ]);
      // curl 7.88 with OpenSSL names the suite but not the group
      const m = /SSL connection using (\S+) \/ (\S+)/.exec(r.stderr);
      const version = canonicalVersion(m?.[1]);
      const port = /local_port=(\d+)/.exec(r.stdout)?.[1];
      return {
        client: "curl",
        sni,
        pid: r.pid,
        exitCode: r.exitCode,
        handshakes: m
          ? [
              {
                localPort: port ? Number(port) : null,
                version,
                cipher: ciphers.byOpenSslName.get(m[2]!) ?? m[2]!,
                group: null,
              },
            ]
          : [],
        output: r.stdout + r.stderr,
      };
    },
  };
}

/** The python witness (system python, system libssl): version(), cipher(), the group from its ServerHello. */
function pythonClient(ciphers: CipherSuiteNames): LabClient {
  const sni = "python3.lab.example";
  return {
    name: "python3",
    sni,
    async run(t) {
      const r = await runClient([SYSTEM_PYTHON, WITNESS, "client", String(t.port), sni, "--host", t.address]);
      const run = jsonLineRun("python3", sni, r);
      const line = r.stdout.split("\n").find((l) => l.startsWith("{"));
      const report = line ? (JSON.parse(line) as { cipher: string; group: number | null }) : null;
      for (const h of run.handshakes) {
        h.cipher = report ? (ciphers.byOpenSslName.get(report.cipher) ?? report.cipher) : null;
        h.group = report?.group == null ? null : (groups.byCodePoint.get(report.group)?.name ?? null);
      }
      return run;
    },
  };
}

/** wget (GnuTLS) in a private mount namespace whose /etc/hosts maps its SNI; it reports nothing about TLS. */
function wgetClient(dir: string): LabClient {
  const sni = "wget.lab.example";
  return {
    name: "wget",
    sni,
    async run(t) {
      const hosts = join(dir, `wget-hosts-${t.port}-${t.address.includes(":") ? 6 : 4}`);
      writeFileSync(hosts, `${t.address} ${sni}\n`);
      // unshare and sh exec: the pid is wget's own
      const r = await runClient([
        "unshare",
        "--mount",
        "sh",
        "-c",
        `mount --bind "$1" /etc/hosts && exec wget -q --no-check-certificate --tries=1 --timeout=10 -O /dev/null "$2"`,
        "sh",
        hosts,
        `https://${sni}:${t.port}/`,
      ]);
      return {
        client: "wget",
        sni,
        pid: r.pid,
        exitCode: r.exitCode,
        handshakes: r.exitCode === 0 ? [{ localPort: null, version: null, cipher: null, group: null }] : [],
        output: r.stdout + r.stderr,
      };
    },
  };
}

/**
 * `git ls-remote` over https (libcurl-gnutls): the handshake is made by its git-remote-https child, whose pid
 * comes from git's trace2 events; the version and suite from GIT_CURL_VERBOSE. The servers are not git
 * servers, so git exits 128 after its request: the handshake is what counts.
 */
function gitClient(dir: string): LabClient {
  const sni = "git.lab.example";
  return {
    name: "git",
    sni,
    async run(t) {
      const events = join(dir, `git-trace2-${t.port}-${t.address.includes(":") ? 6 : 4}.json`);
      rmSync(events, { force: true });
      const r = await runClient(
        [
          "git",
          "-c",
          "http.sslVerify=false",
          "-c",
          `http.curloptResolve=${sni}:${t.port}:${urlHost(t.address)}`,
          "ls-remote",
          `https://${sni}:${t.port}/lab.git`,
        ],
        {
          GIT_CURL_VERBOSE: "1",
          GIT_TRACE2_EVENT: events,
          GIT_CONFIG_NOSYSTEM: "1",
          HOME: dir,
          GIT_TERMINAL_PROMPT: "0",
        },
      );
      const m = /SSL connection using (\S+) \/ (\S+)/.exec(r.stderr);
      const version = canonicalVersion(m?.[1]);
      return {
        client: "git",
        sni,
        pid: remoteHttpsPid(readFileSync(events, "utf8")),
        exitCode: r.exitCode,
        handshakes: m ? [{ localPort: null, version, cipher: tls13Suite(version, m[2]!), group: null }] : [],
        output: r.stdout + r.stderr,
      };
    },
  };
}

/** The pid of the git-remote-https child in git's trace2 events (its child_exit names the pid). */
export function remoteHttpsPid(trace2: string): number | null {
  const events = trace2
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map(
      (l) =>
        JSON.parse(l) as { event: string; sid: string; child_id?: number; argv?: string[]; pid?: number },
    );
  const start = events.find((e) => e.event === "child_start" && e.argv?.[0] === "git-remote-https");
  if (!start) return null;
  const exit = events.find(
    (e) => e.event === "child_exit" && e.sid === start.sid && e.child_id === start.child_id,
  );
  return exit?.pid ?? null;
}

/** gnutls-cli 3.7: its "- Description: (TLS1.3-X.509)-(ECDHE-X25519)-(…)-(AES-256-GCM)" line. */
function gnutlsClient(): LabClient {
  const sni = "gnutls-cli.lab.example";
  return {
    name: "gnutls-cli",
    sni,
    async run(t) {
      const r = await runClient([
        "gnutls-cli",
        "--insecure",
        "--sni-hostname",
        sni,
        "-p",
        String(t.port),
        t.address,
      ]);
      const description = /- Description: (\S+)/.exec(r.stdout)?.[1] ?? null;
      const parts = description?.split(")-(").map((p) => p.replace(/[()]/g, "")) ?? [];
      const version = canonicalVersion(parts[0]);
      const kx = /^(?:ECDHE|DHE)-(\S+)$/.exec(parts[1] ?? "")?.[1] ?? null;
      return {
        client: "gnutls-cli",
        sni,
        pid: r.pid,
        exitCode: r.exitCode,
        handshakes: description
          ? [
              {
                localPort: null,
                version,
                cipher: tls13Suite(version, parts.at(-1) ?? ""),
                group: canonicalGroup(kx),
              },
            ]
          : [],
        output: r.stdout + r.stderr,
      };
    },
  };
}

/** Java 17 JSSE (LabClient.java): SSLSession's protocol and suite; the group from JSSE's own handshake log. */
function javaClient(classes: string): LabClient {
  const sni = "java.lab.example";
  return {
    name: "java",
    sni,
    async run(t) {
      const r = await runClient([
        "java",
        "-XX:TieredStopAtLevel=1",
        "-Djavax.net.debug=ssl:handshake",
        "-cp",
        classes,
        "LabClient",
        t.address,
        String(t.port),
        sni,
      ]);
      const run = jsonLineRun("java", sni, r);
      const text = r.stdout + r.stderr;
      // the last ServerHello JSSE consumed (after a HelloRetryRequest, the real one) names its key share group
      const hello = text.lastIndexOf("Consuming ServerHello handshake message");
      const group = hello < 0 ? null : (/"named group": (\S+)/.exec(text.slice(hello))?.[1] ?? null);
      for (const h of run.handshakes) h.group = canonicalGroup(group);
      return run;
    },
  };
}

function programClient(name: string, command: string[]): LabClient {
  const sni = `${name}.lab.example`;
  return {
    name,
    sni,
    async run(t) {
      return jsonLineRun(name, sni, await runClient([...command, t.address, String(t.port), sni]));
    },
  };
}

/**
 * Headless Chromium (BoringSSL): the net log it writes is its report, one SSL_CONNECT per handshake with the
 * local address of its socket; it preconnects, so it may make more than one. The handshakes run in its
 * network service process, found among its children while it runs.
 */
function chromiumClient(chromium: string, dir: string, ciphers: CipherSuiteNames): LabClient {
  const sni = "chromium.lab.example";
  return {
    name: "chromium",
    sni,
    async run(t) {
      const profile = mkdtempSync(join(dir, "chromium-profile-"));
      const netlog = join(dir, `chromium-netlog-${t.port}-${t.address.includes(":") ? 6 : 4}.json`);
      const proc = Bun.spawn(
        [
          chromium,
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-quic",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
          `--user-data-dir=${profile}`,
          "--ignore-certificate-errors",
          // the lab's names to the server, every other name to nowhere
          `--host-resolver-rules=MAP *.lab.example ${urlHost(t.address)}, MAP * ~NOTFOUND`,
          `--log-net-log=${netlog}`,
          "--dump-dom",
          `https://${sni}:${t.port}/`,
        ],
        { stdin: "ignore", stdout: "pipe", stderr: "pipe" },
      );
      let networkService: number | null = null;
      const watching = (async () => {
        while (proc.exitCode === null && networkService === null) {
          networkService = findDescendant(proc.pid, "--utility-sub-type=network.mojom.NetworkService");
          await Bun.sleep(20);
        }
      })();
      const [out, err, exitCode] = await Promise.all([
        new Response(proc.stdout).text(),
        new Response(proc.stderr).text(),
        proc.exited,
      ]);
      await watching;
      rmSync(profile, { recursive: true, force: true });
      return {
        client: "chromium",
        sni,
        pid: networkService,
        exitCode,
        handshakes: netLogHandshakes(readFileSync(netlog, "utf8"), ciphers),
        output: `${out.slice(0, 200)}\n${err.slice(-2000)}`,
      };
    },
  };
}

/** The first process under `root` whose command line contains `marker`, or null. */
function findDescendant(root: number, marker: string): number | null {
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    // each thread has its own children file: Chromium starts its children from a launcher thread
    const children: number[] = [];
    try {
      for (const tid of readdirSync(`/proc/${pid}/task`))
        children.push(
          ...readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8")
            .trim()
            .split(/\s+/)
            .filter(Boolean)
            .map(Number),
        );
    } catch {
      continue; // gone meanwhile
    }
    for (const child of children) {
      try {
        if (readFileSync(`/proc/${child}/cmdline`, "utf8").includes(marker)) return child;
      } catch {
        continue;
      }
      queue.push(child);
    }
  }
  return null;
}

/** Every completed SSL_CONNECT in a Chromium net log, with the local port of its socket. */
export function netLogHandshakes(text: string, ciphers: CipherSuiteNames): SelfReport[] {
  const log = JSON.parse(text) as {
    constants: { logEventTypes: Record<string, number>; logEventPhase: Record<string, number> };
    events: { type: number; phase: number; source: { id: number }; params?: Record<string, unknown> }[];
  };
  const type = log.constants.logEventTypes;
  const end = log.constants.logEventPhase.PHASE_END;
  const localPorts = new Map<number, number>();
  const out: SelfReport[] = [];
  for (const e of log.events) {
    if (e.phase !== end) continue;
    if (e.type === type.TCP_CONNECT && typeof e.params?.local_address === "string") {
      localPorts.set(e.source.id, Number(/:(\d+)$/.exec(e.params.local_address)?.[1]));
    } else if (e.type === type.SSL_CONNECT && typeof e.params?.cipher_suite === "number") {
      const group = e.params.key_exchange_group;
      out.push({
        localPort: localPorts.get(e.source.id) ?? null,
        version: canonicalVersion(String(e.params.version)),
        cipher: cipherSuiteName(ciphers, e.params.cipher_suite),
        group:
          typeof group === "number"
            ? (groups.byCodePoint.get(group)?.name ?? `0x${group.toString(16)}`)
            : null,
      });
    }
  }
  return out;
}

/** Builds the Go and Java clients into `dir` (GOPROXY=off, GOPATH mode: nothing can be downloaded). */
async function build(dir: string): Promise<{ go: string; javaClasses: string }> {
  const go = join(dir, "go-client");
  const javaClasses = join(dir, "java");
  mkdirSync(javaClasses, { recursive: true });
  const [g, j] = await Promise.all([
    runClient(["go", "build", "-o", go, join(HERE, "client.go")], {
      GOCACHE: join(dir, "gocache"),
      GOPATH: join(dir, "gopath"),
      GO111MODULE: "off",
      GOPROXY: "off",
      GOFLAGS: "",
    }),
    runClient(["javac", "-d", javaClasses, join(HERE, "LabClient.java")]),
  ]);
  if (g.exitCode !== 0) throw new Error(`go build: ${g.stderr.trim()}`);
  if (j.exitCode !== 0) throw new Error(`javac: ${j.stderr.trim()}`);
  return { go, javaClasses };
}

export interface LabClients {
  clients: LabClient[];
  /** clients that cannot run here, with the reason */
  missing: { name: string; reason: string }[];
}

/** The ten clients, built where needed, in `dir` (the caller removes it). */
export async function prepareClients(dir: string): Promise<LabClients> {
  const ciphers = cipherSuiteNames();
  const missing: { name: string; reason: string }[] = [];
  for (const [tool, pkg] of [
    ["curl", "curl"],
    ["wget", "wget"],
    ["git", "git"],
    ["gnutls-cli", "gnutls-bin"],
    ["go", "golang-go"],
    ["javac", "default-jdk-headless"],
    ["unshare", "util-linux"],
  ] as const)
    if (!Bun.which(tool)) missing.push({ name: tool, reason: `${tool} not installed (Debian ${pkg})` });
  if (missing.length > 0) return { clients: [], missing };
  const built = await build(dir);
  const clients: LabClient[] = [
    curlClient(ciphers),
    pythonClient(ciphers),
    wgetClient(dir),
    gitClient(dir),
    gnutlsClient(),
    javaClient(built.javaClasses),
    programClient("go", [built.go]),
  ];
  const node = nodeBinary();
  if (node) clients.push(programClient("node", [node, join(HERE, "tls-client.mjs")]));
  else missing.push({ name: "node", reason: ".cache/node missing (make node26)" });
  clients.push(programClient("bun", [Bun.which("bun") ?? process.execPath, join(HERE, "tls-client.mjs")]));
  if (CHROMIUM) clients.push(chromiumClient(CHROMIUM, dir, ciphers));
  else missing.push({ name: "chromium", reason: "chromium not installed (Debian chromium)" });
  return { clients, missing };
}
