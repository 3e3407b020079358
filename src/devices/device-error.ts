/**
 * Typed errors of the balloon and virtio-mem devices. Two kinds of failure exist:
 *
 * - A guest protocol violation marks the device broken (QEMU virtio_error): the device stops
 *   processing queues until reset and records a DeviceError as its `broken` value. The
 *   message is QEMU's text, so logs read the same.
 * - A bad host-side input (a property out of range, a malformed migration payload) is thrown
 *   or returned as a DeviceError to the caller, never silently accepted.
 *
 * Every error carries a stable `code`; callers switch on it, never on the message.
 */
export class DeviceError extends Error {
  override name = 'DeviceError';
  constructor(
    /** Stable machine-readable code, e.g. BALLOON_ERR_BAD_CMD_ID. */
    readonly code: string,
    message: string,
  ) {
    super(message);
  }

  toJSON(): object {
    return { code: this.code, message: this.message };
  }
}
