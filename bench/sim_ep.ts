// npm run sim:ep — predicts internode dispatch/combine time for EP16..EP256 from link bandwidths and
// routing statistics, for the DeepSeek scheme of docs/internode.md: a token crosses the network at most
// once per destination node (to the GPU with its own local index there), and NVLink forwards it inside
// the node to every GPU holding one of its experts. Checked against DeepEP's published internode figures.
//
//   node dist/bench/sim_ep.js [--rdma 50] [--nvl 160] [--eta-rdma 0.87] [--eta-nvl 0.90] [--tokens 4096]
//                             [--routing deepep|v3] [--overhead-us 25] [--json FILE]
//
// Model, per GPU (every GPU is alike by symmetry):
//   RDMA bytes out  = T * E[distinct nodes of a token, own node excluded] * bytes/token
//   NVLink bytes in = (T * W) * P(token has an expert on this GPU) * (G-1)/G * bytes/token
//                     (tokens from every GPU of the system that need this one, except those already on a
//                     GPU of this local index; each arrives once whatever its number of experts here)
//   time            = max(RDMA out / (rdma * etaRdma), NVLink in / (nvl * etaNvl)) + overhead
// Reported as DeepEP reports it: "RDMA GB/s" = T * E[distinct nodes, own included] * bytes / time.
// Combine moves the same tokens back in bf16, so the same formulas hold with bf16 bytes.
import { writeFileSync } from 'node:fs';
import { Rng } from '../lib/dist/routing';

interface Opts {
  rdma: number;
  nvl: number;
  etaRdma: number;
  etaNvl: number;
  tokens: number;
  hidden: number;
  experts: number;
  topk: number;
  gpusPerNode: number;
  overheadUs: number;
  routing: 'deepep' | 'v3' | 'node-limited';
  samples: number;
  json?: string;
}

function parse(argv: string[]): Opts {
  const o: Opts = { rdma: 50, nvl: 160, etaRdma: 0.87, etaNvl: 0.9, tokens: 4096, hidden: 7168, experts: 256, topk: 8, gpusPerNode: 8, overheadUs: 25, routing: 'deepep', samples: 4096 };
  for (let i = 0; i < argv.length; i++) {
    const v = () => argv[++i];
    switch (argv[i]) {
      case '--rdma': o.rdma = Number(v()); break;
      case '--nvl': o.nvl = Number(v()); break;
      case '--eta-rdma': o.etaRdma = Number(v()); break;
      case '--eta-nvl': o.etaNvl = Number(v()); break;
      case '--tokens': o.tokens = Number(v()); break;
      case '--hidden': o.hidden = Number(v()); break;
      case '--overhead-us': o.overheadUs = Number(v()); break;
      case '--routing': o.routing = v() as Opts['routing']; break;
      case '--samples': o.samples = Number(v()); break;
      case '--json': o.json = v(); break;
      default: throw new Error(`sim:ep: unknown argument ${argv[i]}`);
    }
  }
  return o;
}

export interface RoutingStats {
  /** E[distinct nodes per token], own node included / excluded. */
  nodes: number;
  remoteNodes: number;
  /** P(a token has an expert on a given GPU), over all tokens of the system. */
  pGpu: number;
}

/**
 * Routing statistics by sampling tokens of one source GPU (node 0, local index 0).
 * 'deepep': DeepEP's internode test generator — groups are the nodes, min(nodes, 4) chosen by their best
 * expert, top-k inside. 'v3': DeepSeek-V3's 8 groups scored by their top-2 sum, 4 chosen, whatever the
 * node count (beyond 8 nodes a group spans several nodes). 'node-limited': DeepSeek-V3's node-limited
 * routing — nodes scored by the sum of their best topk/4 experts, the best min(nodes, 4) kept.
 */
export function routingStats(nodes: number, gpusPerNode: number, experts: number, topk: number, kind: 'deepep' | 'v3' | 'node-limited', samples: number, seed = 1): RoutingStats {
  const W = nodes * gpusPerNode, perGpu = experts / W, perNode = experts / nodes;
  const groups = kind === 'v3' ? 8 : nodes, keep = kind === 'v3' ? 4 : Math.min(nodes, 4);
  const best = kind === 'deepep' ? 1 : kind === 'v3' ? 2 : Math.max(1, Math.floor(topk / 4));
  const perGroup = experts / groups;
  const rng = new Rng(seed);
  const scores = new Float64Array(experts), gscore = new Float64Array(groups);
  let nodeSum = 0, remoteSum = 0, gpuHits = 0;
  for (let s = 0; s < samples; s++) {
    for (let e = 0; e < experts; e++) scores[e] = Math.abs(rng.normal()) + 1;
    for (let g = 0; g < groups; g++) {
      const top = Array.from(scores.subarray(g * perGroup, (g + 1) * perGroup)).sort((a, b) => b - a);
      let m = 0;
      for (let i = 0; i < best; i++) m += top[i];
      gscore[g] = m;
    }
    const chosen = Array.from({ length: groups }, (_, g) => g).sort((a, b) => gscore[b] - gscore[a]).slice(0, keep);
    const cand: number[] = [];
    for (const g of chosen) for (let i = 0; i < perGroup; i++) cand.push(g * perGroup + i);
    cand.sort((a, b) => scores[b] - scores[a]);
    const picked = cand.slice(0, topk);
    const ns = new Set(picked.map((e) => Math.floor(e / perNode)));
    nodeSum += ns.size;
    remoteSum += ns.size - (ns.has(0) ? 1 : 0);
    gpuHits += new Set(picked.map((e) => Math.floor(e / perGpu))).size;
  }
  return { nodes: nodeSum / samples, remoteNodes: remoteSum / samples, pGpu: gpuHits / samples / W };
}

