// dsk.dist: the process group. One process per GPU, started by `dsk launch` (or anything that sets
// DSK_RANK, DSK_WORLD_SIZE, DSK_RENDEZVOUS); `await dsk.dist.init()` joins it.
//
// init() connects to the rendezvous, allocates this rank's expert-parallel buffer once, exchanges the
// CUDA IPC handles of every rank's buffer, checks that every pair of GPUs can reach each other
// directly, and maps the peers' buffers. From then on a failed rank (exited, crashed, or silent past the
// heartbeat timeout) is reported to every other rank: their collectives reject with an error naming
// it, and the abort word the exchange kernels poll stops any kernel still waiting for it.
import { deviceName, type Device, type DeviceLike, resolveDevice } from '../device';
import { getNative } from '../native';
import { DistError, RendezvousClient } from './rendezvous';

export { DistError } from './rendezvous';

export interface EpBufferOptions {
  /** Largest hidden size a dispatch/combine will carry (sizes the ring slots; default 7168). */
  maxHidden?: number;
  /** Largest topk (default 16). */
  maxTopk?: number;
  /** Experts of the model, the default for ep ops (default none: pass numExperts to them). */
  numExperts?: number;
  /** Largest number of experts (default max(1024, numExperts)). */
  maxExperts?: number;
  /** Slots of each ring (one ring per peer and channel; default 128 up to 4 ranks, else 64). */
  slots?: number;
  /** Most SMs an ep op may use (2 per channel; default 48). */
  maxSMs?: number;
}

export interface InitOptions {
  /** Defaults: DSK_RANK, DSK_WORLD_SIZE, DSK_LOCAL_RANK and DSK_RENDEZVOUS from the environment (or a group of one). */
  rank?: number;
  worldSize?: number;
  localRank?: number;
  rendezvous?: string;
  /** This rank's device (default cuda:localRank when GPUs are present, else cpu). */
  device?: DeviceLike;
  /** How long an exchange kernel waits for a peer before it fails naming it (default 60 s; DSK_EP_TIMEOUT_MS). */
  timeoutMs?: number;
  /** A silent rank is declared failed after this long (default 15 s; DSK_HEARTBEAT_TIMEOUT_MS). */
  heartbeatTimeoutMs?: number;
  /** How long to wait for every rank to join (default 300 s). */
  joinTimeoutMs?: number;
  /** The expert-parallel buffer (allocated once, shared with the peers); false for none. */
  ep?: EpBufferOptions | false;
}

interface State {
  rank: number;
  worldSize: number;
  localRank: number;
  device: number;
  client: RendezvousClient | undefined;
  ep: { numExperts?: number; maxSMs: number; slots: number } | undefined;
  epoch: number;
}

let state: State | undefined;
let initializing: Promise<void> | undefined;

function envInt(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new TypeError(`dist.init: ${name} must be a non-negative integer, got ${JSON.stringify(v)}`);
  return n;
}

function positive(v: unknown, name: string, integer = true): number {
  if (typeof v !== 'number' || !(v > 0) || (integer && !Number.isInteger(v)))
    throw new TypeError(`dist.init: ${name} must be a positive ${integer ? 'integer' : 'number'}, got ${String(v)}`);
  return v;
}

/**
 * Joins the process group (see `dsk launch`) and sets up the expert-parallel buffers. Resolves once
 * every rank has joined and every peer buffer is mapped. Idempotent: a second call returns at once.
 */
export async function init(options: InitOptions = {}): Promise<void> {
  if (state) return;
  if (initializing) return initializing;
  initializing = doInit(options).finally(() => (initializing = undefined));
  return initializing;
}

