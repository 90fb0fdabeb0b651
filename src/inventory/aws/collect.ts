/**
 * Reads KMS keys and ACM certificates through the AWS SDK for JavaScript v3: credentials, region and profile
 * the SDK's usual way, every list paginated, throttling retried by the SDK's own retry strategy (exponential
 * backoff with jitter, `maxAttempts`). A region or service that refuses is recorded, not fatal by itself.
 */
import {
  ACMClient,
  DescribeCertificateCommand,
  KeyAlgorithm,
  ListTagsForCertificateCommand,
  paginateListCertificates,
} from "@aws-sdk/client-acm";
import {
  DescribeKeyCommand,
  GetKeyRotationStatusCommand,
  KMSClient,
  paginateListAliases,
  paginateListKeys,
  paginateListResourceTags,
} from "@aws-sdk/client-kms";
import type { InventoryError } from "../../bom/cryptobom.ts";
import type { AcmCertificateFacts, KmsKeyFacts } from "./assets.ts";

export type RetryMode = "standard" | "adaptive";

export interface AwsClientOptions {
  profile?: string;
  endpoint?: string;
  maxAttempts: number;
  retryMode: RetryMode;
}

export interface RegionInventory {
  keys: KmsKeyFacts[];
  certificates: AcmCertificateFacts[];
  errors: InventoryError[];
}

/** Calls per service in flight at once for the per-resource reads (DescribeKey, tags…). */
const PER_RESOURCE_CONCURRENCY = 4;

function clientConfig(region: string, opts: AwsClientOptions) {
  return {
    region,
    maxAttempts: opts.maxAttempts,
    retryMode: opts.retryMode,
    requestHandler: { connectionTimeout: 10_000, requestTimeout: 60_000 },
    ...(opts.profile === undefined ? {} : { profile: opts.profile }),
    ...(opts.endpoint === undefined ? {} : { endpoint: opts.endpoint }),
  };
}

/** The SDK's error as a record: its name (the service's error code) and message. */
function errorRecord(
  region: string,
  service: string,
  operation: string,
  resource: string | null,
  err: unknown,
): InventoryError {
  const e = err as { name?: string; message?: string };
  return {
    region,
    service,
    operation,
    resource,
    error: e?.name ?? "Error",
    message: (e?.message ?? String(err)).split("\n")[0]!,
  };
}

/** `items` through `fn`, at most `limit` at a time, results in input order. */
async function mapLimited<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** An optional per-resource read: its failure is recorded and the field stays unknown. */
async function attempt<T>(errors: InventoryError[], record: () => InventoryError, read: () => Promise<T>) {
  try {
    return await read();
  } catch (err) {
    errors.push({ ...record(), error: (err as Error).name, message: (err as Error).message.split("\n")[0]! });
    return undefined;
  }
}

/** The listing call in progress, for the record when it fails. */
interface Stage {
  operation: string;
}

async function readKms(
  client: KMSClient,
  region: string,
  errors: InventoryError[],
  stage: Stage,
): Promise<KmsKeyFacts[]> {
  stage.operation = "ListKeys";
  const listed: { KeyId: string; KeyArn: string | null }[] = [];
  for await (const page of paginateListKeys({ client }, {})) {
    for (const k of page.Keys ?? []) if (k.KeyId) listed.push({ KeyId: k.KeyId, KeyArn: k.KeyArn ?? null });
  }
  stage.operation = "ListAliases";
  const aliases = new Map<string, string[]>();
  for await (const page of paginateListAliases({ client }, {})) {
    for (const a of page.Aliases ?? []) {
      if (!a.TargetKeyId || !a.AliasName) continue;
      aliases.set(a.TargetKeyId, [...(aliases.get(a.TargetKeyId) ?? []), a.AliasName]);
    }
  }
  return mapLimited(listed, PER_RESOURCE_CONCURRENCY, async ({ KeyId, KeyArn }) => {
    const arn = KeyArn ?? KeyId;
    const rec = (operation: string) => () => errorRecord(region, "kms", operation, arn, null);
    const meta = (
      await attempt(errors, rec("DescribeKey"), () => client.send(new DescribeKeyCommand({ KeyId })))
    )?.KeyMetadata;
    const keySpec = meta?.KeySpec ?? null;
    const origin = meta?.Origin ?? null;
    // automatic rotation exists only for symmetric keys whose material KMS made
    const rotates =
      keySpec === "SYMMETRIC_DEFAULT" && origin === "AWS_KMS" && meta?.KeyState !== "PendingDeletion";
    const rotation = rotates
      ? await attempt(errors, rec("GetKeyRotationStatus"), () =>
          client.send(new GetKeyRotationStatusCommand({ KeyId })),
        )
      : undefined;
    const tags = await attempt(errors, rec("ListResourceTags"), async () => {
      const out: Record<string, string> = {};
      for await (const page of paginateListResourceTags({ client }, { KeyId })) {
        for (const t of page.Tags ?? []) if (t.TagKey !== undefined) out[t.TagKey] = t.TagValue ?? "";
      }
      return out;
    });
    return {
      region,
      arn: meta?.Arn ?? arn,
      keyId: KeyId,
      keySpec,
      keyUsage: meta?.KeyUsage ?? null,
      origin,
      keyManager: meta?.KeyManager ?? null,
      keyState: meta?.KeyState ?? null,
      rotationEnabled: rotation?.KeyRotationEnabled ?? null,
      rotationPeriodDays: rotation?.KeyRotationEnabled ? (rotation.RotationPeriodInDays ?? null) : null,
      aliases: aliases.get(KeyId) ?? [],
      tags: tags ?? null,
    };
  });
}

