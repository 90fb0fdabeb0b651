/**
 * The attestation API: `POST /attest`, `POST /policy`, `GET /healthz`. Each request is answered from its own
 * body and query alone (nothing is kept between requests); a body is refused past the size limit before it
 * is read whole; bad input is a 4xx with one line `{"error": "..."}`.
 */
import { keyId } from "../attest/sign.ts";
import { describeError } from "../errors.ts";
import { VERSION } from "../version.ts";
import { type Answer, errorAnswer, HttpError, type Job, QUERY_NAMES } from "./answer.ts";

export interface ServeOptions {
  /** signs every attestation when given (PEM) */
  keyPem?: string;
  /** its public key (PEM), for /healthz */
  publicKeyPem?: string;
  maxBodyBytes: number;
  /** answers a document (src/serve/offload.ts) */
  answer: (job: Job) => Promise<Answer>;
}

const SECURITY_HEADERS = { "x-content-type-options": "nosniff", "cache-control": "no-store" };

function reply(status: number, body: string, type: string, extra: Record<string, string> = {}): Response {
  return new Response(body, { status, headers: { "content-type": type, ...SECURITY_HEADERS, ...extra } });
}

const send = (a: Answer) => reply(a.status, a.body, a.type, a.headers);

/** The body as text, refused (413) past `limit` bytes: by its Content-Length at once, else while it streams. */
export async function readLimitedBody(req: Request, limit: number): Promise<string> {
  const declared = req.headers.get("content-length");
  const tooLarge = () => new HttpError(413, `request body larger than the limit of ${limit} bytes`);
  if (declared !== null && (!/^\d+$/.test(declared) || Number(declared) > limit)) throw tooLarge();
  if (!req.body) return "";
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    throw new HttpError(400, "request body: not UTF-8 text");
  }
}

/** A JSON media type, or none (curl -d without -H sends a form type, which is refused). */
function requireJson(req: Request): void {
  const type = (req.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  if (type === "" || type === "application/json" || /^application\/[\w.+-]+\+json$/.test(type)) return;
  throw new HttpError(
    415,
    `Content-Type ${type} is not JSON: send the document as application/json (curl: -H 'Content-Type: application/json')`,
  );
}

/** The first of `offered` the Accept header takes, by its q-values; the first offered when there is none. */
export function negotiate(accept: string | null, offered: readonly string[]): string | null {
  if (accept === null || accept.trim() === "") return offered[0]!;
  const ranges = accept
    .split(",")
    .map((part, order) => {
      const [range = "", ...params] = part.split(";").map((s) => s.trim().toLowerCase());
      const q = params.find((p) => p.startsWith("q="));
      return { range, q: q ? Number(q.slice(2)) : 1, order };
    })
    .filter((r) => r.range !== "" && r.q > 0)
    .sort((a, b) => b.q - a.q || a.order - b.order);
  for (const { range } of ranges) {
    const [type, sub] = range.split("/");
    const hit = offered.find((o) => {
      const [ot, os] = o.split("/");
      return (type === "*" && sub === "*") || (type === ot && (sub === "*" || sub === os));
    });
    if (hit) return hit;
  }
  return null;
}

function chosen(req: Request, offered: readonly string[]): string {
  const type = negotiate(req.headers.get("accept"), offered);
  if (type === null) throw new HttpError(406, `Accept: this endpoint answers ${offered.join(", ")}`);
  return type;
}

const ATTEST_TYPES = ["application/json", "text/markdown", "text/html"] as const;
const POLICY_TYPES = ["application/json", "application/sarif+json", "text/plain"] as const;

function queryValue(url: URL, name: string): string | undefined {
  const values = url.searchParams.getAll(name);
  if (values.length > 1) throw new HttpError(400, `query parameter ${name} given ${values.length} times`);
  return values[0];
}

function knownQuery(url: URL, known: readonly string[]): void {
  for (const name of url.searchParams.keys())
    if (!known.includes(name))
      throw new HttpError(400, `unknown query parameter ${name} (known: ${known.join(", ") || "none"})`);
}

// the cheap checks (query, media types) come before the body is read
async function attest(req: Request, url: URL, opts: ServeOptions): Promise<Response> {
  const names = Object.values(QUERY_NAMES);
  knownQuery(url, names);
  const query = Object.fromEntries(names.map((n) => [n, queryValue(url, n)]));
  requireJson(req);
  const type = chosen(req, ATTEST_TYPES);
  const text = await readLimitedBody(req, opts.maxBodyBytes);
  return send(await opts.answer({ endpoint: "attest", text, type, query, keyPem: opts.keyPem }));
}

async function policy(req: Request, url: URL, opts: ServeOptions): Promise<Response> {
  knownQuery(url, ["enforce"]);
  const enforce = queryValue(url, "enforce");
  if (enforce !== undefined && enforce !== "true" && enforce !== "false")
    throw new HttpError(400, `enforce must be true or false, not '${enforce}'`);
  requireJson(req);
  const type = chosen(req, POLICY_TYPES);
  const text = await readLimitedBody(req, opts.maxBodyBytes);
  return send(await opts.answer({ endpoint: "policy", text, type, enforce: enforce === "true" }));
}

function healthz(opts: ServeOptions): Response {
  const signing = opts.publicKeyPem ? keyId(opts.publicKeyPem) : null;
  return reply(200, `${JSON.stringify({ status: "ok", version: VERSION, signing })}\n`, "application/json");
}

const ROUTES: Record<
  string,
  { method: string; run: (req: Request, url: URL, o: ServeOptions) => Promise<Response> | Response }
> = {
  "/attest": { method: "POST", run: attest },
  "/policy": { method: "POST", run: policy },
  "/healthz": { method: "GET", run: (_req, _url, o) => healthz(o) },
};

/** One request → one response; never throws (an unexpected error is a 500 with one line). */
export async function route(req: Request, opts: ServeOptions): Promise<Response> {
  try {
    const url = new URL(req.url);
    const r = ROUTES[url.pathname];
    if (!r)
      throw new HttpError(404, `no such endpoint ${url.pathname} (POST /attest, POST /policy, GET /healthz)`);
    const method = req.method === "HEAD" && r.method === "GET" ? "GET" : req.method;
    if (method !== r.method)
      throw new HttpError(405, `${url.pathname} takes ${r.method}`, { allow: r.method });
    return await r.run(req, url, opts);
  } catch (err) {
    if (err instanceof HttpError) return send(errorAnswer(err));
    return send(errorAnswer(new HttpError(500, `internal error: ${describeError(err)}`)));
  }
}