export interface Prediction {
  ep: number;
  nodes: number;
  stats: RoutingStats;
  dispatchUs: number;
  dispatchGBps: number;
  dispatchBound: 'RDMA' | 'NVLink';
  combineUs: number;
  combineGBps: number;
}

export function predict(ep: number, o: Opts): Prediction {
  const G = o.gpusPerNode, nodes = ep / G, T = o.tokens, H = o.hidden;
  const stats = routingStats(nodes, G, o.experts, o.topk, o.routing, o.samples);
  const one = (bytesPerToken: number) => {
    const rdmaOut = T * stats.remoteNodes * bytesPerToken;
    const nvlIn = T * ep * stats.pGpu * ((G - 1) / G) * bytesPerToken;
    const tR = rdmaOut / (o.rdma * o.etaRdma * 1e3), tN = nvlIn / (o.nvl * o.etaNvl * 1e3);  // us
    const us = Math.max(tR, tN) + o.overheadUs;
    return { us, gbps: (T * stats.nodes * bytesPerToken) / (us * 1e3), bound: (tR >= tN ? 'RDMA' : 'NVLink') as 'RDMA' | 'NVLink' };
  };
  const d = one(H + (H / 128) * 4), c = one(2 * H);
  return { ep, nodes, stats, dispatchUs: d.us, dispatchGBps: d.gbps, dispatchBound: d.bound, combineUs: c.us, combineGBps: c.gbps };
}

/** DeepEP's published internode normal-kernel figures (H800, CX7 400 Gb/s; README, "Bottleneck bandwidth"). */
export const DEEPEP_PUBLISHED: Record<number, { dispatch: number; combine: number }> = {
  16: { dispatch: 43, combine: 43 },
  32: { dispatch: 58, combine: 57 },
  64: { dispatch: 51, combine: 50 },
};

function main(): void {
  const o = parse(process.argv.slice(2));
  console.log(`sim:ep  ${o.tokens} tokens/GPU, hidden ${o.hidden}, top-${o.topk} of ${o.experts}, ${o.gpusPerNode} GPUs/node, routing '${o.routing}'`);
  console.log(`links: RDMA ${o.rdma} GB/s x ${o.etaRdma}, NVLink ${o.nvl} GB/s x ${o.etaNvl}, fixed ${o.overheadUs} us per op\n`);
  console.log('  EP  nodes  nodes/token  remote  P(gpu)   dispatch fp8 (us, GB/s, bound)   combine bf16 (us, GB/s)   DeepEP published (disp / comb GB/s)  error');
  const rows: Prediction[] = [];
  for (const ep of [16, 32, 64, 128, 256]) {
    const p = predict(ep, o);
    rows.push(p);
    const pub = o.routing === 'deepep' ? DEEPEP_PUBLISHED[ep] : undefined;
    const err = pub ? `${(((p.dispatchGBps - pub.dispatch) / pub.dispatch) * 100).toFixed(0).padStart(4)}% / ${(((p.combineGBps - pub.combine) / pub.combine) * 100).toFixed(0).padStart(4)}%` : '';
    console.log(
      `${String(ep).padStart(4)}  ${String(p.nodes).padStart(5)}  ${p.stats.nodes.toFixed(2).padStart(11)}  ${p.stats.remoteNodes.toFixed(2).padStart(6)}  ${p.stats.pGpu.toFixed(3).padStart(6)}` +
        `   ${p.dispatchUs.toFixed(0).padStart(6)} ${p.dispatchGBps.toFixed(1).padStart(6)} ${p.dispatchBound.padStart(7)}` +
        `          ${p.combineUs.toFixed(0).padStart(6)} ${p.combineGBps.toFixed(1).padStart(6)}` +
        `          ${pub ? `${pub.dispatch} / ${pub.combine}`.padStart(10) : '         -'}                 ${err}`,
    );
  }
  if (o.json) writeFileSync(o.json, JSON.stringify({ options: o, rows, published: DEEPEP_PUBLISHED }, null, 2));
}

if (require.main === module) main();
