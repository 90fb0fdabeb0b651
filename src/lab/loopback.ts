/**
 * A TLS lab on loopback for `carnot demo` and the end-to-end tests: a throwaway self-signed certificate,
 * real servers (`openssl s_server`, nginx) on 127.0.0.1, and real libssl clients (curl, python3, openssl).
 * Everything lives in one temporary directory and every process is stopped by its owner.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CarnotError } from "../errors.ts";

export interface TlsCert {
  cert: string;
  key: string;
}

export interface RunningServer {
  readonly pid: number;
  readonly port: number;
  stop(): Promise<void>;
}

/** The system python, which uses the system libssl (a python3 earlier in PATH may carry its own). */
export const SYSTEM_PYTHON = "/usr/bin/python3";

async function run(cmd: string[], what: string): Promise<string> {
  const proc = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  if (code !== 0) {
    throw new CarnotError(`${what} failed (exit ${code}): ${err.trim().split("\n").slice(-1)[0] ?? ""}`);
  }
  return out;
}

/** A P-256 self-signed certificate for localhost, *.lab.example, 127.0.0.1 and ::1, valid for two days. */
export async function makeSelfSignedCert(dir: string): Promise<TlsCert> {
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  await run(
    [
      "openssl",
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-days",
      "2",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=DNS:localhost,DNS:*.lab.example,IP:127.0.0.1,IP:::1",
      "-keyout",
      key,
      "-out",
      cert,
    ],
    "openssl req (self-signed certificate)",
  );
  return { cert, key };
}

/** A TCP port free on 127.0.0.1 right now (the kernel picks it). */
export function freeTcpPort(): number {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = listener.port;
  listener.stop(true);
  return port;
}

/** Resolves once something accepts TCP connections on host:port (127.0.0.1 unless told). */
export async function waitForTcp(
  port: number,
  timeoutMs = 5000,
  exited?: Promise<number>,
  host = "127.0.0.1",
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let gone = false;
  exited?.then(() => {
    gone = true;
  });
  while (Date.now() < deadline && !gone) {
    const ok = await new Promise<boolean>((resolve) => {
      Bun.connect({
        hostname: host,
        port,
        socket: {
          open(s) {
            s.end();
            resolve(true);
          },
          data() {},
          error() {
            resolve(false);
          },
          connectError() {
            resolve(false);
          },
        },
      }).catch(() => resolve(false));
    });
    if (ok) return;
    await Bun.sleep(25);
  }
  throw new CarnotError(
    gone ? `server on port ${port} exited before listening` : `nothing listens on port ${port}`,
  );
}

async function stopProcess(proc: Bun.Subprocess, signal: NodeJS.Signals): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  proc.kill(signal);
  const done = await Promise.race([proc.exited.then(() => true), Bun.sleep(3000).then(() => false)]);
  if (!done) {
    proc.kill("SIGKILL");
    await proc.exited;
  }
}

/**
 * `openssl s_server -www` on 127.0.0.1, or `host` (e.g. "::1"): one connection at a time, implicit handshakes,
 * an HTTP/1.0 status page for every request.
 */
