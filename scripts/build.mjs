#!/usr/bin/env node
// Builds the addon (cmake-js, CUDA when nvcc is found) and the TypeScript (tsc -> dist/).
//   node scripts/build.mjs              native + ts
//   node scripts/build.mjs --native     native only
//   node scripts/build.mjs --ts         ts only
//   node scripts/build.mjs --if-needed  skip steps whose outputs are newer than their sources
// Environment: DSK_CPU_ONLY=1 forces a CPU-only addon; DSK_PTXAS_VERBOSE=1 prints ptxas reports;
// DSK_BUILD_JOBS sets the parallelism (default: all cores).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = new Set(process.argv.slice(2));
const onlyNative = args.has('--native'), onlyTs = args.has('--ts'), ifNeeded = args.has('--if-needed');

function newest(dirs, exts) {
  let t = 0;
  const walk = (d) => {
    if (!existsSync(d)) return;
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (exts.some((x) => e.name.endsWith(x))) t = Math.max(t, statSync(p).mtimeMs);
    }
  };
  dirs.forEach((d) => walk(join(root, d)));
  return t;
}
const mtime = (p) => (existsSync(join(root, p)) ? statSync(join(root, p)).mtimeMs : 0);

function run(cmd, argv, env = {}) {
  const r = spawnSync(cmd, argv, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
  if (r.status !== 0) {
    console.error(`build: ${cmd} ${argv.join(' ')} failed (exit ${r.status ?? r.signal})`);
    process.exit(r.status || 1);
  }
}

const addon = 'build/Release/deepseek_kernels.node';
if (!onlyTs) {
  const stale = newest(['native', 'ptx'], ['.cc', '.h', '.cu', '.cuh']) > mtime(addon) || mtime('CMakeLists.txt') > mtime(addon);
  if (!ifNeeded || stale) {
    const jobs = process.env.DSK_BUILD_JOBS || String(cpus().length);
    const defs = [];
    if (process.env.DSK_CPU_ONLY === '1') defs.push('--CDDSK_CPU_ONLY=ON');
    if (process.env.DSK_PTXAS_VERBOSE === '1') defs.push('--CDDSK_PTXAS_VERBOSE=ON');
    run(process.execPath, [join(root, 'node_modules/cmake-js/bin/cmake-js'), 'build', '--out', 'build', '--parallel', jobs, ...defs]);
  }
}
if (!onlyNative) {
  const stale = newest(['lib', 'bindings', 'bench'], ['.ts', '.mts']) > mtime('dist/lib/index.js') || mtime('tsconfig.json') > mtime('dist/lib/index.js');
  if (!ifNeeded || stale) {
    run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json']);
    run(process.execPath, [join(root, 'scripts/esm-wrapper.mjs')]);
  }
}
