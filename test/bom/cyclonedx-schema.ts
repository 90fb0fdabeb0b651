/** The official CycloneDX 1.6 JSON schema (as shipped in @cyclonedx/cyclonedx-library), compiled offline. */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import Ajv, { type ValidateFunction } from "ajv";
import addFormats from "ajv-formats";

const schemaDir = join(dirname(require.resolve("@cyclonedx/cyclonedx-library/package.json")), "res/schema");
const load = (name: string): object => JSON.parse(readFileSync(join(schemaDir, name), "utf8"));

export function compileCycloneDx16(): ValidateFunction {
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  // Formats ajv-formats lacks; carnot writes neither URLs nor e-mail addresses, so accepting them loses nothing.
  ajv.addFormat("iri-reference", true);
  ajv.addFormat("idn-email", true);
  // The bundled bom schema refers to its siblings by their file names.
  ajv.addSchema(load("spdx.SNAPSHOT.schema.json"), "http://cyclonedx.org/schema/spdx.SNAPSHOT.schema.json");
  ajv.addSchema(
    load("jsf-0.82.SNAPSHOT.schema.json"),
    "http://cyclonedx.org/schema/jsf-0.82.SNAPSHOT.schema.json",
  );
  return ajv.compile(load("bom-1.6.SNAPSHOT.schema.json"));
}

export const describeErrors = (validate: ValidateFunction): string =>
  JSON.stringify(validate.errors?.slice(0, 5) ?? [], null, 1);
