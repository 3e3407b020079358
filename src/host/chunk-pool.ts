/** The chunk pool moved to format/ so the simulator can use it too; kept here for importers. */
export { ChunkPool } from '../format/chunk-pool.ts';
