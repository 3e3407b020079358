/**
 * Test helper: a QmpSession over a FakeVmController without sockets. Lines go in, the lines
 * the session writes (greeting, replies, events) come out. Events are stamped with a fixed
 * time so outputs are comparable byte for byte.
 */
import { QmpDispatcher } from './dispatch.ts';
import { FakeVmController, type FakeVmOptions } from './fake-vm-controller.ts';
import { encodeQmpJson } from './json.ts';
import { formatEvent } from './protocol.ts';
import { QmpSession, type QmpSessionOptions } from './session.ts';

/** A session wired to a fake VM, with its output captured. */
export interface Driven {
  readonly vm: FakeVmController;
  readonly session: QmpSession;
  /** Every line written so far. */
  readonly out: string[];
  /** Sends one line (a newline is added) and returns the lines written meanwhile. */
  send(line: string): string[];
  /** Sends a request object as one line. */
  request(request: Record<string, unknown>): string[];
  /** Negotiates capabilities (asserting success). */
  negotiate(enable?: readonly string[]): void;
  /** Sends a request and returns its single reply, parsed with JSON.parse (plain objects). */
  call(request: Record<string, unknown>): Record<string, unknown>;
}

/** The fixed event time of driven sessions. */
export const FIXED_TIMESTAMP = { seconds: 1700000000, microseconds: 123456 };

export function drive(vmOptions: FakeVmOptions = {}, sessionOptions: Partial<QmpSessionOptions> = {}): Driven {
  const vm = new FakeVmController(vmOptions);
  const out: string[] = [];
  const session = new QmpSession(new QmpDispatcher(vm), { send: (line) => out.push(line), ...sessionOptions });
  vm.subscribe((event) => {
    const { timestamp, ...body } = event;
    session.deliverEvent(formatEvent(body, timestamp ?? FIXED_TIMESTAMP));
  });
  session.start();
  const send = (line: string): string[] => {
    const before = out.length;
    session.receive(new TextEncoder().encode(`${line}\n`));
    return out.slice(before);
  };
  const request = (r: Record<string, unknown>): string[] => send(encodeQmpJson(r));
  const call = (r: Record<string, unknown>): Record<string, unknown> => {
    const lines = request(r).filter((l) => !l.startsWith('{"timestamp"'));
    if (lines.length !== 1) throw new Error(`expected one reply, got ${JSON.stringify(lines)}`);
    return JSON.parse(lines[0]) as Record<string, unknown>;
  };
  const negotiate = (enable?: readonly string[]): void => {
    const reply = request(enable === undefined ? { execute: 'qmp_capabilities' } : { execute: 'qmp_capabilities', arguments: { enable } });
    if (reply.length !== 1 || reply[0] !== '{"return": {}}') throw new Error(`negotiation failed: ${JSON.stringify(reply)}`);
  };
  return { vm, session, out, send, request, negotiate, call };
}