export async function startOpenSslServer(
  cert: TlsCert,
  opts: { port?: number; host?: string; args?: string[]; command?: string[] } = {},
): Promise<RunningServer> {
  const host = opts.host ?? "127.0.0.1";
  const port = opts.port ?? freeTcpPort();
  const proc = Bun.spawn(
    [
      // the system's openssl, or another build run through its own loader
      ...(opts.command ?? ["openssl"]),
      "s_server",
      "-accept",
      host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`,
      "-cert",
      cert.cert,
      "-key",
      cert.key,
      "-www",
      "-quiet",
      ...(opts.args ?? []),
    ],
    { stdin: "ignore", stdout: "ignore", stderr: "ignore" },
  );
  await waitForTcp(port, 5000, proc.exited, host);
  return { pid: proc.pid, port, stop: () => stopProcess(proc, "SIGTERM") };
}

export interface NginxOptions {
  port?: number;
  /** addresses to listen on (default 127.0.0.1; "::1" for IPv6) */
  hosts?: string[];
  workers?: number;
  /** `ssl_protocols` (default TLSv1.2 TLSv1.3) */
  protocols?: string;
  /** `ssl_ecdh_curve`, the server's groups (default: OpenSSL's) */
  groups?: string;
  /** serve this directory's files under /files/ (bulk-transfer benchmarks) */
  filesRoot?: string;
}

/** nginx in the foreground with its own prefix, config and logs in `dir`; answers `ok` over TLS. */
export async function startNginx(
  dir: string,
  cert: TlsCert,
  opts: NginxOptions = {},
): Promise<RunningServer> {
  const port = opts.port ?? freeTcpPort();
  const hosts = opts.hosts ?? ["127.0.0.1"];
  mkdirSync(dir, { recursive: true });
  const conf = join(dir, "nginx.conf");
  writeFileSync(
    conf,
    [
      "daemon off;",
      "master_process on;",
      "user root;",
      `worker_processes ${opts.workers ?? 1};`,
      `pid ${join(dir, "nginx.pid")};`,
      `error_log ${join(dir, "nginx-error.log")} warn;`,
      "events { worker_connections 4096; }",
      "http {",
      "  access_log off;",
      `  client_body_temp_path ${dir}/client_body; proxy_temp_path ${dir}/proxy;`,
      `  fastcgi_temp_path ${dir}/fastcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;`,
      "  server {",
      ...hosts.map((h) => `    listen ${h.includes(":") ? `[${h}]` : h}:${port} ssl;`),
      `    ssl_certificate ${cert.cert};`,
      `    ssl_certificate_key ${cert.key};`,
      `    ssl_protocols ${opts.protocols ?? "TLSv1.2 TLSv1.3"};`,
      ...(opts.groups ? [`    ssl_ecdh_curve ${opts.groups};`] : []),
      "    ssl_session_cache off;",
      "    ssl_session_tickets off;",
      '    location / { return 200 "ok\\n"; }',
      ...(opts.filesRoot ? [`    location /files/ { alias ${opts.filesRoot}/; }`] : []),
      "  }",
      "}",
      "",
    ].join("\n"),
  );
  const proc = Bun.spawn(["nginx", "-p", dir, "-c", conf, "-e", join(dir, "nginx-error.log")], {
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
  });
  try {
    for (const h of hosts) await waitForTcp(port, 5000, proc.exited, h);
    // the master listens before it forks: a caller that asks for the workers' pids finds them all
    await waitForWorkers(proc.pid, opts.workers ?? 1, 5000);
  } catch (err) {
    const log = existsSync(join(dir, "nginx-error.log"))
      ? await Bun.file(join(dir, "nginx-error.log")).text()
      : "";
    throw new CarnotError(`nginx did not start: ${log.trim().split("\n").slice(-1)[0] ?? ""}`, {
      cause: err,
    });
  }
  // SIGQUIT: graceful stop, the workers finish and exit with the master
  return { pid: proc.pid, port, stop: () => stopProcess(proc, "SIGQUIT") };
}

async function waitForWorkers(pid: number, count: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await childPids(pid)).length < count) {
    if (Date.now() > deadline)
      throw new Error(`nginx did not start its ${count} worker(s) in ${timeoutMs} ms`);
    await Bun.sleep(10);
  }
}

/** The pids of nginx's workers (their handshakes are the server side). */
export async function childPids(pid: number): Promise<number[]> {
  const text = await Bun.file(`/proc/${pid}/task/${pid}/children`)
    .text()
    .catch(() => "");
  return text
    .trim()
    .split(/\s+/)
    .filter((s) => s !== "")
    .map(Number);
}

export interface ClientResult {
  pid: number;
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs a client to its end; its output is collected, its environment is this process's plus `env`. */
export async function runClient(cmd: string[], env?: Record<string, string>): Promise<ClientResult> {
  const proc = Bun.spawn(cmd, {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: env ? { ...process.env, ...env } : undefined,
  });
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { pid: proc.pid, exitCode, stdout, stderr };
}

/** curl to https://SNI:PORT/ resolved to 127.0.0.1 (so the SNI is `sni`), optionally with `--curves`. */
export function curl(
  port: number,
  sni: string,
  opts: { groups?: string; args?: string[] } = {},
): Promise<ClientResult> {
  return runClient([
    "curl",
    "-sk",
    "--max-time",
    "10",
    "--resolve",
    `${sni}:${port}:127.0.0.1`,
    ...(opts.groups ? ["--curves", opts.groups] : []),
    ...(opts.args ?? []),
    `https://${sni}:${port}/`,
  ]);
}

/**
 * `openssl s_client` with SNI and groups; its handshake runs implicitly inside SSL_read/SSL_write. Its stdin is
 * /dev/null: it completes the handshake, prints its summary and exits.
 */
export function openSslClient(port: number, sni: string, groups?: string): Promise<ClientResult> {
  return runClient([
    "openssl",
    "s_client",
    "-connect",
    `127.0.0.1:${port}`,
    "-servername",
    sni,
    ...(groups ? ["-groups", groups] : []),
  ]);
}

