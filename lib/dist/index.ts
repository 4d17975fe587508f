// Process groups and expert parallelism: dsk.dist (group, rendezvous, launcher) and dsk.ep
// (layout, dispatch, combine), plus the CPU simulation and routing generators used to check them.
export * as dist from './group';
export * as ep from './ep';
export { launch, launchCommand, type LaunchOptions, type LaunchResult } from './launch';
export { RendezvousServer, RendezvousClient, DistError } from './rendezvous';
export { simulateDispatch, simulateCombine, bf16Round, type SimDispatchRank } from './simulate';
export { deepepRouting, skewedRouting, Rng, type Routing } from './routing';
export { EpMoeLayer, type EpMoeConfig, type EpMoeWeights, type MoeOps } from './moe_layer';
