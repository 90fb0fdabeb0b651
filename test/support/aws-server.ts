/**
 * A local stand-in for AWS KMS and ACM, speaking their JSON 1.1 protocols as documented: `POST /` with
 * `X-Amz-Target: TrentService.<Op>` or `CertificateManager.<Op>`, a SigV4-signed request (recomputed here
 * from the request and the test's secret; a wrong secret gets InvalidSignatureException, an unknown key id
 * UnrecognizedClientException), pagination tokens, errors as `{"__type", "message"}` with HTTP 400.
 * Regions are read from each request's credential scope, so one server answers every region.
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto";

export interface FakeKmsKey {
  keyId: string;
  keySpec: string;
  keyUsage: string;
  origin?: string;
  keyManager?: "CUSTOMER" | "AWS";
  keyState?: string;
  rotation?: { enabled: boolean; periodDays?: number };
  tags?: Record<string, string>;
  aliases?: string[];
  creationDate?: number;
}

export interface FakeCertificate {
  id: string;
  domainName: string;
  sans?: string[];
  /** DescribeCertificate's spelling, e.g. RSA-2048, EC-prime256v1 */
  keyAlgorithm: string;
  signatureAlgorithm: string;
  notBefore: number;
  notAfter: number;
  type?: string;
  status?: string;
  inUseBy?: string[];
  tags?: Record<string, string>;
}

export interface FakeRegion {
  keys?: FakeKmsKey[];
  certificates?: FakeCertificate[];
  /** every call in this region answers AccessDeniedException */
  denied?: boolean;
  /** "kms:ListKeys" → how many of the next calls answer ThrottlingException before one succeeds */
  throttle?: Record<string, number>;
}

export interface FakeAwsOptions {
  accessKeyId: string;
  secretAccessKey: string;
  account?: string;
  /** items per page, whatever Limit the client asks for: forces pagination */
  pageSize?: number;
  regions: Record<string, FakeRegion>;
}

export interface ReceivedCall {
  region: string;
  service: "kms" | "acm";
  operation: string;
  /** the SDK's `amz-sdk-request` header: `attempt=N; max=M` */
  attempt: string | null;
  status: number;
  error: string | null;
  time: number;
}

export interface FakeAws {
  url: string;
  calls: ReceivedCall[];
  stop(): Promise<void>;
}

const sha256Hex = (data: string | Uint8Array) => createHash("sha256").update(data).digest("hex");
const hmac = (key: string | Buffer, data: string) => createHmac("sha256", key).update(data).digest();