/** One thread of the python client: its SNI, its groups and where they are set, how many handshakes. */
export interface PythonThreadSpec {
  sni: string;
  groups: string | null;
  /** set the groups on the connection (SSL_set1_groups_list) or on the thread's own context */
  on: "connection" | "context";
  count: number;
  /** e.g. "TLSv1_2": cap the client's protocol version */
  maxVersion?: string;
}

export interface PythonHandshake {
  thread: number;
  sni: string;
  ok: boolean;
  error: string | null;
}

/**
 * A python3 client (the system python, system libssl): threads start together behind a barrier, each makes
 * its handshakes with its own SNI and groups.
 *
 * Python 3.11's ssl module has no way to set the groups, so the script calls libssl itself through ctypes:
 * `SSL_CTX_ctrl(ctx, 92, 0, list)` / `SSL_ctrl(ssl, 92, 0, list)` (what the SSL_*_set1_groups_list macros
 * expand to). The pointers come from the CPython object layout (Modules/_ssl.c): PySSLContext is
 * `PyObject_HEAD; SSL_CTX *ctx` (offset 16) and PySSLSocket is `PyObject_HEAD; PyObject *Socket; SSL *ssl`
 * (offset 24); the script checks them against each other with SSL_get_SSL_CTX before using them.
 */
export const PYTHON_CLIENT = `
import ctypes, json, socket, ssl, sys, threading

spec = json.loads(sys.argv[1])
libssl = ctypes.CDLL("libssl.so.3")
for fn in (libssl.SSL_ctrl, libssl.SSL_CTX_ctrl):
    fn.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    fn.restype = ctypes.c_long
libssl.SSL_get_SSL_CTX.argtypes = [ctypes.c_void_p]
libssl.SSL_get_SSL_CTX.restype = ctypes.c_void_p
SSL_CTRL_SET_GROUPS_LIST = 92

def pointer_at(obj, offset):
    return ctypes.c_void_p.from_address(id(obj) + offset).value

def context_ptr(context):
    return pointer_at(context, 16)

def ssl_ptr(sock):
    return pointer_at(sock._sslobj, 24)

def make_context(t):
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    if t.get("maxVersion"):
        c.maximum_version = getattr(ssl.TLSVersion, t["maxVersion"])
    if t["groups"] and t["on"] == "context":
        if libssl.SSL_CTX_ctrl(context_ptr(c), SSL_CTRL_SET_GROUPS_LIST, 0, t["groups"].encode()) != 1:
            raise RuntimeError("SSL_CTX_set1_groups_list failed for " + t["groups"])
    return c

results = []
lock = threading.Lock()
barrier = threading.Barrier(len(spec["threads"]))

def worker(i, t):
    context = make_context(t)
    barrier.wait()
    for _ in range(t["count"]):
        ok, error = False, None
        try:
            with socket.create_connection(("127.0.0.1", spec["port"]), timeout=10) as raw:
                s = context.wrap_socket(raw, server_hostname=t["sni"], do_handshake_on_connect=False)
                p = ssl_ptr(s)
                if libssl.SSL_get_SSL_CTX(p) != context_ptr(context):
                    raise RuntimeError("CPython object layout differs: SSL* does not belong to the SSL_CTX*")
                if t["groups"] and t["on"] == "connection":
                    if libssl.SSL_ctrl(p, SSL_CTRL_SET_GROUPS_LIST, 0, t["groups"].encode()) != 1:
                        raise RuntimeError("SSL_set1_groups_list failed for " + t["groups"])
                s.do_handshake()
                ok = True
                s.close()
        except (ssl.SSLError, OSError) as e:
            error = type(e).__name__ + ": " + str(e)
        with lock:
            results.append({"thread": i, "sni": t["sni"], "ok": ok, "error": error})

threads = [threading.Thread(target=worker, args=(i, t)) for i, t in enumerate(spec["threads"])]
for th in threads:
    th.start()
for th in threads:
    th.join()
for r in results:
    print(json.dumps(r))
`;

/** Runs PYTHON_CLIENT; the result lists one entry per handshake attempted. */
export async function pythonClient(
  port: number,
  threads: PythonThreadSpec[],
): Promise<{ pid: number; handshakes: PythonHandshake[] }> {
  const res = await runClient([SYSTEM_PYTHON, "-c", PYTHON_CLIENT, JSON.stringify({ port, threads })]);
  if (res.exitCode !== 0)
    throw new CarnotError(`python3 client failed: ${res.stderr.trim().split("\n").slice(-1)[0]}`);
  const handshakes = res.stdout
    .trim()
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as PythonHandshake);
  return { pid: res.pid, handshakes };
}
