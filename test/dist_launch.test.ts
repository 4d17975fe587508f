// The process group without GPUs: dsk launch starts ranks, they join through the rendezvous, gather
// values, and a rank that dies or stops answering makes the others fail naming it, within a bound.
import { Writable } from 'node:stream';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { launch, RendezvousClient, RendezvousServer } from '../lib/index';
import { ensureDist, root } from './helpers/build';

const worker = join(root, 'test/fixtures/dist_worker.mjs');

function sink(): { stream: Writable; text: () => string } {
  let buf = '';
  const stream = new Writable({ write(c, _e, cb) { buf += c.toString(); cb(); } });
  return { stream, text: () => buf };
}

function results(text: string): Record<number, Record<string, unknown>> {
  const out: Record<number, Record<string, unknown>> = {};
  for (const m of text.matchAll(/RESULT (\{.*\})/g)) {
    const r = JSON.parse(m[1]);
    out[r.rank] = r;
  }
  return out;
}

async function run(gpus: number, scenario: string, env: Record<string, string> = {}) {
  const out = sink(), err = sink();
  const r = await launch({ gpus, script: worker, env: { DSK_TEST_SCENARIO: scenario, ...env }, stdout: out.stream, stderr: err.stream, gracePeriodMs: 20_000 });
  return { ...r, out: out.text(), err: err.text(), res: results(out.text()) };
}

beforeAll(() => ensureDist(), 120_000);

describe('dsk launch and the rendezvous', () => {
  it('starts N ranks that gather values in rank order, with multicast kept off', async () => {
    const r = await run(3, 'basic');
    expect(r.code, r.err).toBe(0);
    for (let rank = 0; rank < 3; rank++) {
      expect(r.res[rank].world).toBe(3);
      expect(r.res[rank].values).toEqual([0, 1, 2].map((q) => ({ rank: q, square: q * q })));
      expect(r.res[rank].peers).toEqual([0, 1, 2]);
      expect(r.res[rank].env).toEqual({ nvls: '0', multicast: '1' });
    }
    expect(r.out).toMatch(/^\[rank 2\] RESULT/m);
  });

  it('a rank that dies makes the others fail naming it, and the launcher returns its code', async () => {
    const r = await run(2, 'die');
    expect(r.code).toBe(3);
    expect(r.res[0].error).toMatch(/rank 1 exited or crashed/);
    expect(r.res[0].failedRank).toBe(1);
    expect(r.res[0].ms as number).toBeLessThan(5000);
    expect(r.err).toMatch(/rank 1 exited with code 3/);
  });

  it('a rank that stops answering is declared failed after the heartbeat timeout', async () => {
    const r = await run(2, 'stop', { DSK_HEARTBEAT_TIMEOUT_MS: '1500' });
    expect(r.code, r.err).toBe(0);
    expect(r.res[0].error).toMatch(/rank 1 stopped answering \(no heartbeat for \d+\.\d s\)/);
    expect(r.res[0].failedRank).toBe(1);
    expect(r.res[0].ms as number).toBeGreaterThan(1000);
    expect(r.res[0].ms as number).toBeLessThan(6000);
    // The stopped rank, once resumed, learns it was declared failed.
    expect(r.res[1].error).toMatch(/this rank \(1\) stopped answering/);
  });

  it('the dsk command runs launch and reports usage errors', () => {
    const cli = join(root, 'dist/lib/cli/main.js');
    const ok = spawnSync(process.execPath, [cli, 'launch', '--gpus', '2', worker], { encoding: 'utf8', env: { ...process.env, DSK_TEST_SCENARIO: 'basic' } });
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout.match(/RESULT/g)?.length).toBe(2);
    const bad = spawnSync(process.execPath, [cli, 'launch', worker], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/usage: dsk launch --gpus N/);
    const unknown = spawnSync(process.execPath, [cli, 'nope'], { encoding: 'utf8' });
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command "nope"/);
  });
});

describe('rendezvous in one process', () => {
  it('rejects a duplicate rank and a wrong world size', async () => {
    const server = await RendezvousServer.start({ worldSize: 2 });
    try {
      const a = RendezvousClient.connect({ address: server.address, rank: 0, worldSize: 2, joinTimeoutMs: 5000 });
      await new Promise((r) => setTimeout(r, 100));
      await expect(RendezvousClient.connect({ address: server.address, rank: 0, worldSize: 2 })).rejects.toThrow(/rank 0 joined twice/);
      await expect(RendezvousClient.connect({ address: server.address, rank: 1, worldSize: 3 })).rejects.toThrow(/world size 3 differs/);
      const b = await RendezvousClient.connect({ address: server.address, rank: 1, worldSize: 2 });
      const ca = await a;
      const [ga, gb] = await Promise.all([ca.allGather('x'), b.allGather('y')]);
      expect(ga).toEqual(['x', 'y']);
      expect(gb).toEqual(['x', 'y']);
      // A clean leave is no failure; an unclean one is.
      b.close();
      await new Promise((r) => setTimeout(r, 200));
      expect(ca.failure).toBeUndefined();
      ca.close();
    } finally {
      await server.close();
    }
  });

  it('a collective that not every rank reaches times out instead of hanging', async () => {
    const server = await RendezvousServer.start({ worldSize: 2 });
    try {
      const [a, b] = await Promise.all([0, 1].map((rank) => RendezvousClient.connect({ address: server.address, rank, worldSize: 2, collectiveTimeoutMs: 500 })));
      await expect(a.allGather(1)).rejects.toThrow(/not every rank reached collective #1 within 0.5 s/);
      a.close();
      b.close();
    } finally {
      await server.close();
    }
  });

  it('a client that cannot reach the rendezvous gives up with the address', async () => {
    await expect(RendezvousClient.connect({ address: '127.0.0.1:1', rank: 0, worldSize: 2, joinTimeoutMs: 300 })).rejects.toThrow(
      /could not reach the rendezvous at 127.0.0.1:1/,
    );
  });
});
