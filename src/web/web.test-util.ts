/**
 * Scenarios shared by the web tests: tiny runs (64 MiB guests) that finish in about a second,
 * one precopy and one that switches to postcopy after its first sync.
 */

/** Precopy of an incrementer over 16 MiB. */
export const TINY_PRECOPY = `
name: tiny
description: incrementer over 16 MiB of 64 MiB
guest: { memory: 64M, reserved: 8M }
workload: { kind: incrementer, size: 16M, rate: 256M }
capabilities: { return-path: true }
parameters: { max-bandwidth: 128M }
migration: { start: 20ms }
settle: 20ms
`;

/** Postcopy after sync 1: the destination guest faults on missing pages. */
export const TINY_POSTCOPY = `
name: tiny-postcopy
guest: { memory: 64M, reserved: 8M }
workload: { kind: incrementer, size: 32M, rate: 1G }
capabilities: { postcopy-ram: true, return-path: true }
parameters: { max-bandwidth: 64M }
migration: { start: 20ms }
switch: { postcopy: { after-syncs: 1 } }
settle: 20ms
`;
