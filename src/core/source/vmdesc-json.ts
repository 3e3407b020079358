/**
 * The default VMDESCRIPTION JSON of a precopy stream (facts §1.8): `{"page_size": n,
 * "devices": [...]}` in QEMU's compact style (", " and ": " separators, no newlines), one entry
 * per FULL device section written. The engine carries device state opaquely, so it knows field
 * layouts only for the two sections QEMU `-M none` writes (`timer` v2, `globalstate` v1); every
 * other section is described the way QEMU describes an old-style (non-vmsd) device: its size and
 * one buffer field `data`. A host that knows its devices' fields passes `vmdescriptionJson`.
 */
import type { DeviceSectionBlob } from '../engine-types.ts';

type Json = string | number | boolean | null | readonly Json[] | { readonly [key: string]: Json };

/** JSON with QEMU's JSONWriter separators: ", " between members, ": " after keys. */
export function qemuJson(value: Json): string {
  if (Array.isArray(value)) return `[${value.map(qemuJson).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    const members = Object.entries(value as { readonly [key: string]: Json }).map(([k, v]) => `${JSON.stringify(k)}: ${qemuJson(v)}`);
    return `{${members.join(', ')}}`;
  }
  return JSON.stringify(value);
}

const field = (name: string, type: string, size: number): Json => ({ name, type, size });

/** Field lists of the sections whose layout is fixed (facts §1.10). */
const KNOWN_FIELDS: ReadonlyMap<string, { readonly version: number; readonly fields: readonly Json[] }> = new Map([
  ['timer', { version: 2, fields: [field('cpu_ticks_offset', 'int64', 8), field('unused', 'unused_buffer', 8), field('cpu_clock_offset', 'int64', 8)] }],
  ['globalstate', { version: 1, fields: [field('size', 'uint32', 4), field('runstate', 'buffer', 100)] }],
]);

/** One `devices` entry. */
function deviceEntry(blob: DeviceSectionBlob): Json {
  const known = KNOWN_FIELDS.get(blob.idstr);
  if (known !== undefined && known.version === blob.versionId) {
    return { name: blob.idstr, instance_id: blob.instanceId, vmsd_name: blob.idstr, version: blob.versionId, fields: known.fields };
  }
  const size = blob.payload.length;
  return { name: blob.idstr, instance_id: blob.instanceId, size, fields: [{ name: 'data', size, type: 'buffer' }] };
}

/** The VMDESCRIPTION JSON for `devices`, in the order they were written. */
export function defaultVmdescriptionJson(devices: readonly DeviceSectionBlob[], pageSizeBytes: number): string {
  return qemuJson({ page_size: pageSizeBytes, devices: devices.map(deviceEntry) });
}