async function doInit(o: InitOptions): Promise<void> {
  if (o === null || typeof o !== 'object') throw new TypeError('dist.init: options must be an object');
  const worldSize = o.worldSize ?? envInt('DSK_WORLD_SIZE') ?? 1;
  const rank = o.rank ?? envInt('DSK_RANK') ?? 0;
  const localRank = o.localRank ?? envInt('DSK_LOCAL_RANK') ?? rank;
  positive(worldSize, 'worldSize');
  if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) throw new RangeError(`dist.init: rank ${rank} is outside [0, ${worldSize})`);
  const rendezvous = o.rendezvous ?? process.env.DSK_RENDEZVOUS;
  if (worldSize > 1 && !rendezvous)
    throw new TypeError('dist.init: a group of several ranks needs a rendezvous address (DSK_RENDEZVOUS=host:port); start the script with `dsk launch --gpus N`');
  const native = getNative();
  const gpus = native.cudaStatus().count;
  const device = o.device !== undefined ? resolveDevice(o.device, 'device') : gpus > 0 ? localRank % gpus : -1;
  const timeoutMs = o.timeoutMs ?? (Number(process.env.DSK_EP_TIMEOUT_MS) || 60_000);
  const heartbeatTimeoutMs = o.heartbeatTimeoutMs ?? (Number(process.env.DSK_HEARTBEAT_TIMEOUT_MS) || 15_000);
  positive(timeoutMs, 'timeoutMs', false);
  positive(heartbeatTimeoutMs, 'heartbeatTimeoutMs', false);

  let client: RendezvousClient | undefined;
  if (worldSize > 1) {
    client = await RendezvousClient.connect({
      address: rendezvous!,
      rank,
      worldSize,
      device,
      heartbeatTimeoutMs,
      joinTimeoutMs: o.joinTimeoutMs,
    });
    client.onFailure((e) => {
      if (e.rank >= 0 && e.rank < worldSize) native.epAbort(e.rank);
      else native.epAbort(rank);  // the rendezvous is gone: nobody can vouch for the peers any more
    });
  }

  let ep: State['ep'];
  const epo = o.ep === false ? undefined : o.ep ?? {};
  const wantEp = epo !== undefined && (device >= 0 || worldSize === 1);
  let localError: string | undefined;
  let handle = '';
  if (wantEp) {
    const maxHidden = positive(epo.maxHidden ?? 7168, 'ep.maxHidden');
    const maxTopk = positive(epo.maxTopk ?? 16, 'ep.maxTopk');
    const numExperts = epo.numExperts === undefined ? undefined : positive(epo.numExperts, 'ep.numExperts');
    const maxExperts = positive(epo.maxExperts ?? Math.max(1024, numExperts ?? 0), 'ep.maxExperts');
    // Deeper rings where there are few peers (the buffer grows with peers x slots).
    const slots = positive(epo.slots ?? (worldSize <= 4 ? 128 : 64), 'ep.slots');
    const maxSMs = positive(epo.maxSMs ?? 48, 'ep.maxSMs');
    // A ring slot holds a bf16 token (or an fp8 token and its scales) and its routing (row, weight per k).
    const slotBytes = Math.max(maxHidden * 2 + 16, maxHidden + Math.ceil(maxHidden / 128) * 4 + 32) + maxTopk * 8;
    try {
      const created = native.epGroupCreate(device, rank, worldSize, Math.ceil(maxSMs / 2), slots, slotBytes, maxExperts, timeoutMs);
      handle = Buffer.from(created.handle).toString('base64');
      ep = { numExperts, maxSMs: 2 * Math.ceil(maxSMs / 2), slots };
    } catch (e) {
      localError = (e as Error).message;
    }
  }
  if (client) {
    // Every rank learns whether every other one got its buffer, so none waits for a peer that gave up.
    const all = (await client.allGather({ handle, device, error: localError ?? null }, 'init')) as {
      handle: string;
      device: number;
      error: string | null;
    }[];
    const bad = all.findIndex((v) => v.error);
    if (bad >= 0) {
      client.close();
      native.epGroupDestroy();
      throw new DistError(bad === rank ? all[bad].error! : `dist.init: rank ${bad} could not set up its buffers: ${all[bad].error}`, bad);
    }
    if (ep) {
      try {
        native.epGroupOpen(all.map((v) => Uint8Array.from(Buffer.from(v.handle, 'base64'))), all.map((v) => v.device));
      } catch (e) {
        localError = (e as Error).message;
      }
      const opened = (await client.allGather(localError ?? null, 'init')) as (string | null)[];
      const badOpen = opened.findIndex((v) => v);
      if (badOpen >= 0) {
        client.close();
        native.epGroupDestroy();
        throw new DistError(badOpen === rank ? opened[badOpen]! : `dist.init: rank ${badOpen} could not map its peers' buffers: ${opened[badOpen]}`, badOpen);
      }
    }
  } else if (localError) {
    throw new DistError(localError, rank);
  }
  state = { rank, worldSize, localRank, device, client, ep, epoch: 0 };
  process.once('beforeExit', () => void destroy());
}

