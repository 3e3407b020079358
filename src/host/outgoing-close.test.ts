// How OutgoingMigration reads the main connection closing while a precopy without a return path
// waits for `written` (its last bytes handed to the kernel, QEMU's blocking qemu_fflush). A
// destination closes its end as soon as it has loaded the stream, and that close can come before
// the source's next look at its queue (every 1 ms). The channel here is a fake whose queue the
// test empties and closes between two looks, so the race is decided, not timed:
// - a clean close with nothing queued completes the migration (QEMU's destination closing after
//   the load; before the fix, 1 run in 10 against QEMU failed with the error below);
// - a clean close with bytes still queued fails it, with the guest running again;
// - a reset fails it even with nothing queued.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultCapabilities } from '../core/capabilities.ts';
import { DEFAULT_PARAMETERS } from '../core/params.ts';
import type { MigrationStatus } from '../core/status.ts';
import { Guest, RecordingHooks } from '../core/source/source-harness.test-util.ts';
import type { Channel } from '../transport/channel.ts';
import { TRANSPORT_ERR_CLOSED, TRANSPORT_ERR_RESET, TransportError } from '../transport/errors.ts';
import { OutgoingMigration } from './outgoing.ts';

/** A main connection whose kernel queue the test controls: nothing leaves it on its own. */
class HeldChannel implements Channel {
  readonly remoteAddress = 'fake:held';
  bytesWritten = 0;
  readonly bytesRead = 0;
  queuedBytes = 0;
  readonly needsDrain = false;
  closed = false;
  private closeError: TransportError | null = null;
  private readonly closeHandlers: ((error: TransportError | null) => void)[] = [];

  write(data: Uint8Array): boolean {
    if (this.closed) throw new TransportError(TRANSPORT_ERR_CLOSED, 'closed');
    this.bytesWritten += data.length;
    this.queuedBytes += data.length;
    return true;
  }
  cork(): void {}
  uncork(): void {}
  onDrain(): () => void {
    return () => {};
  }
  onData(): void {}
  onClose(handler: (error: TransportError | null) => void): () => void {
    if (this.closed) queueMicrotask(() => handler(this.closeError));
    else this.closeHandlers.push(handler);
    return () => {};
  }
  pause(): void {}
  resume(): void {}
  end(): void {
    this.close(null);
  }
  destroy(error?: Error): void {
    this.close(error === undefined ? null : new TransportError('TRANSPORT_ERR_ABORTED', error.message));
  }
  whenClosed(): Promise<TransportError | null> {
    return new Promise((resolve) => this.onClose(resolve));
  }
  /** The peer closes: clean (null) or with an error. Handlers run now, as a socket's 'close' does. */
  close(error: TransportError | null): void {
    if (this.closed) return;
    this.closed = true;
    this.closeError = error;
    for (const handler of this.closeHandlers.splice(0)) handler(error);
  }
}

interface Run {
  readonly outgoing: OutgoingMigration;
  readonly channel: HeldChannel;
  readonly guestRuns: () => number;
}

/** A 64-page guest migrating into a HeldChannel, stopped at `awaiting-written`. */
async function atAwaitingWritten(): Promise<Run> {
  const guest = new Guest('bytes', 64);
  for (let p = 0; p < 64; p += 2) guest.write(p, p);
  const channel = new HeldChannel();
  let runs = 0;
  const outgoing = new OutgoingMigration(
    {
      ram: guest.ram,
      hooks: new RecordingHooks(),
      nowNs: () => Number(process.hrtime.bigint()),
      stopGuest: () => {},
      runGuest: () => runs++,
      setThrottle: () => {},
      onStatus: () => {},
      onEvent: () => {},
    },
    { uri: 'tcp:fake', capabilities: defaultCapabilities(), parameters: DEFAULT_PARAMETERS, hintPolicy: 'refuse', open: {}, openChannel: async () => channel },
  );
  const deadline = Date.now() + 5_000;
  while (outgoing.engine.phase !== 'awaiting-written') {
    assert.ok(Date.now() < deadline, `stuck in ${outgoing.engine.phase} (${outgoing.status})`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  assert.ok(channel.queuedBytes > 0, 'the stream is still queued: the source keeps looking');
  return { outgoing, channel, guestRuns: () => runs };
}

async function finalStatus(run: Run): Promise<MigrationStatus> {
  return run.outgoing.whenFinished();
}

test('a clean close once every byte left the queue completes the migration, before the next look', async () => {
  const run = await atAwaitingWritten();
  run.channel.queuedBytes = 0; // the kernel took the rest and the peer read it...
  run.channel.close(null); // ...and closed, within the same millisecond
  assert.equal(await finalStatus(run), 'completed', run.outgoing.error?.message);
  assert.equal(run.outgoing.error, null);
  assert.equal(run.guestRuns(), 0, 'the guest stays stopped: it runs on the destination');
});

test('a clean close with bytes still queued fails the migration, and the guest runs again', async () => {
  const run = await atAwaitingWritten();
  run.channel.close(null);
  assert.equal(await finalStatus(run), 'failed');
  assert.equal(run.outgoing.error?.message, 'Migration channel closed by the peer');
  assert.equal(run.guestRuns(), 1);
});

test('a reset fails the migration even with nothing queued', async () => {
  const run = await atAwaitingWritten();
  run.channel.queuedBytes = 0;
  run.channel.close(new TransportError(TRANSPORT_ERR_RESET, 'Connection reset on tcp:fake'));
  assert.equal(await finalStatus(run), 'failed');
  assert.equal(run.outgoing.error?.message, 'Connection reset on tcp:fake');
  assert.equal(run.guestRuns(), 1);
});