const isoTime = (d: Date | undefined): string | null => (d ? d.toISOString() : null);

async function readAcm(
  client: ACMClient,
  region: string,
  errors: InventoryError[],
): Promise<AcmCertificateFacts[]> {
  const listed: { arn: string; keyAlgorithm: string | null; domainName: string | null }[] = [];
  // ListCertificates returns only RSA-1024/2048 certificates unless every key type is asked for
  const keyTypes = Object.values(KeyAlgorithm);
  for await (const page of paginateListCertificates({ client }, { Includes: { keyTypes } })) {
    for (const c of page.CertificateSummaryList ?? []) {
      if (c.CertificateArn)
        listed.push({
          arn: c.CertificateArn,
          keyAlgorithm: c.KeyAlgorithm ?? null,
          domainName: c.DomainName ?? null,
        });
    }
  }
  return mapLimited(listed, PER_RESOURCE_CONCURRENCY, async (summary) => {
    const rec = (operation: string) => () => errorRecord(region, "acm", operation, summary.arn, null);
    const CertificateArn = summary.arn;
    const cert = (
      await attempt(errors, rec("DescribeCertificate"), () =>
        client.send(new DescribeCertificateCommand({ CertificateArn })),
      )
    )?.Certificate;
    const tags = await attempt(errors, rec("ListTagsForCertificate"), async () => {
      const out: Record<string, string> = {};
      const res = await client.send(new ListTagsForCertificateCommand({ CertificateArn }));
      for (const t of res.Tags ?? []) if (t.Key !== undefined) out[t.Key] = t.Value ?? "";
      return out;
    });
    return {
      region,
      arn: summary.arn,
      domainName: cert?.DomainName ?? summary.domainName,
      subjectAlternativeNames: cert?.SubjectAlternativeNames ?? [],
      keyAlgorithm: cert?.KeyAlgorithm ?? summary.keyAlgorithm,
      signatureAlgorithm: cert?.SignatureAlgorithm ?? null,
      notBefore: isoTime(cert?.NotBefore),
      notAfter: isoTime(cert?.NotAfter),
      type: cert?.Type ?? null,
      status: cert?.Status ?? null,
      inUseBy: cert?.InUseBy ?? [],
      usages: [
        ...(cert?.KeyUsages ?? []).map((u) => u.Name ?? ""),
        ...(cert?.ExtendedKeyUsages ?? []).map((u) => u.Name ?? ""),
      ].filter((u) => u !== ""),
      tags: tags ?? null,
    };
  });
}

/** One region: KMS then ACM; a service whose listing fails is recorded in `errors` and contributes nothing. */
export async function inventoryRegion(region: string, opts: AwsClientOptions): Promise<RegionInventory> {
  const out: RegionInventory = { keys: [], certificates: [], errors: [] };
  const kms = new KMSClient(clientConfig(region, opts));
  const stage = { operation: "ListKeys" };
  try {
    out.keys = await readKms(kms, region, out.errors, stage);
  } catch (err) {
    out.errors.push(errorRecord(region, "kms", stage.operation, null, err));
  } finally {
    kms.destroy();
  }
  const acm = new ACMClient(clientConfig(region, opts));
  try {
    out.certificates = await readAcm(acm, region, out.errors);
  } catch (err) {
    out.errors.push(errorRecord(region, "acm", "ListCertificates", null, err));
  } finally {
    acm.destroy();
  }
  return out;
}

/** The region the SDK would use by itself (AWS_REGION, the profile's `region`), or null when there is none. */
export async function defaultRegion(opts: AwsClientOptions): Promise<string | null> {
  const client = new KMSClient(opts.profile === undefined ? {} : { profile: opts.profile });
  try {
    return await client.config.region();
  } catch {
    return null;
  } finally {
    client.destroy();
  }
}
