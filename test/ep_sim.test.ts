// The internode simulator (npm run sim:ep): routing statistics from their definition, and predictions
// against DeepEP's published internode figures.
import { describe, expect, it } from 'vitest';
import { DEEPEP_PUBLISHED, predict, routingStats } from '../bench/sim_ep';

const opts = { rdma: 50, nvl: 160, etaRdma: 0.87, etaNvl: 0.9, tokens: 4096, hidden: 7168, experts: 256, topk: 8, gpusPerNode: 8, overheadUs: 25, routing: 'deepep' as const, samples: 1024 };

describe('sim:ep', () => {
  it('routing statistics follow from the routing rule', () => {
    // 2 nodes, both kept: a token misses a node only if all 8 experts fall in the other: 2 * (1/2)^8-ish.
    const s2 = routingStats(2, 8, 256, 8, 'deepep', 2048);
    expect(s2.nodes).toBeGreaterThan(1.97);
    expect(s2.nodes).toBeLessThanOrEqual(2);
    // Never more than 4 nodes under node-limited routing; P(gpu) * W = E[distinct GPUs per token] <= 8.
    for (const n of [8, 16, 32]) {
      const s = routingStats(n, 8, 256, 8, 'node-limited', 1024);
      expect(s.nodes).toBeLessThanOrEqual(4);
      expect(s.remoteNodes).toBeLessThan(s.nodes);
      expect(s.pGpu * n * 8).toBeLessThanOrEqual(8);
      expect(s.pGpu * n * 8).toBeGreaterThan(4);
    }
  });

  it('predicts DeepEP published internode bandwidth within 5% where the NIC bounds it, 20% at EP16', () => {
    for (const ep of [16, 32, 64]) {
      const p = predict(ep, opts);
      const pub = DEEPEP_PUBLISHED[ep];
      const tol = ep === 16 ? 0.2 : 0.05;
      expect(Math.abs(p.dispatchGBps - pub.dispatch) / pub.dispatch, `EP${ep} dispatch`).toBeLessThan(tol);
      expect(Math.abs(p.combineGBps - pub.combine) / pub.combine, `EP${ep} combine`).toBeLessThan(tol);
      expect(p.dispatchBound).toBe(ep === 16 ? 'NVLink' : 'RDMA');
    }
    // Combine carries bf16 (14336 B/token) where dispatch carries fp8 (7392 B): about twice the time.
    const p = predict(64, opts);
    expect(p.combineUs / p.dispatchUs).toBeGreaterThan(1.8);
    expect(p.combineUs / p.dispatchUs).toBeLessThan(2.0);
  });
});
