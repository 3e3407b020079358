/**
 * The per-hop breakdown of postcopy page-request latency (host/hop-trace.ts records the stamps,
 * the latency bench's children report them). Each vCPU fault that sent a request is split into:
 *
 *   fault→seen        the vCPU blocked → the destination's main thread handled the fault
 *   seen→req          → the request was handed to the return-path socket
 *   req→src           → the source's socket callback that read it began
 *   src→sent          → the page was handed to the source's socket (preempt or main)
 *   sent→read         → the destination's socket callback that delivered the page began
 *   read→placed       → the page was placed and the vCPU woken (main channel: includes the wait
 *                       of the piece in the coalescing queue)
 *   placed→resumed    → the vCPU saw its page and ran on
 *
 * The hops of one fault add up to its latency (faults answered without a request, or whose
 * stamps are missing, are counted apart).
 */
import type { DestHop, SourceHop } from '../host/hop-trace.ts';

export const HOP_NAMES = ['fault→seen', 'seen→req', 'req→src', 'src→sent', 'sent→read', 'read→placed', 'placed→resumed'] as const;

/** One vCPU fault as the vCPU recorded it (ns on the machine's monotonic clock). */
export interface FaultRecord {
  readonly startNs: number;
  readonly latencyNs: number;
  readonly page: number;
}

/** A fault with its hops (ns), or without when it sent no request or a stamp is missing. */
export interface FaultHops {
  readonly latencyNs: number;
  /** The fault's start, ms after the run's first fault. */
  readonly atMs: number;
  readonly channel: string;
  readonly hopsNs: readonly number[] | null;
}

/** Joins the vCPU's faults, the destination's stamps (by page) and the source's (by request number). */
export function joinHops(faults: readonly FaultRecord[], dest: readonly DestHop[], source: readonly SourceHop[]): FaultHops[] {
  const byPage = new Map(dest.map((d) => [d.page, d]));
  const byRequest = new Map(source.map((s) => [s.request, s]));
  const firstNs = Math.min(...faults.map((f) => f.startNs));
  return faults.map((f) => {
    const atMs = (f.startNs - firstNs) / 1e6;
    const d = byPage.get(f.page);
    const s = d === undefined ? undefined : byRequest.get(d.request);
    if (d === undefined || s === undefined || d.request === 0 || d.placedNs === 0 || s.sentNs === 0) return { latencyNs: f.latencyNs, atMs, channel: d?.channel ?? '', hopsNs: null };
    const stamps = [f.startNs, d.faultSeenNs, d.requestWrittenNs, s.readNs, s.sentNs, d.pageReadNs, d.placedNs, f.startNs + f.latencyNs];
    return { latencyNs: f.latencyNs, atMs, channel: d.channel, hopsNs: HOP_NAMES.map((_, i) => stamps[i + 1] - stamps[i]) };
  });
}

const ms = (ns: number): string => (ns / 1e6).toFixed(2);

/** A text table: per hop, the median over all requested faults and the mean over the slowest `tailFraction`; then the slowest faults one by one. */
export function formatHops(all: readonly FaultHops[], tailFraction = 0.01, listSlowest = 8): string {
  const traced = all.filter((f) => f.hopsNs !== null).sort((a, b) => a.latencyNs - b.latencyNs);
  const lines: string[] = [];
  lines.push(`faults ${all.length}, with a request and every stamp ${traced.length}`);
  if (traced.length === 0) return lines.join('\n');
  const tailCount = Math.max(1, Math.ceil(traced.length * tailFraction));
  const tail = traced.slice(traced.length - tailCount);
  const median = (xs: number[]): number => xs.sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
  lines.push(`hop              median(all)  mean(slowest ${tailCount})  ms`);
  HOP_NAMES.forEach((name, i) => {
    const mean = tail.reduce((n, f) => n + f.hopsNs![i], 0) / tail.length;
    lines.push(`${name.padEnd(16)} ${ms(median(traced.map((f) => f.hopsNs![i]))).padStart(11)}  ${ms(mean).padStart(19)}`);
  });
  lines.push(`slowest ${Math.min(listSlowest, traced.length)} (latency: ${HOP_NAMES.join(' ')}; channel, ms after the run's first fault)`);
  for (const f of traced.slice(-listSlowest).reverse()) lines.push(`  ${ms(f.latencyNs)}: ${f.hopsNs!.map(ms).join(' ')}; ${f.channel}, at ${f.atMs.toFixed(0)}`);
  return lines.join('\n');
}
