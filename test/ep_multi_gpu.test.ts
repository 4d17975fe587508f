// Expert parallelism across GPUs: `dsk launch --gpus N` on every GPU of the machine (N >= 2), each rank
// checking what it receives and what combine returns against the CPU simulation exactly (see
// test/fixtures/ep_ranks.mjs), then a stopped peer. Skipped with fewer than two GPUs.
import { spawnSync } from 'node:child_process';
import { Writable } from 'node:stream';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cuda, launch } from '../lib/index';
import { ensureDist, root } from './helpers/build';

const gpus = cuda.isAvailable() ? Math.min(cuda.deviceCount(), 16) : 0;

interface CaseResult {
  rank: number;
  world: number;
  case: string;
  error?: string | null;
  bad?: Record<string, number>;
  combineMismatch?: number;
  worst?: number;
  cachedMismatch?: number;
  asyncMismatch?: number;
  ms?: number;
  later?: string | null;
  skipped?: string;
  rows?: number;
  relErr?: number;
}

let results: CaseResult[] = [];
let log = '';

// The same fixture in a group of one rank on the CPU (every case; no stopped peer to test alone), so
// the checks themselves run in CI.
describe('the multi-GPU fixture in a group of one rank (cpu)', () => {
  it('receives exactly the simulated layout and combines exactly in every case', () => {
    ensureDist();
    const r = spawnSync(process.execPath, [join(root, 'test/fixtures/ep_ranks.mjs')], {
      encoding: 'utf8',
      env: { ...process.env, DSK_TEST_EP_STOP: '0', DSK_RANK: '', DSK_WORLD_SIZE: '', DSK_RENDEZVOUS: '', CUDA_VISIBLE_DEVICES: '' },
    });
    expect(r.status, r.stderr).toBe(0);
    const rs = [...r.stdout.matchAll(/RESULT (\{.*\})/g)].map((m) => JSON.parse(m[1]) as CaseResult);
    expect(rs.map((x) => x.case)).toEqual(['deepep-bf16', 'deepep-fp8', 'skew-bf16', 'skew-fp8', 'tiny-bf16', 'tiny-fp8', 'moe-layer']);
    for (const x of rs.slice(0, 6)) {
      expect(x.error ?? null, x.case).toBeNull();
      expect(x.bad, x.case).toEqual({ rows: 0, mIndices: 0, payload: 0, scale: 0, weights: 0, counts: 0 });
      expect(x.combineMismatch, x.case).toBe(0);
    }
    expect(rs[6].relErr).toBe(0);  // one rank: the EP layer is the single-device layer
  });
});

(gpus >= 2 ? describe : describe.skip)(`expert parallelism on ${gpus} GPUs`, () => {
  beforeAll(async () => {
    ensureDist();
    let text = '';
    const sink = new Writable({ write(c, _e, cb) { text += c.toString(); cb(); } });
    const r = await launch({ gpus, script: join(root, 'test/fixtures/ep_ranks.mjs'), stdout: sink, stderr: sink, gracePeriodMs: 30_000 });
    log = text;
    results = [...text.matchAll(/RESULT (\{.*\})/g)].map((m) => JSON.parse(m[1]) as CaseResult);
    if (process.env.DSK_EP_TEST_LOG) (await import('node:fs')).writeFileSync(process.env.DSK_EP_TEST_LOG, text);
    expect(r.code, text.slice(-4000)).toBe(0);
  }, 600_000);

  const byCase = (name: string) => results.filter((r) => r.case === name);

  for (const name of ['deepep-bf16', 'deepep-fp8', 'skew-bf16', 'skew-fp8', 'tiny-bf16', 'tiny-fp8']) {
    it(`${name}: every rank receives exactly the simulated layout, and combine returns the simulated sums`, () => {
      const rs = byCase(name);
      expect(rs.length, log.slice(-3000)).toBe(gpus);
      for (const r of rs) {
        expect(r.error ?? null, `rank ${r.rank}`).toBeNull();
        expect(r.bad, `rank ${r.rank}`).toEqual({ rows: 0, mIndices: 0, payload: 0, scale: 0, weights: 0, counts: 0 });
        expect(r.combineMismatch, `rank ${r.rank}`).toBe(0);
        expect(r.asyncMismatch, `rank ${r.rank}: async dispatch + combine vs sync`).toBe(0);
        expect(r.worst!, `rank ${r.rank}`).toBeLessThan(1.6e-2);
        if (!name.endsWith('fp8')) expect(r.cachedMismatch, `rank ${r.rank}`).toBe(0);
      }
    });
  }

  it('skew: the ranks holding no used expert receive nothing', () => {
    for (const r of byCase('skew-bf16')) if (r.rank > 0) expect(r.rows).toBe(0);
  });

  it('the EP MoE layer gives the single-GPU layer\'s result on every rank (uneven loads)', () => {
    const rs = byCase('moe-layer');
    expect(rs.length, log.slice(-3000)).toBe(gpus);
    for (const r of rs) {
      if (r.skipped) throw new Error(`rank ${r.rank}: ${r.skipped}`);
      expect(r.error ?? null, `rank ${r.rank}`).toBeNull();
      // Per-rank partial sums travel as bf16: within bf16 rounding of the single-GPU sum.
      expect(r.relErr!, `rank ${r.rank}`).toBeLessThan(1e-2);
    }
  });

  it('a stopped peer makes the others fail within the timeout, naming it, and later ops refuse at once', () => {
    const rs = byCase('stop');
    const r0 = rs.find((r) => r.rank === 0)!;
    expect(r0.error).toMatch(/ep: no progress from rank 1 for 5000 ms/);
    expect(r0.ms!).toBeLessThan(15_000);
    expect(r0.later).toMatch(/failed/);
    const r1 = rs.find((r) => r.rank === 1)!;
    expect(r1.error).toMatch(/rank 0|rank \d/);
  });
});
