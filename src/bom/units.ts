/** A CryptoBOM read as the units its figures count: observations, or a fleet document's components. */
import {
  type ComponentFields,
  type CryptoBom,
  type CryptoBomComponent,
  type CryptoBomObservation,
  listsObservations,
} from "./cryptobom.ts";

/**
 * What policy, HNDL, risk and CycloneDX count: an observation (weight 1), or in a document that omits its
 * observations a component (weight: its count). Every figure is a sum of weights, so both agree.
 */
export interface BomUnit extends ComponentFields {
  bom_ref: string;
  /** the observation's time; a component's first seen (its handshakes all fall in that year) */
  observation_time: string | null;
  last_seen: string | null;
  groups_offered: readonly string[];
  asset_id: string | null;
  secrecy_lifetime_years: number | null;
  exposure: string | null;
  count: number;
  success_count: number;
  failed_count: number;
}

export function observationUnit(o: CryptoBomObservation): BomUnit {
  return {
    ...o,
    last_seen: o.observation_time,
    count: 1,
    success_count: o.success === true ? 1 : 0,
    failed_count: o.success === false ? 1 : 0,
  };
}

export function componentUnit(c: CryptoBomComponent): BomUnit {
  return {
    ...c,
    observation_time: c.first_seen,
    groups_offered: c.groups_offered ?? [],
    asset_id: c.asset_id ?? null,
    owner: c.owner ?? null,
    data_class: c.data_class ?? null,
    secrecy_lifetime_years: c.secrecy_lifetime_years ?? null,
    exposure: c.exposure ?? null,
    failed_count: c.failed_count ?? 0,
  };
}

export function bomUnits(bom: CryptoBom): BomUnit[] {
  return listsObservations(bom)
    ? bom.observations.map(observationUnit)
    : bom.metrics.components.map(componentUnit);
}