/** RFC 3986 encoding of each path segment, as SigV4's canonical URI wants it. */
const canonicalUri = (path: string) =>
  path
    .split("/")
    .map((s) =>
      encodeURIComponent(decodeURIComponent(s)).replace(
        /[!'()*]/g,
        (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
      ),
    )
    .join("/");

function canonicalQuery(params: URLSearchParams): string {
  const enc = (s: string) =>
    encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return [...params.entries()]
    .map(([k, v]) => [enc(k), enc(v)])
    .sort(([a, b], [c, d]) => (a! < c! ? -1 : a! > c! ? 1 : b! < d! ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`)
    .join("&");
}

type SigCheck = { ok: true; region: string; service: string } | { ok: false; type: string; message: string };

/** AWS Signature Version 4, recomputed from the request (docs: "Create a signed AWS API request"). */
function checkSignature(req: Request, body: Uint8Array, opts: FakeAwsOptions): SigCheck {
  const auth = req.headers.get("authorization") ?? "";
  const m =
    /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(
      auth,
    );
  if (!m)
    return {
      ok: false,
      type: "MissingAuthenticationTokenException",
      message: "Missing Authentication Token",
    };
  const [, keyId, date, region, service, signedHeaders, signature] = m as unknown as string[];
  if (keyId !== opts.accessKeyId)
    return {
      ok: false,
      type: "UnrecognizedClientException",
      message: "The security token included in the request is invalid.",
    };
  const amzDate = req.headers.get("x-amz-date") ?? "";
  if (!amzDate.startsWith(date!))
    return {
      ok: false,
      type: "IncompleteSignatureException",
      message: "Date in Credential scope does not match X-Amz-Date",
    };
  const skew = Math.abs(
    Date.parse(amzDate.replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/, "$1-$2-$3T$4:$5:$6Z")) -
      Date.now(),
  );
  if (!(skew < 15 * 60_000))
    return { ok: false, type: "InvalidSignatureException", message: "Signature expired" };
  const names = signedHeaders!.split(";");
  if (!names.includes("host") || !names.includes("x-amz-date"))
    return { ok: false, type: "IncompleteSignatureException", message: "host and x-amz-date must be signed" };
  const url = new URL(req.url);
  const headerLines = names
    .map((n) => `${n}:${(req.headers.get(n) ?? "").trim().replace(/\s+/g, " ")}\n`)
    .join("");
  const payloadHash = sha256Hex(body);
  const claimed = req.headers.get("x-amz-content-sha256");
  if (claimed && claimed !== payloadHash)
    return { ok: false, type: "InvalidSignatureException", message: "The provided body hash does not match" };
  const canonicalRequest = [
    req.method,
    canonicalUri(url.pathname),
    canonicalQuery(url.searchParams),
    headerLines,
    signedHeaders,
    payloadHash,
  ].join("\n");
  const scope = `${date}/${region}/${service}/aws4_request`;
  const stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, sha256Hex(canonicalRequest)].join("\n");
  const kDate = hmac(`AWS4${opts.secretAccessKey}`, date!);
  const kSigning = hmac(hmac(hmac(kDate, region!), service!), "aws4_request");
  const expected = hmac(kSigning, stringToSign);
  const given = Buffer.from(signature!, "hex");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return {
      ok: false,
      type: "InvalidSignatureException",
      message:
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
    };
  }
  return { ok: true, region: region!, service: service! };
}

/** An opaque pagination token: the offset of the next page. */
const token = (offset: number) => Buffer.from(`page:${offset}`).toString("base64");
function offsetOf(marker: unknown): number | null {
  if (marker === undefined || marker === null) return 0;
  const m = /^page:(\d+)$/.exec(Buffer.from(String(marker), "base64").toString());
  return m ? Number(m[1]) : null;
}

class ApiError extends Error {
  constructor(
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

function page<T>(items: T[], marker: unknown, pageSize: number, invalid: string) {
  const start = offsetOf(marker);
  if (start === null || start > items.length) throw new ApiError(invalid, "Invalid pagination token");
  const slice = items.slice(start, start + pageSize);
  const next = start + pageSize < items.length ? token(start + pageSize) : undefined;
  return { slice, next };
}

function kmsOperation(
  op: string,
  input: Record<string, unknown>,
  region: string,
  r: FakeRegion,
  opts: FakeAwsOptions,
): unknown {
  const account = opts.account ?? "111122223333";
  const pageSize = opts.pageSize ?? 2;
  const keys = r.keys ?? [];
  const arn = (k: FakeKmsKey) => `arn:aws:kms:${region}:${account}:key/${k.keyId}`;
  const find = () => {
    const id = String(input.KeyId ?? "");
    const k = keys.find((k) => k.keyId === id || arn(k) === id);
    if (!k) throw new ApiError("NotFoundException", `Key '${id}' does not exist`);
    return k;
  };
  switch (op) {
    case "ListKeys": {
      const { slice, next } = page(keys, input.Marker, pageSize, "InvalidMarkerException");
      return {
        Keys: slice.map((k) => ({ KeyId: k.keyId, KeyArn: arn(k) })),
        Truncated: next !== undefined,
        ...(next ? { NextMarker: next } : {}),
      };
    }
    case "ListAliases": {
      const all = keys.flatMap((k) =>
        (k.aliases ?? []).map((a) => ({
          AliasName: a,
          AliasArn: `arn:aws:kms:${region}:${account}:${a}`,
          TargetKeyId: k.keyId,
        })),
      );
      const { slice, next } = page(all, input.Marker, pageSize, "InvalidMarkerException");
      return { Aliases: slice, Truncated: next !== undefined, ...(next ? { NextMarker: next } : {}) };
    }
    case "DescribeKey": {
      const k = find();
      const symmetric = k.keySpec === "SYMMETRIC_DEFAULT";
      return {
        KeyMetadata: {
          AWSAccountId: account,
          KeyId: k.keyId,
          Arn: arn(k),
          CreationDate: k.creationDate ?? 1767225600,
          Enabled: (k.keyState ?? "Enabled") === "Enabled",
          Description: "",
          KeyUsage: k.keyUsage,
          KeyState: k.keyState ?? "Enabled",
          Origin: k.origin ?? "AWS_KMS",
          KeyManager: k.keyManager ?? "CUSTOMER",
          CustomerMasterKeySpec: k.keySpec,
          KeySpec: k.keySpec,
          ...(symmetric ? { EncryptionAlgorithms: ["SYMMETRIC_DEFAULT"] } : {}),
          MultiRegion: false,
        },
      };
    }
    case "GetKeyRotationStatus": {
      const k = find();
      if (k.keySpec !== "SYMMETRIC_DEFAULT" || (k.origin ?? "AWS_KMS") !== "AWS_KMS")
        throw new ApiError("UnsupportedOperationException", `${arn(k)} does not support automatic rotation`);
      return {
        KeyId: arn(k),
        KeyRotationEnabled: k.rotation?.enabled ?? false,
        ...(k.rotation?.enabled ? { RotationPeriodInDays: k.rotation.periodDays ?? 365 } : {}),
      };
    }
    case "ListResourceTags": {
      const k = find();
      const tags = Object.entries(k.tags ?? {}).map(([TagKey, TagValue]) => ({ TagKey, TagValue }));
      const { slice, next } = page(tags, input.Marker, pageSize, "InvalidMarkerException");
      return { Tags: slice, Truncated: next !== undefined, ...(next ? { NextMarker: next } : {}) };
    }
  }
  throw new ApiError("UnknownOperationException", `${op} is not an operation of this server`);
}

/** ListCertificates' documented default: without Includes.keyTypes only RSA_1024 and RSA_2048 are listed. */
const DEFAULT_KEY_TYPES = ["RSA_1024", "RSA_2048"];

function acmOperation(
  op: string,
  input: Record<string, unknown>,
  region: string,
  r: FakeRegion,
  opts: FakeAwsOptions,
): unknown {
  const account = opts.account ?? "111122223333";
  const pageSize = opts.pageSize ?? 2;
  const certs = r.certificates ?? [];
  const arn = (c: FakeCertificate) => `arn:aws:acm:${region}:${account}:certificate/${c.id}`;
  const find = () => {
    const c = certs.find((c) => arn(c) === input.CertificateArn);
    if (!c)
      throw new ApiError("ResourceNotFoundException", `Could not find certificate ${input.CertificateArn}`);
    return c;
  };
  switch (op) {
    case "ListCertificates": {
      const includes = input.Includes as { keyTypes?: string[] } | undefined;
      const keyTypes = includes?.keyTypes ?? DEFAULT_KEY_TYPES;
      const listed = certs.filter((c) => keyTypes.includes(c.keyAlgorithm.replace("-", "_")));
      const { slice, next } = page(listed, input.NextToken, pageSize, "InvalidArgsException");
      return {
        CertificateSummaryList: slice.map((c) => ({
          CertificateArn: arn(c),
          DomainName: c.domainName,
          KeyAlgorithm: c.keyAlgorithm.replace("-", "_"),
          Type: c.type ?? "AMAZON_ISSUED",
          Status: c.status ?? "ISSUED",
          InUse: (c.inUseBy ?? []).length > 0,
          NotAfter: c.notAfter,
        })),
        ...(next ? { NextToken: next } : {}),
      };
    }
    case "DescribeCertificate": {
      const c = find();
      return {
        Certificate: {
          CertificateArn: arn(c),
          DomainName: c.domainName,
          SubjectAlternativeNames: c.sans ?? [c.domainName],
          Subject: `CN=${c.domainName}`,
          Issuer: "Amazon",
          Status: c.status ?? "ISSUED",
          Type: c.type ?? "AMAZON_ISSUED",
          NotBefore: c.notBefore,
          NotAfter: c.notAfter,
          KeyAlgorithm: c.keyAlgorithm,
          SignatureAlgorithm: c.signatureAlgorithm,
          InUseBy: c.inUseBy ?? [],
          KeyUsages: [{ Name: "DIGITAL_SIGNATURE" }, { Name: "KEY_ENCIPHERMENT" }],
          ExtendedKeyUsages: [{ Name: "TLS_WEB_SERVER_AUTHENTICATION", OID: "1.3.6.1.5.5.7.3.1" }],
        },
      };
    }
    case "ListTagsForCertificate": {
      const c = find();
      return { Tags: Object.entries(c.tags ?? {}).map(([Key, Value]) => ({ Key, Value })) };
    }
  }
  throw new ApiError("UnknownOperationException", `${op} is not an operation of this server`);
}

const TARGETS: Record<string, "kms" | "acm"> = { TrentService: "kms", CertificateManager: "acm" };

export function startFakeAws(opts: FakeAwsOptions): FakeAws {
  const calls: ReceivedCall[] = [];
  const reply = (status: number, body: unknown, requestId: string) =>
    new Response(JSON.stringify(body), {
      status,
      headers: { "content-type": "application/x-amz-json-1.1", "x-amzn-requestid": requestId },
    });
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const requestId = crypto.randomUUID();
      const body = new Uint8Array(await req.arrayBuffer());
      const [prefix, operation = ""] = (req.headers.get("x-amz-target") ?? "").split(".");
      const service = TARGETS[prefix ?? ""];
      const call: ReceivedCall = {
        region: "",
        service: service ?? "kms",
        operation,
        attempt: req.headers.get("amz-sdk-request"),
        status: 200,
        error: null,
        time: performance.now(),
      };
      calls.push(call);
      const fail = (type: string, message: string) => {
        call.status = 400;
        call.error = type;
        return reply(400, { __type: type, message }, requestId);
      };
      if (req.method !== "POST" || !service)
        return fail("UnknownOperationException", "expected POST / with X-Amz-Target");
      if (req.headers.get("content-type") !== "application/x-amz-json-1.1")
        return fail("SerializationException", "Content-Type must be application/x-amz-json-1.1");
      const sig = checkSignature(req, body, opts);
      if (!sig.ok) return fail(sig.type, sig.message);
      call.region = sig.region;
      if (sig.service !== service)
        return fail(
          "InvalidSignatureException",
          `Credential should be scoped to correct service: '${service}'`,
        );
      const region = opts.regions[sig.region];
      if (!region) return fail("UnrecognizedClientException", `no such region ${sig.region}`);
      if (region.denied)
        return fail(
          "AccessDeniedException",
          `User: arn:aws:iam::${opts.account ?? "111122223333"}:user/carnot-test is not authorized to perform: ${service}:${operation} in region ${sig.region}`,
        );
      const throttleKey = `${service}:${operation}`;
      const left = region.throttle?.[throttleKey] ?? 0;
      if (left > 0) {
        region.throttle![throttleKey] = left - 1;
        return fail("ThrottlingException", "Rate exceeded");
      }
      let input: Record<string, unknown>;
      try {
        input = JSON.parse(new TextDecoder().decode(body) || "{}");
      } catch {
        return fail("SerializationException", "body is not JSON");
      }
      try {
        const out =
          service === "kms"
            ? kmsOperation(operation, input, sig.region, region, opts)
            : acmOperation(operation, input, sig.region, region, opts);
        return reply(200, out, requestId);
      } catch (err) {
        if (err instanceof ApiError) return fail(err.type, err.message);
        throw err;
      }
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, calls, stop: () => server.stop(true) };
}
