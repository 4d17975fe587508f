// `dsk launch --gpus N script.js [args...]`: one process per GPU, the way production inference runs.
//
// The launcher runs the rendezvous server (lib/dist/rendezvous.ts) and starts N copies of the script
// with DSK_RANK, DSK_LOCAL_RANK, DSK_WORLD_SIZE and DSK_RENDEZVOUS (host:port) in their environment;
// `await dsk.dist.init()` in the script joins the group. Rank r uses cuda:r. Output lines are prefixed
// with the rank. When a rank fails (non-zero exit, a signal, or stops answering), the others are told
// at once and get `gracePeriodMs` to fail on their own with an error naming it, then are killed; the
// launcher exits with the first failed rank's code. Nothing waits forever.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { RendezvousServer } from './rendezvous';

export interface LaunchOptions {
  /** Number of processes (ranks); rank r uses cuda:r. */
  gpus: number;
  /** The script every rank runs (with this Node binary). */
  script: string;
  args?: readonly string[];
  /** Extra arguments for node itself (before the script). */
  nodeArgs?: readonly string[];
  /** Rendezvous interface and port (default 127.0.0.1, any free port). */
  host?: string;
  port?: number;
  /** Extra environment for every rank. */
  env?: Record<string, string>;
  /** Prefix every output line with `[rank r]` (default true). */
  prefix?: boolean;
  /** A rank silent this long is declared failed (default 15 s; DSK_HEARTBEAT_TIMEOUT_MS). */
  heartbeatTimeoutMs?: number;
  /** After a rank fails, how long the others get to exit on their own before they are killed (default 30 s). */
  gracePeriodMs?: number;
  /** Where output goes (default process.stdout / process.stderr). */
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
}