function st(what: string): State {
  if (!state) throw new TypeError(`dist.${what}: call \`await dsk.dist.init()\` first`);
  return state;
}

/** Whether init() has completed. */
export function isInitialized(): boolean {
  return state !== undefined;
}
/** This process's rank in the group. */
export function rank(): number {
  return st('rank').rank;
}
/** Number of ranks in the group. */
export function worldSize(): number {
  return st('worldSize').worldSize;
}
/** Rank among the processes of this machine (its GPU index). */
export function localRank(): number {
  return st('localRank').localRank;
}
/** This rank's device. */
export function device(): Device {
  return deviceName(st('device').device);
}
/** Every rank's pid, host and device (after init; a group of one lists itself). */
export function peers(): { rank: number; pid: number; host: string; device: number }[] {
  const s = st('peers');
  return s.client ? s.client.peers : [{ rank: 0, pid: process.pid, host: 'localhost', device: s.device }];
}

/** The failure that made the group unusable, if any (names the rank). */
export function failure(): DistError | undefined {
  const s = state;
  if (!s) return undefined;
  if (s.client?.failure) return s.client.failure;
  const aborted = getNative().epGroupInfo().aborted;
  return aborted ? new DistError(`dist: rank ${aborted - 1} failed; the process group is unusable`, aborted - 1) : undefined;
}

/** Every rank's `value` (JSON), in rank order. Every rank must call the collectives in the same order. */
export async function allGather<T = unknown>(value: T): Promise<T[]> {
  const s = st('allGather');
  if (!s.client) return [value];
  return (await s.client.allGather(value, 'allGather')) as T[];
}

/** Resolves when every rank has reached it (CPU-side; device work is not waited for). */
export async function barrier(): Promise<void> {
  const s = st('barrier');
  if (s.client) await s.client.allGather(null, 'barrier');
}

/** Leaves the group: frees the peer buffers and says goodbye to the rendezvous (so leaving is no failure). */
export async function destroy(): Promise<void> {
  const s = state;
  if (!s) return;
  state = undefined;
  try {
    getNative().epGroupDestroy();
  } finally {
    s.client?.close();
  }
}

/** @internal The expert-parallel settings and op counter of the group (lib/dist/ep.ts). */
export function epState(op: string): { rank: number; worldSize: number; device: number; numExperts?: number; maxSMs: number; slots: number; nextEpoch(): number } {
  const s = state;
  if (!s) throw new TypeError(`${op}: call \`await dsk.dist.init()\` first (a single process can call it too: it makes a group of one)`);
  if (!s.ep) throw new TypeError(`${op}: this rank has no expert-parallel buffer (${s.device < 0 && s.worldSize > 1 ? 'groups of several ranks need GPUs' : 'dist.init was called with ep: false'})`);
  const f = failure();
  if (f) throw f;
  return {
    rank: s.rank,
    worldSize: s.worldSize,
    device: s.device,
    numExperts: s.ep.numExperts,
    maxSMs: s.ep.maxSMs,
    slots: s.ep.slots,
    nextEpoch: () => ++s.epoch,
  };
}
