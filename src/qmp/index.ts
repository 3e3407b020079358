/**
 * The QMP control plane's public API. A VM exposes itself over QMP by implementing
 * VmController and starting a QmpServer on it; everything else (protocol, schema, dispatch,
 * HMP) is internal but exported for tools and tests.
 *
 *   const server = await QmpServer.listen({ controller: myVm, listen: { unix: '/run/vm.qmp' } });
 *   ...
 *   await server.close();
 */
export type {
  BalloonInfo,
  MaybePromise,
  MigrateArgs,
  PmemsaveArgs,
  QmpEventBody,
  QmpEventEmission,
  QmpEventListener,
  QmpEventName,
  QmpTimestamp,
  RunState,
  StatusInfo,
  VersionInfo,
  VmController,
} from './controller.ts';
export { RUN_STATES } from './controller.ts';
export { QmpCommandError, QMP_ERROR_CLASSES, genericError, invalidParameterValue, type QmpErrorClass } from './errors.ts';
export { QmpServer, QmpServerError, type QmpListenAddress, type QmpServerOptions, type QmpServerErrorCode } from './server.ts';
export { QmpSession, type QmpSessionOptions } from './session.ts';
export { QmpDispatcher, type DispatcherOptions } from './dispatch.ts';
export { runHmp } from './hmp.ts';
export { LIVEMIG_VERSION, DEFAULT_MAX_LINE_BYTES } from './protocol.ts';
export { COMMANDS, COMMAND_NAMES, EVENTS, type CommandName, type CommandArgs, type CommandReturn } from './schema.ts';
export { FakeVmController, type FakeVmOptions } from './fake-vm-controller.ts';
export { diffShape, formatShapeDifferences, type ShapeDifference } from './diff-shape.ts';