export interface RankExit {
  rank: number;
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface LaunchResult {
  /** 0 when every rank exited with 0, else the first failed rank's code (1 for a signal). */
  code: number;
  ranks: RankExit[];
  /** Ranks the rendezvous declared failed, with the reason. */
  failures: { rank: number; reason: string }[];
}

/** Environment every rank gets besides its rank: NVLink multicast stays off for any library the script loads. */
export const RANK_ENV_DEFAULTS: Record<string, string> = {
  NCCL_NVLS_ENABLE: '0',
  TORCH_SYMM_MEM_DISABLE_MULTICAST: '1',
  NVSHMEM_DISABLE_NVLS: '1',
};

/** Starts `gpus` ranks of `script` and resolves when all have exited. */
export async function launch(o: LaunchOptions): Promise<LaunchResult> {
  if (!Number.isInteger(o.gpus) || o.gpus < 1) throw new RangeError(`launch: gpus must be a positive integer, got ${o.gpus}`);
  if (typeof o.script !== 'string' || !o.script) throw new TypeError('launch: script must be a path');
  const out = o.stdout ?? process.stdout, err = o.stderr ?? process.stderr;
  const hbTimeout = o.heartbeatTimeoutMs ?? (Number(o.env?.DSK_HEARTBEAT_TIMEOUT_MS ?? process.env.DSK_HEARTBEAT_TIMEOUT_MS) || 15_000);
  const grace = o.gracePeriodMs ?? 30_000;
  const children: (ChildProcess | undefined)[] = [];
  const exits: RankExit[] = [];
  let firstFailure: RankExit | undefined;
  let graceTimer: NodeJS.Timeout | undefined;

  const killAll = (sig: NodeJS.Signals) => {
    children.forEach((c, r) => { if (c && !exits.some((e) => e.rank === r)) c.kill(sig); });
  };
  const startGrace = () => {
    if (graceTimer) return;
    graceTimer = setTimeout(() => {
      err.write(`dsk launch: killing the ranks still running ${(grace / 1000).toFixed(0)} s after the first failure\n`);
      killAll('SIGKILL');
    }, grace);
  };
  const server = await RendezvousServer.start({
    worldSize: o.gpus,
    host: o.host,
    port: o.port,
    heartbeatTimeoutMs: hbTimeout,
    onFailure: (rank, reason) => {
      err.write(`dsk launch: rank ${rank} ${reason}\n`);
      startGrace();
    },
  });

  const done = new Promise<void>((resolve) => {
    for (let r = 0; r < o.gpus; r++) {
      const env: Record<string, string | undefined> = {
        ...RANK_ENV_DEFAULTS,
        ...process.env,
        ...o.env,
        DSK_RANK: String(r),
        DSK_LOCAL_RANK: String(r),
        DSK_WORLD_SIZE: String(o.gpus),
        DSK_LOCAL_WORLD_SIZE: String(o.gpus),
        DSK_RENDEZVOUS: server.address,
        DSK_HEARTBEAT_TIMEOUT_MS: String(hbTimeout),
      };
      for (const [k, v] of Object.entries(RANK_ENV_DEFAULTS)) if (env[k] !== v) env[k] = v;  // never let multicast on
      const prefix = o.prefix ?? true;
      const child = spawn(process.execPath, [...(o.nodeArgs ?? []), o.script, ...(o.args ?? [])], {
        env,
        stdio: prefix ? ['inherit', 'pipe', 'pipe'] : 'inherit',
      });
      children[r] = child;
      if (prefix) {
        createInterface({ input: child.stdout! }).on('line', (l) => out.write(`[rank ${r}] ${l}\n`));
        createInterface({ input: child.stderr! }).on('line', (l) => err.write(`[rank ${r}] ${l}\n`));
      }
      child.on('error', (e) => err.write(`dsk launch: rank ${r} could not start: ${e.message}\n`));
      child.on('exit', (code, signal) => {
        const ex: RankExit = { rank: r, code, signal };
        exits.push(ex);
        if ((code !== 0 || signal) && !firstFailure) {
          firstFailure = ex;
          err.write(`dsk launch: rank ${r} exited with ${signal ? `signal ${signal}` : `code ${code}`}\n`);
          startGrace();
        }
        if (exits.length === o.gpus) resolve();
      });
    }
  });
  const forward = (sig: NodeJS.Signals) => () => killAll(sig);
  const onInt = forward('SIGINT'), onTerm = forward('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  try {
    await done;
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    if (graceTimer) clearTimeout(graceTimer);
    await server.close();
  }
  const code = firstFailure ? (firstFailure.code && firstFailure.code !== 0 ? firstFailure.code : 1) : 0;
  return { code, ranks: exits.sort((a, b) => a.rank - b.rank), failures: server.failures.slice() };
}

export const LAUNCH_USAGE = `usage: dsk launch --gpus N [--host H] [--port P] [--no-prefix] [--grace S] [--heartbeat-timeout S] script.js [args...]

Starts N ranks of script.js (rank r on cuda:r) with DSK_RANK, DSK_LOCAL_RANK, DSK_WORLD_SIZE and
DSK_RENDEZVOUS set; \`await dsk.dist.init()\` in the script joins the group.`;

/** The `dsk launch` subcommand: parses argv (after "launch") and returns the exit code. */
export async function launchCommand(argv: readonly string[]): Promise<number> {
  const o: Partial<LaunchOptions> = {};
  let i = 0;
  const value = (name: string) => {
    const v = argv[++i];
    if (v === undefined) throw new TypeError(`dsk launch: ${name} needs a value`);
    return v;
  };
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--gpus' || a === '-n') o.gpus = Number(value(a));
    else if (a.startsWith('--gpus=')) o.gpus = Number(a.slice(7));
    else if (a === '--host') o.host = value(a);
    else if (a === '--port') o.port = Number(value(a));
    else if (a === '--no-prefix') o.prefix = false;
    else if (a === '--grace') o.gracePeriodMs = Number(value(a)) * 1000;
    else if (a === '--heartbeat-timeout') o.heartbeatTimeoutMs = Number(value(a)) * 1000;
    else if (a === '-h' || a === '--help') { process.stdout.write(LAUNCH_USAGE + '\n'); return 0; }
    else if (a === '--') { i++; break; }
    else if (a.startsWith('-')) { process.stderr.write(`dsk launch: unknown option ${a}\n${LAUNCH_USAGE}\n`); return 2; }
    else break;
  }
  if (i >= argv.length || !o.gpus) {
    process.stderr.write(`${LAUNCH_USAGE}\n`);
    return 2;
  }
  const r = await launch({ ...(o as LaunchOptions), script: argv[i], args: argv.slice(i + 1) });
  return r.code;
}
